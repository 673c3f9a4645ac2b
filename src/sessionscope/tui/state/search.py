"""Timeline text search: every matching row of one store, so `n`/`N` wrap and a counter shows
where the cursor is among the matches ("3/17").

The scan walks the store once per term (fetching the pages the window does not hold) and then
only the rows appended since, so a live session's new matches join without a rescan.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from sessionscope.models import Event
from sessionscope.tui.event_summary import matches
from sessionscope.tui.state.event_store import EventStore


@dataclass(frozen=True)
class Hit:
    row: int
    #: 0-based position among the matches.
    index: int
    total: int
    #: The search went past the last (or before the first) match and started again.
    wrapped: bool

    @property
    def counter(self) -> str:
        return f"{self.index + 1}/{self.total}"


class SearchMatches:
    def __init__(self, store: EventStore, needle: str) -> None:
        self.store = store
        self.needle = needle
        self.rows: list[int] = []
        self.scanned = 0

    def is_for(self, store: EventStore, needle: str) -> bool:
        return self.store is store and self.needle == needle

    async def scan(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Visit the rows not yet scanned (all of them the first time)."""
        store = self.store
        while self.scanned < store.row_count or store.wants_more():
            row = self.scanned
            if row >= store.row_count:
                await store.load_page(store.frontier_page())
                if row >= store.row_count:
                    break
            found = await store.ensure(row)
            if isinstance(found, Event) and matches(found, self.needle):
                self.rows.append(row)
            self.scanned += 1
            if progress is not None and self.scanned % store.page_size == 0:
                progress(self.scanned, store.row_count)

    def next_hit(self, from_row: int, *, forward: bool) -> Hit | None:
        """The first match at or after ``from_row`` (forward) or at or before it, wrapping."""
        rows = self.rows
        if not rows:
            return None
        if forward:
            index = bisect_left(rows, from_row)
            wrapped = index == len(rows)
            index = 0 if wrapped else index
        else:
            index = bisect_right(rows, from_row) - 1
            wrapped = index < 0
            index = len(rows) - 1 if wrapped else index
        return Hit(rows[index], index, len(rows), wrapped)

    def hit_at(self, row: int) -> Hit | None:
        index = bisect_left(self.rows, row)
        if index < len(self.rows) and self.rows[index] == row:
            return Hit(row, index, len(self.rows), False)
        return None
