"""Live fan-out: frames encoded once and shared, many subscribers, a slow one dropped."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sessionscope.models import Event, SessionCreate
from sessionscope.server.broker import Broker, Subscription
from sessionscope.server.db import make_engine, prepare_schema
from sessionscope.server.settings import database_url
from sessionscope.server.store import Store, session_channel
from sessionscope.server.streams import LiveFrame, live_frame

ORG = "acme"


@pytest.fixture
async def store_and_broker(tmp_path: Path) -> AsyncIterator[tuple[Store, Broker]]:
    engine = make_engine(database_url(tmp_path / "fanout.db"))
    await prepare_schema(engine)
    broker = Broker(queue_size=16)
    store = Store(engine, broker)
    try:
        yield store, broker
    finally:
        await store.aclose()
        await engine.dispose()


async def _caught_up(condition: asyncio.Condition, positions: list[int], upto: int) -> None:
    async with condition:
        await asyncio.wait_for(condition.wait_for(lambda: min(positions) >= upto), timeout=10)


async def test_every_subscriber_shares_one_encoding_of_each_frame(
    store_and_broker: tuple[Store, Broker],
) -> None:
    store, broker = store_and_broker
    session = await store.create_session(ORG, SessionCreate(title="fan-out"))
    channel = session_channel(ORG, session.id)
    subscriptions = [broker.subscribe(channel) for _ in range(3)]
    events = await store.append_events(
        ORG, session.id, [("log", {"n": n, "text": "é ✓"}) for n in range(5)]
    )
    received = [await subscription.get_batch(1.0) for subscription in subscriptions]
    first = received[0]
    assert [frame.cursor for frame in first] == [event.sequence for event in events]
    for other in received[1:]:
        # The very same bytes objects: encoded at publish, not per subscriber.
        assert all(mine.data is theirs.data for mine, theirs in zip(first, other, strict=True))
    for frame, event in zip(first, events, strict=True):
        head, _, data = frame.data.partition(b"data: ")
        assert head == f"id: {event.sequence}\nevent: log\n".encode()
        assert data.endswith(b"\n\n")
        assert Event.model_validate_json(data) == event
        assert data[:-2] == event.model_dump_json().encode()


async def test_many_subscribers_get_every_event_while_a_slow_one_is_dropped(
    store_and_broker: tuple[Store, Broker],
) -> None:
    store, broker = store_and_broker
    session = await store.create_session(ORG, SessionCreate(title="fan-out"))
    channel = session_channel(ORG, session.id)
    start = session.last_sequence
    total, per_batch = 200, 10
    last = start + total
    slow = broker.subscribe(channel)  # never read
    condition = asyncio.Condition()
    positions: list[int] = []

    async def follow(index: int, subscription: Subscription) -> list[int]:
        seen: list[int] = []
        while not seen or seen[-1] < last:
            frames: list[LiveFrame] = await subscription.get_batch(5.0)
            assert frames, "a fast subscriber was dropped or starved"
            seen.extend(frame.cursor for frame in frames)
            async with condition:
                positions[index] = seen[-1]
                condition.notify_all()
        return seen

    fast = [broker.subscribe(channel) for _ in range(50)]
    positions.extend([start] * len(fast))
    readers = [
        asyncio.create_task(follow(index, subscription)) for index, subscription in enumerate(fast)
    ]
    for batch_start in range(0, total, per_batch):
        items = [("log", {"n": n}) for n in range(batch_start, batch_start + per_batch)]
        appended = await store.append_events(ORG, session.id, items)
        # The queue holds 16 frames: readers must keep up batch by batch, the slow one cannot.
        await _caught_up(condition, positions, appended[-1].sequence)
    results = await asyncio.gather(*readers)
    expected = list(range(start + 1, last + 1))
    assert all(seen == expected for seen in results)
    assert slow.closed.is_set() and await slow.get_batch(1.0) == []
    assert broker.subscriber_count(channel) == len(fast)
    for subscription in fast:
        subscription.close()
    assert not broker.has_subscribers(channel)


async def test_nothing_is_encoded_for_a_channel_nobody_follows(
    store_and_broker: tuple[Store, Broker],
) -> None:
    store, broker = store_and_broker
    session = await store.create_session(ORG, SessionCreate(title="quiet"))
    other = await store.create_session(ORG, SessionCreate(title="followed"))
    followed = broker.subscribe(session_channel(ORG, other.id))
    await store.append_events(ORG, session.id, [("log", {})])
    (event,) = await store.append_events(ORG, other.id, [("log", {})])
    assert [frame.cursor for frame in await followed.get_batch(1.0)] == [event.sequence]
    assert live_frame(event).data.startswith(f"id: {event.sequence}\n".encode())


def _raw_frames(response: httpx.Response, count: int) -> list[bytes]:
    """The next ``count`` frames carrying data, exactly as sent."""
    found: list[bytes] = []
    buffer = b""
    for chunk in response.iter_bytes():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n\n")
        found.extend(frame + b"\n\n" for frame in complete if b"\ndata: " in frame)
        if len(found) >= count:
            return found[:count]
    raise AssertionError("stream ended early")


@pytest.mark.timeout(60)
def test_live_frames_are_byte_identical_to_replayed_ones(server, api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={"title": "bytes"}).json()["id"]
    path = f"/v1/sessions/{session_id}/events/stream"
    start = api.get(f"/v1/sessions/{session_id}").json()["last_sequence"]
    body = {"events": [{"type": "log", "payload": {"n": n, "text": "naïve ✓"}} for n in range(8)]}
    with api.stream("GET", path, params={"after": start}) as live:
        response = api.post(f"/v1/sessions/{session_id}/events:batch", json=body)
        assert response.status_code == 201, response.text
        live_frames = _raw_frames(live, 8)
    with api.stream("GET", path, params={"after": start}) as replay:
        replayed = _raw_frames(replay, 8)
    assert live_frames == replayed
    sequences = [event["sequence"] for event in response.json()["data"]]
    assert [frame.split(b"\n", 1)[0] for frame in live_frames] == [
        f"id: {sequence}".encode() for sequence in sequences
    ]


@pytest.mark.timeout(60)
def test_many_http_subscribers_each_receive_every_event_in_order(server) -> None:
    headers = {"X-API-Key": server.api_key}
    with httpx.Client(base_url=server.url, headers=headers) as api:
        session_id = api.post("/v1/sessions", json={"title": "fan-out"}).json()["id"]
        start = api.get(f"/v1/sessions/{session_id}").json()["last_sequence"]
    subscribers, batches, per_batch = 40, 10, 20
    last = start + batches * per_batch

    async def run() -> list[list[int]]:
        limits = httpx.Limits(max_connections=subscribers + 5)
        async with httpx.AsyncClient(
            base_url=server.url, headers=headers, limits=limits, timeout=30.0
        ) as client:
            connected = [asyncio.Event() for _ in range(subscribers)]

            async def subscribe(ready: asyncio.Event) -> list[int]:
                seen: list[int] = []
                path = f"/v1/sessions/{session_id}/events/stream"
                async with client.stream("GET", path, params={"after": start}) as response:
                    ready.set()
                    async for line in response.aiter_lines():
                        if line.startswith("id: ") and int(line[4:]) > start:
                            seen.append(int(line[4:]))
                            if seen[-1] >= last:
                                break
                return seen

            tasks = [asyncio.create_task(subscribe(ready)) for ready in connected]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected)), 20)
            # Connected is not yet subscribed; every subscriber replays what it missed from
            # the database, so frames published before its subscription are not lost either.
            for batch in range(batches):
                events = [
                    {"type": "log", "payload": {"n": batch * per_batch + n}}
                    for n in range(per_batch)
                ]
                reply = await client.post(
                    f"/v1/sessions/{session_id}/events:batch", json={"events": events}
                )
                assert reply.status_code == 201, reply.text
            return await asyncio.wait_for(asyncio.gather(*tasks), 40)

    results = asyncio.run(run())
    expected = list(range(start + 1, last + 1))
    assert all(seen == expected for seen in results)


async def test_a_group_of_frames_is_queued_whole_in_order_or_drops_the_subscriber() -> None:
    broker = Broker(queue_size=5)
    roomy, full = broker.subscribe("c"), broker.subscribe("c")
    full.offer_many(["old"])
    broker.publish_many("c", ["a", "b", "c", "d"])
    # 1 queued + 4 fit in 5; the next group of 2 does not fit the subscriber that never read.
    assert await roomy.get_batch(1.0) == ["a", "b", "c", "d"]
    broker.publish_many("c", ["e", "f"])
    assert await roomy.get_batch(1.0) == ["e", "f"]
    assert full.closed.is_set() and await full.get_batch(1.0) == []
    assert broker.subscriber_count("c") == 1
    broker.publish_many("nobody", ["x"])
    broker.publish_many("c", [])
    assert roomy._items == deque()
