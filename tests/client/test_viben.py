"""The Viben backend against a fake gateway written from the vendor's documents (``fakes.viben``):
sessions paged locally, messages as a numbered timeline, the event stream dropped and resumed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from client_support import FAST, SECRET
from fakes.viben import FakeViben

from sessionscope.backends import (
    BackendConfig,
    Capability,
    NotFound,
    RateLimited,
    ServerError,
    SessionQuery,
    ValidationFailed,
    WatchState,
    create_backend,
)
from sessionscope.backends.viben import VibenBackend
from sessionscope.models import (
    Event,
    OrgChange,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
)

DEADLINE = 20.0


@pytest.fixture
def fake() -> Iterator[FakeViben]:
    with FakeViben() as gateway:
        yield gateway


def viben_config(url: str, api_key: str | None = None, **options: Any) -> BackendConfig:
    return BackendConfig(
        name="viben",
        url=url,
        api_key=api_key,
        timeout=5.0,
        poll_interval=0.05,
        options={**FAST, **options},
    )


@pytest.fixture
async def backend(fake: FakeViben) -> AsyncIterator[VibenBackend]:
    built = create_backend(viben_config(fake.url))
    assert isinstance(built, VibenBackend)
    async with built:
        yield built


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Collector:
    """Runs a watch in a task and gathers what it yields and the states it reports."""

    def __init__(self, watch: Callable[[Callable[[WatchState, str | None], None]], Any]) -> None:
        self.items: list[Any] = []
        self.states: list[WatchState] = []
        self.error: BaseException | None = None

        async def run() -> None:
            try:
                async for item in watch(lambda state, _detail: self.states.append(state)):
                    self.items.append(item)
            except Exception as exc:
                self.error = exc

        self.task = asyncio.create_task(run())

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def test_default_url_and_an_api_key_is_never_sent(
    fake: FakeViben, caplog: pytest.LogCaptureFixture
) -> None:
    assert VibenBackend(BackendConfig(name="viben", url="http://127.0.0.1:18790")).display_name == (
        "127.0.0.1:18790"
    )
    with caplog.at_level(logging.WARNING, logger="sessionscope.backends.viben"):
        keyed = create_backend(viben_config(fake.url, api_key=SECRET))
    async with keyed:
        assert any("ignored" in notice for notice in keyed.notices)
        assert "API key is not sent" in caplog.text and SECRET not in caplog.text
        fake.add_session()
        await keyed.list_sessions()
    assert fake.requests
    for request in fake.requests:
        assert "authorization" not in request.headers
        assert SECRET not in str(request.headers) and SECRET.encode() not in request.body


async def test_capabilities(backend: VibenBackend) -> None:
    assert backend.supports(Capability.PAUSE)
    assert backend.supports(Capability.LIVE_STREAM) and backend.supports(Capability.ORG_STREAM)
    for missing in (Capability.ARTIFACTS, Capability.PENDING_ACTIONS, Capability.CLOSE):
        assert not backend.supports(missing)


async def test_the_unpaginated_list_is_paged_locally(
    fake: FakeViben, backend: VibenBackend
) -> None:
    made = [fake.add_session(f"AGENT_{n % 2}", task_id=f"task-{n}")["id"] for n in range(7)]
    first = await backend.list_sessions(limit=3)
    assert first.total == 7 and len(first.data) == 3 and first.next_cursor
    listed = [s.id async for s in backend.iter_sessions(page_size=3)]
    assert listed == list(reversed(made))  # newest first, each once
    oldest = [s.id async for s in backend.iter_sessions(SessionQuery(order="oldest"), page_size=2)]
    assert oldest == made
    # One read of the gateway's list serves the pages that follow it.
    reads = len(fake.seen("GET", "/api/sessions"))
    page = first
    while page.next_cursor:
        page = await backend.list_sessions(cursor=page.next_cursor, limit=3)
    assert len(fake.seen("GET", "/api/sessions")) == reads


async def test_a_page_after_the_listing_expired_continues_after_its_key(
    fake: FakeViben,
) -> None:
    made = [fake.add_session()["id"] for _ in range(5)]
    async with create_backend(viben_config(fake.url, list_cache_seconds=0)) as backend:
        first = await backend.list_sessions(limit=2)
        newer = fake.add_session()["id"]  # listed above the cursor: not on the later pages
        rest: list[str] = []
        cursor = first.next_cursor
        while cursor:
            page = await backend.list_sessions(cursor=cursor, limit=2)
            rest += [s.id for s in page.data]
            cursor = page.next_cursor
    assert [s.id for s in first.data] + rest == list(reversed(made))
    assert newer not in rest


async def test_filters_go_to_the_gateway(fake: FakeViben, backend: VibenBackend) -> None:
    wanted = fake.add_session("CLAUDE_CODE", task_id="task-a", status="paused")["id"]
    fake.add_session("CLAUDE_CODE", task_id="task-b", status="paused")
    fake.add_session("CODEX", task_id="task-a", status="active")
    page = await backend.list_sessions(
        SessionQuery(status=SessionStatus.PAUSED, agent_id="CLAUDE_CODE", task_id="task-a")
    )
    assert [s.id for s in page.data] == [wanted] and page.total == 1
    assert page.data[0].status is SessionStatus.PAUSED
    query = fake.seen("GET", "/api/sessions")[-1].query
    assert (
        "status=paused" in query and "agent_id=CLAUDE_CODE" in query and "task_id=task-a" in query
    )
    # A status the gateway never has: nothing to ask it.
    reads = len(fake.requests)
    assert (await backend.list_sessions(SessionQuery(status=SessionStatus.CLOSED))).data == []
    assert len(fake.requests) == reads


async def test_get_create_update_delete(fake: FakeViben, backend: VibenBackend) -> None:
    made = fake.add_session(data={"workdir": "/path/to/project", "model": "claude-3-sonnet"})
    session = await backend.get_session(made["id"])
    assert session.metadata == {"workdir": "/path/to/project", "model": "claude-3-sonnet"}
    assert session.model_id == "claude-3-sonnet" and session.agent_id == "CLAUDE_CODE"
    assert session.task_id == "task-xyz" and session.last_active_at is not None

    with pytest.raises(ValidationFailed, match="agent id"):
        await backend.create_session(SessionCreate(title="no agent"))
    with pytest.raises(ValidationFailed, match="no title"):
        await backend.create_session(SessionCreate(agent_id="CODEX", title="named"))
    assert not fake.seen("POST", "/api/sessions")
    created = await backend.create_session(
        SessionCreate(agent_id="CODEX", task_id="task-9", prompt="Fix the build\nthen test")
    )
    assert created.status is SessionStatus.CREATED and created.agent_id == "CODEX"
    assert created.preview == "Fix the build"
    body = fake.seen("POST", "/api/sessions")[0].body
    assert b'"agent_id":"CODEX"' in body.replace(b" ", b"") and b"task-9" in body

    paused = await backend.pause_session(created.id)
    assert paused.status is SessionStatus.PAUSED
    resumed = await backend.resume_session(created.id)
    assert resumed.status is SessionStatus.ACTIVE
    noted = await backend.update_session(
        created.id,
        SessionUpdate(metadata={"notes": "Paused for review"}, prompt="Only the tests"),
    )
    assert noted.metadata == {"notes": "Paused for review"}
    assert fake.sessions[created.id]["prompt"] == "Only the tests"
    with pytest.raises(ValidationFailed, match="no title"):
        await backend.update_session(created.id, SessionUpdate(title="renamed"))
    with pytest.raises(ValidationFailed, match="no status 'closed'"):
        await backend.update_session(created.id, SessionUpdate(status=SessionStatus.CLOSED))
    completed = await backend.complete_session(created.id)
    assert completed.status is SessionStatus.COMPLETED

    await backend.delete_session(created.id)
    with pytest.raises(NotFound, match="Session not found"):
        await backend.get_session(created.id)


async def test_messages_are_a_numbered_timeline(fake: FakeViben, backend: VibenBackend) -> None:
    session_id = fake.add_session()["id"]
    for n in range(5):
        fake.add_message(session_id, f"step {n}")
    page = await backend.list_events(session_id)
    assert [e.sequence for e in page.data] == [1, 2, 3, 4, 5]
    assert [e.payload["content"] for e in page.data] == [f"step {n}" for n in range(5)]
    assert {e.type for e in page.data} == {"message.agent"}
    later = await backend.list_events(session_id, after=2, limit=2)
    assert [e.sequence for e in later.data] == [3, 4] and later.next_cursor
    sent = await backend.send_message(session_id, "Please continue with the implementation")
    assert sent.sequence == 6 and sent.type == "message.user"
    assert fake.seen("POST", f"/api/sessions/{session_id}/message")[0].body == (
        b'{"content":"Please continue with the implementation"}'
    )
    again = await backend.list_events(session_id)
    assert [(e.id, e.sequence) for e in again.data] == [
        (e.id, e.sequence) for e in [*page.data, sent]
    ]
    session = (await backend.list_sessions()).data[0]
    assert session.last_sequence == 6  # the console's timeline length before it reads


async def test_errors_in_the_gateways_shape(fake: FakeViben, backend: VibenBackend) -> None:
    session_id = fake.add_session()["id"]
    fake.fail_next(429, retry_after=0.01)
    assert (await backend.get_session(session_id)).id == session_id
    fake.fail_next(500)
    with pytest.raises(ServerError, match="injected failure"):
        await backend.get_session(session_id)
    fake.fail_next(429, retry_after=120)
    with pytest.raises(RateLimited):
        await backend.get_session(session_id)
    with pytest.raises(NotFound, match="Session not found"):
        await backend.list_events("session-nope")


async def test_watch_session_dropped_and_resumed_misses_and_repeats_nothing(
    fake: FakeViben, backend: VibenBackend
) -> None:
    session_id = fake.add_session()["id"]
    other_id = fake.add_session()["id"]
    fake.add_message(session_id, "before 0")
    fake.add_message(session_id, "before 1")
    watch = Collector(
        lambda on_state: backend.watch_session(session_id, after=1, on_state=on_state)
    )
    try:
        await until(lambda: len(watch.items) == 1, "the message after the start")
        await until(lambda: fake.open_streams == 1, "the stream")
        for n in range(3):
            fake.add_message(session_id, f"live {n}")
            fake.add_message(other_id, f"elsewhere {n}")
        await until(lambda: len(watch.items) == 4, "the live messages")
        for round_ in range(3):
            delivered = len(watch.items)
            fake.drop_streams()
            # Said while no stream is open (the backend cannot reconnect before the next await):
            # only the re-read after reconnecting can find them.
            fake.add_message(session_id, f"while dropped {round_}")
            fake.add_message(session_id, f"while dropped {round_}b")
            await until(lambda n=delivered + 2: len(watch.items) >= n, "the missed messages")
            fake.add_message(session_id, f"after {round_}")
            await until(lambda n=delivered + 3: len(watch.items) >= n, "the next live message")
        # A repeat, if any, would come before this last message.
        fake.add_message(session_id, "last")
        await until(lambda: watch.items[-1].payload["content"] == "last", "the last message")
        events: list[Event] = watch.items
        assert [e.sequence for e in events] == list(range(2, 16))
        expected = [m["content"] for m in fake.messages[session_id]][1:]
        assert [e.payload["content"] for e in events] == expected
        assert WatchState.RECONNECTING in watch.states and watch.states[-1] is WatchState.LIVE
        assert watch.error is None
    finally:
        await watch.close()


@pytest.mark.parametrize(("poll", "polls"), [("false", False), ("true", True), (True, True)])
async def test_the_poll_option_from_a_profile_or_the_command_line(
    fake: FakeViben, poll: object, polls: bool
) -> None:
    session_id = fake.add_session()["id"]
    async with create_backend(viben_config(fake.url, poll=poll)) as backend:
        watch = Collector(lambda on_state: backend.watch_session(session_id, on_state=on_state))
        try:
            fake.add_message(session_id, "one")
            await until(lambda: len(watch.items) == 1, "the message")
            assert (WatchState.POLLING in watch.states) is polls
            assert (WatchState.LIVE in watch.states) is not polls
        finally:
            await watch.close()


async def test_watch_session_over_the_websocket_where_sse_is_refused(fake: FakeViben) -> None:
    fake.refuse_stream = True
    session_id = fake.add_session()["id"]
    async with create_backend(viben_config(fake.url)) as backend:
        watch = Collector(lambda on_state: backend.watch_session(session_id, on_state=on_state))
        try:
            fake.add_message(session_id, "one")
            await until(lambda: len(watch.items) == 1, "the first message")
            await until(lambda: fake.open_streams == 1, "the subscription")
            fake.add_message(session_id, "two")
            await until(lambda: len(watch.items) == 2, "a live message")
            fake.drop_streams()
            fake.add_message(session_id, "while dropped")  # found by the re-read on reconnect
            await until(lambda: len(watch.items) == 3, "the missed message")
            fake.add_message(session_id, "last")
            await until(lambda: len(watch.items) == 4, "the last message")
            assert [e.sequence for e in watch.items] == [1, 2, 3, 4]
            assert [e.payload["content"] for e in watch.items] == [
                "one",
                "two",
                "while dropped",
                "last",
            ]
            assert WatchState.POLLING not in watch.states
            assert watch.states.count(WatchState.LIVE) >= 2  # live again after the drop
            assert {"type": "subscribe", "channels": ["sessions", "messages"]} in (
                fake.websocket_messages
            )
            # SSE was asked for once; every reconnection went to /ws directly.
            assert len(fake.seen("GET", "/api/events")) == 1
        finally:
            await watch.close()


async def test_watch_org_over_the_websocket(fake: FakeViben) -> None:
    fake.refuse_stream = True
    kept = fake.add_session()["id"]
    async with create_backend(viben_config(fake.url)) as backend:
        await backend.list_sessions()
        watch = Collector(lambda on_state: backend.watch_org(after=0, on_state=on_state))
        try:
            await until(lambda: fake.open_streams == 1, "the subscription")
            fake.set_status(kept, "paused")
            await until(lambda: len(watch.items) == 1, "the status change")
            change = watch.items[0]
            assert change.kind == "session.updated" and change.session.status.value == "paused"
        finally:
            await watch.close()


async def test_watch_session_polls_where_neither_stream_is_offered(fake: FakeViben) -> None:
    fake.refuse_stream = True
    fake.refuse_websocket = True
    session_id = fake.add_session()["id"]
    async with create_backend(viben_config(fake.url)) as backend:
        watch = Collector(lambda on_state: backend.watch_session(session_id, on_state=on_state))
        try:
            fake.add_message(session_id, "one")
            fake.add_message(session_id, "two")
            await until(lambda: len(watch.items) == 2, "the polled messages")
            fake.add_message(session_id, "three")
            await until(lambda: len(watch.items) == 3, "the next poll")
            assert [e.sequence for e in watch.items] == [1, 2, 3]
            assert WatchState.POLLING in watch.states
        finally:
            await watch.close()


async def test_watch_org_reports_session_changes_across_drops(
    fake: FakeViben, backend: VibenBackend
) -> None:
    kept = fake.add_session()["id"]
    doomed = fake.add_session()["id"]
    first = await backend.list_sessions()
    assert first.stream_position == 0
    made_between = fake.add_session()["id"]  # after the listing, before the watch
    watch = Collector(
        lambda on_state: backend.watch_org(after=first.stream_position, on_state=on_state)
    )
    try:
        await until(lambda: len(watch.items) == 1, "the session made before the watch")
        fake.set_status(kept, "paused")
        await until(lambda: len(watch.items) == 2, "the status change")
        fake.drop_streams()
        fake.set_status(kept, "active")  # while no stream is open
        fake.sessions.pop(doomed)  # gone without a word
        await until(lambda: len(watch.items) == 4, "what the drop hid")
        created = fake.add_session()["id"]
        fake.add_message(kept, "hello")
        await until(lambda: len(watch.items) >= 6, "the new session and the message count")
        last = fake.add_session()["id"]  # a repeat, if any, would come before it
        await until(lambda: watch.items[-1].session_id == last, "the last session")
        changes: list[OrgChange] = watch.items
        assert [(c.kind, c.session_id) for c in changes] == [
            ("session.created", made_between),
            ("session.updated", kept),
            ("session.updated", kept),
            ("session.deleted", doomed),
            ("session.created", created),
            ("session.updated", kept),
            ("session.created", last),
        ]
        assert [c.id for c in changes] == list(range(1, 8))
        statuses = [c.session.status for c in changes if c.session and c.session_id == kept]
        assert statuses[:2] == [SessionStatus.PAUSED, SessionStatus.ACTIVE]
        assert changes[-2].session is not None and changes[-2].session.message_count == 1
    finally:
        await watch.close()
