"""One behavioural suite for every platform backend, run against a server that behaves as the
platform's documents say (see ``conftest.HARNESS_NAMES``). What a backend promises the console:
every session listed once across pages, events in a stable order with stable sequences, a live
watch that delivers each new event once (across a dropped connection too), decisions sent once,
and each failure as its typed error."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import pytest
from backend_harness import Harness

from sessionscope.backends import (
    AuthError,
    Backend,
    BackendError,
    Capability,
    NotFound,
    ServerError,
    create_backend,
)
from sessionscope.models import ActionStatus, Event

DEADLINE_SECONDS = 30.0


@asynccontextmanager
async def opened(harness: Harness) -> AsyncIterator[Backend]:
    backend = create_backend(harness.config())
    try:
        yield backend
    finally:
        await backend.aclose()


async def session_with_events(harness: Harness, title: str, count: int) -> str:
    session_id = await harness.create_session(title)
    if count:
        await harness.append_events(session_id, count)
    return session_id


async def all_events(backend: Backend, session_id: str, after: int = 0) -> list[Event]:
    return [event async for event in backend.iter_events(session_id, after=after, page_size=3)]


async def test_lists_the_sessions_created(harness: Harness) -> None:
    created = {await harness.create_session(f"suite {index}") for index in range(3)}
    async with opened(harness) as backend:
        page = await backend.list_sessions(limit=50)
    assert created <= {session.id for session in page.data}


async def test_pages_through_every_session_exactly_once(harness: Harness) -> None:
    created = [await harness.create_session(f"paged {index}") for index in range(5)]
    async with opened(harness) as backend:
        seen = [session.id async for session in backend.iter_sessions(page_size=2)]
    assert len(seen) == len(set(seen)), "a session was listed twice across pages"
    assert set(created) <= set(seen)


async def test_gets_a_session_and_names_a_missing_one(harness: Harness) -> None:
    session_id = await harness.create_session("get me")
    async with opened(harness) as backend:
        session = await backend.get_session(session_id)
        assert session.id == session_id
        with pytest.raises(NotFound):
            await backend.get_session(harness.unknown_session_id)


async def test_events_come_in_order_with_stable_sequences(harness: Harness) -> None:
    session_id = await session_with_events(harness, "ordered", 4)
    async with opened(harness) as backend:
        if not backend.supports(Capability.EVENTS):
            pytest.skip(f"{backend.name} has no event log")  # capability, not a missing server
        first = await all_events(backend, session_id)
        second = await all_events(backend, session_id)
        assert len(first) >= 4
        sequences = [event.sequence for event in first]
        assert sequences == sorted(set(sequences)), "sequences must strictly increase"
        assert [(e.id, e.sequence) for e in first] == [(e.id, e.sequence) for e in second]
        tail = await all_events(backend, session_id, after=first[-2].sequence)
        assert [event.id for event in tail] == [first[-1].id]


async def _collect(stream: AsyncIterator[Event], into: list[Event], count: int, what: str) -> None:
    async def take() -> None:
        while len(into) < count:
            into.append(await anext(stream))

    try:
        await asyncio.wait_for(take(), DEADLINE_SECONDS)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}: {len(into)} of {count} arrived")


async def test_watch_delivers_each_new_event_once_across_a_dropped_connection(
    harness: Harness,
) -> None:
    session_id = await session_with_events(harness, "watched", 2)
    async with opened(harness) as backend:
        if not backend.supports(Capability.EVENTS):
            pytest.skip(f"{backend.name} has no event log")
        existing = await all_events(backend, session_id)
        after = existing[-1].sequence if existing else 0
        received: list[Event] = []
        watch = backend.watch_session(session_id, after=after)
        async with aclosing(watch):
            await harness.append_events(session_id, 3)
            await _collect(watch, received, 3, "the first three live events")
            await harness.drop_live_connections()
            await harness.append_events(session_id, 3)
            await _collect(watch, received, 6, "the events after the drop")
            # Anything more arriving now would be a repeat: give it a moment to show.
            extra = asyncio.ensure_future(anext(watch))
            done, _ = await asyncio.wait({extra}, timeout=0.5)
            extra.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await extra
            assert not done, f"an unexpected extra event arrived: {extra.result()!r}"
        assert len({event.id for event in received}) == 6, "an event arrived twice"
        sequences = [event.sequence for event in received]
        assert sequences == sorted(sequences) and sequences[0] > after
        logged = await all_events(backend, session_id, after=after)
        assert [event.id for event in received] == [event.id for event in logged]


async def test_a_decision_is_applied_once(harness: Harness) -> None:
    session_id = await harness.create_session("decide")
    action_id = await harness.create_pending_action(session_id)
    if action_id is None:
        pytest.skip(f"{harness.backend_name} has nothing to decide")
    async with opened(harness) as backend:
        pending = await backend.list_session_actions(session_id)
        action = next(item for item in pending if item.id == action_id)
        assert action.decidable and action.status is ActionStatus.PENDING
        refusal = action.choice_for(False)
        assert refusal is not None, "every decidable item can be refused"
        result = await backend.decide_action(
            session_id, action_id, False, idempotency_key="suite-decision-1", choice=refusal.id
        )
        assert result.status is not ActionStatus.PENDING
        # The same decision again (a retry with the same key) must not decide twice.
        again = await backend.decide_action(
            session_id, action_id, False, idempotency_key="suite-decision-1", choice=refusal.id
        )
        assert again.status == result.status
        after = {item.id: item for item in await backend.list_session_actions(session_id)}
        assert action_id not in after or after[action_id].status is not ActionStatus.PENDING


async def reach_platform(harness: Harness, backend: Backend) -> None:
    """The request the failure tests send: a listing, or, for a platform whose sessions list is
    kept locally (AG2Trust's record), the request its harness names (``platform_request``)."""
    request = getattr(harness, "platform_request", None)
    if request is not None:
        await request(backend)
    else:
        await backend.list_sessions(limit=5)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, AuthError), (404, NotFound), (500, ServerError)],
)
async def test_failures_arrive_as_typed_errors(
    harness: Harness, status: int, error_type: type[BackendError]
) -> None:
    await harness.create_session("errors")
    async with opened(harness) as backend:
        harness.fail_next(status)
        with pytest.raises(error_type) as caught:
            await reach_platform(harness, backend)
    message = str(caught.value)
    assert message and "Traceback" not in message
    api_key = harness.config().api_key
    assert not api_key or api_key not in message


async def test_a_rate_limit_with_a_short_hint_is_waited_out(harness: Harness) -> None:
    session_id = await harness.create_session("limited")
    async with opened(harness) as backend:
        harness.fail_next(429, retry_after=0.2)
        started = time.monotonic()
        await reach_platform(harness, backend)
        waited = time.monotonic() - started
        page = await backend.list_sessions(limit=50)
    assert session_id in {session.id for session in page.data}
    assert waited >= 0.2, "the retry came before the platform's hint allowed"
