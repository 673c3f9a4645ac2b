"""A virtualised sessions table on Textual's Line API.

Why not ``DataTable``: it costs about 1 s per 10,000 rows to load and is O(n) per removal, and a
platform can hold 100,000 sessions. Here only the rows on screen are rendered, rendered lines are
kept in a small LRU, and sessions are fetched page by page as the operator scrolls; which pages
are held and what to fetch next is ``state.session_pages.SessionPages``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment as RichSegment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from sessionscope.backends import Backend, BackendError, Capability, SessionQuery
from sessionscope.models import Session, SessionStatus
from sessionscope.tui import clock
from sessionscope.tui.durations import format_duration
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import one_line, plain_line
from sessionscope.tui.state.lru import LRU
from sessionscope.tui.state.session_pages import (
    LOCAL_SORT_LIMIT,
    FetchRequest,
    SessionPages,
    SortOrder,
    last_activity,
)
from sessionscope.tui.widgets.scrolling import (
    LineFinish,
    crop_columns,
    finish_line,
    plain_box,
    resize_scrollbar_only,
    strip_vertical_scrollbar,
)

# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    return format_duration(((now or clock.now()) - moment).total_seconds(), "unit")


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
#: With several profiles at once: which profile a row belongs to, after its status.
PROFILE_COLUMN = Column("profile", "PROFILE", 12)
FLEET_COLUMNS: tuple[Column, ...] = (COLUMNS[0], PROFILE_COLUMN, *COLUMNS[1:])
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


#: Below this many cells for the title, the agent column gives up cells (down to
#: ``MIN_AGENT``): on a small terminal the title is what tells sessions apart.
COMFORTABLE_TITLE = 32
MIN_AGENT = 8


def column_widths(width: int, columns: tuple[Column, ...] = COLUMNS) -> list[int]:
    fixed = sum(c.width for c in columns) + _GAP * (len(columns) - 1) + 2
    title = width - fixed
    widths = [c.width for c in columns]
    keys = [c.key for c in columns]
    if title < COMFORTABLE_TITLE and "agent" in keys:
        agent = keys.index("agent")
        given = max(0, min(widths[agent] - MIN_AGENT, COMFORTABLE_TITLE - title))
        widths[agent] -= given
        title += given
    return [w if c.width else max(MIN_TITLE, title) for c, w in zip(columns, widths, strict=True)]


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
    BINDINGS: ClassVar[list[BindingType]] = bindings("session_table")

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
        profile_column: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.backend = backend
        self.columns = FLEET_COLUMNS if profile_column else COLUMNS
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
        #: Four screens (the view, the one drawn ahead, the way back): each cached strip holds
        #: about eighteen objects the collector walks, and a full collection that lands
        #: between a key and its frame is what the slowest frames wait for.
        self._line_cache: LRU[tuple[object, ...], Strip] = LRU(128)
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
        self._line_cache.maxsize = max(128, 4 * self._body_height)
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
        active = format_age(last_activity(session), now)
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
        for column, size in zip(self.columns, column_widths(width, self.columns), strict=True):
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
        widths = column_widths(width, self.columns)
        # The profile cell sits after the status; the rest is laid out as without it.
        profile_width = widths.pop(1) if self.columns is FLEET_COLUMNS else 0
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
            *(
                [
                    RichSegment(
                        gap
                        + _fit(one_line(str(getattr(session, "profile", "")), 24), profile_width),
                        row_style + dim,
                    )
                ]
                if profile_width
                else []
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
        if profile_width:
            length += _GAP + profile_width
        strip = Strip(segments, length)
        return strip if length == width else strip.crop_extend(0, width, row_style)


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: cut with an ellipsis, or padded."""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    padding = " " * (width - length)
    return padding + text if right else text + padding
