"""The sessions table and its scrollbar finish their lines themselves (instead of through
Textual's styles cache) so that a repaint reuses the strips, and what Textual caches on them, from
the frames before. What they produce must be what the styles cache would have produced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_sessions import seeded_table, wait_for
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from sessionscope.tui.widgets.session_table import SessionTable


def segments(strips: list[Strip]) -> list[list[tuple[str, object]]]:
    return [[(segment.text, segment.style) for segment in strip] for strip in strips]


def same_as_styles_cache(widget: Widget) -> None:
    region = Region(0, 0, widget.size.width, widget.size.height)
    ours = widget.render_lines(region)
    textual = Widget.render_lines(widget, region)
    assert [strip.cell_length for strip in ours] == [strip.cell_length for strip in textual]
    assert segments(ours) == segments(textual)
    # A column range is cropped as the styles cache crops it.
    part = Region(3, 1, max(1, widget.size.width - 5), widget.size.height - 2)
    assert segments(widget.render_lines(part)) == segments(Widget.render_lines(widget, part))


def rows_loaded(table: SessionTable) -> bool:
    top = round(table.scroll_y)
    last = min(top + table.size.height - 1, table.row_count)
    return all(table.pages.get(row) is not None for row in range(top, last))


async def test_table_and_scrollbar_lines_match_the_styles_cache(
    make_server: Callable[..., Any],
) -> None:
    async with seeded_table(make_server, 400, watch=False) as (_, pilot, table):
        await wait_for(pilot, lambda: rows_loaded(table), "the first rows")
        scrollbar = table.vertical_scrollbar
        for key in ("down", "down", "pagedown", "pagedown", "up", "end"):
            await pilot.press(key)
            await wait_for(pilot, lambda: rows_loaded(table), f"the rows after {key}")
            await pilot.pause()
            same_as_styles_cache(table)
            same_as_styles_cache(scrollbar)
        # Unfocused: the cursor row changes colour, and the lines still match.
        table.blur()
        await pilot.pause()
        same_as_styles_cache(table)


async def test_a_repaint_reuses_the_strips_of_unchanged_lines(
    make_server: Callable[..., Any],
) -> None:
    async with seeded_table(make_server, 200, watch=False) as (_, pilot, table):
        await wait_for(pilot, lambda: rows_loaded(table), "the first rows")
        await pilot.pause()
        region = Region(0, 0, table.size.width, table.size.height)
        before = table.render_lines(region)
        again = table.render_lines(region)
        # The same objects, so what Textual caches on a strip (filters, cuts, escape codes)
        # is reused; a line that changes is a new strip.
        assert all(a is b for a, b in zip(before, again, strict=True))
        await pilot.press("down")
        await pilot.pause()
        after = table.render_lines(region)
        changed = [y for y, (a, b) in enumerate(zip(before, after, strict=True)) if a is not b]
        assert changed == [1, 2]  # the old cursor row and the new one
        bar = table.vertical_scrollbar
        bar_region = Region(0, 0, bar.size.width, bar.size.height)
        assert all(
            a is b
            for a, b in zip(bar.render_lines(bar_region), bar.render_lines(bar_region), strict=True)
        )
