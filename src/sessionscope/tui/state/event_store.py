"""Windowed access to a session's events: the timeline's rows without holding every event.

A session may hold millions of events, so the store knows the row count from the session
(``last_sequence``) and keeps only a bounded LRU of fixed-size pages fetched on demand with
``Backend.list_events(after=..., limit=...)``. Live events are appended to the tail.

Two shapes:

* ``SequenceStore`` - the unfiltered timeline. Row ``r`` is the event with sequence ``r + 1``, so
  any row (the start, the end, the middle) maps to one page without scanning. Hidden events are
  always fetched and the view decides how to show them; a sequence with no event (deleted) is a gap.
* ``FilteredStore`` - a server-side type filter. Matches have no known count, so pages are
  discovered forwards: the store keeps the ``after`` cursor of every discovered page (one int per
  page) and re-fetches evicted pages from it.
"""

from __future__ import annotations

import abc
import asyncio
from bisect import bisect_left
from collections.abc import Iterable
from enum import Enum
from typing import Any

from sessionscope.backends import Backend
from sessionscope.models import Event
from sessionscope.tui.state.lru import LRU

DEFAULT_PAGE_SIZE = 200
#: 16 pages of 200 events: 3,200 events (a hundred screens), a few MiB whatever the session's
#: size. Each cached event is a handful of objects the cyclic collector walks on every full
#: collection: with 64 pages, following 1,000 events/s, the full collections (every ~1.3 s)
#: grew to ~120-145 ms pauses as the pages filled, the live timeline's p99; with 16, ~40-60 ms.
#: A page scrolled out of the cache is fetched again (~20 ms).
DEFAULT_MAX_PAGES = 16


class RowState(Enum):
    LOADING = "loading"
    #: No event carries this sequence (deleted, or skipped by the server).
    GAP = "gap"


class _SequencePage:
    __slots__ = ("events", "loaded_upto")

    def __init__(self, size: int) -> None:
        self.events: list[Event | None] = [None] * size
        #: Every sequence up to this one that has no event in ``events`` does not exist.
        self.loaded_upto = 0


class EventStore(abc.ABC):
    #: The cached pages, most recently used last (each subclass has its own page shape).
    _pages: LRU[int, Any]

    def __init__(
        self,
        backend: Backend,
        session_id: str,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.backend = backend
        self.session_id = session_id
        self.page_size = page_size
        self.max_pages = max_pages
        #: Bumped whenever rows change meaning, so rendered-line caches keyed on it go stale.
        self.generation = 0
        #: The event types of every page fetched (the type picker lists only types the session had).
        self.types_seen: set[str] = set()

    @property
    @abc.abstractmethod
    def row_count(self) -> int: ...

    @abc.abstractmethod
    def lookup(self, row: int) -> Event | RowState: ...

    @abc.abstractmethod
    async def load_page(self, page: int) -> None: ...

    @abc.abstractmethod
    def append(self, events: Iterable[Event]) -> int:
        """Add live events at the tail; returns how many rows were added."""

    @abc.abstractmethod
    def apply_visibility(self, sequence: int, event_id: str, hidden: bool | None) -> bool:
        """Reflect a hide (``True``), unhide (``False``) or delete (``None``) of an event in the
        cached pages only (never fetches); returns whether a cached row changed."""

    def page_of(self, row: int) -> int:
        return row // self.page_size

    def cached_pages(self) -> int:
        return len(self._pages)

    def wants_more(self) -> bool:
        """Whether rows beyond ``row_count`` may exist and must be discovered by loading."""
        return False

    def page_loaded(self, page: int) -> bool:
        """Whether every row of ``page`` that exists is known (no need to fetch it)."""
        return self._pages.get(page) is not None

    def prefetch_pages(self) -> list[int]:
        """Pages worth fetching once the view is painted (the ends the operator jumps to)."""
        return []

    def frontier_page(self) -> int:
        return self.page_of(self.row_count)

    async def ensure(self, row: int) -> Event | RowState:
        """The row's event, loading its page if needed (for scans such as text search)."""
        found = self.lookup(row)
        if found is RowState.LOADING:
            await self.load_page(self.page_of(row))
            found = self.lookup(row)
        return found


class SequenceStore(EventStore):
    def __init__(
        self,
        backend: Backend,
        session_id: str,
        last_sequence: int,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        super().__init__(backend, session_id, page_size=page_size, max_pages=max_pages)
        self._count = max(0, last_sequence)
        self._pages: LRU[int, _SequencePage] = LRU(max_pages)
        #: Fetches in flight, so the view and other readers (the rate seed) share one request.
        self._loading: dict[int, asyncio.Future[None]] = {}

    @property
    def row_count(self) -> int:
        return self._count

    @property
    def last_sequence(self) -> int:
        return self._count

    def lookup(self, row: int) -> Event | RowState:
        page = self._pages.get(row // self.page_size)
        if page is None:
            return RowState.LOADING
        event = page.events[row % self.page_size]
        if event is not None:
            return event
        return RowState.GAP if page.loaded_upto >= row + 1 else RowState.LOADING

    def _page(self, index: int) -> _SequencePage:
        page = self._pages.get(index)
        if page is None:
            page = _SequencePage(self.page_size)
            self._pages[index] = page
        return page

    def prefetch_pages(self) -> list[int]:
        return [0, self.page_of(self._count - 1)] if self._count else []

    def page_loaded(self, page: int) -> bool:
        found = self._pages.get(page)
        end = min(self._count, (page + 1) * self.page_size)
        return found is not None and found.loaded_upto >= end

    async def load_page(self, page: int) -> None:
        # Shielded: one reader giving up (its worker cancelled) must not cancel the others'.
        await asyncio.shield(self.start_loading(page))

    def start_loading(self, page: int) -> asyncio.Future[None]:
        """Send the page's request now (if it is not already on its way); ``load_page`` of the
        same page later waits for this one. For a screen that knows which page it will show
        before its widgets exist."""
        pending = self._loading.get(page)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch_page(page))
            self._loading[page] = pending
            pending.add_done_callback(lambda done: self._fetch_done(page, done))
        return pending

    def tail_page(self) -> int | None:
        """The page that holds the newest row (``None`` when there are no rows)."""
        return self.page_of(self._count - 1) if self._count else None

    def _fetch_done(self, page: int, done: asyncio.Future[None]) -> None:
        if self._loading.get(page) is done:
            del self._loading[page]
        if not done.cancelled():
            done.exception()  # retrieved here, so a fetch nobody awaits any more logs nothing

    async def tail_events(self, count: int) -> list[Event]:
        """The newest ``count`` events (fewer where sequences have no event)."""
        first = max(0, self._count - count)
        if first >= self._count:
            return []
        pages = range(self.page_of(first), self.page_of(self._count - 1) + 1)
        # A page live events started is cached but not loaded: its older rows are fetched too.
        await asyncio.gather(
            *(self.load_page(page) for page in pages if not self.page_loaded(page))
        )
        found = (self.lookup(row) for row in range(first, self._count))
        return [event for event in found if isinstance(event, Event)]

    async def _fetch_page(self, page: int) -> None:
        start = page * self.page_size
        end = start + self.page_size
        known_count = self._count
        result = await self.backend.list_events(
            self.session_id, after=start, limit=self.page_size, include_hidden=True
        )
        target = self._page(page)
        self.types_seen.update(event.type for event in result.data)
        highest = 0
        for event in result.data:
            highest = max(highest, event.sequence)
            if start < event.sequence <= end:
                target.events[event.sequence - start - 1] = event
        covered = min(end, max(known_count, highest))
        if len(result.data) >= self.page_size and highest < end:
            # The server capped the page below our size: only what it returned is known.
            covered = highest
        target.loaded_upto = max(target.loaded_upto, covered)
        self._count = max(self._count, highest)

    def append(self, events: Iterable[Event]) -> int:
        before = self._count
        for event in events:
            sequence = event.sequence
            if sequence <= 0:
                continue
            index, slot = divmod(sequence - 1, self.page_size)
            page = self._page(index)
            page.events[slot] = event
            if page.loaded_upto >= sequence - 1 or slot == 0:
                page.loaded_upto = max(page.loaded_upto, sequence)
            if sequence > self._count:
                self._count = sequence
        return self._count - before

    def apply_visibility(self, sequence: int, event_id: str, hidden: bool | None) -> bool:
        if sequence <= 0:
            return False
        index, slot = divmod(sequence - 1, self.page_size)
        page = self._pages.peek(index)
        event = page.events[slot] if page is not None else None
        if page is None or event is None or (event_id and event.id != event_id):
            return False
        if hidden is None:
            # The page already covers this sequence, so an empty slot now reads as a gap.
            page.events[slot] = None
        elif event.hidden == hidden:
            return False
        else:
            page.events[slot] = event.model_copy(
                update={"hidden": hidden, "hide_reason": event.hide_reason if hidden else None}
            )
        self.generation += 1
        return True


class FilteredStore(EventStore):
    def __init__(
        self,
        backend: Backend,
        session_id: str,
        *,
        types: list[str] | None = None,
        include_hidden: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        super().__init__(backend, session_id, page_size=page_size, max_pages=max_pages)
        self.types = list(types) if types else None
        self.include_hidden = include_hidden
        #: ``after`` cursor of each discovered page; page j holds matches after boundaries[j].
        self._boundaries: list[int] = [0]
        self._count = 0
        self._exhausted = False
        self._pages: LRU[int, list[Event]] = LRU(max_pages)

    @property
    def row_count(self) -> int:
        return self._count

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def wants_more(self) -> bool:
        return not self._exhausted

    def accepts(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return self.include_hidden or not event.hidden

    def lookup(self, row: int) -> Event | RowState:
        index, slot = divmod(row, self.page_size)
        page = self._pages.get(index)
        if page is None or slot >= len(page):
            return RowState.LOADING
        return page[slot]

    async def load_page(self, page: int) -> None:
        if page >= len(self._boundaries):
            return
        result = await self.backend.list_events(
            self.session_id,
            after=self._boundaries[page],
            limit=self.page_size,
            types=self.types,
            include_hidden=self.include_hidden,
        )
        # A backend that ignores the filter must not corrupt the view.
        events = [event for event in result.data if self.accepts(event)][: self.page_size]
        self.types_seen.update(event.type for event in events)
        self._pages[page] = events
        if page == len(self._boundaries) - 1 and not self._exhausted:
            if len(result.data) >= self.page_size and result.next_cursor and events:
                self._boundaries.append(result.data[-1].sequence)
                self._count = (page + 1) * self.page_size
            elif len(result.data) >= self.page_size and result.next_cursor:
                # Every returned event was rejected locally: move on without adding rows.
                self._boundaries[page] = result.data[-1].sequence
            else:
                self._exhausted = True
                self._count = page * self.page_size + len(events)

    def append(self, events: Iterable[Event]) -> int:
        if not self._exhausted:
            # Not yet discovered that far: the live events will be fetched with the rest.
            return 0
        before = self._count
        for event in events:
            if not self.accepts(event) or event.sequence <= self._newest_sequence():
                continue  # filtered out, or already listed (a page read after it was sent)
            index, slot = divmod(self._count, self.page_size)
            if slot == 0 and index > 0:
                previous = self._pages.get(index - 1)
                last = previous[-1].sequence if previous else event.sequence - 1
                if index >= len(self._boundaries):
                    self._boundaries.append(last)
            page = self._pages.get(index)
            if page is None:
                if slot:
                    # The tail page was evicted: rediscover it from its cursor instead.
                    self._exhausted = False
                    del self._boundaries[index + 1 :]
                    self._count = index * self.page_size
                    self.generation += 1
                    return self._count - before
                page = []
                self._pages[index] = page
            page.append(event)
            self._count += 1
        return self._count - before

    def _newest_sequence(self) -> int:
        if self._count == 0:
            return 0
        page = self._pages.peek((self._count - 1) // self.page_size)
        return page[-1].sequence if page else 0

    def apply_visibility(self, sequence: int, event_id: str, hidden: bool | None) -> bool:
        # Page j holds matches after boundaries[j] up to boundaries[j + 1]: one page can hold it.
        index = bisect_left(self._boundaries, sequence) - 1
        page = self._pages.peek(index) if index >= 0 else None
        if not page:
            return False
        slot = bisect_left(page, sequence, key=lambda event: event.sequence)
        if slot >= len(page):
            return False
        event = page[slot]
        if event.sequence != sequence or (event_id and event.id != event_id):
            return False
        if hidden is None:
            # Removing the row would shift every later page's cursor; show it as gone.
            update = {"hidden": True, "hide_reason": "deleted"}
        elif event.hidden == hidden:
            return False
        else:
            reason = event.hide_reason if hidden else None
            update = {"hidden": hidden, "hide_reason": reason}
        page[slot] = event.model_copy(update=update)
        self.generation += 1
        return True
