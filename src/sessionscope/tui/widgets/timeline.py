"""The session timeline: a Line-API widget over a windowed event store.

Only the rows on screen are rendered (``render_line``), only the pages under them are fetched,
rendered lines are kept in a bounded LRU, and live events are batched by the screen (applied at
most ~120 times a second, drawn at most at Textual's frame rate), so a session with a million events
and a thousand new events a second costs the same to draw as one with ten. New rows below a view
that already scrolls change only the scrollbar, without a layout pass of the screen.

Rows are the hot path (a frame while following a fast session is all new rows): a plain row is
built straight from segments with styles computed once per frame, not through ``Text.render``, and
the pages under the view are asked for as soon as the view moves, not after a frame of
placeholders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import ClassVar, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from sessionscope.backends import BackendError
from sessionscope.models import Event
from sessionscope.tui import event_summary
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import one_line
from sessionscope.tui.state.event_store import EventStore, RowState
from sessionscope.tui.state.lru import LRU
from sessionscope.tui.widgets.scrolling import (
    LineFinish,
    crop_columns,
    finish_line,
    plain_box,
    resize_scrollbar_only,
    strip_vertical_scrollbar,
)

TYPE_WIDTH = 20
SEQ_WIDTH = 8


class _Frame(NamedTuple):
    top: int
    rows: int
    cursor: int
    focus: bool
    base: Style
    show_hidden: bool
    search_term: str
    generations: tuple[int, int]


class Timeline(ScrollView, can_focus=True):
    """Rows of events: time, sequence, type and a one-line summary, coloured by type."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--cursor",
        "timeline--time",
        "timeline--seq",
        "timeline--hidden",
        "timeline--placeholder",
        "timeline--match",
        *(f"timeline--{name}" for name in event_summary.FAMILIES),
    }

    BINDINGS: ClassVar[list[BindingType]] = bindings("timeline")

    DEFAULT_CSS = """
    Timeline { height: 1fr; overflow-x: hidden; }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)
    #: Like ``tail -f``: keep the newest event in view as events arrive.
    follow: reactive[bool] = reactive(True, init=False)
    show_hidden: reactive[bool] = reactive(False, init=False)
    search_term: reactive[str] = reactive("", init=False)

    class Opened(Message):
        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    class LoadFailed(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class RowCountChanged(Message):
        """Loading pages changed the row count (a store that discovers its rows)."""

    class FirstRowsShown(Message):
        """Posted once, after the first frame that shows rows of a store (or shows that it has
        none, or that they could not be loaded): the screen's less urgent work waits for it."""

    def __init__(
        self,
        store: EventStore,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.store = store
        # A few screens: more only feeds the cyclic collector (see DEFAULT_MAX_PAGES).
        self._lines: LRU[tuple[object, ...], Strip] = LRU(256)
        self._wanted: set[int] = set()
        self._wake = asyncio.Event()
        self._failed_pages: dict[int, str] = {}
        self._style_generation = 0
        #: Set per frame by ``render_lines``: computing them per row cost more than the row.
        self._frame_base: Style | None = None
        self._frame_focus = False
        self._row_styles: dict[tuple[Style, str], Style] = {}
        self._line_finish = LineFinish()
        #: The first and last pages are fetched once the view is painted, so home/end are instant.
        self._prefetched = False
        self._rows_shown = False

    # -- data ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        super().on_mount()
        self._sync_size()
        self._load_pages()
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: object) -> None:
        self._restyle()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._restyle()

    def _restyle(self) -> None:
        self._style_generation += 1
        self._lines.clear()
        self._row_styles.clear()
        self.refresh()

    def set_store(self, store: EventStore) -> None:
        """Swap the rows (e.g. a type filter); the cursor goes to the newest row when following."""
        self.store = store
        self._lines.clear()
        self._wanted.clear()
        self._failed_pages.clear()
        self._prefetched = False
        self._sync_size()
        self.cursor_row = max(0, self.store.row_count - 1) if self.follow else 0
        self._scroll_cursor_into_view()
        self._request_frontier()
        self._request_view()
        # Even with nothing to fetch (pages requested before the view existed may be in
        # already), the loader prefetches the ends once the rows are painted.
        self._wake.set()
        self.refresh()
        if not self.store.row_count and not self.store.wants_more():
            self._announce_rows_shown()

    def _announce_rows_shown(self) -> None:
        if not self._rows_shown:
            self._rows_shown = True
            self.call_after_refresh(self.post_message, self.FirstRowsShown())

    def append(self, events: Sequence[Event], visibility_notices: Iterable[Event] = ()) -> None:
        """Live events, in order; ``visibility_notices`` (hides, unhides, deletes among them) are
        applied after the append: a notice may name an event of this same batch (a resumed
        backlog, or a burst within one flush), which the store only holds from then on."""
        added = self.store.append(events)
        changed = False
        for notice in visibility_notices:
            change = event_summary.visibility_change(notice)
            if change is not None:
                changed |= self.store.apply_visibility(*change)
        self._show_appended(added)
        if changed:
            self.refresh()

    def apply_visibility(self, sequence: int, event_id: str, hidden: bool | None) -> None:
        """A hide (``True``), unhide (``False``) or delete (``None``) the operator made: shown on
        the cached row at once (the stream may announce it too; applying it twice is harmless)."""
        if self.store.apply_visibility(sequence, event_id, hidden):
            self.refresh()

    def _show_appended(self, added: int) -> None:
        if not added:
            return
        self._sync_size()
        if self.follow and self.store.row_count:
            # The view scrolls: every row on screen moves, so the whole view is redrawn (from
            # the line cache for rows seen before).
            self.cursor_row = self.store.row_count - 1
            self._scroll_cursor_into_view()
            self.refresh()
            return
        # Paused: only new rows that fall inside the view need drawing.
        top = round(self.scroll_offset.y)
        first_new = self.store.row_count - added
        bottom = top + max(1, self.size.height)
        if first_new < bottom:
            start = max(first_new, top)
            self.refresh(Region(0, start - top, self.size.width, bottom - start))

    def event_at_cursor(self) -> Event | None:
        found = self.store.lookup(self.cursor_row)
        return found if isinstance(found, Event) else None

    def _sync_size(self) -> None:
        width = self.scrollable_content_region.width or self.size.width
        size = Size(width, self.store.row_count)
        old = self.virtual_size
        if size == old:
            return
        if (
            self.is_mounted
            and size.width == old.width
            and size.height > old.height
            and self.show_vertical_scrollbar
        ):
            # Rows added below a view that already scrolls.
            resize_scrollbar_only(self, size)
            return
        self.virtual_size = size

    def _request_frontier(self) -> None:
        if self.store.wants_more():
            self._wanted.add(self.store.frontier_page())
            self._wake.set()

    def _near_pages(self) -> set[int]:
        """Pages under the view and around the cursor (the view is about to scroll to it).
        Before the first layout the height is unknown; the screen's height bounds it."""
        height = self.size.height or self.app.size.height
        top = round(self.scroll_offset.y)
        cursor = self.cursor_row
        pages: set[int] = set()
        for low, high in ((top, top + height), (cursor - height + 1, cursor + height)):
            low = max(0, low)
            if high > low:
                pages.update(range(self.store.page_of(low), self.store.page_of(high - 1) + 1))
        if self.store.wants_more():
            pages.add(self.store.frontier_page())
        return pages

    def _view_pages(self) -> range:
        """The pages under the cursor's window."""
        count = self.store.row_count
        if not count:
            return range(0)
        height = self.size.height or self.app.size.height
        top = max(0, min(self.cursor_row - height + 1, round(self.scroll_offset.y)))
        if not top <= self.cursor_row < top + height:
            top = max(0, self.cursor_row - height + 1)
        last = min(count, top + height) - 1
        return range(self.store.page_of(top), self.store.page_of(last) + 1)

    def _view_loaded(self) -> bool:
        return all(
            self.store.page_loaded(page) or page in self._failed_pages
            for page in self._view_pages()
        )

    def _request_view(self) -> None:
        """Ask for the pages under the cursor's window now, not after a frame of placeholders."""
        for page in self._view_pages():
            if not self.store.page_loaded(page) and page not in self._failed_pages:
                self._wanted.add(page)
        if self._wanted:
            self._wake.set()

    def on_resize(self) -> None:
        # A store set before the first layout scrolled with no height: scroll again now.
        self._sync_size()
        if self.follow and self.store.row_count:
            self._scroll_cursor_into_view()

    @work(exclusive=True, exit_on_error=False, group="timeline-pages")
    async def _load_pages(self) -> None:
        """One long-lived loader: fetch the pages the view asked for, together."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._wanted:
                near = self._near_pages()
                # Pages scrolled past while waiting are dropped: only what is on screen counts.
                wanted = sorted(page for page in self._wanted if page in near)
                self._wanted.clear()
                missing = [page for page in wanted if not self.store.page_loaded(page)]
                if missing:
                    await self._fetch(missing, visible=True)
                elif wanted:
                    # Loaded meanwhile by another reader (e.g. the request the screen sent
                    # before the view existed): only the view is behind.
                    self._pages_arrived()
            if (
                not self._prefetched
                and not self._wanted
                and self.store.row_count
                and self._view_loaded()
            ):
                self._prefetched = True
                # After the view's first paint, so parsing these pages does not delay it.
                painted = asyncio.Event()
                self.call_after_refresh(painted.set)
                await painted.wait()
                self._announce_rows_shown()
                extra = [
                    page for page in self.store.prefetch_pages() if not self.store.page_loaded(page)
                ]
                if extra:
                    await self._fetch(extra, visible=False)

    async def _fetch(self, pages: list[int], *, visible: bool) -> None:
        store = self.store
        count_before = (store.row_count, store.wants_more())
        results = await asyncio.gather(
            *(store.load_page(page) for page in pages), return_exceptions=True
        )
        if store is not self.store:
            return
        for page, result in zip(pages, results, strict=True):
            if isinstance(result, BackendError):
                if visible:
                    self._failed_pages[page] = str(result)
                    self.post_message(self.LoadFailed(str(result)))
            elif isinstance(result, BaseException):
                raise result
            else:
                self._failed_pages.pop(page, None)
        if visible:
            self._pages_arrived()
        if (store.row_count, store.wants_more()) != count_before:
            self.post_message(self.RowCountChanged())

    def _pages_arrived(self) -> None:
        """Pages under the view were loaded: show them (following: the newest row)."""
        count_before = self.virtual_size.height
        self._sync_size()
        if self.follow and self.store.row_count and self.store.row_count != count_before:
            self.cursor_row = self.store.row_count - 1
            self._scroll_cursor_into_view()
        self.refresh()
        self._announce_rows_shown()

    def retry_failed(self) -> None:
        self._failed_pages.clear()
        self._lines.clear()
        self._request_frontier()
        self.refresh()

    # -- cursor -------------------------------------------------------------------------------
    def watch_cursor_row(self, old: int, new: int) -> None:
        clamped = max(0, min(new, self.store.row_count - 1)) if self.store.row_count else 0
        if clamped != new:
            self.cursor_row = clamped
            return
        self.refresh_line(old)
        self.refresh_line(new)

    def watch_follow(self, following: bool) -> None:
        if following:
            self.action_last()

    def watch_show_hidden(self) -> None:
        self._lines.clear()
        self.refresh()

    def watch_search_term(self) -> None:
        self._lines.clear()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = round(self.scroll_offset.y)
        # force: right after the row count grows, the scrollbar (which gates scrolling) is only
        # shown at the next layout, and a scroll asked for before it would be dropped.
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True, force=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(
                y=self.cursor_row - height + 1, animate=False, immediate=True, force=True
            )

    def move_cursor(self, row: int, *, keep_follow: bool = False) -> None:
        if not keep_follow:
            # Moving away from the newest event stops following, as scrolling up does in a pager.
            self.follow = row >= self.store.row_count - 1 and self.follow
        self.cursor_row = row
        self._scroll_cursor_into_view()
        self._request_frontier_near(row)
        self._request_view()

    def _request_frontier_near(self, row: int) -> None:
        if self.store.wants_more() and row >= self.store.row_count - self.size.height * 2:
            self._request_frontier()

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1, keep_follow=True)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self.size.height - 1))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.size.height - 1), keep_follow=True)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(max(0, self.store.row_count - 1), keep_follow=True)

    def action_open(self) -> None:
        event = self.event_at_cursor()
        if event is not None:
            self.post_message(self.Opened(event))

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_offset.y) + event.y
        if 0 <= row < self.store.row_count:
            self.move_cursor(row)
            if event.chain >= 2:
                self.action_open()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False

    # -- rendering ------------------------------------------------------------------------------
    @property
    def vertical_scrollbar(self) -> ScrollBar:
        # The bar moves with every followed batch: Textual's own scrollbar repainted each of its
        # lines through the styles cache every frame (~6 ms of a frame at 1,000 events/s).
        return strip_vertical_scrollbar(self)

    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame_base = self.rich_style
        self._frame_focus = self.has_focus_within
        try:
            if not plain_box(self):
                return super().render_lines(crop)
            return self._render_plain_lines(crop)
        finally:
            self._frame_base = None

    def _render_plain_lines(self, crop: Region) -> list[Strip]:
        """The lines of ``crop`` as Textual's styles cache would make them, but finished from
        the row strips of the line cache. Textual caches what it derives from a strip on the
        strip (its extension, the line filters, the pieces cut at the scrollbar, the escape
        codes); the styles cache made a new strip of every line of every frame, so a followed
        timeline, whose every line moves on every batch, paid for all of it again per line."""
        width = self.scrollable_content_region.width or self.size.width
        full = self.content_region.width
        inner, background, filters = self._line_finish(self)
        # A new row is built at the full width at once (the extension under the scrollbar
        # included): each strip Textual makes carries seven caches, and at 1,000 events/s
        # nearly every event is drawn once as a new row.
        extend = (full, inner) if full > width else None
        frame = self._frame()
        return crop_columns(
            [
                finish_line(self._line(y, width, extend, frame), full, inner, background, filters)
                for y in crop.line_range
            ],
            crop,
            full,
        )

    def _frame(self) -> _Frame:
        """What every line of a frame reads: read once per frame (reactives and DOM lookups
        cost more per line than a cached row)."""
        base = self._frame_base if self._frame_base is not None else self.rich_style
        return _Frame(
            top=round(self.scroll_offset.y),
            rows=self.store.row_count,
            cursor=self.cursor_row,
            focus=self._frame_focus if self._frame_base is not None else self.has_focus_within,
            base=base,
            show_hidden=self.show_hidden,
            search_term=self.search_term,
            generations=(self._style_generation, self.store.generation),
        )

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        return self._line(y, width, None, self._frame())

    def _line(self, y: int, width: int, extend: tuple[int, Style] | None, frame: _Frame) -> Strip:
        """Line ``y`` of the view, ``width`` cells wide; with ``extend`` (a full width and the
        style under the scrollbar), already extended to that width where that is cheaper."""
        row = frame.top + y
        base = frame.base
        if row >= frame.rows or row < 0:
            return Strip.blank(width, base)
        found = self.store.lookup(row)
        selected = row == frame.cursor and frame.focus
        if found is RowState.LOADING:
            page = self.store.page_of(row)
            if page not in self._failed_pages:
                self._wanted.add(page)
                self._wake.set()
            return self._placeholder(row, width, self._failed_pages.get(page), selected)
        if selected or not isinstance(found, Event):
            extend = None
        key: tuple[object, ...] = (
            row,
            found.id if isinstance(found, Event) else "gap",
            width,
            selected,
            base,
            frame.show_hidden,
            frame.search_term,
            frame.generations,
            extend,
        )
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        if isinstance(found, Event):
            strip = self._plain_row(found, width, base, selected, extend)
            if strip is None:
                strip = self._to_strip(self._event_text(found), width, base, selected)
        else:
            text = Text(f"{'':12} {row + 1:>{SEQ_WIDTH}}  (no event)", end="")
            text.stylize(self.get_component_rich_style("timeline--placeholder"))
            strip = self._to_strip(text, width, base, selected)
        self._lines[key] = strip
        return strip

    def _row_style(self, base: Style, component: str) -> Style:
        style = self._row_styles.get((base, component))
        if style is None:
            style = base + self.get_component_rich_style(component)
            self._row_styles[(base, component)] = style
        return style

    def _plain_row(
        self,
        event: Event,
        width: int,
        base: Style,
        selected: bool,
        extend: tuple[int, Style] | None = None,
    ) -> Strip | None:
        """The common row (not hidden, no search highlight) as segments; the same cells and
        styles as ``_event_text`` through ``_to_strip`` (then ``Strip.adjust_cell_length`` to
        ``extend``'s width and style). ``None``: take the general path."""
        if event.hidden or self.search_term:
            return None
        time_text = _time_text(event)
        seq_text = f" {event.sequence:>{SEQ_WIDTH}}  "
        type_text = f"{one_line(event.type, TYPE_WIDTH):<{TYPE_WIDTH}} "
        prefix = cell_len(time_text) + cell_len(seq_text) + cell_len(type_text)
        room = width - prefix
        if room < 2:
            return None
        summary, summary_cells = _fit(event_summary.summarize(event), room)
        family = f"timeline--{event_summary.family(event.type)}"
        segments = [
            Segment(time_text, self._row_style(base, "timeline--time")),
            Segment(seq_text, self._row_style(base, "timeline--seq")),
            Segment(type_text, self._row_style(base, family)),
        ]
        if summary:
            segments.append(Segment(summary, base))
        # The padding adjust_cell_length would add, made here: one strip instead of two.
        used = prefix + summary_cells
        if used < width:
            segments.append(Segment(" " * (width - used), base))
        if extend is not None:
            full, under = extend
            segments.append(Segment(" " * (full - width), under))
            return Strip(segments, full)
        strip = Strip(segments, width)
        if selected:
            strip = strip.apply_style(self.get_component_rich_style("timeline--cursor"))
        return strip

    def _placeholder(self, row: int, width: int, error: str | None, selected: bool) -> Strip:
        label = f"could not load: {one_line(error, 120)} (r retries)" if error else "loading…"
        text = Text(f"{'':12} {row + 1:>{SEQ_WIDTH}}  {label}", end="")
        text.stylize(self.get_component_rich_style("timeline--placeholder"))
        return self._to_strip(text, width, self.rich_style, selected)

    def _to_strip(self, text: Text, width: int, base: Style, selected: bool) -> Strip:
        text.truncate(width, overflow="ellipsis")
        segments = [
            Segment(s.text, base + s.style if s.style else base)
            for s in text.render(self.app.console)
        ]
        strip = Strip(segments).adjust_cell_length(width, base)
        if selected:
            strip = strip.apply_style(self.get_component_rich_style("timeline--cursor"))
        return strip

    def _event_text(self, event: Event) -> Text:
        style_of = self.get_component_rich_style
        time_text = _time_text(event)
        type_style = style_of(f"timeline--{event_summary.family(event.type)}")
        text = Text(end="", no_wrap=True)
        text.append(time_text, style_of("timeline--time"))
        text.append(f" {event.sequence:>{SEQ_WIDTH}}  ", style_of("timeline--seq"))
        type_label = one_line(event.type, TYPE_WIDTH)
        text.append(f"{type_label:<{TYPE_WIDTH}} ", type_style)
        if event.hidden and not self.show_hidden:
            text.append("hidden event (h shows hidden events)")
            text.stylize(style_of("timeline--hidden"))
            return text
        text.append(event_summary.summarize(event))
        if self.search_term:
            text.highlight_words(
                [self.search_term], style_of("timeline--match"), case_sensitive=False
            )
        if event.hidden:
            text.stylize(style_of("timeline--hidden"))
        return text


def _fit(text: str, room: int) -> tuple[str, int]:
    """``text`` cut to ``room`` cells with an ellipsis as ``Text.truncate(overflow="ellipsis")``
    does, and its cells. Outside Latin text (a "⏎" or "→" is enough) Rich measures and cuts
    grapheme by grapheme in Python, over the whole summary (up to 200 characters) where a row
    shows about 70 cells: a prefix that already holds more than ``room`` cells (two to spare
    for a last character that may be wide) gives the same cut, since without zero-width
    joiners or variation selectors cells add up character by character."""
    head = text[: room + 8]
    if (
        len(head) < len(text)
        and "\u200d" not in text
        and "\ufe0f" not in text
        and cell_len(head) > room + 2
    ):
        text = head
    cells = cell_len(text)
    if cells > room:
        return set_cell_size(text, room - 1) + "…", room
    return text, cells


def _time_text(event: Event) -> str:
    stamp = event.created_at
    # The server's stamps are UTC already: converting them only made a copy.
    if stamp.tzinfo is not None and stamp.utcoffset():
        stamp = stamp.astimezone(UTC)
    return f"{stamp.hour:02d}:{stamp.minute:02d}:{stamp.second:02d}.{stamp.microsecond // 1000:03d}"
