"""In-process pub/sub for live streams.

Publishers call ``publish`` after their transaction commits (still under the write lock, so
frames reach subscribers in commit order). Each subscriber owns a bounded queue; one that falls
too far behind is dropped rather than slowing everyone down, and its client resumes from the last
id it received.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable
from typing import Any


class Subscription:
    def __init__(self, broker: Broker, channel: Hashable, maxsize: int) -> None:
        self.broker = broker
        self.channel = channel
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        #: Set when the subscriber overflowed or the server is stopping: end the stream.
        self.closed = asyncio.Event()

    async def get(self, wait: float) -> Any | None:
        """The next item; None after ``wait`` seconds without one or once closed."""
        if self.closed.is_set():
            return None
        if not self.queue.empty():
            return self.queue.get_nowait()
        getter = asyncio.ensure_future(self.queue.get())
        closer = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, closer}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closer.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        return None

    def close(self) -> None:
        self.broker.unsubscribe(self)


class Broker:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[Hashable, set[Subscription]] = defaultdict(set)

    def subscribe(self, channel: Hashable) -> Subscription:
        subscription = Subscription(self, channel, self.queue_size)
        self._subscribers[channel].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed.set()
        subscribers = self._subscribers.get(subscription.channel)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.channel]

    def publish(self, channel: Hashable, item: Any) -> None:
        for subscription in list(self._subscribers.get(channel, ())):
            try:
                subscription.queue.put_nowait(item)
            except asyncio.QueueFull:
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
