"""A virtualised sessions table on Textual's Line API.

Why not ``DataTable``: it costs about 1 s per 10,000 rows to load and is O(n) per removal, and a
platform can hold 100,000 sessions. Here only the rows on screen are rendered, rendered lines are
kept in a small LRU, and sessions are fetched page by page as the operator scrolls.

The server paginates with keyset cursors (newest first), so page *k* can only be reached through
the cursors of pages 0..k-1. ``SessionPages`` keeps every page it has walked as a *segment* (its
cursor, its row count and the next cursor) and keeps the rows of at most ``max_loaded`` segments;
an evicted segment is fetched again from its own cursor when it comes back into view.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from rich.segment import Segment as RichSegment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from sessionscope.backends import Backend, BackendError, SessionQuery
from sessionscope.models import Page, Session, SessionStatus
from sessionscope.tui import clock
from sessionscope.tui.safe import plain_line

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


@dataclass
class Segment:
    #: The cursor that fetches this segment (``None`` for the first page).
    cursor: str | None
    count: int
    #: The cursor of the following segment; ``None`` when this is the last one.
    next_cursor: str | None
    #: ``None`` once evicted: the segment is known (count, cursors) but its rows are not held.
    items: list[Session] | None


@dataclass(frozen=True)
class FetchRequest:
    generation: int
    #: Index of the segment to fill; ``== len(segments)`` means "append the next page".
    segment: int
    cursor: str | None
    limit: int
    #: The rows the operator is looking at: their segments are not evicted by this fetch.
    keep: tuple[int, int] = (0, 0)


@dataclass
class SessionPages:
    """The windowed page cache behind the table; pure data, no Textual."""

    page_size: int = 100
    max_loaded: int = 40
    segments: list[Segment] = field(default_factory=list)
    total: int | None = None
    generation: int = 0
    local_sort: SortOrder | None = None
    _starts: list[int] | None = None
    _positions: dict[str, int] | None = None
    _sorted: list[Session] | None = None
    _lru: OrderedDict[int, None] = field(default_factory=OrderedDict)

    def reset(self, local_sort: SortOrder | None = None) -> None:
        self.segments = []
        self.total = None
        self.generation += 1
        self.local_sort = local_sort
        self._lru.clear()
        self._changed()

    def _changed(self) -> None:
        self._starts = None
        self._positions = None
        self._sorted = None

    # -- shape -----------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return bool(self.segments)

    @property
    def complete(self) -> bool:
        return bool(self.segments) and self.segments[-1].next_cursor is None

    def _segment_starts(self) -> list[int]:
        if self._starts is None:
            starts, offset = [], 0
            for segment in self.segments:
                starts.append(offset)
                offset += segment.count
            starts.append(offset)
            self._starts = starts
        return self._starts

    @property
    def known_rows(self) -> int:
        return self._segment_starts()[-1]

    @property
    def row_count(self) -> int:
        if not self.segments:
            return 0
        if self.complete:
            return self.known_rows
        # Until the walk reaches the end, the first page's total sizes the scrollbar; without a
        # total one "loading…" row below the known ones invites the next page.
        return max(self.known_rows + 1, self.total or 0)

    def _locate(self, index: int) -> tuple[int, int] | None:
        starts = self._segment_starts()
        if index < 0 or index >= starts[-1]:
            return None
        position = bisect_right(starts, index) - 1
        return position, index - starts[position]

    # -- reading ---------------------------------------------------------------------------------
    def _sorted_rows(self) -> list[Session] | None:
        if self.local_sort is None or not self.complete:
            return None
        if self._sorted is None:
            rows = [s for segment in self.segments for s in (segment.items or [])]
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
        position, offset = located
        items = self.segments[position].items
        if items is None:
            return None
        self._touch(position)
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
            self._positions = positions
        return self._positions.get(session_id)

    def loaded(self) -> Iterable[Session]:
        for segment in self.segments:
            yield from segment.items or ()

    # -- fetching --------------------------------------------------------------------------------
    def needed(self, first: int, last: int) -> FetchRequest | None:
        """The next fetch that rows ``first..last`` are waiting for, if any."""
        if self.local_sort is not None:
            first, last = 0, 1 << 62  # local sorts need every row
        if self.segments:
            starts = self._segment_starts()
            low = max(0, bisect_right(starts, max(first, 0)) - 1)
            for position in range(low, len(self.segments)):
                if starts[position] > last:
                    break
                segment = self.segments[position]
                if segment.items is None:
                    # The same limit as before keeps the keyset boundary with the next segment.
                    return FetchRequest(
                        self.generation,
                        position,
                        segment.cursor,
                        max(1, segment.count),
                        (first, last),
                    )
        if self.complete or (self.segments and last < self.known_rows):
            return None
        cursor = self.segments[-1].next_cursor if self.segments else None
        # Far below the known rows (a jump to the end): walk with the largest pages.
        far = last - self.known_rows > self.page_size
        return FetchRequest(
            self.generation,
            len(self.segments),
            cursor,
            MAX_PAGE if far else self.page_size,
            (first, last),
        )

    def apply(self, request: FetchRequest, page: Page[Session]) -> bool:
        """Store a fetched page; False when it is stale (the list was reset meanwhile)."""
        if request.generation != self.generation:
            return False
        if request.segment == len(self.segments):
            if not self.segments:
                self.total = page.total
            known = self._known_ids()
            rows = [s for s in page.data if s.id not in known]
            self.segments.append(Segment(request.cursor, len(rows), page.next_cursor, rows))
        elif request.segment < len(self.segments):
            segment = self.segments[request.segment]
            segment.items = list(page.data)
            if len(page.data) != segment.count and self.total is not None:
                self.total += len(page.data) - segment.count
            segment.count = len(page.data)
        else:
            return False
        self._touch(request.segment)
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

    def _touch(self, position: int) -> None:
        self._lru[position] = None
        self._lru.move_to_end(position)

    def _evict(self, keep: tuple[int, int] = (0, 0)) -> None:
        if self.local_sort is not None:
            return
        starts = self._segment_starts()
        first, last = keep

        def evictable(position: int) -> bool:
            # The first segment takes live inserts and is never refetched; segments on screen
            # stay too, or two of them could evict each other forever.
            if position == 0 or position >= len(self.segments):
                return position != 0
            return starts[position + 1] <= first or starts[position] > last

        while len(self._lru) > self.max_loaded:
            victim = next((position for position in self._lru if evictable(position)), None)
            if victim is None:
                break
            del self._lru[victim]
            if victim < len(self.segments):
                self.segments[victim].items = None
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

    def update(self, session: Session) -> bool:
        if self.index_of(session.id) is None:
            return False
        for segment in self.segments:
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
        for segment in self.segments:
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
            tooltip="Last row (walks every page)",
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
        self.pages = SessionPages(page_size=page_size, max_loaded=max_loaded)
        self.query_spec = SessionQuery()
        self.sort = SortOrder.NEWEST
        self.cursor_row = 0
        self.load_error: BackendError | None = None
        self._restore_id: str | None = None
        self._line_cache: OrderedDict[tuple[object, ...], Strip] = OrderedDict()
        self._line_cache_size = 512
        #: Per frame (set by ``render_lines``): the base style and the clock, computed once
        #: instead of per row; and component colours, computed once per style update.
        self._frame_base: Style | None = None
        self._frame_now: datetime | None = None
        self._foregrounds: dict[str, Style] = {}
        self._loading = False
        #: Until the operator moves the cursor it stays on the first row, where new sessions
        #: arrive; afterwards it follows its session.
        self.cursor_moved = False

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
        count = self.row_count
        row = max(0, min(row, count - 1)) if count else 0
        if row == self.cursor_row:
            if scroll:
                self._scroll_cursor_visible()
            return
        old = self.cursor_row
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
                self.set_scroll(None, self.scroll_y + shift)
        self._line_cache.clear()
        self.refresh()

    # -- sizing and scrolling --------------------------------------------------------------------
    @property
    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.row_count + 1)

    def on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()
        self._line_cache.clear()
        self.ensure_loaded()

    def _scroll_cursor_visible(self) -> None:
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.set_scroll(None, self.cursor_row)
        elif self.cursor_row >= top + self._body_height:
            self.set_scroll(None, self.cursor_row - self._body_height + 1)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.ensure_loaded()

    def _refresh_row(self, row: int) -> None:
        y = row - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    # -- actions ---------------------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        self.cursor_moved = True
        self.set_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.cursor_moved = True
        self.set_cursor(self.cursor_row + direction * self._body_height)

    def action_first(self) -> None:
        self.cursor_moved = True
        self.set_cursor(0)

    def action_last(self) -> None:
        self.cursor_moved = True
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
        self.cursor_moved = True
        self.set_cursor(row, scroll=False)

    # -- loading ---------------------------------------------------------------------------------
    def _wanted_range(self) -> tuple[int, int]:
        top = round(self.scroll_y)
        height = self._body_height
        low = min(top, self.cursor_row) - height
        high = max(top + height, self.cursor_row) + height
        return max(0, low), high

    def ensure_loaded(self) -> None:
        if self._loading or self.load_error is not None or not self.is_mounted:
            return
        first, last = self._wanted_range()
        if self.pages.needed(first, last) is None:
            return
        self._loading = True
        self._load_pages()

    @work(exclusive=True, exit_on_error=False, group="session-pages")
    async def _load_pages(self) -> None:
        try:
            while True:
                first, last = self._wanted_range()
                request = self.pages.needed(first, last)
                if request is None:
                    return
                try:
                    page = await self.backend.list_sessions(
                        self.query_spec, cursor=request.cursor, limit=request.limit
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
                if not self.pages.apply(request, page):
                    continue
                self._after_page()
        finally:
            self._loading = False

    def _after_page(self) -> None:
        self._update_virtual_size()
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

    # -- rendering -------------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()
        self._foregrounds.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_base = self.rich_style
        self._frame_now = clock.now()
        try:
            return super().render_lines(crop)
        finally:
            self._frame_base = self._frame_now = None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._frame_base if self._frame_base is not None else self.rich_style
        if y == 0:
            return self._render_header(width, base)
        row = round(self.scroll_y) + y - 1
        if row >= self.row_count:
            if row == 0 and self.pages.started and not self.load_error:
                return self._message_line("No sessions match.", width, base)
            return Strip.blank(width, base)
        session = self.pages.get(row)
        if session is None:
            self.call_later(self.ensure_loaded)
            style = self._foreground("session-table--loading")
            return self._message_line("loading…", width, base + style)
        now = self._frame_now or clock.now()
        age = format_age(session.created_at, now)
        active = format_age(_activity(session), now)
        cursor = row == self.cursor_row
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
        cells: list[Text] = [
            Text(f"{glyph} {session.status.value}", style=status_style, end=""),
            # Untrusted: agent-chosen title and id; sliced before neutralising so a 1 MB title
            # costs no more than a short one.
            plain_line((session.title or session.id)[: widths[1] * 2], limit=widths[1]),
            plain_line((session.agent_id or "—")[:64], style=dim, limit=widths[2]),
            Text(age, end=""),
            Text(active, end=""),
            Text(f"{session.event_count:,}", style=dim, end=""),
            Text(
                f"{session.pending_action_count:,}" if session.pending_action_count else "·",
                style=pending_style,
                end="",
            ),
        ]
        text = Text(" ", end="")
        for column, size, cell in zip(COLUMNS, widths, cells, strict=True):
            cell.truncate(size, overflow="ellipsis")
            cell.align(column.justify, size)  # type: ignore[arg-type]
            text.append_text(cell)
            text.append(" " * _GAP)
        return self._strip(text, width, row_style)


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
