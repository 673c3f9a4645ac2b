"""A virtualised sessions table on Textual's Line API.

Why not ``DataTable``: it costs about 1 s per 10,000 rows to load and is O(n) per removal, and a
platform can hold 100,000 sessions. Here only the rows on screen are rendered, rendered lines are
kept in a small LRU, and sessions are fetched page by page as the operator scrolls.

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
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment as RichSegment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from sessionscope.backends import Backend, BackendError, Capability, SessionQuery
from sessionscope.models import Page, Session, SessionStatus
from sessionscope.tui import clock
from sessionscope.tui.safe import one_line, plain_line
from sessionscope.tui.widgets.scrolling import (
    LineFinish,
    crop_columns,
    finish_line,
    plain_box,
    resize_scrollbar_only,
    strip_vertical_scrollbar,
)

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


def _activity(session: Session) -> datetime:
    return session.last_active_at or session.updated_at


_SORT_KEYS: dict[SortOrder, Callable[[Session], tuple[object, ...]]] = {
    SortOrder.LAST_ACTIVITY: lambda s: (_activity(s), s.id),
    SortOrder.PENDING: lambda s: (s.pending_action_count, _activity(s), s.id),
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


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    seconds = int(((now or clock.now()) - moment).total_seconds())
    if seconds < 0:
        seconds = 0
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    if seconds < 86400 * 99:
        return f"{seconds // 86400}d"
    return f"{seconds // (86400 * 7)}w"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # 0: takes the remaining width
    justify: str = "left"


COLUMNS: tuple[Column, ...] = (
    Column("status", "STATUS", 11),
    Column("title", "TITLE", 0),
    Column("agent", "AGENT", 18),
    Column("age", "AGE", 5, "right"),
    Column("activity", "ACTIVE", 6, "right"),
    Column("events", "EVENTS", 7, "right"),
    Column("pending", "PENDING", 7, "right"),
)
_GAP = 1
MIN_TITLE = 12

STATUS_GLYPH: dict[SessionStatus, str] = {
    SessionStatus.CREATED: "○",
    SessionStatus.ACTIVE: "●",
    SessionStatus.IDLE: "◌",
    SessionStatus.PAUSED: "‖",
    SessionStatus.WAITING: "◆",
    SessionStatus.COMPLETED: "✓",
    SessionStatus.FAILED: "✗",
    SessionStatus.CLOSED: "■",
}


def column_widths(width: int) -> list[int]:
    fixed = sum(c.width for c in COLUMNS) + _GAP * (len(COLUMNS) - 1) + 2
    return [c.width if c.width else max(MIN_TITLE, width - fixed) for c in COLUMNS]


#: Drawing ahead waits this long after a frame: started at once, it held the interpreter lock
#: while Textual's writer thread waited for it to send that frame (up to the 5 ms switch
#: interval).
PRERENDER_DELAY = 0.01


class SessionTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Virtualised sessions list. Post ``SessionTable.Selected`` on enter."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "session-table--header",
        "session-table--cursor",
        "session-table--loading",
        "session-table--dim",
        "session-table--pending",
        *(f"session-table--status-{status.value}" for status in SessionStatus),
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", id="sessions.up", show=False, tooltip="Previous row"),
        Binding("down,j", "cursor(1)", "Down", id="sessions.down", show=False, tooltip="Next row"),
        Binding(
            "pageup",
            "page(-1)",
            "Page up",
            id="sessions.page_up",
            show=False,
            tooltip="One page up",
        ),
        Binding(
            "pagedown",
            "page(1)",
            "Page down",
            id="sessions.page_down",
            show=False,
            tooltip="One page down",
        ),
        Binding("home,g", "first", "First", id="sessions.first", show=False, tooltip="First row"),
        Binding(
            "end,G",
            "last",
            "Last",
            id="sessions.last",
            show=False,
            tooltip="Last row (the oldest session)",
        ),
        Binding("enter", "select", "Open", id="sessions.open", tooltip="Open the session"),
    ]

    class Selected(Message):
        def __init__(self, session: Session) -> None:
            super().__init__()
            self.session = session

    class LoadFailed(Message):
        def __init__(self, error: BackendError) -> None:
            super().__init__()
            self.error = error

    class Loaded(Message):
        """A page arrived (the screen updates its counts)."""

    def __init__(
        self,
        backend: Backend,
        *,
        page_size: int = 100,
        max_loaded: int = 40,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.backend = backend
        self.pages = SessionPages(
            page_size=page_size,
            max_loaded=max_loaded,
            oldest_first=backend.supports(Capability.OLDEST_FIRST),
        )
        self.query_spec = SessionQuery()
        self.sort = SortOrder.NEWEST
        self.cursor_row = 0
        self.load_error: BackendError | None = None
        self._restore_id: str | None = None
        self._line_cache: OrderedDict[tuple[object, ...], Strip] = OrderedDict()
        #: Four screens (the view, the one drawn ahead, the way back): each cached strip holds
        #: about eighteen objects the collector walks, and a full collection that lands
        #: between a key and its frame is what the slowest frames wait for.
        self._line_cache_size = 128
        #: Per frame (set by ``render_lines``): the base style and the clock, computed once
        #: instead of per row; and component colours, computed once per style update.
        self._frame_base: Style | None = None
        self._frame_now: datetime | None = None
        self._foregrounds: dict[str, Style] = {}
        #: The header line, kept while its width, sort and base style are unchanged, and a
        #: blank line: the same strips every frame (see _render_plain_lines).
        self._header: tuple[tuple[object, ...], Strip] | None = None
        self._blank: tuple[tuple[int, Style], Strip] | None = None
        self._line_finish = LineFinish()
        self._loading = False
        #: Until the operator moves the cursor it stays on the first row, where new sessions
        #: arrive; afterwards it follows its session.
        self.cursor_moved = False
        #: The direction the view last moved (1 down, -1 up): pages are fetched ahead that way.
        self._travel = 1
        self._prerender_pending = False

    # -- public ----------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return self.pages.row_count

    @property
    def cursor_session(self) -> Session | None:
        return self.pages.get(self.cursor_row)

    def reload(
        self,
        query: SessionQuery | None = None,
        sort: SortOrder | None = None,
        *,
        keep: str | None = None,
    ) -> None:
        """Start over (new filter, new sort, or refresh), keeping the cursor on ``keep`` if it
        comes back in the first pages."""
        current = self.cursor_session
        self._restore_id = keep or (current.id if current else None)
        if query is not None:
            self.query_spec = query
        if sort is not None:
            self.sort = sort
        self.load_error = None
        self.pages.reset(None if self.sort is SortOrder.NEWEST else self.sort)
        self._line_cache.clear()
        self._update_virtual_size()
        self.refresh()
        self.ensure_loaded()

    def set_cursor(self, row: int, *, scroll: bool = True) -> None:
        """Move the cursor for the operator (keys, clicks): from then on it follows its session
        instead of staying on the first row (see ``cursor_moved``)."""
        self.cursor_moved = True
        count = self.row_count
        row = max(0, min(row, count - 1)) if count else 0
        if row == self.cursor_row:
            if scroll:
                self._scroll_cursor_visible()
            return
        old = self.cursor_row
        self._travel = 1 if row > old else -1
        self.cursor_row = row
        self._refresh_row(old)
        self._refresh_row(row)
        if scroll:
            self._scroll_cursor_visible()

    def move_with_shift(self, anchor_id: str | None, old_row: int) -> None:
        """After live changes: keep the cursor on ``anchor_id`` and, unless the view is at the
        top (where the operator watches new sessions arrive), keep the rows still on screen."""
        self._update_virtual_size()
        new_row = self.pages.index_of(anchor_id) if anchor_id else None
        if not self.cursor_moved and old_row == 0:
            new_row = 0
        if new_row is None:
            self.cursor_row = max(0, min(old_row, self.row_count - 1))
        else:
            shift = new_row - old_row
            self.cursor_row = new_row
            if shift and self.scroll_y > 0:
                self._scroll_to_row(self.scroll_y + shift)
        self._line_cache.clear()
        self.refresh()

    # -- sizing and scrolling --------------------------------------------------------------------
    @property
    def vertical_scrollbar(self) -> ScrollBar:
        return strip_vertical_scrollbar(self)

    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _update_virtual_size(self) -> None:
        size = Size(self.scrollable_content_region.width, self.row_count + 1)
        old = self.virtual_size
        if size == old:
            return
        if (
            self.is_mounted
            and size.width == old.width
            and self.show_vertical_scrollbar
            and size.height > self.size.height
        ):
            # Rows added or removed (live changes, a page that corrects the total) and the view
            # still scrolls.
            resize_scrollbar_only(self, size)
            if self.scroll_y > self.max_scroll_y:
                self._scroll_to_row(self.max_scroll_y)
            return
        self.virtual_size = size

    def on_resize(self, event: events.Resize) -> None:
        self._line_cache_size = max(128, 4 * self._body_height)
        self._update_virtual_size()
        self._line_cache.clear()
        self.ensure_loaded()

    def _scroll_to_row(self, top: float) -> None:
        # Through the reactive (not ``set_scroll``, which skips the watchers): the whole view
        # must repaint and the scrollbar follow, and a new view may need pages.
        self.scroll_to(y=top, animate=False, immediate=True)

    def _scroll_cursor_visible(self) -> None:
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self._scroll_to_row(self.cursor_row)
        elif self.cursor_row >= top + self._body_height:
            self._scroll_to_row(self.cursor_row - self._body_height + 1)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value != old_value:
            self._travel = 1 if new_value > old_value else -1
        self.ensure_loaded()
        self._prerender_later()

    def _prerender_later(self) -> None:
        if not self._prerender_pending and self.is_mounted:
            self._prerender_pending = True
            self.call_after_refresh(self.set_timer, PRERENDER_DELAY, self._prerender_ahead)

    def _prerender_ahead(self) -> None:
        """Once a frame is out, draw the loaded rows of the next screen in the direction of
        travel, and take each through what the frame that shows it would do (width, line
        filters, the cut at the scrollbar, escape codes: Textual caches each on the strip): a
        page down then finds its rows finished, and its frame only looks them up."""
        self._prerender_pending = False
        if not self.is_mounted or self.pages.local_sort is not None:
            return
        width = self.scrollable_content_region.width
        full = self.content_region.width
        # The compositor cuts every line at the edges of the widgets on it: here the
        # scrollbar's. (A wrong guess only costs the cut: the frame makes its own.)
        cuts = [width, full] if width < full else [full]
        inner, background, filters = self._line_finish(self)
        console = self.app.console
        base = self.rich_style
        now = clock.now()
        height = self._body_height
        top = round(self.scroll_y)
        start = top + height if self._travel >= 0 else max(0, top - height)
        for row in range(start, min(start + height, self.row_count)):
            session = self.pages.get(row)
            if session is None:
                continue
            strip = self._row_strip(session, row == self.cursor_row, width, base, now)
            strip = finish_line(strip, full, inner, background, filters)
            for piece in strip.divide(cuts):
                piece.render(console)

    def _refresh_row(self, row: int) -> None:
        y = row - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    # -- actions ---------------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        self.set_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.set_cursor(self.cursor_row + direction * self._body_height)

    def action_first(self) -> None:
        self.set_cursor(0)

    def action_last(self) -> None:
        self.set_cursor(self.row_count - 1)

    def action_select(self) -> None:
        session = self.cursor_session
        if session is not None:
            self.post_message(self.Selected(session))

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        row = round(self.scroll_y) + event.y - 1
        if row >= self.row_count:
            return
        if row == self.cursor_row and event.chain >= 2:
            self.action_select()
        self.set_cursor(row, scroll=False)

    # -- loading ---------------------------------------------------------------------------------
    def _next_fetch(self) -> FetchRequest | None:
        """What the rows on screen wait for first, then what lies ahead: a screen behind and
        two screens (at least half a page) ahead in the direction of travel, so paging on
        rarely reaches rows still on their way."""
        top = round(self.scroll_y)
        height = self._body_height
        low = min(top, self.cursor_row)
        high = max(top + height, self.cursor_row)
        ahead = max(2 * height, self.pages.page_size // 2)
        if self._travel >= 0:
            wide = (max(0, low - height), high + ahead)
        else:
            wide = (max(0, low - ahead), high + height)
        return self.pages.needed(low, high, keep=wide) or self.pages.needed(*wide)

    def ensure_loaded(self) -> None:
        if self._loading or self.load_error is not None or not self.is_mounted:
            return
        if self._next_fetch() is None:
            return
        self._loading = True
        self._load_pages()

    @work(exclusive=True, exit_on_error=False, group="session-pages")
    async def _load_pages(self) -> None:
        try:
            while True:
                request = self._next_fetch()
                if request is None:
                    return
                query = (
                    replace(self.query_spec, order="oldest") if request.tail else self.query_spec
                )
                try:
                    page = await self.backend.list_sessions(
                        query, cursor=request.cursor, limit=request.limit
                    )
                except BackendError as error:
                    self.load_error = error
                    self.post_message(self.LoadFailed(error))
                    return
                if self.pages.local_sort is not None and page.total and request.segment == 0:
                    if page.total > LOCAL_SORT_LIMIT:
                        self.load_error = BackendError(
                            f"sorting by {self.sort.value} needs every matching session loaded "
                            f"and there are {page.total:,}; narrow the list with / or s first"
                        )
                        self.post_message(self.LoadFailed(self.load_error))
                        return
                anchor = self.cursor_session
                if not self.pages.apply(request, page):
                    continue
                self._after_page(anchor)
        finally:
            self._loading = False

    def _after_page(self, anchor: Session | None) -> None:
        self._update_virtual_size()
        if anchor is not None and self._restore_id is None:
            # Rows can move when a page arrives (the walks met and the first page's total was
            # off, a refetched page lost deleted rows): the cursor and the view move with them.
            index = self.pages.index_of(anchor.id)
            if index is not None and index != self.cursor_row:
                shift = index - self.cursor_row
                self.cursor_row = index
                self._scroll_to_row(self.scroll_y + shift)
        if self._restore_id is not None:
            index = self.pages.index_of(self._restore_id)
            if index is not None:
                self._restore_id = None
                self.cursor_row = index
                self._scroll_cursor_visible()
            elif self.pages.known_rows > self.cursor_row:
                self._restore_id = None
        if self.row_count and self.cursor_row >= self.row_count:
            self.cursor_row = self.row_count - 1
        # No line-cache clear: a row's key is its content, so rows already drawn stay valid.
        self.refresh()
        self.post_message(self.Loaded())
        self._prerender_later()

    # -- rendering -------------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()
        self._foregrounds.clear()
        self._header = self._blank = None

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_base = self.rich_style
        self._frame_now = clock.now()
        try:
            if not plain_box(self):
                return super().render_lines(crop)
            return self._render_plain_lines(crop)
        finally:
            self._frame_base = self._frame_now = None

    def _render_plain_lines(self, crop: Region) -> list[Strip]:
        """The lines of ``crop`` as Textual's styles cache would make them, but from the same
        strip objects every frame. Textual caches what it derives from a strip on the strip
        (the width-adjusted and filtered strips, the pieces cut at the compositor's cuts, the
        escape codes), so a row drawn before is repainted from those caches; through the
        styles cache every repainted line was a new strip and went through all of it again."""
        width = self.content_region.width
        inner, background, filters = self._line_finish(self)
        strips = [
            finish_line(strip, width, inner, background, filters)
            for strip in self._content_lines(crop.y, crop.bottom)
        ]
        return crop_columns(strips, crop, width)

    def _content_lines(self, start: int, end: int) -> list[Strip]:
        """Content lines ``start..end-1`` (line 0 is the header), per-frame values read once."""
        width = self.scrollable_content_region.width
        base = self._frame_base if self._frame_base is not None else self.rich_style
        now = self._frame_now or clock.now()
        top = round(self.scroll_y)
        count = self.row_count
        cursor_row = self.cursor_row
        get = self.pages.get
        lines = []
        for y in range(start, end):
            row = top + y - 1
            if y == 0 or row >= count:
                lines.append(self._render_line(y, width, base))
                continue
            session = get(row)
            if session is None:
                lines.append(self._render_line(y, width, base))
            else:
                lines.append(self._row_strip(session, row == cursor_row, width, base, now))
        return lines

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._frame_base if self._frame_base is not None else self.rich_style
        return self._render_line(y, width, base)

    def _render_line(self, y: int, width: int, base: Style) -> Strip:
        if y == 0:
            return self._render_header(width, base)
        row = round(self.scroll_y) + y - 1
        if row >= self.row_count:
            if row == 0 and self.pages.started and not self.load_error:
                return self._message_line("No sessions match.", width, base)
            if self._blank is None or self._blank[0] != (width, base):
                self._blank = ((width, base), Strip.blank(width, base))
            return self._blank[1]
        session = self.pages.get(row)
        if session is None:
            self.call_later(self.ensure_loaded)
            style = self._foreground("session-table--loading")
            return self._message_line("loading…", width, base + style)
        return self._row_strip(session, row == self.cursor_row, width, base, self._frame_now)

    def _row_strip(
        self, session: Session, cursor: bool, width: int, base: Style, now: datetime | None
    ) -> Strip:
        now = now or clock.now()
        age = format_age(session.created_at, now)
        active = format_age(_activity(session), now)
        key = (
            session.id,
            session.updated_at,
            session.status,
            width,
            age,
            active,
            cursor,
            session.event_count,
            session.pending_action_count,
            session.title,
        )
        strip = self._line_cache.get(key)
        if strip is None:
            strip = self._render_row(session, width, base, cursor, age, active)
            self._line_cache[key] = strip
            if len(self._line_cache) > self._line_cache_size:
                self._line_cache.popitem(last=False)
        else:
            self._line_cache.move_to_end(key)
        return strip

    def _message_line(self, message: str, width: int, style: Style) -> Strip:
        text = Text("  ", style=style, end="")
        text.append_text(plain_line(message, limit=max(1, width)))
        return self._strip(text, width, style)

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = list(text.render(self.app.console))
        return Strip(RichSegment.apply_style(segments, style), text.cell_len).crop_extend(
            0, width, style
        )

    def _render_header(self, width: int, base: Style) -> Strip:
        key = (width, self.sort, base)
        if self._header is None or self._header[0] != key:
            self._header = (key, self._build_header(width, base))
        return self._header[1]

    def _build_header(self, width: int, base: Style) -> Strip:
        style = base + self.get_component_rich_style("session-table--header")
        text = Text(" ", end="")
        for column, size in zip(COLUMNS, column_widths(width), strict=True):
            label = column.label
            if column.key == "title" and self.sort is not SortOrder.NEWEST:
                label = f"{label} (by {self.sort.value})"
            cell = Text(label[:size], end="")
            cell.align(column.justify, size)  # type: ignore[arg-type]
            text.append_text(cell)
            text.append(" " * _GAP)
        return self._strip(text, width, style)

    def _foreground(self, component: str) -> Style:
        """A component's colour and emphasis without its background: cells sit on the row's
        background. (A partial style would keep ``$text-muted``'s alpha unblended.)"""
        style = self._foregrounds.get(component)
        if style is None:
            full = self.get_component_rich_style(component)
            style = Style(color=full.color, bold=full.bold, italic=full.italic)
            self._foregrounds[component] = style
        return style

    def _render_row(
        self, session: Session, width: int, base: Style, cursor: bool, age: str, active: str
    ) -> Strip:
        row_style = base
        if cursor:
            # One colour pair across the cursor row, so it reads as a bar in both themes.
            row_style = base + self.get_component_rich_style("session-table--cursor")
            status_style = dim = pending_style = Style()
        else:
            status_style = self._foreground(f"session-table--status-{session.status.value}")
            dim = self._foreground("session-table--dim")
            pending_style = (
                self._foreground("session-table--pending") if session.pending_action_count else dim
            )
        widths = column_widths(width)
        glyph = STATUS_GLYPH.get(session.status, "?")
        pending = session.pending_action_count
        gap = " " * _GAP
        # Segments built directly (no Text per cell, no render pass): a page down draws a
        # screen of new rows in one frame, and Text's truncate/align/render was most of it.
        # Untrusted: agent-chosen title and id; sliced before neutralising so a 1 MB title costs
        # no more than a short one.
        title = one_line((session.title or session.id)[: widths[1] * 2], widths[1])
        agent = one_line((session.agent_id or "—")[:64], widths[2])
        # Runs of one style are one segment, as a Text's render would make them.
        segments = [
            RichSegment(" ", row_style),
            RichSegment(
                _fit(f"{glyph} {session.status.value}", widths[0]), row_style + status_style
            ),
            RichSegment(gap + _fit(title, widths[1]) + gap, row_style),
            RichSegment(_fit(agent, widths[2]), row_style + dim),
            RichSegment(
                gap
                + _fit(age, widths[3], right=True)
                + gap
                + _fit(active, widths[4], right=True)
                + gap,
                row_style,
            ),
            RichSegment(_fit(f"{session.event_count:,}", widths[5], right=True), row_style + dim),
            RichSegment(gap, row_style),
            RichSegment(
                _fit(f"{pending:,}" if pending else "·", widths[6], right=True),
                row_style + pending_style,
            ),
            RichSegment(gap, row_style),
        ]
        length = 1 + sum(widths) + _GAP * len(widths)
        strip = Strip(segments, length)
        return strip if length == width else strip.crop_extend(0, width, row_style)


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: cut with an ellipsis, or padded."""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    padding = " " * (width - length)
    return padding + text if right else text + padding


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
