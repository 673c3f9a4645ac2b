"""The session timeline: a Line-API widget over a windowed event store.

Only the rows on screen are rendered (``render_line``), only the pages under them are fetched,
rendered lines are kept in a bounded LRU, and live events are batched by the screen and applied at
most ~30 times a second, so a session with a million events and a thousand new events a second costs
the same to draw as one with ten.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from sessionscope.backends import BackendError
from sessionscope.models import Event
from sessionscope.tui import event_summary
from sessionscope.tui.event_store import EventStore, RowState
from sessionscope.tui.safe import one_line

TYPE_WIDTH = 20
SEQ_WIDTH = 8


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

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False, id="timeline.up", tooltip="Previous event"),
        Binding(
            "down,j", "cursor_down", "Down", show=False, id="timeline.down", tooltip="Next event"
        ),
        Binding(
            "pageup",
            "page_up",
            "Page up",
            show=False,
            id="timeline.page_up",
            tooltip="One screen up",
        ),
        Binding(
            "pagedown",
            "page_down",
            "Page down",
            show=False,
            id="timeline.page_down",
            tooltip="One screen down",
        ),
        Binding("home,g", "first", "Start", id="timeline.start", tooltip="Jump to the first event"),
        Binding(
            "end,G",
            "last",
            "End",
            id="timeline.end",
            tooltip="Jump to the newest event",
        ),
        Binding("enter", "open", "Open", id="timeline.open", tooltip="Show the event's full JSON"),
    ]

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
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)
        self._wanted: set[int] = set()
        self._wake = asyncio.Event()
        self._failed_pages: dict[int, str] = {}
        self._style_generation = 0

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
        self.refresh()

    def set_store(self, store: EventStore) -> None:
        """Swap the rows (e.g. a type filter); the cursor goes to the newest row when following."""
        self.store = store
        self._lines.clear()
        self._wanted.clear()
        self._failed_pages.clear()
        self._sync_size()
        self.cursor_row = max(0, self.store.row_count - 1) if self.follow else 0
        self._scroll_cursor_into_view()
        self._request_frontier()
        self.refresh()

    def apply_appended(self, added: int) -> None:
        """Called by the screen after it appended a batch of live events to the store."""
        self._sync_size()
        if self.follow and self.store.row_count:
            self.cursor_row = self.store.row_count - 1
            self._scroll_cursor_into_view()
        self.refresh()

    def event_at_cursor(self) -> Event | None:
        found = self.store.lookup(self.cursor_row)
        return found if isinstance(found, Event) else None

    def _sync_size(self) -> None:
        width = self.scrollable_content_region.width or self.size.width
        self.virtual_size = Size(width, self.store.row_count)

    def _request_frontier(self) -> None:
        if self.store.wants_more():
            self._wanted.add(self.store.frontier_page())
            self._wake.set()

    @work(exclusive=True, exit_on_error=False, group="timeline-pages")
    async def _load_pages(self) -> None:
        """One long-lived loader: fetch the pages the last paint asked for, nearest first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._wanted:
                top = self.scroll_offset.y
                bottom = top + self.size.height
                visible = {
                    self.store.page_of(row) for row in (top, max(top, bottom - 1), self.cursor_row)
                }
                if self.store.wants_more():
                    visible.add(self.store.frontier_page())
                # Pages scrolled past while waiting are dropped: only what is on screen counts.
                wanted = sorted(self._wanted & visible) or []
                self._wanted.clear()
                for page in wanted:
                    store = self.store
                    try:
                        await store.load_page(page)
                    except BackendError as error:
                        self._failed_pages[page] = str(error)
                        self.post_message(self.LoadFailed(str(error)))
                        continue
                    if store is not self.store:
                        break
                    self._failed_pages.pop(page, None)
                    self._lines.clear()
                    self._sync_size()
                    if self.follow and self.store.row_count:
                        self.cursor_row = self.store.row_count - 1
                        self._scroll_cursor_into_view()
                    self.refresh()

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
    def render_line(self, y: int) -> Strip:
        row = round(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width or self.size.width
        base = self.rich_style
        if row >= self.store.row_count or row < 0:
            return Strip.blank(width, base)
        found = self.store.lookup(row)
        selected = row == self.cursor_row and self.has_focus_within
        if found is RowState.LOADING:
            page = self.store.page_of(row)
            if page not in self._failed_pages:
                self._wanted.add(page)
                self._wake.set()
            return self._placeholder(row, width, self._failed_pages.get(page), selected)
        key: tuple[object, ...] = (
            row,
            found.id if isinstance(found, Event) else "gap",
            width,
            selected,
            self.show_hidden,
            self.search_term,
            self._style_generation,
            self.store.generation,
        )
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        if isinstance(found, Event):
            text = self._event_text(found)
        else:
            text = Text(f"{'':12} {row + 1:>{SEQ_WIDTH}}  (no event)", end="")
            text.stylize(self.get_component_rich_style("timeline--placeholder"))
        strip = self._to_strip(text, width, base, selected)
        self._lines[key] = strip
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
        stamp = event.created_at
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC)
        time_text = stamp.strftime("%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"
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
