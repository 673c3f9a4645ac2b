"""The sessions list's opt-in rate column: a sparkline per visible row, beside the table.

It draws the rows the table shows (same scroll offset, same header line), so the table itself
needs no knowledge of rates; only visible rows are computed.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from sessionscope.tui import clock
from sessionscope.tui.session_rates import SessionRates, sparkline
from sessionscope.tui.widgets.session_table import SessionTable


class RateColumn(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"rate-column--header"}
    DEFAULT_CSS = """
    RateColumn { width: 10; height: 1fr; }
    RateColumn > .rate-column--header { text-style: bold; }
    """

    def __init__(self, table: SessionTable, rates: SessionRates, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.table = table
        self.rates = rates
        self.tooltip = (
            f"events per {rates.bucket_seconds} s over the last "
            f"{rates.window_seconds // 60} min, from live updates"
        )

    def on_mount(self) -> None:
        self.watch(self.table, "scroll_y", self._scrolled, init=False)

    def _scrolled(self, _scroll_y: float) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("rate-column--header")
            return self._strip(" RATE", width, style)
        row = round(self.table.scroll_y) + y - 1
        session = self.table.pages.get(row) if row < self.table.row_count else None
        if session is None:
            return self._strip("", width, base)
        now = clock.now()
        if not self.rates.knows(session.id):
            # The visible row's count is the baseline the next live update is measured from.
            self.rates.observe(session.id, session.event_count, now)
        return self._strip(" " + sparkline(self.rates.series(session.id, now)), width, base)

    @staticmethod
    def _strip(text: str, width: int, style: Style) -> Strip:
        return Strip([Segment(text[:width].ljust(width), style)], width)
