"""In-process pub/sub for live streams.

Publishers call ``publish`` after their transaction commits (still under the write lock, so
frames reach subscribers in commit order). Each subscriber owns a bounded queue; one that falls
too far behind is dropped rather than slowing everyone down, and its client resumes from the last
id it received.

A published item is shared by every subscriber's queue as it is: publishers hand over frames
already encoded (see ``streams.live_frame``), so an event costs one encoding however many
streams follow it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Hashable
from typing import Any, Protocol


class Follower(Protocol):
    """Feeds the broker from outside the process (``pg_fanout.PgFanout``): told when a channel
    gains its first live subscriber here and when one leaves."""

    async def follow(self, channel: Hashable) -> None: ...

    def release(self, channel: Hashable) -> None: ...


class Subscription:
    def __init__(self, broker: Broker, channel: Hashable, maxsize: int) -> None:
        self.broker = broker
        self.channel = channel
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        # One future the reader sleeps on; publish wakes it. Cheaper than asyncio.Queue.get()
        # raced against the close event, which cost two tasks per wait with many subscribers.
        self._waiter: asyncio.Future[None] | None = None
        #: Set when the subscriber overflowed or the server is stopping: end the stream.
        self.closed = asyncio.Event()
        #: Counted by the broker's follower (released once, when unsubscribed).
        self._followed = False

    def offer_many(self, items: list[Any]) -> bool:
        """Queue ``items`` in order with one wake-up; False when they do not all fit (the broker
        then drops this subscriber)."""
        if len(self._items) + len(items) > self.maxsize:
            return False
        self._items.extend(items)
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _mark_closed(self) -> None:
        self.closed.set()
        self._wake()

    async def _wait(self, wait: float) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(wait, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def get_batch(self, wait: float) -> list[Any]:
        """Everything queued, oldest first, waiting up to ``wait`` seconds for the first item;
        empty after the wait without one or once closed."""
        if self.closed.is_set():
            return []
        if not self._items:
            await self._wait(wait)
            if self.closed.is_set():
                return []
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        self.broker.unsubscribe(self)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Broker:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[Hashable, set[Subscription]] = defaultdict(set)
        #: Set when other processes write too (several replicas on PostgreSQL).
        self.follower: Follower | None = None

    def subscribe(self, channel: Hashable) -> Subscription:
        subscription = Subscription(self, channel, self.queue_size)
        self._subscribers[channel].add(subscription)
        return subscription

    async def subscribe_live(self, channel: Hashable) -> Subscription:
        """``subscribe``, and with a follower, once it follows the channel: a backlog read
        after this returns reaches every position the subscription's frames start after."""
        subscription = self.subscribe(channel)
        follower = self.follower
        if follower is not None:
            subscription._followed = True
            try:
                await follower.follow(channel)
            except BaseException:
                self.unsubscribe(subscription)
                raise
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription._mark_closed()
        subscribers = self._subscribers.get(subscription.channel)
        if subscribers is not None and subscription in subscribers:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.channel]
            if subscription._followed and self.follower is not None:
                self.follower.release(subscription.channel)

    def has_subscribers(self, channel: Hashable) -> bool:
        """Whether anything follows ``channel``: publishers skip encoding frames nobody reads."""
        return channel in self._subscribers

    def publish(self, channel: Hashable, item: Any) -> None:
        self.publish_many(channel, [item])

    def publish_many(self, channel: Hashable, items: list[Any]) -> None:
        """Queue ``items`` in order for every subscriber of ``channel``, together: one offer and
        one wake-up per subscriber for a group commit's events instead of one per event. A
        subscriber they do not all fit is dropped (its client resumes from its last id)."""
        subscribers = self._subscribers.get(channel)
        if not subscribers or not items:
            return
        overflowed = [
            subscription for subscription in subscribers if not subscription.offer_many(items)
        ]
        for subscription in overflowed:
            self.unsubscribe(subscription)

    def close_channel(self, channel: Hashable) -> None:
        """End every stream on ``channel`` (e.g. its session was deleted)."""
        for subscription in list(self._subscribers.get(channel, ())):
            self.unsubscribe(subscription)

    def close_all(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                self.unsubscribe(subscription)

    def subscriber_count(self, channel: Hashable) -> int:
        return len(self._subscribers.get(channel, ()))
