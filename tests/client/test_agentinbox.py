"""The AgentInbox backend against a fake written from the platform's documents: both list shapes
(offset pages, cursor pages), both key cases, both error shapes, the timeline as events with stable
local sequences, the replay, and waits as pending items that cannot be decided."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.agentinbox import API_KEY, AgentInboxFake

from sessionscope.backends import (
    AuthError,
    BackendConfig,
    NotFound,
    RateLimited,
    ServerError,
    SessionQuery,
    Unsupported,
    ValidationFailed,
    WatchState,
    create_backend,
)
from sessionscope.backends.agentinbox import AgentInboxBackend
from sessionscope.export import export_session
from sessionscope.models import ActionStatus, PendingKind, SessionCreate, SessionStatus

SHAPES = [
    pytest.param(("offset", "camel"), id="docs-offset-camel"),
    pytest.param(("cursor", "snake"), id="sdk-cursor-snake"),
    pytest.param(("cursor", "camel"), id="sdk-cursor-camel"),
]


@pytest.fixture(params=SHAPES)
def fake(request: pytest.FixtureRequest) -> Iterator[AgentInboxFake]:
    list_shape, key_case = request.param
    with AgentInboxFake(list_shape=list_shape, key_case=key_case) as running:
        yield running


def config(fake: AgentInboxFake, **options: Any) -> BackendConfig:
    return BackendConfig(
        name="agentinbox",
        url=fake.url,
        api_key=fake.api_key,
        timeout=5.0,
        poll_interval=0.05,
        options={"retry_base": 0.01, "retry_max": 0.05, "reconnect_base": 0.01, **options},
    )


@pytest.fixture
async def backend(fake: AgentInboxFake) -> AsyncIterator[AgentInboxBackend]:
    made = create_backend(config(fake))
    assert isinstance(made, AgentInboxBackend)
    async with made:
        yield made


async def test_sends_the_bearer_key_below_the_documented_base(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    await backend.list_sessions()
    request = fake.requests[-1]
    assert request.path == "/api/v1/sessions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY.startswith("at_test_")


async def test_create_get_complete(fake: AgentInboxFake, backend: AgentInboxBackend) -> None:
    created = await backend.create_session(
        SessionCreate(title="user-signup-flow", metadata={"environment": "staging"})
    )
    assert fake.requests[-1].body == {
        "name": "user-signup-flow",
        "metadata": {"environment": "staging"},
    }
    assert created.title == "user-signup-flow"
    assert created.status is SessionStatus.ACTIVE
    assert created.metadata == {"environment": "staging"}
    inbox = fake.add_inbox(created.id)
    wait = fake.add_wait(created.id, "otp", 120)
    got = await backend.get_session(created.id)
    assert got.model_extra is not None
    assert got.model_extra["inboxes"] == [inbox] and got.model_extra["waits"] == [wait]
    completed = await backend.complete_session(created.id)
    assert completed.status is SessionStatus.COMPLETED
    assert completed.finished_at is not None
    assert completed.title == "user-signup-flow"


async def test_every_session_once_across_pages(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [fake.add_session(f"s{n}", created_at=base + timedelta(seconds=n)) for n in range(23)]
    seen = [session.id async for session in backend.iter_sessions(page_size=5)]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert seen == list(reversed(ids))  # newest first, as the platform lists them
    first = await backend.list_sessions(limit=5)
    assert len(first.data) == 5 and first.next_cursor is not None
    if fake.list_shape == "offset":
        assert first.total == 23
        second = await backend.list_sessions(cursor=first.next_cursor, limit=5)
        assert fake.requests[-1].query["offset"] == "5"
        assert [s.id for s in second.data] == list(reversed(ids))[5:10]
    else:
        await backend.list_sessions(cursor=first.next_cursor, limit=5)
        assert "cursor" in fake.requests[-1].query


async def test_status_filter(fake: AgentInboxFake, backend: AgentInboxBackend) -> None:
    fake.add_session("running")
    done = fake.add_session("done", status="completed")
    failed = fake.add_session("broken", status="failed")
    page = await backend.list_sessions(SessionQuery(status=SessionStatus.COMPLETED))
    assert fake.requests[-1].query["status"] == "completed"
    assert [s.id for s in page.data] == [done]
    page = await backend.list_sessions(SessionQuery(status=SessionStatus.FAILED))
    assert [s.id for s in page.data] == [failed]
    assert page.data[0].status is SessionStatus.FAILED
    # No AgentInbox session is ever paused: nothing to ask the platform.
    requests = len(fake.requests)
    assert (await backend.list_sessions(SessionQuery(status=SessionStatus.PAUSED))).data == []
    assert len(fake.requests) == requests
    with pytest.raises(Unsupported):
        await backend.list_sessions(SessionQuery(order="oldest"))


async def test_timeline_as_events_with_stable_sequences(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    session_id = fake.add_session("flow")
    inbox = fake.add_inbox(session_id)
    message = fake.receive_message(session_id)
    page = await backend.list_events(session_id)
    assert [(e.sequence, e.type) for e in page.data] == [
        (1, "session.created"),
        (2, "inbox.created"),
        (3, "message.received"),
    ]
    assert page.data[1].payload == {"inboxId": inbox}
    assert page.data[2].payload == {"messageId": message}
    # The same entries keep their numbers; new ones follow; after= and types= filter.
    fake.add_event(session_id, "custom.thing", {"x": 1})
    again = await backend.list_events(session_id)
    assert [e.id for e in again.data[:3]] == [e.id for e in page.data]
    assert again.data[3].sequence == 4
    tail = await backend.list_events(session_id, after=2)
    assert [e.sequence for e in tail.data] == [3, 4]
    only = await backend.list_events(session_id, types=["inbox.created"])
    assert [e.sequence for e in only.data] == [2]
    short = await backend.list_events(session_id, limit=2)
    assert [e.sequence for e in short.data] == [1, 2] and short.next_cursor == "2"
    assert (await backend.get_event(session_id, "tl-2")).payload == {"inboxId": inbox}
    # A fresh backend numbers the same timeline the same way.
    async with create_backend(config(fake)) as other:
        fresh = await other.list_events(session_id)
    assert [(e.sequence, e.type) for e in fresh.data] == [(e.sequence, e.type) for e in again.data]


async def test_identical_entries_and_a_late_entry_keep_their_numbers(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    session_id = fake.add_session("twins", created_at=at)
    fake.add_event(session_id, "ping", {}, at=at)
    fake.add_event(session_id, "ping", {}, at=at)
    first = await backend.list_events(session_id)
    assert [e.sequence for e in first.data] == [1, 2, 3]
    # An entry the platform places among the older ones is numbered after them all.
    with fake._lock:
        fake.sessions[session_id].timeline.insert(
            1, {"timestamp": "2026-01-01T00:00:00Z", "type": "late", "payload": {}}
        )
    again = await backend.list_events(session_id)
    assert [(e.sequence, e.type) for e in again.data] == [
        (1, "session.created"),
        (2, "ping"),
        (3, "ping"),
        (4, "late"),
    ]


async def test_watch_polls_and_delivers_each_entry_once(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    session_id = fake.add_session("watched")
    states: list[WatchState] = []
    received: list[int] = []
    five = asyncio.Event()

    async def watch() -> None:
        async for event in backend.watch_session(
            session_id, after=1, on_state=lambda state, _: states.append(state)
        ):
            received.append(event.sequence)
            if len(received) >= 5:
                five.set()

    task = asyncio.create_task(watch())
    try:
        for _ in range(3):
            fake.receive_message(session_id)
        fake.fail_next(500)
        for _ in range(2):
            fake.receive_message(session_id)
        await asyncio.wait_for(five.wait(), 20)
        await asyncio.sleep(0.2)  # a few more polls: nothing is delivered twice
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert received == [2, 3, 4, 5, 6]
    assert WatchState.POLLING in states and WatchState.LIVE not in states


async def test_replay_steps(fake: AgentInboxFake, backend: AgentInboxBackend) -> None:
    session_id = fake.add_session("replayed")
    inbox = fake.add_inbox(session_id)
    wait = fake.add_wait(session_id, "otp", 120)
    replay = await backend.replay(session_id)
    assert fake.requests[-1].method == "POST"
    assert [(s.index, s.action, s.duration_ms) for s in replay.steps] == [
        (0, "create_inbox", 120),
        (1, "create_wait", 45),
    ]
    assert replay.steps[0].output == {"id": inbox}
    assert replay.steps[1].input == {"type": "otp", "timeoutSeconds": 120}
    assert replay.steps[1].output == {"id": wait}


async def test_waits_are_watchable_not_decidable(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    session_id = fake.add_session("waiting")
    fake.add_inbox(session_id)
    created = datetime.now(UTC).replace(microsecond=0)
    otp = fake.add_wait(session_id, "otp", 120, at=created)
    link = fake.add_wait(session_id, "magic_link", 300, at=created + timedelta(seconds=1))
    fake.complete_wait(link, {"type": "magic_link", "value": "https://example.com/v?t=1"})
    items = {item.id: item for item in await backend.list_session_actions(session_id)}
    assert set(items) == {otp, link}
    pending = items[otp]
    assert pending.kind == PendingKind.WAIT and pending.choices == [] and not pending.decidable
    assert pending.status is ActionStatus.PENDING
    assert pending.tool == "wait: otp" and pending.session_title == "waiting"
    assert pending.expires_at == created + timedelta(seconds=120)
    done = items[link]
    assert done.status is ActionStatus.COMPLETED
    assert done.outcome == {"type": "magic_link", "value": "https://example.com/v?t=1"}
    assert done.preview["result"] == done.outcome
    inbox = await backend.list_pending_actions()
    assert [item.id for item in inbox] == [otp]
    assert (await backend.get_action(session_id, otp)).expires_at == pending.expires_at
    with pytest.raises(Unsupported, match="cannot be decided"):
        await backend.decide_action(session_id, otp, True)
    assert not any(r.method in ("POST", "DELETE") and "/waits" in r.path for r in fake.requests)


async def test_a_timed_out_wait_is_expired(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    session_id = fake.add_session("late")
    wait = fake.add_wait(session_id, "password_reset", 5, at=datetime.now(UTC) - timedelta(60))
    item = await backend.get_action(session_id, wait)
    assert item.status is ActionStatus.EXPIRED
    assert await backend.list_pending_actions() == []


@pytest.mark.parametrize("error_shape", ["docs", "sdk"])
async def test_both_error_shapes_map_to_typed_errors(
    fake: AgentInboxFake, backend: AgentInboxBackend, error_shape: str
) -> None:
    fake.error_shape = error_shape  # type: ignore[assignment]
    with pytest.raises(NotFound, match="Session not found"):
        await backend.get_session("sess_missing")
    with pytest.raises(ValidationFailed, match="name is required"):
        await backend.create_session(SessionCreate(title=""))
    fake.fail_next(500)
    with pytest.raises(ServerError, match="Injected failure"):
        await backend.list_sessions()
    fake.fail_next(429, retry_after=0.05)
    assert (await backend.list_sessions()).data == []
    fake.fail_next(429, retry_after=3600)
    with pytest.raises(RateLimited):
        await backend.list_sessions()
    async with create_backend(
        BackendConfig(name="agentinbox", url=fake.url, api_key="at_test_wrong")
    ) as wrong:
        with pytest.raises(AuthError, match="Invalid or missing API key") as caught:
            await wrong.list_sessions()
    assert "at_test_wrong" not in str(caught.value)


async def test_a_reply_in_neither_shape_is_a_protocol_error() -> None:
    from sessionscope.backends import ProtocolError

    backend = AgentInboxBackend(BackendConfig(name="agentinbox", url="http://127.0.0.1:9/api/v1"))
    with pytest.raises(ProtocolError):
        backend._session_page({"sessions": []}, {"limit": 5}, "GET /sessions")
    with pytest.raises(ProtocolError, match="no cursor"):
        backend._session_page({"object": "list", "data": [], "hasMore": True}, {"limit": 5}, "x")
    await backend.aclose()


def test_default_url_is_the_documented_base() -> None:
    backend = AgentInboxBackend(BackendConfig(name="agentinbox", url=""))
    assert backend.display_name == "agentinbox.in"
    assert str(backend._http.client.base_url) == "https://agentinbox.in/api/v1/"


async def test_org_watch_polls_the_sessions_list(
    fake: AgentInboxFake, backend: AgentInboxBackend
) -> None:
    fake.add_session("before")
    states: list[WatchState] = []
    watch = backend.watch_org(on_state=lambda state, _: states.append(state))
    try:
        first = asyncio.ensure_future(anext(watch))
        # The first poll only learns what is there; wait until it has been made.
        await asyncio.wait_for(_until(lambda: WatchState.POLLING in states), 20)
        created = fake.add_session("after")
        change = await asyncio.wait_for(first, 20)
        assert (change.kind, change.session_id) == ("session.created", created)
        assert change.session is not None and change.session.title == "after"
        await backend.complete_session(created)
        change = await asyncio.wait_for(anext(watch), 20)
        assert (change.kind, change.session_id) == ("session.updated", created)
        assert change.session is not None and change.session.status is SessionStatus.COMPLETED
    finally:
        await watch.aclose()
    assert WatchState.LIVE not in states


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - a callback-fed list has no event to wait on
        await asyncio.sleep(0.01)


async def test_poll_interval_option_sets_the_watch_pace(fake: AgentInboxFake) -> None:
    async with create_backend(config(fake, poll_interval="7")) as slow:
        details: list[str | None] = []
        session_id = fake.add_session("paced")
        watch = slow.watch_session(session_id, on_state=lambda _, detail: details.append(detail))
        try:
            await asyncio.wait_for(anext(watch), 20)
        finally:
            await watch.aclose()
    assert "polling every 7 s" in details


async def test_a_session_exports_with_its_timeline(
    fake: AgentInboxFake, backend: AgentInboxBackend, tmp_path: Path
) -> None:
    session_id = fake.add_session("exported")
    fake.add_inbox(session_id)
    for _ in range(5):
        fake.receive_message(session_id)
    result = await export_session(backend, session_id, tmp_path / "out", page_size=3)
    lines = (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert [event["sequence"] for event in events] == list(range(1, 8))
    assert [event["type"] for event in events][:2] == ["session.created", "inbox.created"]
    assert result.events_written == 7
    exported = json.loads((tmp_path / "out" / "session.json").read_text())
    assert exported["title"] == "exported"
