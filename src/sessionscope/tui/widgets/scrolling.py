"""Scrolling helpers shared by the Line API views (the sessions table, the timeline)."""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView


def resize_scrollbar_only(view: ScrollView, size: Size) -> None:
    """Give ``view`` a new virtual size without laying out the screen.

    ``virtual_size`` is a layout reactive: setting it lays out the whole screen, which a view
    that gains or loses rows (live changes, a page that corrects the total) pays on every
    batch. When the width is unchanged and the view already scrolls, only the vertical
    scrollbar's proportions change: this sets the size without the layout and updates the
    scrollbar. The caller checks those conditions, and clamps the scroll position if the
    view shrank.
    """
    view.set_reactive(ScrollView.virtual_size, size)
    scrollbar = view.vertical_scrollbar
    scrollbar.window_virtual_size = size.height
    scrollbar.refresh()
