"""Every Backend method and every typed error, against the real reference server on loopback."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from client_support import SECRET, fast_config

from sessionscope.backends import (
    AuthError,
    Capability,
    Conflict,
    Gone,
    NotFound,
    SessionQuery,
    ValidationFailed,
    WatchState,
    create_backend,
)
from sessionscope.backends.native import NativeBackend
from sessionscope.models import (
    ActionStatus,
    Event,
    OrgChange,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    ToolResult,
)

DEADLINE = 15.0


@pytest.fixture
async def backend(server: Any) -> AsyncIterator[NativeBackend]:
    native = create_backend(fast_config(server.url, server.api_key))
    assert isinstance(native, NativeBackend)
    async with native:
        yield native


@pytest.fixture
async def agent(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The agent-facing side of the API, which the console's backend does not cover."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}
    ) as client:
        yield client


async def post(agent: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await agent.post(path, json=body)
    assert response.status_code == 201, response.text
    reply: dict[str, Any] = response.json()
    return reply


async def test_capabilities_and_health(backend: NativeBackend, server: Any) -> None:
    assert backend.capabilities == frozenset(Capability) - {Capability.CANCEL_TURN}
    assert (await backend.health())["status"] == "ok"
    assert server.api_key not in backend.display_name


async def test_session_lifecycle(backend: NativeBackend) -> None:
    created = await backend.create_session(
        SessionCreate(
            title="deploy review",
            agent_id="agent-7",
            task_id="task-1",
            tags=["prod"],
            context_variables={"REGION": "eu"},
        )
    )
    assert (await backend.get_session(created.id)).title == "deploy review"

    updated = await backend.update_session(
        created.id, SessionUpdate(title="renamed", tags=["prod", "urgent"])
    )
    assert updated.title == "renamed" and set(updated.tags) == {"prod", "urgent"}
    with_vars = await backend.update_session(
        created.id, SessionUpdate(context_variables={"REGION": "us", "TICKET_ID": "42"})
    )
    assert with_vars.context_variables == {"REGION": "us", "TICKET_ID": "42"}

    completed = await backend.complete_session(created.id)
    assert completed.status is SessionStatus.COMPLETED

    other = await backend.create_session(SessionCreate(title="to close"))
    closed = await backend.close_session(other.id)
    assert closed.id == other.id and closed.duration_seconds >= 0
    assert isinstance(closed.billable, bool)

    await backend.delete_session(other.id)
    with pytest.raises(NotFound):
        await backend.get_session(other.id)


async def test_list_filters_and_pages(backend: NativeBackend) -> None:
    ids = []
    for i in range(7):
        session = await backend.create_session(
            SessionCreate(
                title=f"needle {i}" if i % 2 else f"hay {i}",
                agent_id="a-even" if i % 2 == 0 else "a-odd",
                task_id=f"t{i % 3}",
                tags=["blue"] if i < 3 else ["green"],
            )
        )
        ids.append(session.id)
    await backend.complete_session(ids[0])

    seen = [s.id async for s in backend.iter_sessions(page_size=2)]
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    first = await backend.list_sessions(limit=2)
    assert len(first.data) == 2 and first.next_cursor
    second = await backend.list_sessions(cursor=first.next_cursor, limit=2)
    assert not {s.id for s in first.data} & {s.id for s in second.data}

    async def matching(query: SessionQuery) -> set[str]:
        return {s.id async for s in backend.iter_sessions(query)} & set(ids)

    assert await matching(SessionQuery(agent_id="a-odd")) == set(ids[1::2])
    assert await matching(SessionQuery(tag="blue")) == set(ids[:3])
    assert await matching(SessionQuery(task_id="t0")) == {ids[0], ids[3], ids[6]}
    assert await matching(SessionQuery(text="needle")) == set(ids[1::2])
    assert await matching(SessionQuery(status=SessionStatus.COMPLETED)) == {ids[0]}
    oldest_first = [s.id async for s in backend.iter_sessions(SessionQuery(order="oldest"))]
    assert [i for i in oldest_first if i in ids] == ids and len(set(oldest_first)) == len(seen)
    blue_oldest = await backend.list_sessions(SessionQuery(tag="blue", order="oldest"), limit=2)
    assert [s.id for s in blue_oldest.data] == ids[:2] and blue_oldest.next_cursor


async def test_messages_and_events(backend: NativeBackend, agent: httpx.AsyncClient) -> None:
    session = await backend.create_session(SessionCreate(title="chat"))
    message = await backend.send_message(session.id, "hello **agent**")
    assert message.session_id == session.id and message.type.startswith("message")
    await post(agent, f"/v1/sessions/{session.id}/events", {"type": "log", "payload": {"n": 1}})

    events = [e async for e in backend.iter_events(session.id, page_size=1)]
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert message.id in {e.id for e in events}
    assert [e.type for e in (await backend.list_events(session.id, types=["log"])).data] == ["log"]

    later = await backend.list_events(session.id, after=message.sequence)
    assert all(e.sequence > message.sequence for e in later.data)

    assert (await backend.get_event(session.id, message.id)).id == message.id
    hidden = await backend.hide_event(session.id, message.id)
    assert hidden.hidden
    visible = {e.id for e in (await backend.list_events(session.id)).data}
    assert message.id not in visible
    everything = await backend.list_events(session.id, include_hidden=True)
    assert message.id in {e.id for e in everything.data}
    assert not (await backend.unhide_event(session.id, message.id)).hidden

    await backend.delete_event(session.id, message.id)
    with pytest.raises(NotFound):
        await backend.get_event(session.id, message.id)


async def test_timeline_and_replay(backend: NativeBackend, agent: httpx.AsyncClient) -> None:
    session = await backend.create_session(SessionCreate(title="steps", prompt="do it"))
    await post(
        agent,
        f"/v1/sessions/{session.id}/events",
        {"type": "tool.started", "payload": {"tool": "search", "input": {"q": "x"}}},
    )
    await post(
        agent,
        f"/v1/sessions/{session.id}/events",
        {"type": "tool.completed", "payload": {"tool": "search", "output": "found"}},
    )
    timeline = await backend.timeline(session.id)
    assert timeline and [e.sequence for e in timeline] == sorted(e.sequence for e in timeline)
    replay = await backend.replay(session.id)
    assert replay.session_id == session.id
    assert [step.index for step in replay.steps] == list(range(len(replay.steps)))


async def test_artifacts_stream_in_ranges(backend: NativeBackend, agent: httpx.AsyncClient) -> None:
    session = await backend.create_session(SessionCreate(title="files"))
    content = bytes(range(256)) * 40  # 10 KiB
    uploaded = await post(
        agent,
        f"/v1/sessions/{session.id}/artifacts",
        {
            "name": "../../etc/blob.bin",
            "mime_type": "application/octet-stream",
            "data": base64.b64encode(content).decode(),
        },
    )
    page = await backend.list_artifacts(session.id)
    assert [a.id for a in page.data] == [uploaded["id"]]
    artifact = await backend.get_artifact(session.id, uploaded["id"])
    assert artifact.size_bytes == len(content)
    assert artifact.checksum_sha256 == hashlib.sha256(content).hexdigest()
    assert "data" not in (artifact.model_extra or {})

    async def read(**kwargs: Any) -> list[bytes]:
        return [c async for c in backend.read_artifact(session.id, artifact.id, **kwargs)]

    chunks = await read(chunk_size=1000)
    assert b"".join(chunks) == content
    assert max(len(c) for c in chunks) <= 1000 and len(chunks) >= 10
    assert b"".join(await read(offset=100, max_bytes=50)) == content[100:150]
    assert b"".join(await read(max_bytes=len(content) * 2)) == content
    assert b"".join(await read(offset=len(content) - 5)) == content[-5:]
    assert await read(offset=len(content) + 10) == []
    with pytest.raises(NotFound):
        await backend.get_artifact(session.id, "art_nope")


async def test_tool_calls(backend: NativeBackend, agent: httpx.AsyncClient) -> None:
    session = await backend.create_session(SessionCreate(title="tools"))
    call = await post(
        agent,
        f"/v1/sessions/{session.id}/tool-calls",
        {
            "tool": "fetch_invoice",
            "arguments": [
                {"name": "invoice", "value": "INV-1"},
                {"name": "token", "value": "tok-123", "secret": True},
            ],
        },
    )
    calls = await backend.list_tool_calls(session.id)
    assert [c.id for c in calls] == [call["id"]]
    assert {a.name: a.secret for a in calls[0].arguments} == {"invoice": False, "token": True}

    done = await backend.submit_tool_result(
        session.id, call["id"], ToolResult(output={"total": 12}), idempotency_key="k-1"
    )
    assert done.status == "succeeded"
    again = await backend.submit_tool_result(
        session.id, call["id"], ToolResult(output={"total": 12}), idempotency_key="k-1"
    )
    assert again.id == done.id and again.status == "succeeded"
    assert await backend.list_tool_calls(session.id) == []


async def propose(
    agent: httpx.AsyncClient, session_id: str, *, expires_in: float = 600
) -> dict[str, Any]:
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    return await post(
        agent,
        f"/v1/sessions/{session_id}/actions",
        {
            "tool": "send_email",
            "preview": {"to": "ops@example.com", "subject": "hi", "body": "..."},
            "expires_at": expires_at.isoformat(),
        },
    )


async def test_pending_actions_and_decisions(
    backend: NativeBackend, agent: httpx.AsyncClient
) -> None:
    session = await backend.create_session(SessionCreate(title="approvals"))
    first = await propose(agent, session.id)
    second = await propose(agent, session.id)

    inbox = [a.id for a in await backend.list_pending_actions()]
    assert inbox.index(first["id"]) < inbox.index(second["id"])  # oldest first
    assert {a.id for a in await backend.list_session_actions(session.id)} == {
        first["id"],
        second["id"],
    }
    assert (await backend.get_action(session.id, first["id"])).tool == "send_email"

    cancelled = await backend.decide_action(session.id, first["id"], False, idempotency_key="d-1")
    assert cancelled.status is ActionStatus.CANCELLED
    replayed = await backend.decide_action(session.id, first["id"], False, idempotency_key="d-1")
    assert replayed.status is ActionStatus.CANCELLED
    with pytest.raises(Conflict) as conflict:
        await backend.decide_action(session.id, first["id"], True)
    assert "cancel" in str(conflict.value)

    confirmed = await backend.decide_action(session.id, second["id"], True)
    assert confirmed.status is ActionStatus.PROCESSING and confirmed.callback_id
    assert first["id"] not in {a.id for a in await backend.list_pending_actions()}


async def test_expired_action_is_gone(backend: NativeBackend, agent: httpx.AsyncClient) -> None:
    session = await backend.create_session(SessionCreate(title="too late"))
    action = await propose(agent, session.id, expires_in=-1)
    with pytest.raises(Gone) as gone:
        await backend.decide_action(session.id, action["id"], True)
    assert gone.value.status == 410
    assert (await backend.get_action(session.id, action["id"])).status is ActionStatus.EXPIRED


async def test_wrong_key_is_an_auth_error_without_the_key(server: Any) -> None:
    wrong = "sk-wrong-" + SECRET
    async with NativeBackend(fast_config(server.url, wrong)) as native:
        with pytest.raises(AuthError) as caught:
            await native.list_sessions()
    assert caught.value.status == 401
    assert wrong not in str(caught.value) and SECRET not in str(caught.value)


async def test_other_organisation_sees_not_found(backend: NativeBackend, server: Any) -> None:
    mine = await backend.create_session(SessionCreate(title="private"))
    async with NativeBackend(fast_config(server.url, server.other_api_key)) as other:
        with pytest.raises(NotFound):
            await other.get_session(mine.id)
        with pytest.raises(NotFound):
            await other.list_events(mine.id)
        assert mine.id not in {s.id async for s in other.iter_sessions()}


async def test_bad_variables_are_rejected_naming_the_key(backend: NativeBackend) -> None:
    session = await backend.create_session(SessionCreate(title="vars"))
    # Bypass the client-side check to see the server's answer.
    bad = SessionUpdate.model_construct(context_variables={"lower_case": "x"})
    with pytest.raises(ValidationFailed) as caught:
        await backend.update_session(session.id, bad)
    assert caught.value.status == 422
    assert "lower_case" in str(caught.value)
    too_many = SessionUpdate.model_construct(context_variables={f"K_{i}": "v" for i in range(21)})
    with pytest.raises(ValidationFailed):
        await backend.update_session(session.id, too_many)


async def collect(
    watch: AsyncIterator[Any], count: int, states: list[WatchState] | None = None
) -> list[Any]:
    items: list[Any] = []
    async with asyncio.timeout(DEADLINE):
        async for item in watch:
            items.append(item)
            if len(items) == count:
                break
    await watch.aclose()  # type: ignore[attr-defined]
    return items


async def test_watch_session_live_and_resumed(
    backend: NativeBackend, agent: httpx.AsyncClient
) -> None:
    session = await backend.create_session(SessionCreate(title="live"))
    base = (await backend.get_session(session.id)).last_sequence
    states: list[WatchState] = []
    live = asyncio.Event()

    def on_state(state: WatchState, detail: str | None) -> None:
        states.append(state)
        if state is WatchState.LIVE:
            live.set()

    watch = backend.watch_session(session.id, after=base, on_state=on_state)
    collector = asyncio.create_task(collect(watch, 5))
    async with asyncio.timeout(DEADLINE):
        await live.wait()
    for n in range(5):
        await post(agent, f"/v1/sessions/{session.id}/events", {"type": "log", "payload": {"n": n}})
    events: list[Event] = await collector
    assert [e.payload["n"] for e in events] == list(range(5))
    assert [e.sequence for e in events] == list(range(base + 1, base + 6))
    assert states[:2] == [WatchState.CONNECTING, WatchState.LIVE]

    # Resuming from the middle delivers exactly the rest.
    resumed = await collect(backend.watch_session(session.id, after=base + 2), 3)
    assert [e.sequence for e in resumed] == [base + 3, base + 4, base + 5]


async def test_watch_session_by_polling(server: Any, agent: httpx.AsyncClient) -> None:
    config = dataclasses.replace(
        fast_config(server.url, server.api_key, poll=True), poll_interval=0.02
    )
    async with NativeBackend(config) as b:
        session = await b.create_session(SessionCreate(title="polled"))
        base = (await b.get_session(session.id)).last_sequence
        for n in range(3):
            await post(
                agent, f"/v1/sessions/{session.id}/events", {"type": "log", "payload": {"n": n}}
            )
        states: list[WatchState] = []
        events = await collect(
            b.watch_session(session.id, after=base, on_state=lambda s, d: states.append(s)), 3
        )
    assert [e.payload["n"] for e in events] == [0, 1, 2]
    assert WatchState.POLLING in states and WatchState.LIVE not in states


async def test_watch_org(backend: NativeBackend, agent: httpx.AsyncClient) -> None:
    live = asyncio.Event()
    watch = backend.watch_org(
        on_state=lambda state, detail: live.set() if state is WatchState.LIVE else None
    )

    async def until_action_pending() -> list[OrgChange]:
        changes: list[OrgChange] = []
        async with asyncio.timeout(DEADLINE):
            async for change in watch:
                changes.append(change)
                if change.kind == "action.pending" and change.session_id in ours:
                    break
        await watch.aclose()  # type: ignore[attr-defined]
        return changes

    ours: list[str] = []
    collector = asyncio.create_task(until_action_pending())
    async with asyncio.timeout(DEADLINE):
        await live.wait()
    session = await backend.create_session(SessionCreate(title="org-wide"))
    ours.append(session.id)
    action = await propose(agent, session.id)
    everything = await collector
    ids = [c.id for c in everything]
    assert ids == sorted(set(ids))
    # The server is shared with other tests: their leftovers may show up too.
    changes = [c for c in everything if c.session_id == session.id]
    assert changes[0].kind == "session.created" and changes[0].session is not None
    assert changes[-1].action is not None and changes[-1].action.id == action["id"]


async def test_watch_org_by_polling(server: Any, agent: httpx.AsyncClient) -> None:
    config = dataclasses.replace(
        fast_config(server.url, server.api_key, poll=True), poll_interval=0.02
    )
    async with NativeBackend(config) as polled:
        states: list[WatchState] = []
        polling = asyncio.Event()

        def on_state(state: WatchState, detail: str | None) -> None:
            states.append(state)
            if state is WatchState.POLLING:
                polling.set()

        watch = polled.watch_org(on_state=on_state)
        ours: list[str] = []

        async def until_ours_pending() -> list[OrgChange]:
            changes: list[OrgChange] = []
            async with asyncio.timeout(DEADLINE):
                async for change in watch:
                    changes.append(change)
                    if change.kind == "action.pending" and change.session_id in ours:
                        break
            await watch.aclose()  # type: ignore[attr-defined]
            return changes

        collector = asyncio.create_task(until_ours_pending())
        async with asyncio.timeout(DEADLINE):
            await polling.wait()  # the first snapshot is taken: what follows is news
        session = await polled.create_session(SessionCreate(title="polled org"))
        ours.append(session.id)
        await propose(agent, session.id)
        changes = [c for c in await collector if c.session_id == session.id]
    assert changes[0].kind == "session.created"
    assert changes[-1].kind == "action.pending"
    assert WatchState.LIVE not in states
