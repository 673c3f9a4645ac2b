"""The sessions list's paging model: which pages of the server's listing are held, where a row
comes from, what to fetch next. Pure data, no Textual: the table (``widgets/session_table.py``)
draws it.

The server paginates with keyset cursors, so page *k* can only be reached through the cursors of
pages 0..k-1. ``SessionPages`` keeps every page it has walked as a *segment* (its cursor, its row
count and the next cursor) and keeps the rows of at most ``max_loaded`` segments; an evicted
segment is fetched again from its own cursor when it comes back into view. Where the backend can
list oldest first, the end of the list is walked from the oldest session up, so ``end`` costs one
request instead of a walk through every page.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sessionscope.backends import SessionQuery
from sessionscope.models import Page, Session

#: The reference server caps a sessions page at 200 rows.
MAX_PAGE = 200


class SortOrder(StrEnum):
    """``NEWEST`` is the server's own order and scales to any size; the others sort locally and
    therefore need every matching session loaded (see ``LOCAL_SORT_LIMIT``)."""

    NEWEST = "newest"
    LAST_ACTIVITY = "last activity"
    PENDING = "pending actions"

    @property
    def label(self) -> str:
        return {
            SortOrder.NEWEST: "newest first",
            SortOrder.LAST_ACTIVITY: "last activity first",
            SortOrder.PENDING: "most pending actions first",
        }[self]


#: Local sorts load every matching session; above this many they are refused with an explanation.
LOCAL_SORT_LIMIT = 5_000


def last_activity(session: Session) -> datetime:
    return session.last_active_at or session.updated_at


_SORT_KEYS: dict[SortOrder, Callable[[Session], tuple[object, ...]]] = {
    SortOrder.LAST_ACTIVITY: lambda s: (last_activity(s), s.id),
    SortOrder.PENDING: lambda s: (s.pending_action_count, last_activity(s), s.id),
}


#: A session's place in the server's listing order: creation time, ties broken by id.
Key = tuple[datetime, str]


def _key(session: Session) -> Key:
    return (session.created_at, session.id)


@dataclass
class Segment:
    #: The cursor that fetches this segment (``None`` for the first page).
    cursor: str | None
    count: int
    #: The cursor of the following segment; ``None`` when this is the last one.
    next_cursor: str | None
    #: ``None`` once evicted: the segment is known (count, cursors) but its rows are not held.
    items: list[Session] | None
    #: The key of its last row when first fetched: a refetch (``limit=count``) that returns
    #: rows past it (rows before it were deleted) must not repeat the next segment's rows.
    edge: Key | None = None


@dataclass(frozen=True)
class FetchRequest:
    generation: int
    #: Index of the segment to fill; ``== len(side)`` means "append the next page".
    segment: int
    cursor: str | None
    limit: int
    #: The rows the operator is looking at: their segments are not evicted by this fetch.
    keep: tuple[int, int] = (0, 0)
    #: A page of the tail (``order="oldest"``, walking up from the oldest session).
    tail: bool = False


@dataclass
class SessionPages:
    """The windowed page cache behind the table; pure data, no Textual.

    Rows come from two walks: the *head* pages newest first from the top and the *tail* (only
    with ``oldest_first``) pages oldest first from the bottom, so the end of the list is one
    request away. Between them lies a *gap* of rows neither walk has reached, sized by the
    first page's total; whichever walk is nearer extends into it when rows there are wanted.
    Every head row is newer than every tail row (each page is cut at the other walk's edge), so
    no row shows twice; when the walks meet (or one reaches its end) the gap is gone and the
    row count is exact.
    """

    page_size: int = 100
    max_loaded: int = 40
    segments: list[Segment] = field(default_factory=list)
    #: Oldest first: ``tail[0]`` holds the oldest sessions, the last rows of the list.
    tail: list[Segment] = field(default_factory=list)
    total: int | None = None
    generation: int = 0
    local_sort: SortOrder | None = None
    #: The backend can list oldest first (``Capability.OLDEST_FIRST``).
    oldest_first: bool = False
    #: The two walks met: the head and the tail hold every row between them.
    met: bool = False
    _head_edge: Key | None = None
    _tail_edge: Key | None = None
    _starts: list[int] | None = None
    _tail_starts: list[int] | None = None
    _positions: dict[str, int] | None = None
    _sorted: list[Session] | None = None
    #: Head segment ``i`` is ``i``; tail segment ``j`` is ``-1 - j``.
    _lru: OrderedDict[int, None] = field(default_factory=OrderedDict)

    def reset(self, local_sort: SortOrder | None = None) -> None:
        self.segments = []
        self.tail = []
        self.total = None
        self.met = False
        self._head_edge = self._tail_edge = None
        self.generation += 1
        self.local_sort = local_sort
        self._lru.clear()
        self._changed()

    def _changed(self) -> None:
        self._starts = None
        self._tail_starts = None
        self._positions = None
        self._sorted = None

    # -- shape -----------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return bool(self.segments)

    @property
    def complete(self) -> bool:
        return self.met or (bool(self.segments) and self.segments[-1].next_cursor is None)

    @staticmethod
    def _starts_of(segments: list[Segment]) -> list[int]:
        starts, offset = [], 0
        for segment in segments:
            starts.append(offset)
            offset += segment.count
        starts.append(offset)
        return starts

    def _segment_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = self._starts_of(self.segments)
        return self._starts

    def _tail_segment_starts(self) -> list[int]:
        """Offsets from the bottom: ``tail[j]`` holds the rows ``count - 1 - starts[j]`` up."""
        if self._tail_starts is None:
            self._tail_starts = self._starts_of(self.tail)
        return self._tail_starts

    @property
    def known_rows(self) -> int:
        """Rows the head walk has reached."""
        return self._segment_starts()[-1]

    @property
    def tail_rows(self) -> int:
        return self._tail_segment_starts()[-1]

    @property
    def row_count(self) -> int:
        if not self.segments:
            return 0
        if self.complete:
            return self.known_rows + self.tail_rows
        # Until the walks reach each other, the first page's total sizes the scrollbar; without
        # a total one "loading…" row below the known ones invites the next page. (With a tail
        # there is a total: a gap it says is empty is confirmed by one fetch, see ``needed``.)
        if self.tail:
            return max(self.known_rows + self.tail_rows, self.total or 0)
        return max(self.known_rows + 1, self.total or 0)

    @property
    def gap(self) -> tuple[int, int]:
        """The rows ``[start, end)`` neither walk has reached (empty once complete)."""
        if self.complete:
            return self.known_rows, self.known_rows
        return self.known_rows, self.row_count - self.tail_rows

    def _locate(self, index: int) -> tuple[bool, int, int] | None:
        """(in the tail, segment, offset in the segment's items) of the row at ``index``."""
        starts = self._segment_starts()
        if 0 <= index < starts[-1]:
            position = bisect_right(starts, index) - 1
            return False, position, index - starts[position]
        if not self.tail:
            return None
        from_bottom = self.row_count - 1 - index
        starts = self._tail_segment_starts()
        if from_bottom < 0 or from_bottom >= starts[-1] or index < 0:
            return None
        position = bisect_right(starts, from_bottom) - 1
        return True, position, from_bottom - starts[position]

    # -- reading ---------------------------------------------------------------------------------
    def _sorted_rows(self) -> list[Session] | None:
        if self.local_sort is None or not self.complete:
            return None
        if self._sorted is None:
            rows = list(self.loaded())
            rows.sort(key=_SORT_KEYS[self.local_sort], reverse=True)
            self._sorted = rows
        return self._sorted

    def get(self, index: int) -> Session | None:
        """The session at ``index``, or ``None`` while it is not loaded."""
        if self.local_sort is not None:
            rows = self._sorted_rows()
            return rows[index] if rows is not None and 0 <= index < len(rows) else None
        located = self._locate(index)
        if located is None:
            return None
        in_tail, position, offset = located
        items = (self.tail if in_tail else self.segments)[position].items
        if items is None:
            return None
        self._touch(-1 - position if in_tail else position)
        return items[offset] if offset < len(items) else None

    def index_of(self, session_id: str) -> int | None:
        if self._positions is None:
            positions: dict[str, int] = {}
            rows = self._sorted_rows() if self.local_sort is not None else None
            if rows is not None:
                positions = {session.id: index for index, session in enumerate(rows)}
            else:
                starts = self._segment_starts()
                for position, segment in enumerate(self.segments):
                    for offset, session in enumerate(segment.items or ()):
                        positions[session.id] = starts[position] + offset
                bottom = self.row_count - 1
                starts = self._tail_segment_starts()
                for position, segment in enumerate(self.tail):
                    for offset, session in enumerate(segment.items or ()):
                        positions[session.id] = bottom - starts[position] - offset
            self._positions = positions
        return self._positions.get(session_id)

    def loaded(self) -> Iterable[Session]:
        """Loaded rows in list order."""
        for segment in self.segments:
            yield from segment.items or ()
        for segment in reversed(self.tail):
            yield from reversed(segment.items or ())

    # -- fetching --------------------------------------------------------------------------------
    def needed(
        self, first: int, last: int, keep: tuple[int, int] | None = None
    ) -> FetchRequest | None:
        """The next fetch that rows ``first..last`` are waiting for, if any; the segments of
        ``keep`` (default: those rows) are not evicted by it."""
        if self.local_sort is not None:
            first, last = 0, 1 << 62  # local sorts need every row
        keep = keep or (first, last)
        if not self.segments:
            return FetchRequest(self.generation, 0, None, self.page_size, keep)
        # Evicted segments in range come back from their own cursors; the same limit as before
        # keeps the keyset boundary with the next segment.
        starts = self._segment_starts()
        for position in range(max(0, bisect_right(starts, max(first, 0)) - 1), len(self.segments)):
            if starts[position] > last:
                break
            segment = self.segments[position]
            if segment.items is None:
                return FetchRequest(
                    self.generation, position, segment.cursor, max(1, segment.count), keep
                )
        if self.tail:
            bottom = self.row_count - 1
            starts = self._tail_segment_starts()
            low = max(0, bisect_right(starts, max(bottom - last, 0)) - 1)
            for position in range(low, len(self.tail)):
                if starts[position] > bottom - first:
                    break
                segment = self.tail[position]
                if segment.items is None:
                    return FetchRequest(
                        self.generation,
                        position,
                        segment.cursor,
                        max(1, segment.count),
                        keep,
                        tail=True,
                    )
        start, end = self.gap
        if start >= end and not self.complete:
            # The total says the walks have met: one more head page (cut at the tail) confirms
            # it, or brings the rows the total missed (they joined the list later).
            return FetchRequest(
                self.generation,
                len(self.segments),
                self.segments[-1].next_cursor,
                self.page_size,
                keep,
            )
        if start >= end or last < start or first >= end:
            return None
        # Extend whichever walk is nearer to the wanted rows of the gap.
        from_head = max(first, start) - start
        from_tail = end - 1 - min(last, end - 1)
        use_tail = (
            self.oldest_first
            and self.local_sort is None
            and self.total is not None
            and from_tail < from_head
        )
        side = self.tail if use_tail else self.segments
        # Far from the walk's edge (a jump into the middle): walk with the largest pages.
        far = (from_tail if use_tail else from_head) > self.page_size
        return FetchRequest(
            self.generation,
            len(side),
            side[-1].next_cursor if side else None,
            MAX_PAGE if far else self.page_size,
            keep,
            tail=use_tail,
        )

    def apply(self, request: FetchRequest, page: Page[Session]) -> bool:
        """Store a fetched page; False when it is stale (the list was reset meanwhile)."""
        if request.generation != self.generation:
            return False
        side = self.tail if request.tail else self.segments
        rows = list(page.data)
        # Each walk stops where the other one is: every head row is newer than every tail row.
        if request.tail and self._head_edge is not None:
            edge = self._head_edge
            rows = [s for s in rows if _key(s) < edge]
        elif not request.tail and self._tail_edge is not None:
            edge = self._tail_edge
            rows = [s for s in rows if _key(s) > edge]
        reached_other = len(rows) < len(page.data)
        if request.segment == len(side):
            if not self.segments:
                self.total = page.total
            if not request.tail:
                known = self._known_ids()
                rows = [s for s in rows if s.id not in known]
            segment = Segment(request.cursor, len(rows), page.next_cursor, rows)
            if rows:
                segment.edge = _key(rows[-1])
                if request.tail:
                    self._tail_edge = segment.edge
                else:
                    self._head_edge = segment.edge
            side.append(segment)
            if reached_other or (self.tail and page.next_cursor is None):
                self.met = True
        elif request.segment < len(side):
            segment = side[request.segment]
            if segment.edge is not None:
                edge = segment.edge
                rows = [s for s in rows if (_key(s) <= edge if request.tail else _key(s) >= edge)]
            segment.items = rows
            if len(rows) != segment.count and self.total is not None:
                self.total += len(rows) - segment.count
            segment.count = len(rows)
        else:
            return False
        self._touch(-1 - request.segment if request.tail else request.segment)
        self._changed()
        self._evict(request.keep)
        return True

    def _known_ids(self) -> set[str]:
        # Only the newest segments can hold a row that a later page repeats (a live insert
        # shifted it); checking them is enough and keeps appends O(page).
        ids: set[str] = set()
        for segment in self.segments[-2:]:
            ids.update(s.id for s in segment.items or ())
        return ids

    def _touch(self, key: int) -> None:
        self._lru[key] = None
        self._lru.move_to_end(key)

    def _evict(self, keep: tuple[int, int] = (0, 0)) -> None:
        if self.local_sort is not None:
            return
        starts = self._segment_starts()
        tail_starts = self._tail_segment_starts()
        bottom = self.row_count - 1
        first, last = keep

        def evictable(key: int) -> bool:
            # The first segment takes live inserts and is never refetched; segments on screen
            # stay too, or two of them could evict each other forever.
            if key >= 0:
                if key >= len(self.segments):
                    return True
                if key == 0:
                    return False
                low, high = starts[key], starts[key + 1] - 1
            else:
                position = -1 - key
                if position >= len(self.tail):
                    return True
                low = bottom - tail_starts[position + 1] + 1
                high = bottom - tail_starts[position]
            return high < first or low > last

        while len(self._lru) > self.max_loaded:
            victim = next((key for key in self._lru if evictable(key)), None)
            if victim is None:
                break
            del self._lru[victim]
            if 0 <= victim < len(self.segments):
                self.segments[victim].items = None
            elif victim < 0 and -1 - victim < len(self.tail):
                self.tail[-1 - victim].items = None
        self._positions = None

    # -- live changes ----------------------------------------------------------------------------
    def insert_top(self, session: Session) -> bool:
        if not self.segments or self.segments[0].items is None:
            return False
        if self.index_of(session.id) is not None:
            return self.update(session)
        self.segments[0].items.insert(0, session)  # type: ignore[union-attr]
        self.segments[0].count += 1
        if self.total is not None:
            self.total += 1
        self._changed()
        return True

    def _all_segments(self) -> Iterable[Segment]:
        yield from self.segments
        yield from self.tail

    def update(self, session: Session) -> bool:
        if self.index_of(session.id) is None:
            return False
        for segment in self._all_segments():
            for offset, existing in enumerate(segment.items or ()):
                if existing.id == session.id:
                    segment.items[offset] = session  # type: ignore[index]
                    self._sorted = None if self.local_sort else self._sorted
                    if self.local_sort is not None:
                        self._positions = None
                    return True
        return False

    def remove(self, session_id: str) -> bool:
        if self.index_of(session_id) is None:
            return False
        for segment in self._all_segments():
            items = segment.items or []
            for offset, existing in enumerate(items):
                if existing.id == session_id:
                    del items[offset]
                    segment.count -= 1
                    if self.total is not None:
                        self.total = max(0, self.total - 1)
                    self._changed()
                    return True
        return False


def matches(query: SessionQuery, session: Session) -> bool:
    """Client-side approximation of the server's filters, for live inserts."""
    if query.status is not None and session.status is not query.status:
        return False
    if query.agent_id and session.agent_id != query.agent_id:
        return False
    if query.task_id and session.task_id != query.task_id:
        return False
    if query.tag and query.tag not in session.tags:
        return False
    if query.text:
        needle = query.text.casefold()
        # The reference server searches the title and the preview, case-insensitively.
        if not any(needle in (part or "").casefold() for part in (session.title, session.preview)):
            return False
    return True
