"""The Everruns backend against the stateful Everruns fake (behind the fault front): what a
stateless mock cannot show. SSE resume with since_id across a dropped connection, the
``disconnecting`` frame, too many streams, the tool-approval flow with its request body and
reason header, tool results refused with 409, ids checked before a create is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fakes.everruns import FakeEverruns
from front import FaultFront

from sessionscope.backends import (
    AuthError,
    BackendConfig,
    Conflict,
    ValidationFailed,
    WatchState,
    create_backend,
)
from sessionscope.backends.everruns import EverrunsBackend
from sessionscope.models import (
    ActionStatus,
    Event,
    PendingKind,
    SessionCreate,
    SessionStatus,
    ToolResult,
)

TOKEN = "evr_pat_fake_test"
DEADLINE = 30.0
FAST = {
    "retry_attempts": 3,
    "retry_base": 0.001,
    "retry_max": 0.01,
    "reconnect_base": 0.01,
    "reconnect_max": 2.0,
    "seed": 3,
}


@asynccontextmanager
async def running(**fake_options: object) -> AsyncIterator[tuple[FakeEverruns, FaultFront]]:
    fake = await FakeEverruns(token=TOKEN, **fake_options).start()  # type: ignore[arg-type]
    front = await FaultFront(fake.url).start()
    try:
        yield fake, front
    finally:
        await front.stop()
        await fake.stop()


def backend_for(front: FaultFront, fake: FakeEverruns, **options: object) -> EverrunsBackend:
    backend = create_backend(
        BackendConfig(
            name="everruns",
            url=front.url,
            api_key=TOKEN,
            timeout=5.0,
            poll_interval=0.05,
            options={**FAST, "org_id": fake.org_id, **options},
        )
    )
    assert isinstance(backend, EverrunsBackend)
    return backend


async def take(stream: AsyncIterator[Event], into: list[Event], count: int) -> None:
    async def run() -> None:
        while len(into) < count:
            into.append(await anext(stream))

    await asyncio.wait_for(run(), DEADLINE)


async def test_sessions_map_statuses_and_keep_the_platforms_word() -> None:
    async with running() as (fake, front):
        waiting = fake.add_session("held")
        fake.hold_calls(waiting, [("send_email", {"to": "a@example.com"})])
        fake.add_session("fresh")
        async with backend_for(front, fake) as backend:
            page = await backend.list_sessions(limit=10)
            by_title = {session.title: session for session in page.data}
            assert by_title["held"].status is SessionStatus.WAITING
            assert by_title["held"].model_extra["platform_status"] == "waiting_for_tool_results"
            assert by_title["fresh"].status is SessionStatus.CREATED
            assert page.total == 2
            stats = await backend.session_stats()
            assert stats["waiting_for_tool_results"] == 1 and stats["total"] == 2
        sent = [r for r in front.requests if r.path == "/v1/sessions"]
        assert sent[0].headers["x-org-id"] == fake.org_id
        assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_wrong_token_is_an_auth_error_with_the_platforms_detail() -> None:
    async with running() as (_fake, front):
        backend = create_backend(
            BackendConfig(name="everruns", url=front.url, api_key="evr_pat_wrong", options=FAST)
        )
        async with backend:
            with pytest.raises(AuthError) as caught:
                await backend.list_sessions()
        assert "Invalid or missing token" in str(caught.value)
        assert "evr_pat_wrong" not in str(caught.value)


async def test_deltas_stay_out_of_the_durable_timeline() -> None:
    async with running() as (fake, front):
        session_id = fake.add_session("talk")
        fake.agent_says(session_id, 3)
        async with backend_for(front, fake) as backend:
            events = [event async for event in backend.iter_events(session_id)]
        types = [event.type for event in events]
        assert types == ["session.started"] + ["output.message.completed"] * 3
        assert [event.sequence for event in events] == [1, 3, 5, 7]  # the platform's own


async def test_the_live_stream_resumes_with_since_id_after_a_drop() -> None:
    async with running() as (fake, front):
        session_id = fake.add_session("live")
        async with backend_for(front, fake) as backend:
            received: list[Event] = []
            watch = backend.watch_session(session_id, after=1)
            async with aclosing(watch):
                fake.agent_says(session_id, 3)
                await take(watch, received, 3)
                await front.drop_live_connections()
                fake.agent_says(session_id, 3)
                await take(watch, received, 6)
        assert [event.sequence for event in received] == [3, 5, 7, 9, 11, 13]
        assert len({event.id for event in received}) == 6
        # The first stream starts by sequence, every later one from the last event's id.
        assert fake.stream_queries[0]["after_sequence"] == "1"
        assert fake.stream_queries[1]["since_id"] == received[2].id
        assert all(query.get("exclude", "").endswith(".delta") for query in fake.stream_queries)


async def test_a_disconnecting_frame_is_followed_by_a_prompt_resume() -> None:
    async with running(cycle_after=2, disconnect_retry_ms=200) as (fake, front):
        session_id = fake.add_session("cycled")
        fake.agent_says(session_id, 4)
        states: list[tuple[WatchState, str | None]] = []
        async with backend_for(front, fake) as backend:
            received: list[Event] = []
            watch = backend.watch_session(session_id, on_state=lambda s, d: states.append((s, d)))
            async with aclosing(watch):
                await take(watch, received, 5)
        assert [event.sequence for event in received] == [1, 3, 5, 7, 9]
        assert len(fake.stream_queries) >= 3
        assert fake.stream_queries[1]["since_id"] == received[1].id
        # The wait before each resume is the server's retry_ms, not the 2 s backoff cap.
        waits = [detail for state, detail in states if state is WatchState.RECONNECTING]
        assert waits and all(detail and "retrying in 0.2 s" in detail for detail in waits)


async def test_too_many_streams_is_waited_out_and_said() -> None:
    async with running(max_streams=0) as (fake, front):
        session_id = fake.add_session("crowded")
        states: list[tuple[WatchState, str | None]] = []
        limited = asyncio.Event()

        def on_state(state: WatchState, detail: str | None) -> None:
            states.append((state, detail))
            if detail and detail.startswith("rate limited"):
                limited.set()

        async with backend_for(front, fake) as backend:
            watch = backend.watch_session(session_id, on_state=on_state)
            async with aclosing(watch):
                first = asyncio.ensure_future(anext(watch))
                await asyncio.wait_for(limited.wait(), DEADLINE)
                fake.max_streams = 5
                event = await asyncio.wait_for(first, DEADLINE)
        assert event.type == "session.started"
        assert (WatchState.RECONNECTING, "rate limited, retrying in 1 s") in states


async def test_a_pause_of_two_held_calls_is_decided_in_one_request() -> None:
    async with running() as (fake, front):
        session_id = fake.add_session("approvals")
        first, second = fake.hold_calls(
            session_id, [("send_email", {"to": "ceo@example.com"}), ("wire_money", {"usd": 5})]
        )
        async with backend_for(front, fake) as backend:
            held = await backend.list_session_actions(session_id)
            assert [action.id for action in held] == [first, second]
            for action in held:
                assert action.kind == PendingKind.TOOL_APPROVAL
                assert action.group_id == held[0].group_id
                assert [choice.id for choice in action.choices] == [
                    "reject",
                    "allow",
                    "allow_always",
                    "reject_always",
                ]
                assert action.expires_at is not None
                left = action.expires_at - datetime.now(UTC)
                assert timedelta(seconds=890) < left <= timedelta(seconds=900)
                assert "counts as rejected" in action.model_extra["deadline_note"]
            assert held[0].tool == "send_email" and held[0].preview == {"to": "ceo@example.com"}
            assert (await backend.list_pending_actions())[0].session_title == "approvals"

            # A partial answer would leave the other call unapproved: refused, nothing sent.
            with pytest.raises(ValidationFailed, match="answered together"):
                await backend.decide_action(session_id, first, True, choice="allow")
            assert fake.approvals == []

            results = await backend.decide_actions(
                session_id,
                [(first, "allow"), (second, "reject")],
                reason="wire needs a second pair of eyes\x1b[2J",
                idempotency_key="pilot-1",
            )
            assert [r.status for r in results] == [ActionStatus.PROCESSING, ActionStatus.CANCELLED]
            again = await backend.decide_actions(
                session_id,
                [(first, "allow"), (second, "reject")],
                reason="wire needs a second pair of eyes",
                idempotency_key="pilot-1",
            )
            assert again == results
            assert await backend.list_session_actions(session_id) == []
        assert len(fake.approvals) == 1, "a decision must be sent exactly once"
        sent = fake.approvals[0]
        assert sent.body == {
            "decisions": [
                {"tool_call_id": first, "decision": "allow"},
                {"tool_call_id": second, "decision": "reject"},
            ]
        }
        assert sent.headers["everruns-change-reason"] == "wire needs a second pair of eyes [2J"


async def test_a_tool_result_for_a_session_that_is_not_waiting_is_a_clear_conflict() -> None:
    async with running() as (fake, front):
        session_id = fake.add_session("idle")
        async with backend_for(front, fake) as backend:
            with pytest.raises(Conflict, match="not waiting for tool results"):
                await backend.submit_tool_result(session_id, "toolu_1", ToolResult(output=1))
            fake.hold_calls(session_id, [])
            fake.sessions[session_id]["status"] = "waiting_for_tool_results"
            done = await backend.submit_tool_result(
                session_id, "toolu_1", ToolResult(output={"url": "https://example.com"})
            )
        assert done.status == "succeeded"
        assert fake.tool_results == [
            {"tool_call_id": "toolu_1", "result": {"url": "https://example.com"}}
        ]


async def test_ids_are_checked_before_a_create_is_sent() -> None:
    async with running() as (fake, front):
        async with backend_for(front, fake) as backend:
            with pytest.raises(ValidationFailed) as caught:
                await backend.create_session(SessionCreate(agent_id="agent_123", title="x"))
            assert caught.value.errors[0]["field"] == "agent_id"
            with pytest.raises(ValidationFailed) as caught:
                await backend.create_session(
                    SessionCreate(agent_id="agent_" + "a" * 32, model_id="gpt-4")
                )
            assert caught.value.errors[0]["field"] == "model_id"
            assert not [r for r in front.requests if r.method == "POST"]
            created = await backend.create_session(
                SessionCreate(
                    agent_id="agent_" + "a" * 32,
                    title="Debug login issue",
                    tags=["debugging"],
                    model_id="model_" + "b" * 32,
                    capabilities=[{"ref": "tool_approval", "config": {"timeout_seconds": 120}}],
                )
            )
        assert created.title == "Debug login issue"
        assert created.model_extra["organization_id"] == fake.org_id
        body = json.loads(next(r for r in front.requests if r.method == "POST").body)
        assert body == {
            "agent_id": "agent_" + "a" * 32,
            "title": "Debug login issue",
            "tags": ["debugging"],
            "model_id": "model_" + "b" * 32,
            "capabilities": [{"ref": "tool_approval", "config": {"timeout_seconds": 120}}],
        }
