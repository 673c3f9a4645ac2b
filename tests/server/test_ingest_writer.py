"""The append path in the store: the writer thread's group commits, and the async fallback."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from sessionscope.models import SessionCreate
from sessionscope.server.broker import Broker
from sessionscope.server.db import make_engine, prepare_schema
from sessionscope.server.settings import database_url
from sessionscope.server.store import (
    Store,
    _append_batch,
    _AppendRequest,
    now_utc,
    session_channel,
)

ORG = "acme"


async def _open_store(url: str) -> Store:
    engine = make_engine(url)
    await prepare_schema(engine)
    return Store(engine, Broker())


@pytest.fixture(params=["writer thread", "async engine"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    # A SQLite file gets the writer thread; in-memory SQLite (like any other database) keeps
    # the async engine for the same statements.
    url = database_url(tmp_path / "ingest.db") if request.param == "writer thread" else None
    opened = await _open_store(url or "sqlite+aiosqlite://")
    assert (opened._writer is not None) == (request.param == "writer thread")
    try:
        yield opened
    finally:
        await opened.aclose()
        await opened.engine.dispose()


async def _stored_sequences(store: Store, session_id: str) -> list[int]:
    page = await store.list_events(ORG, session_id, limit=1000, include_hidden=True)
    return [event.sequence for event in page.data]


async def test_concurrent_appends_across_sessions_are_all_committed_in_order(
    store: Store,
) -> None:
    sessions = [await store.create_session(ORG, SessionCreate(title=f"s{n}")) for n in range(3)]
    followers = {s.id: store.broker.subscribe(session_channel(ORG, s.id)) for s in sessions}
    replies = await asyncio.gather(
        *(
            store.append_events(ORG, s.id, [("log", {"n": n}), ("log", {"n": n, "second": True})])
            for n in range(40)
            for s in sessions
        ),
        store.append_events(ORG, "ses_missing", [("log", {})]),
        return_exceptions=True,
    )
    assert isinstance(replies[-1], Exception) and getattr(replies[-1], "status", None) == 404
    for session in sessions:
        mine = [r for r in replies[:-1] if not isinstance(r, BaseException)]
        mine = [r for r in mine if r[0].session_id == session.id]
        assert len(mine) == 40 and all(len(r) == 2 for r in mine)
        # Each request's events are consecutive; together they fill the sequence range.
        assert all(r[1].sequence == r[0].sequence + 1 for r in mine)
        sequences = sorted(e.sequence for r in mine for e in r)
        assert sequences == list(range(2, 82))
        assert await _stored_sequences(store, session.id) == [1, *sequences]
        # Frames went out in commit order, none twice.
        published = [f.cursor for f in await followers[session.id].get_batch(1.0)]
        assert published == sequences
        refreshed = await store.get_session(ORG, session.id)
        assert refreshed.last_sequence == 81 and refreshed.event_count == 81


async def test_a_cancelled_caller_does_not_cancel_the_others(store: Store) -> None:
    session = await store.create_session(ORG, SessionCreate(title="cancel"))
    tasks = [
        asyncio.create_task(store.append_events(ORG, session.id, [("log", {"n": n})]))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # let every task queue its append
    tasks[5].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[5], asyncio.CancelledError)
    delivered = [r[0].sequence for i, r in enumerate(results) if i != 5]  # type: ignore[index]
    assert len(delivered) == 19
    # The cancelled caller's append may or may not have been committed; either way sequences
    # stay contiguous and the counters match what is stored.
    stored = await _stored_sequences(store, session.id)
    assert set(delivered) <= set(stored) and stored == list(range(1, len(stored) + 1))
    refreshed = await store.get_session(ORG, session.id)
    assert refreshed.last_sequence == refreshed.event_count == len(stored)


async def test_other_writes_get_their_turn_during_a_stream_of_appends(store: Store) -> None:
    session = await store.create_session(ORG, SessionCreate(title="busy"))
    stop = asyncio.Event()

    async def flood() -> int:
        appended = 0
        while not stop.is_set():
            batch = await asyncio.gather(
                *(store.append_events(ORG, session.id, [("log", {})]) for _ in range(16))
            )
            appended += len(batch)
        return appended

    flooders = [asyncio.create_task(flood()) for _ in range(2)]
    try:
        message = await asyncio.wait_for(store.send_message(ORG, session.id, "hello"), 10)
    finally:
        stop.set()
    appended = sum(await asyncio.gather(*flooders))
    stored = await _stored_sequences(store, session.id)
    assert message.sequence in stored
    assert stored == list(range(1, appended + 3))  # session.created + appends + the message


async def test_event_ids_are_ordered_by_creation_time(tmp_path: Path) -> None:
    opened = await _open_store(database_url(tmp_path / "ids.db"))
    try:
        session = await opened.create_session(ORG, SessionCreate(title="ids"))
        before_ms = time.time_ns() // 1_000_000
        events = await opened.append_events(ORG, session.id, [("log", {})] * 3)
        after_ms = time.time_ns() // 1_000_000
    finally:
        await opened.aclose()
        await opened.engine.dispose()
    for event in events:
        match = re.fullmatch(r"evt_([0-9a-f]{12})[0-9a-f]{12}", event.id)
        assert match is not None, event.id
        assert before_ms <= int(match.group(1), 16) <= after_ms
    assert len({event.id for event in events}) == 3


async def test_an_append_after_close_fails_instead_of_waiting_forever(tmp_path: Path) -> None:
    opened = await _open_store(database_url(tmp_path / "closed.db"))
    session = await opened.create_session(ORG, SessionCreate(title="closing"))
    await opened.aclose()
    try:
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(opened.append_events(ORG, session.id, [("log", {})]), 10)
    finally:
        await opened.engine.dispose()


async def test_a_group_commit_hands_consecutive_requests_to_one_session_over_as_one_group(
    store: Store,
) -> None:
    a, b = [await store.create_session(ORG, SessionCreate(title=t)) for t in ("a", "b")]
    loop = asyncio.get_running_loop()
    requests = [
        _AppendRequest(ORG, session_id, [("log", {"n": n})] * size, loop.create_future())
        for n, (session_id, size) in enumerate(
            [(a.id, 2), (a.id, 1), ("ses_missing", 1), (a.id, 1), (b.id, 1), (a.id, 2)]
        )
    ]
    outcome = await store._run_write(partial(_append_batch, requests=requests, now=now_utc()))
    groups = [(channel, [f.cursor for f in frames]) for channel, frames in outcome.frames]
    # The failed request between two of a's adds nothing and does not split a's group.
    channel_a, channel_b = session_channel(ORG, a.id), session_channel(ORG, b.id)
    assert groups == [(channel_a, [2, 3, 4, 5]), (channel_b, [2]), (channel_a, [6, 7])]
    # Each reply keeps only its own request's frames, however its group grew.
    replies = [r for r in outcome.results if not isinstance(r, Exception)]
    assert [[f.cursor for f in r.frames] for r in replies] == [[2, 3], [4], [5], [2], [6, 7]]
