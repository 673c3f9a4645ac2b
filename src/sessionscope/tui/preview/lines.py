"""A scrollable view of many lines that renders only the rows on screen (Textual's Line API).

Used by the hex dump and the text/source previews so a 256 KiB preview costs the same to scroll
as a 2 KiB one.
"""

from __future__ import annotations

import abc

from rich.segment import Segment
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


class LineView(ScrollView, can_focus=True):
    """Base for Line-API previews: subclasses say how many lines there are and build one."""

    DEFAULT_CSS = """
    LineView {
        height: 1fr;
        width: 1fr;
    }
    """

    def __init__(self, *, line_count: int, max_width: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self._line_count = line_count
        self._strips: LRUCache[int, Strip] = LRUCache(1024)
        self.virtual_size = Size(max_width, line_count)

    @property
    def line_count(self) -> int:
        return self._line_count

    @abc.abstractmethod
    def build_line(self, index: int) -> Text:
        """The ``index``-th line as Text (never parsed as markup)."""

    def _strip(self, index: int) -> Strip:
        cached = self._strips.get(index)
        if cached is None:
            segments = list(self.build_line(index).render(self.app.console))
            cached = Strip(Segment.strip_links(segments))
            self._strips[index] = cached
        return cached

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if index >= self._line_count:
            return Strip.blank(width, base)
        return self._strip(index).crop_extend(scroll_x, scroll_x + width, base).apply_style(base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
