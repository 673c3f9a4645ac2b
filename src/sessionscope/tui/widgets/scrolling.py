"""Scrolling helpers shared by the Line API views (the sessions table, the timeline).

Both views repaint many lines per frame (a page down, a followed live session), so both finish
their own lines the way Textual's styles cache would, but from the same strip objects every
frame, and both use a scrollbar that hands over a handful of shared strips.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.color import Color
from rich.segment import Segment as RichSegment
from rich.style import Style
from textual.color import Color as TextualColor
from textual.css.styles import RulesMap
from textual.filter import LineFilter
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.visual import RenderOptions, Visual
from textual.widget import Widget

from sessionscope.tui.textual_compat import custom_vertical_scrollbar


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


_BAR_CELLS: dict[tuple[RichSegment, Style, int], Strip] = {}


class StripScrollBarRender(ScrollBarRender, Visual):
    """Textual's own scrollbar, handed over as strips. As a Rich renderable it went through a
    console render and a line split on every frame the view moved: about 3 ms of each
    page-down frame, as much as a third of the table's own rows."""

    def render_strips(
        self, width: int, height: int | None, style: VisualStyle, options: RenderOptions
    ) -> list[Strip]:
        bar_style = self.style if isinstance(self.style, Style) else Style.parse(str(self.style))
        bar = self.render_bar(
            size=height if height is not None else self.window_size,
            virtual_size=self.virtual_size,
            window_size=self.window_size,
            position=self.position,
            thickness=width,
            vertical=self.vertical,
            back_color=bar_style.bgcolor or Color.parse("#555555"),
            bar_color=bar_style.color or Color.parse("bright_magenta"),
        )
        # What Widget.post_render does for a renderable: the widget's style under the bar's.
        # A bar is a handful of distinct cells (track, thumb, thumb ends): the same strip for
        # the same cell, so StripScrollBar finishes each once.
        under = style.rich_style
        cells = _BAR_CELLS
        if len(cells) > 64:
            cells.clear()
        strips = []
        for segment in bar.segments:
            key = (segment, under, width)
            strip = cells.get(key)
            if strip is None:
                strip = cells[key] = Strip(RichSegment.apply_style([segment], under), width)
            strips.append(strip)
        return strips

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return self.thickness

    def get_height(self, rules: RulesMap, width: int) -> int:
        return self.window_size


def plain_box(widget: Widget) -> bool:
    """No border, padding, outline, tint, hatch, opacity or border title: all Textual's styles
    cache then does to a content line is adjust its width and apply the app's line filters."""
    styles = widget.styles
    return (
        not any(styles.gutter)
        and not any(edge for edge, _ in styles.outline)
        and not styles.tint.a
        and widget.opacity == 1
        and styles.text_opacity == 1
        and (not styles.has_rule("hatch") or styles.hatch == "none")
        and widget.border_title is None
        and widget.border_subtitle is None
    )


class LineFinish:
    """What the styles cache applies to a widget's content lines, for ``finish_line``: the
    background a short line is extended with, its colour, and the app's line filters. The
    extension style is the same object while the colour is unchanged: it is part of the key
    under which a strip caches its extension, so a new one each frame would miss that cache."""

    def __init__(self) -> None:
        self._inner: tuple[TextualColor, Style] | None = None

    def __call__(self, widget: Widget) -> tuple[Style, TextualColor, Sequence[LineFilter]]:
        base_background, background = widget.background_colors
        colour = base_background + background
        if self._inner is None or self._inner[0] != colour:
            self._inner = (colour, VisualStyle(background=colour).rich_style)
        return self._inner[1], background, widget.get_line_filters()


def finish_line(
    strip: Strip, width: int, inner: Style, background: TextualColor, filters: Sequence[LineFilter]
) -> Strip:
    """What Textual's styles cache does to a content line of a ``plain_box`` widget: extend it
    to the widget's width and apply the app's line filters. Each step is cached on the strip."""
    strip = strip.adjust_cell_length(width, inner)
    for line_filter in filters:
        strip = strip.apply_filter(line_filter, background)
    return strip


def crop_columns(strips: list[Strip], crop: Region, width: int) -> list[Strip]:
    if crop.column_span == (0, width):
        return strips
    x1, x2 = crop.column_span
    return [strip.crop(x1, x2) for strip in strips]


class StripScrollBar(ScrollBar):
    """A Line API view's vertical scrollbar, finished from the same strip objects every frame.

    The bar moves on every page (and on every batch of a followed live timeline), so Textual
    repainted all its lines through the styles cache, each a new strip to filter, cut and
    encode again: about 2-3 ms of a page-down frame for a column one cell wide. Its lines are
    a handful of distinct cells (track, thumb, thumb ends): each is finished once and the same
    strip comes back while its content is the same."""

    def __init__(self, vertical: bool = True, name: str | None = None, *, thickness: int = 1):
        super().__init__(vertical, name, thickness=thickness)
        self._finished: dict[tuple[object, ...], tuple[Strip, Strip]] = {}
        self._line_finish = LineFinish()

    def render_lines(self, crop: Region) -> list[Strip]:
        if not plain_box(self):
            return super().render_lines(crop)
        inner, background, line_filters = self._line_finish(self)
        width = self.content_region.width
        filters = tuple(line_filters)
        finished = self._finished
        if len(finished) > 64:
            finished.clear()
        strips = []
        for y in crop.line_range:
            line = self.render_line(y)
            # The bar's strips are shared per distinct cell (StripScrollBarRender): keyed by
            # the strip's identity (the entry holds the strip, so its id is never reused).
            key = (id(line), width, inner, background, filters)
            entry = finished.get(key)
            if entry is None:
                strip = finish_line(line, width, inner, background, filters)
                entry = finished[key] = (line, strip)
            strips.append(entry[1])
        return crop_columns(strips, crop, width)


def strip_vertical_scrollbar(view: ScrollView) -> ScrollBar:
    """For a view's ``vertical_scrollbar`` property: a ``StripScrollBar`` with the strip renderer
    instead of the stock scrollbar (created the way Textual creates its own: ``textual_compat``)."""

    def make() -> ScrollBar:
        scrollbar = StripScrollBar(
            vertical=True, name="vertical", thickness=view.scrollbar_size_vertical
        )
        # Textual documents setting the renderer on one scrollbar instance.
        scrollbar.renderer = StripScrollBarRender  # type: ignore[misc]
        scrollbar.display = False
        return scrollbar

    return custom_vertical_scrollbar(view, make)
