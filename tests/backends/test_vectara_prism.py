"""The Vectara backend against Prism mocks generated from ``vectara-openapi.yaml``, on loopback,
with request validation on: a request that breaks the spec is answered 422 and recorded here as a
violation, and the test fails. Once with the spec's examples, once in dynamic mode (random valid
data) over many rounds: every reply parsed into the console's models, only typed errors.

Two defects of the published document are corrected in the copy Prism serves, both without
changing what is valid: its ``oneOf`` unions (event types, input types, tool outputs) let every
branch accept any ``type`` string, so no request body or event can match exactly one branch; the
discriminator's mapping says which branch a ``type`` selects, and the copy states it as an
``enum`` on each branch. And Prism's generator emits ``format: byte`` strings that its own
validator rejects; the copy gives artifact ``data`` a base64 pattern instead.

The account-wide mode (no ``agent_key``) is tested against the fake only: the spec's own example
of an agent fails the spec's ``Agent`` schema, and Prism's generator crashes on that schema.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prism_support import TOOLS, install_prism, start_prism, vendor_file, violations

from sessionscope.backends import (
    AuthError,
    BackendConfig,
    NotFound,
    ProtocolError,
    ValidationFailed,
    create_backend,
)
from sessionscope.backends.vectara import VectaraBackend
from sessionscope.models import (
    Artifact,
    Event,
    Session,
    SessionCreate,
    SessionUpdate,
    ToolCall,
    ToolResult,
)

AGENT = "customer_support"
SESSION = "customer_support_chat"
EVENT_ID = "aev_user_001"
TOOL_EVENT_ID = "aev_3Kx9QpVn2mZr8YbLc5TdWe"
ARTIFACT = "art_report_pdf_a3f2"
DYNAMIC_ROUNDS = 12


def _spec_json(spec: Path) -> dict[str, Any]:
    """The YAML document as JSON, read with the YAML parser Prism itself brings."""
    install_prism()
    script = (
        "const y=require(process.argv[1]);const fs=require('fs');"
        "process.stdout.write(JSON.stringify(y.load(fs.readFileSync(process.argv[2],'utf8'))))"
    )
    result = subprocess.run(
        ["node", "-e", script, str(TOOLS / "node_modules" / "js-yaml"), str(spec)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def _corrected(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    for schema in schemas.values():
        discriminator = schema.get("discriminator") or {}
        name = discriminator.get("propertyName")
        for value, ref in (discriminator.get("mapping") or {}).items():
            target = schemas[ref.rsplit("/", 1)[-1]]
            parts = [part for part in target.get("allOf", []) if "properties" in part]
            part = parts[-1] if parts else target
            properties = part.setdefault("properties", {})
            properties[name] = {**properties.get(name, {"type": "string"}), "enum": [value]}
    data = schemas["SessionArtifact"]["properties"]["data"]
    data.pop("format", None)
    data["pattern"] = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    return document


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vectara-spec") / "vectara-openapi.json"
    path.write_text(json.dumps(_corrected(_spec_json(vendor_file("vectara-openapi.yaml")))))
    return path


class Exchanges:
    """Every reply Prism gave the backend, with the violations it reported."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, list[dict[str, Any]]]] = []

    async def record(self, response: httpx.Response) -> None:
        request = response.request
        self.seen.append(
            (request.method, request.url.path, response.status_code, violations(response))
        )

    def request_violations(self) -> list[Any]:
        return [
            (method, path, found)
            for method, path, _status, found in self.seen
            for item in found
            if (item.get("location") or [""])[0] == "request"
        ]


@pytest.fixture
def exchanges() -> Exchanges:
    return Exchanges()


def _backend(url: str, exchanges: Exchanges, **options: Any) -> VectaraBackend:
    backend = create_backend(
        BackendConfig(
            name="vectara",
            url=url,
            api_key="prism_key_0123",
            timeout=10.0,
            options={"agent_key": AGENT, "retry_attempts": 1, **options},
        )
    )
    assert isinstance(backend, VectaraBackend)
    # Test-only: a hook on the backend's own client sees each reply's violations header.
    backend._http.client.event_hooks["response"].append(exchanges.record)
    return backend


@pytest.fixture
def examples_url(spec: Path) -> Iterator[str]:
    with start_prism(spec) as url:
        yield url


@pytest.fixture
def dynamic_url(spec: Path) -> Iterator[str]:
    with start_prism(spec, dynamic=True, seed="vectara") as url:
        yield url


@pytest.fixture
async def examples_backend(
    examples_url: str, exchanges: Exchanges
) -> AsyncIterator[VectaraBackend]:
    backend = _backend(examples_url, exchanges)
    try:
        yield backend
    finally:
        await backend.aclose()


async def _read_all(backend: VectaraBackend, artifact_id: str) -> bytes:
    return b"".join([c async for c in backend.read_artifact(SESSION, artifact_id)])


async def test_every_operation_against_the_spec_examples(
    examples_backend: VectaraBackend, exchanges: Exchanges
) -> None:
    backend = examples_backend
    sessions = await backend.list_sessions(limit=10)
    assert [s.id for s in sessions.data] == [SESSION]
    session = sessions.data[0]
    assert session.title == "Customer Support Session" and session.agent_id == AGENT
    assert (session.model_extra or {})["current_step_name"] == "billing"
    assert (await backend.get_session(SESSION)).id == SESSION
    created = await backend.create_session(
        SessionCreate(title="made", metadata={"a": 1}, description="why")
    )
    assert isinstance(created, Session)
    updated = await backend.update_session(
        SESSION, SessionUpdate(title="renamed", metadata={"b": 2}, description="d", enabled=False)
    )
    assert isinstance(updated, Session)

    events = await backend.list_events(SESSION, limit=20, include_hidden=True)
    assert events.data and all(isinstance(e, Event) for e in events.data)
    assert events.data[0].id == EVENT_ID and events.data[0].sequence == 1
    assert (await backend.get_event(SESSION, EVENT_ID)).sequence == 1
    assert (await backend.hide_event(SESSION, EVENT_ID)).hidden
    assert not (await backend.unhide_event(SESSION, EVENT_ID)).hidden
    await backend.delete_event(SESSION, EVENT_ID)

    calls = await backend.list_tool_calls(SESSION)
    assert [c.id for c in calls] == [TOOL_EVENT_ID]
    assert all(argument.secret for argument in calls[0].arguments)
    done = await backend.submit_tool_result(SESSION, TOOL_EVENT_ID, ToolResult(output={"ok": 1}))
    assert done.status == "succeeded"
    failed = await backend.submit_tool_result(SESSION, TOOL_EVENT_ID, ToolResult(error="boom"))
    assert failed.status == "failed"
    sent = await backend.send_message(SESSION, "hello")
    assert sent.type == "input_message"
    await backend.cancel_turn(SESSION)

    artifacts = await backend.list_artifacts(SESSION, limit=5)
    assert [a.id for a in artifacts.data] == [ARTIFACT]
    assert artifacts.data[0].size_bytes == 2048576
    meta = await backend.get_artifact(SESSION, ARTIFACT)
    assert meta.name == "report.pdf" and "data" not in (meta.model_extra or {})
    # The example's checksum and size are not those of its example content.
    with pytest.raises(ProtocolError, match="checksum_sha256"):
        await _read_all(backend, ARTIFACT)
    await backend.delete_session(SESSION)

    assert exchanges.request_violations() == []
    assert all(status < 400 for _m, _p, status, _v in exchanges.seen), exchanges.seen


async def test_error_replies_of_the_spec_become_typed_errors_with_the_request_id(
    examples_backend: VectaraBackend,
) -> None:
    client = examples_backend._http.client
    client.headers["Prefer"] = "code=404"
    with pytest.raises(NotFound) as missing:
        await examples_backend.get_session(SESSION)
    assert "request id" in str(missing.value)
    client.headers["Prefer"] = "code=403"
    with pytest.raises(AuthError):
        await examples_backend.list_sessions()
    client.headers["Prefer"] = "code=400"
    with pytest.raises(ValidationFailed):
        await examples_backend.update_session(SESSION, SessionUpdate(title="x"))
    assert "prism_key_0123" not in str(missing.value)


async def test_random_valid_replies_over_many_rounds_all_parse(
    dynamic_url: str, exchanges: Exchanges
) -> None:
    backend = _backend(dynamic_url, exchanges)
    parsed: dict[str, int] = {}

    def count(name: str) -> None:
        parsed[name] = parsed.get(name, 0) + 1

    try:
        for _round in range(DYNAMIC_ROUNDS):
            page = await backend.list_sessions(limit=5)
            assert all(isinstance(s, Session) for s in page.data)
            count("sessions")
            assert isinstance(await backend.get_session(SESSION), Session)
            assert isinstance(await backend.create_session(SessionCreate(title="t")), Session)
            assert isinstance(
                await backend.update_session(SESSION, SessionUpdate(title="u")), Session
            )
            count("session")
            events = await backend.list_events(SESSION, limit=5, include_hidden=True)
            assert all(isinstance(e, Event) and e.sequence > 0 for e in events.data)
            count("events")
            for call in (backend.get_event, backend.hide_event, backend.unhide_event):
                assert isinstance(await call(SESSION, EVENT_ID), Event)
            count("event")
            calls = await backend.list_tool_calls(SESSION)
            assert all(isinstance(c, ToolCall) for c in calls)
            assert all(a.secret for c in calls for a in c.arguments)
            count("tool_calls")
            await backend.submit_tool_result(SESSION, TOOL_EVENT_ID, ToolResult(output=[1, 2]))
            try:
                sent = await backend.send_message(SESSION, "hi")
                assert sent.type == "input_message"
                count("sent")
            except ProtocolError as exc:  # random replies need not contain the input
                assert "did not report the message" in str(exc)
            await backend.cancel_turn(SESSION)
            artifacts = await backend.list_artifacts(SESSION, limit=5)
            assert all(isinstance(a, Artifact) for a in artifacts.data)
            assert isinstance(await backend.get_artifact(SESSION, ARTIFACT), Artifact)
            count("artifacts")
            try:
                await _read_all(backend, ARTIFACT)
            except ProtocolError as exc:  # random checksums and sizes do not match random data
                assert "checksum_sha256" in str(exc) or "size_bytes" in str(exc)
    finally:
        await backend.aclose()
    assert exchanges.request_violations() == []
    assert all(status < 400 for _m, _p, status, _v in exchanges.seen), [
        e for e in exchanges.seen if e[2] >= 400
    ]
    assert parsed["events"] == DYNAMIC_ROUNDS and parsed["artifacts"] == DYNAMIC_ROUNDS
