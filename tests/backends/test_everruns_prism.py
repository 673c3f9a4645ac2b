"""The Everruns backend against a Prism mock generated from ``everruns-openapi.json``, with
request validation on: a request that breaks the spec is refused (and recorded here), so the
backend's requests are checked against the platform's published document. Once with the spec's
examples, once with random valid data over many runs: every reply must parse."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import pytest
from prism_support import start_prism, vendor_file, violations

from sessionscope.backends import BackendConfig, ServerError, SessionQuery, create_backend
from sessionscope.backends.everruns import EverrunsBackend
from sessionscope.models import Session, SessionCreate, SessionStatus, SessionUpdate, ToolResult

AGENT_ID = "agent_0193" + "a" * 28
MODEL_ID = "model_0193" + "b" * 28
SESSION_ID = "session_0193" + "c" * 28
DYNAMIC_RUNS = 25
#: A random reply the spec's own validator refuses is asked for again, up to this often.
REPLY_ATTEMPTS = 200
T = TypeVar("T")
CREATE = SessionCreate(
    agent_id=AGENT_ID,
    title="From the console",
    tags=["ops"],
    model_id=MODEL_ID,
    capabilities=[{"ref": "tool_approval", "config": {"mode": "normal"}}],
)


@pytest.fixture(scope="module")
def prism_examples() -> Iterator[str]:
    with start_prism(vendor_file("everruns-openapi.json")) as url:
        yield url


@pytest.fixture(scope="module")
def prism_dynamic() -> Iterator[str]:
    spec = vendor_file("everruns-openapi.json")
    with start_prism(spec, dynamic=True, seed="sessionscope") as url:
        yield url


@asynccontextmanager
async def everruns_at(url: str) -> AsyncIterator[tuple[EverrunsBackend, Violations]]:
    """A backend on the mock, and the spec violations Prism reported: the backend's requests
    (``request``) apart from the mock's own replies (``response``: the spec's examples do not
    all match its schemas)."""
    backend = create_backend(
        BackendConfig(
            name="everruns",
            url=url,
            api_key="evr_pat_prism",
            options={"org_id": "org_" + "0" * 32, "retry_attempts": 1},
        )
    )
    assert isinstance(backend, EverrunsBackend)
    reported = Violations()

    async def record(response: httpx.Response) -> None:
        found = violations(response)
        if response.status_code in (400, 422):
            # Prism explains a refused request in the body's ``validation`` list.
            await response.aread()
            with contextlib.suppress(ValueError):
                body = response.json()
                if isinstance(body, dict) and isinstance(body.get("validation"), list):
                    found += body["validation"]
        for violation in found:
            where = f"{response.request.method} {response.request.url.path}"
            line = f"{where} -> {response.status_code}: {violation}"
            location = violation.get("location") or ["request"]
            (reported.response if location[0] == "response" else reported.request).append(line)

    backend._http.client.event_hooks["response"].append(record)
    try:
        yield backend, reported
    finally:
        await backend.aclose()


@dataclass
class Violations:
    request: list[str] = field(default_factory=list)
    response: list[str] = field(default_factory=list)


def _well_formed(session: Session) -> None:
    assert session.id
    assert isinstance(session.status, SessionStatus)
    assert isinstance((session.model_extra or {}).get("platform_status"), str)


async def served(reported: Violations, call: Awaitable[T]) -> T | None:
    """The call's result, or None when Prism refused to serve its own reply (a 500 that it
    explains with violations in the *response*: the spec's examples and its ambiguous oneOfs
    do not always satisfy its schemas). Any other failure propagates."""
    before = len(reported.response)
    try:
        return await call
    except ServerError:
        if len(reported.response) == before:
            raise
        return None


async def parsed(reported: Violations, make_call: Callable[[], Awaitable[T]]) -> T:
    """Random replies until one the spec's own schemas accept has been parsed."""
    for _ in range(REPLY_ATTEMPTS):
        result = await served(reported, make_call())
        if result is not None:
            return result
    pytest.fail(f"Prism served no valid reply in {REPLY_ATTEMPTS} attempts")


async def test_every_call_the_console_makes_is_valid_for_the_spec(prism_examples: str) -> None:
    async with everruns_at(prism_examples) as (backend, reported):
        # The mock does refuse what the spec forbids (so the check below can fail).
        refused = await backend._http.client.get("/v1/sessions", params={"limit": 500})
        assert refused.status_code == 422 and reported.request
        reported.request.clear()
        page = await backend.list_sessions(limit=100)
        assert page.data, "the spec's example lists a session"
        for session in page.data:
            _well_formed(session)
        await backend.list_sessions(SessionQuery(text="plan", agent_id=AGENT_ID), limit=5)
        _well_formed(await backend.get_session(SESSION_ID))
        # The spec's example reply to a create lacks workspace_id and gives status as a string
        # where the schema wants an object, and its event examples miss required fields: Prism
        # refuses to serve them (500), after validating the request.
        assert await served(reported, backend.create_session(CREATE)) is None
        _well_formed(
            await backend.update_session(SESSION_ID, SessionUpdate(title="renamed", tags=["x"]))
        )
        assert await backend.cancel_turn(SESSION_ID)
        message = await backend.send_message(SESSION_ID, "hello")
        assert message.id
        await served(reported, backend.list_events(SESSION_ID, after=0))
        await served(reported, backend.list_events(SESSION_ID, after=3, types=["tool.completed"]))
        stats = await backend.session_stats()
        assert "total" in stats
        await served(reported, backend.list_session_actions(SESSION_ID))
        await backend.submit_tool_result(SESSION_ID, "toolu_1", ToolResult(output={"ok": True}))
        await backend.delete_session(SESSION_ID)
    assert reported.request == [], "requests the spec does not allow:\n" + "\n".join(
        reported.request
    )


async def test_random_valid_replies_all_parse(prism_dynamic: str) -> None:
    """Random data the spec allows, many times over: every reply is parsed into our models,
    none raises (the spec's Session.status is an object here, a name clash in the document)."""
    async with everruns_at(prism_dynamic) as (backend, reported):
        for _ in range(DYNAMIC_RUNS):
            page = await parsed(reported, lambda: backend.list_sessions(limit=20))
            for session in page.data:
                _well_formed(session)
            _well_formed(await parsed(reported, lambda: backend.get_session(SESSION_ID)))
            _well_formed(await parsed(reported, lambda: backend.create_session(CREATE)))
            events = await parsed(reported, lambda: backend.list_events(SESSION_ID, after=0))
            sequences = [event.sequence for event in events.data]
            assert sequences == sorted(sequences)
            assert not any(event.type.endswith(".delta") for event in events.data)
            await parsed(reported, backend.session_stats)
            await parsed(reported, lambda: backend.list_session_actions(SESSION_ID))
    assert reported.request == [], "requests the spec does not allow:\n" + "\n".join(
        reported.request
    )
