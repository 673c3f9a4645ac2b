"""The AG2Trust backend against the fake platform on loopback (tests/fakes/ag2trust.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.ag2trust import ENDPOINT, FakeAG2Trust, Reply

from sessionscope.backends import (
    AuthError,
    Conflict,
    Gone,
    NotFound,
    RateLimited,
    ValidationFailed,
    WatchState,
)
from sessionscope.backends.ag2trust import AG2TrustBackend
from sessionscope.backends.ag2trust_record import RecordError
from sessionscope.models import ActionStatus, SessionCreate, SessionStatus, SessionUpdate

Build = Callable[..., AG2TrustBackend]
DEADLINE = 30.0


def asks(fake: FakeAG2Trust) -> list[dict[str, Any]]:
    return [json.loads(body) for _, _, _, body in fake.posts(f"/api/v1/ask/{ENDPOINT}")]


async def start(backend: AG2TrustBackend, prompt: str = "Hello there", **fields: Any) -> str:
    session = await backend.create_session(SessionCreate(prompt=prompt, **fields))
    return session.id


async def events_of(backend: AG2TrustBackend, thread_id: str) -> list[tuple[int, str]]:
    page = await backend.list_events(thread_id)
    return [(event.sequence, event.type) for event in page.data]


async def test_a_thread_starts_on_the_pool_endpoint_and_is_recorded(
    ag2trust: Build, fake: FakeAG2Trust
) -> None:
    backend = ag2trust()
    thread_id = await start(backend, "Where is my order?", title="order question")
    method, path, headers, body = fake.requests[-1]
    assert (method, path) == ("POST", f"/api/v1/ask/{ENDPOINT}")
    assert headers["x-api-key"] == fake.api_key
    assert "authorization" not in headers
    assert len(headers["idempotency-key"]) <= 256
    assert json.loads(body) == {"content": "Where is my order?"}  # no thread_id: a new thread

    page = await backend.list_sessions()
    assert [s.id for s in page.data] == [thread_id]
    assert page.total == 1
    session = page.data[0]
    assert session.title == "order question"
    assert session.status is SessionStatus.ACTIVE
    assert session.agent_id == "agent_fake_1"
    assert await events_of(backend, thread_id) == [(1, "message.user"), (2, "message.agent")]

    await backend.send_message(thread_id, "And when will it arrive?")
    assert asks(fake)[-1] == {"content": "And when will it arrive?", "thread_id": thread_id}
    assert await events_of(backend, thread_id) == [
        (1, "message.user"),
        (2, "message.agent"),
        (3, "message.user"),
        (4, "message.agent"),
    ]
    assert len({headers["idempotency-key"] for _, _, headers, _ in fake.requests}) == 2


async def test_the_record_survives_a_restart_with_nothing_lost(
    ag2trust: Build, fake: FakeAG2Trust, tmp_path: Path
) -> None:
    record = tmp_path / "kept.sqlite3"
    first = ag2trust(record)
    threads = [await start(first, f"question {n}") for n in range(3)]
    await first.send_message(threads[0], "a follow-up")
    before = {t: (await first.list_events(t)).data for t in threads}
    sessions_before = (await first.list_sessions()).data
    await first.aclose()

    requests_before = len(fake.requests)
    second = ag2trust(record)
    assert [s.id for s in (await second.list_sessions()).data] == [s.id for s in sessions_before]
    for thread_id, events in before.items():
        assert (await second.list_events(thread_id)).data == events
    assert len(fake.requests) == requests_before  # the list and timeline come from the record
    # Sequences go on from where they were.
    await second.send_message(threads[0], "after the restart")
    assert [e.sequence for e in (await second.list_events(threads[0])).data] == [1, 2, 3, 4, 5, 6]


async def test_iter_sessions_pages_every_thread_once_in_both_orders(ag2trust: Build) -> None:
    backend = ag2trust()
    ids = [await start(backend, f"q{n}") for n in range(5)]
    newest = [s.id async for s in backend.iter_sessions(page_size=2)]
    assert newest == list(reversed(ids))
    from sessionscope.backends import SessionQuery

    oldest = [s.id async for s in backend.iter_sessions(SessionQuery(order="oldest"), page_size=2)]
    assert oldest == ids


async def test_confirm_is_processing_and_the_result_comes_with_the_next_reply(
    ag2trust: Build, fake: FakeAG2Trust
) -> None:
    backend = ag2trust()
    thread_id = await start(backend, "Please email me the confirmation")
    [action] = await backend.list_pending_actions()
    assert action.tool == "send_email"
    assert action.preview["subject"] == "Order Confirmation"
    assert action.expires_at is not None and action.expires_at > datetime.now(UTC)
    assert (await backend.get_session(thread_id)).status is SessionStatus.WAITING

    result = await backend.decide_action(thread_id, action.id, True)
    assert result.status is ActionStatus.PROCESSING
    assert result.callback_id and result.callback_id.startswith("cb_")
    decisions = fake.posts(f"/api/v1/sessions/{thread_id}/actions/")
    assert len(decisions) == 1
    assert json.loads(decisions[0][3]) == {"confirmed": True}
    assert (await backend.get_action(thread_id, action.id)).status is ActionStatus.PROCESSING
    assert await backend.list_pending_actions() == []

    # Asked again (a second press, a retry): no second decision reaches the platform.
    again = await backend.decide_action(thread_id, action.id, True)
    assert again.status is ActionStatus.PROCESSING
    assert len(fake.posts(f"/api/v1/sessions/{thread_id}/actions/")) == 1
    with pytest.raises(Conflict):
        await backend.decide_action(thread_id, action.id, False)

    await backend.send_message(thread_id, "Is it done?")
    done = await backend.get_action(thread_id, action.id)
    assert done.status is ActionStatus.COMPLETED
    assert done.outcome is not None and done.outcome["result"]["delivered"] is True
    types = [t for _, t in await events_of(backend, thread_id)]
    assert types == [
        "message.user",
        "message.agent",
        "action.pending",
        "action.confirmed",
        "message.user",
        "action.completed",
        "message.agent",
    ]


async def test_cancel_is_synchronous(ag2trust: Build, fake: FakeAG2Trust) -> None:
    backend = ag2trust()
    thread_id = await start(backend, "email the invoice")
    [action] = await backend.list_session_actions(thread_id)
    result = await backend.decide_action(thread_id, action.id, False, choice="cancel")
    assert result.status is ActionStatus.CANCELLED
    assert result.message == "Action cancelled"
    assert (await backend.get_action(thread_id, action.id)).status is ActionStatus.CANCELLED
    assert (await backend.get_session(thread_id)).status is SessionStatus.ACTIVE


async def test_an_expired_action_is_cancelled_by_expiry_and_cannot_be_decided(
    ag2trust: Build, fake: FakeAG2Trust
) -> None:
    backend = ag2trust()
    expires = datetime.now(UTC) + timedelta(seconds=0.5)
    fake.script(
        Reply(pending_action={"tool": "refund", "preview": {"amount": 5}, "expires_at": expires})
    )
    thread_id = await start(backend, "refund me")
    [action] = await backend.list_pending_actions()
    deadline = time.monotonic() + DEADLINE
    while (await backend.get_action(thread_id, action.id)).status is not ActionStatus.EXPIRED:
        assert time.monotonic() < deadline, "the action never expired"
        await asyncio.sleep(0.05)
    sent = len(fake.requests)
    with pytest.raises(Gone, match="cancelled it by expiry"):
        await backend.decide_action(thread_id, action.id, True)
    assert len(fake.requests) == sent  # nothing sent
    assert await backend.list_pending_actions() == []
    events = (await backend.list_events(thread_id)).data
    assert events[-1].type == "action.expired"
    assert events[-1].payload["message"] == "cancelled by expiry"


@pytest.mark.parametrize(
    ("variables", "why"),
    [
        ({"user_plan": "pro"}, "UPPERCASE_SNAKE_CASE"),
        ({f"VAR_{n}": "x" for n in range(21)}, "at most 20"),
        ({"BIG": "x" * 4100}, "bytes"),
    ],
)
async def test_variables_that_break_a_rule_are_refused_before_sending(
    ag2trust: Build, fake: FakeAG2Trust, variables: dict[str, str], why: str
) -> None:
    backend = ag2trust()
    thread_id = await start(backend)
    sent = len(fake.requests)
    with pytest.raises(ValidationFailed, match=why):
        # model_construct: what a caller that skipped the model's own check would send.
        await backend.update_session(
            thread_id, SessionUpdate.model_construct(context_variables=variables)
        )
    assert len(fake.requests) == sent


async def test_variables_are_patched_and_requested_ones_are_asked_for(
    ag2trust: Build, fake: FakeAG2Trust
) -> None:
    backend = ag2trust()
    fake.script(Reply(requested_variables=["ORDER_ID"]))
    thread_id = await start(backend)
    session = await backend.get_session(thread_id)
    assert session.metadata["requested_variables"] == ["ORDER_ID"]
    updated = await backend.update_session(
        thread_id, SessionUpdate(context_variables={"ORDER_ID": "123", "USER_PLAN": "pro"})
    )
    method, path, headers, body = fake.requests[-1]
    assert (method, path) == ("PATCH", f"/api/v1/sessions/{thread_id}")
    assert "idempotency-key" in headers
    assert json.loads(body) == {"context_variables": {"ORDER_ID": "123", "USER_PLAN": "pro"}}
    assert updated.context_variables == {"ORDER_ID": "123", "USER_PLAN": "pro"}
    assert "requested_variables" not in updated.metadata
    assert fake.threads[thread_id].variables == {"ORDER_ID": "123", "USER_PLAN": "pro"}


async def test_a_message_over_ten_thousand_characters_is_refused_before_sending(
    ag2trust: Build, fake: FakeAG2Trust
) -> None:
    backend = ag2trust()
    with pytest.raises(ValidationFailed, match="MESSAGE_TOO_LONG"):
        await backend.create_session(SessionCreate(prompt="x" * 10_001))
    assert fake.requests == []
    thread_id = await start(backend, "x" * 10_000)
    sent = len(fake.requests)
    with pytest.raises(ValidationFailed, match="at most 10,000"):
        await backend.send_message(thread_id, "y" * 10_001)
    assert len(fake.requests) == sent


async def test_a_429_waits_the_retry_hint_then_sends_the_same_request(
    ag2trust: Build, fake: FakeAG2Trust
) -> None:
    backend = ag2trust()
    thread_id = await start(backend)
    fake.fail_next(429, retry_after=0.4)
    began = time.monotonic()
    await backend.send_message(thread_id, "after a rate limit")
    assert time.monotonic() - began >= 0.4
    last_two = fake.requests[-2:]
    assert [r[1] for r in last_two] == [f"/api/v1/ask/{ENDPOINT}"] * 2
    assert last_two[0][2]["idempotency-key"] == last_two[1][2]["idempotency-key"]
    # A hint longer than the backend waits out is an error for the operator, with the hint.
    fake.fail_next(429, retry_after=90)
    with pytest.raises(RateLimited) as caught:
        await backend.send_message(thread_id, "again")
    assert caught.value.retry_after == 90
    events = (await backend.list_events(thread_id)).data
    assert events[-1].type == "error" and "no reply recorded" in events[-1].payload["message"]


async def test_errors_are_mapped_from_the_error_code(
    ag2trust: Build, fake: FakeAG2Trust, tmp_path: Path
) -> None:
    wrong_key = ag2trust(tmp_path / "a.sqlite3")
    wrong_key._http.client.headers["X-API-Key"] = "cust_wrong"
    with pytest.raises(AuthError, match="INVALID_API_KEY"):
        await start(wrong_key)
    assert "cust_wrong" not in str(fake.requests[-1][2].get("authorization", ""))
    with pytest.raises(NotFound, match="ENDPOINT_NOT_FOUND"):
        await start(ag2trust(tmp_path / "b.sqlite3", endpoint="no-such-pool"))
    fake.agent_running = False
    with pytest.raises(ValidationFailed, match="AGENT_NOT_RUNNING"):
        await start(ag2trust(tmp_path / "c.sqlite3"))
    fake.agent_running = True
    # Nothing failed is recorded as a thread.
    assert (await ag2trust(tmp_path / "c.sqlite3").list_sessions()).data == []


async def test_closing_records_duration_and_billing(ag2trust: Build, fake: FakeAG2Trust) -> None:
    backend = ag2trust()
    thread_id = await start(backend)
    result = await backend.close_session(thread_id)
    assert result.billable is True and result.duration_seconds >= 0
    session = await backend.get_session(thread_id)
    assert session.status is SessionStatus.CLOSED and session.billable is True
    assert "stops billing" in (backend.close_note or "")
    with pytest.raises(ValidationFailed, match="closed"):
        await backend.send_message(thread_id, "still there?")


async def test_watching_follows_the_record_and_spends_no_requests(
    ag2trust: Build, fake: FakeAG2Trust, tmp_path: Path
) -> None:
    fake.rate_limit = 12
    backend = ag2trust()
    thread_id = await start(backend)
    states: list[tuple[WatchState, str | None]] = []
    seen: list[int] = []

    async def follow() -> None:
        async for event in backend.watch_session(
            thread_id, after=0, on_state=lambda s, d: states.append((s, d))
        ):
            seen.append(event.sequence)

    task = asyncio.create_task(follow())
    other = ag2trust()  # another console on the same record
    for n in range(4):
        await other.send_message(thread_id, f"m{n}")
    deadline = time.monotonic() + DEADLINE
    while len(seen) < 10:
        assert time.monotonic() < deadline, f"saw only {seen}"
        await asyncio.sleep(0.02)
    requests = len(fake.requests)
    await asyncio.sleep(0.3)  # many watch ticks: none of them asks the platform
    assert seen == list(range(1, 11))
    assert len(fake.requests) == requests == 5
    assert states[0][0] is WatchState.LIVE
    assert not any("rate limit" in (detail or "") for _, detail in states)
    # 12 a minute and 6 spent: the watch's detail says the budget runs low.
    await backend.send_message(thread_id, "one more")
    while not any("6 of 12 requests left" in (detail or "") for _, detail in states):
        assert time.monotonic() < deadline, f"no rate-limit hint in {states}"
        await asyncio.sleep(0.02)
    task.cancel()


def test_a_corrupt_record_is_refused_and_left_untouched(tmp_path: Path, fake: FakeAG2Trust) -> None:
    from fakes.ag2trust import API_KEY

    from sessionscope.backends import BackendConfig, create_backend

    path = tmp_path / "broken.sqlite3"
    garbage = b"this is not a database at all" * 100
    path.write_bytes(garbage)
    config = BackendConfig(
        name="ag2trust", url=fake.url, api_key=API_KEY, options={"record": str(path)}
    )
    with pytest.raises(RecordError, match="damaged or not a database"):
        create_backend(config)
    assert path.read_bytes() == garbage


async def test_a_record_from_a_newer_version_is_refused_and_left_untouched(
    ag2trust: Build, tmp_path: Path
) -> None:
    path = tmp_path / "newer.sqlite3"
    backend = ag2trust(path)
    await start(backend)
    await backend.aclose()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    before = path.read_bytes()
    with pytest.raises(RecordError, match="newer sessionscope"):
        ag2trust(path)
    assert path.read_bytes() == before
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    db.close()
    with pytest.raises(RecordError, match="not an AG2Trust record"):
        ag2trust(other)


def test_the_default_record_is_one_file_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionscope.backends import BackendConfig
    from sessionscope.backends.ag2trust import record_path_for

    def path(**options: Any) -> Path:
        return record_path_for(BackendConfig(name="ag2trust", url="", options=options))

    assert path(profile="prod").name == "prod.sqlite3"
    assert path(profile="prod").parent.name == "ag2trust"
    assert path(profile="prod") != path(profile="staging")
    # Without a profile: by host and endpoint, so two pools do not share a record.
    assert path(endpoint="sales").name == "api.ag2trust.com-sales.sqlite3"
    assert path(profile="../../etc/x").parent == path(profile="prod").parent
    assert path(record="~/r.sqlite3") == Path("~/r.sqlite3").expanduser()


def test_the_console_command_explains_a_damaged_record(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sessionscope.cli import main

    path = tmp_path / "broken.sqlite3"
    path.write_bytes(b"garbage" * 100)
    result = CliRunner().invoke(
        main,
        ["--backend", "ag2trust", "--api-key", "cust_x", "--option", f"record={path}"],
        env={"SESSIONSCOPE_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 1
    assert "damaged or not a database" in result.output and "left untouched" in result.output
    assert "Traceback" not in result.output
    assert path.read_bytes() == b"garbage" * 100
