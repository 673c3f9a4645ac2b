"""One coalescer for the console's live paths (the organisation stream, a session's events).

A burst must become one repaint, not one per item. With ``leading`` (a session's events) the
first item after a quiet spell shows at once: it is applied on the next turn of the event loop (so
the rest of one network read joins it), later ones at most ``hz`` times a second. Without it (the
organisation stream, whose changes come in bursts that each repaint the whole sessions list) every
batch waits one interval for the rest of its burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from textual.message_pump import MessagePump

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(
        self,
        owner: MessagePump,
        apply: Callable[[list[T]], object],
        *,
        hz: float,
        name: str,
        leading: bool = True,
    ) -> None:
        self._owner = owner
        self._apply = apply
        self._interval = 1 / hz
        self._name = name
        self._items: list[T] = []
        self._scheduled = False
        self._last = 0.0
        self._leading = leading

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._scheduled:
            return
        self._scheduled = True
        if self._leading:
            delay = self._last + self._interval - time.monotonic()
        else:
            delay = self._interval
        if delay <= 0:
            self._owner.call_later(self.flush)
        else:
            self._owner.set_timer(delay, self.flush, name=self._name)

    def flush(self) -> None:
        """Apply what has gathered, now (the scheduled call does this)."""
        self._scheduled = False
        self._last = time.monotonic()
        items, self._items = self._items, []
        if not items or not self._owner.is_running:
            # Shutting down: Textual removes widgets before it stops timers, so a late flush
            # would reach widgets that are already gone. What arrives then is dropped.
            return
        self._apply(items)
