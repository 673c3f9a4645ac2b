"""The sessions table's far end against the reference server on loopback, through Pilot: `end`
fetches the oldest page directly, paging up from there meets the newest-first walk with every
row once and in order, and live inserts still land at the top."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from session_support import screen_lines
from test_sessions import create_session, seeded_table, table_of, wait_for

from sessionscope.backends import WatchState
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.widgets.session_table import SessionTable


def visible_rows(table: SessionTable) -> list[tuple[int, str | None]]:
    top = round(table.scroll_y)
    rows = range(top, min(top + table.size.height - 1, table.row_count))
    return [(row, s.title if (s := table.pages.get(row)) else None) for row in rows]


def loading_state(table: SessionTable) -> str:
    """What the table's loading stands on, for a wait that times out."""
    pages = table.pages
    return (
        f"cursor {table.cursor_row} of {table.row_count}, loading {table._loading}, "
        f"error {table.load_error!r}, head {[s.count for s in pages.segments]} "
        f"tail {[s.count for s in pages.tail]} total {pages.total} "
        f"met {pages.met} oldest_first {pages.oldest_first}"
    )


def painted_titles(app: SessionScopeApp, table: SessionTable) -> list[str]:
    """The table's body as the terminal shows it (the composited screen, not ``render_line``:
    a view that moved without repainting shows old rows there)."""
    lines = screen_lines(app)
    top = table.content_region.y + 1
    return lines[top : top + table.content_region.height - 1]


async def check_screen(pilot: Any, table: SessionTable, title_of: Callable[[int], str]) -> None:
    """Wait until every row on screen is loaded and painted, then check that each one is the
    expected session."""
    app = pilot.app

    def expected() -> list[str]:
        top = round(table.scroll_y)
        end = min(top + table.content_region.height - 1, table.row_count)
        return [title_of(row) for row in range(top, end)]

    def shown() -> bool:
        painted = painted_titles(app, table)
        return all(title in line for title, line in zip(expected(), painted, strict=False))

    await wait_for(
        pilot,
        lambda: all(title is not None for _, title in visible_rows(table)) and shown(),
        "the rows on screen",
        lambda: f"rows {visible_rows(table)[:2]}… painted {painted_titles(app, table)[:2]}…",
    )
    for row, title in visible_rows(table):
        assert title == title_of(row), f"row {row}: {loading_state(table)}"


async def test_end_fetches_the_oldest_page_and_paging_up_meets_the_head(
    make_server: Callable[..., Any],
) -> None:
    async with seeded_table(make_server, 1200, watch=False) as (_, pilot, table):
        table.pages.max_loaded = 3
        await pilot.press("end")
        await wait_for(
            pilot,
            lambda: table.cursor_session is not None,
            "the oldest page",
            lambda: loading_state(table),
        )
        assert table.cursor_row == 1199
        assert table.cursor_session.title == "Seeded session 0"  # type: ignore[union-attr]
        # One request for the far end: the newest-first walk stayed at its first page.
        assert len(table.pages.segments) == 1 and len(table.pages.tail) == 1

        def title_of(row: int) -> str:
            return f"Seeded session {1199 - row}"

        await check_screen(pilot, table, title_of)
        while table.cursor_row > 0:
            await pilot.press("pageup")
            await check_screen(pilot, table, title_of)
        assert table.pages.complete and table.row_count == 1200
        # And back down through segments evicted on the way.
        await pilot.press("end")
        await check_screen(pilot, table, title_of)
        assert table.cursor_session.title == "Seeded session 0"  # type: ignore[union-attr]


async def test_live_inserts_land_on_top_while_at_the_far_end(
    make_server: Callable[..., Any],
) -> None:
    async with seeded_table(make_server, 600) as (running, pilot, table):
        app = pilot.app
        assert isinstance(app, SessionScopeApp)
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_session is not None, "the oldest page")
        oldest = table.cursor_session
        assert oldest is not None and oldest.title == "Seeded session 0"
        scroll = table.scroll_y
        for n in range(3):
            create_session(running, f"Live {n}")
        await wait_for(pilot, lambda: table.row_count == 603, "three live inserts")
        # The cursor stays on its session, and the rows on screen stay where they were.
        assert table_of(app).cursor_session is not None
        assert table.cursor_session.id == oldest.id  # type: ignore[union-attr]
        assert table.cursor_row == 602 and table.scroll_y == scroll + 3
        # The scrollbar follows the new size (updated without a layout pass).
        assert table.vertical_scrollbar.window_virtual_size == table.virtual_size.height == 604

        def title_of(row: int) -> str:
            return f"Live {2 - row}" if row < 3 else f"Seeded session {602 - row}"

        await check_screen(pilot, table, title_of)
        await pilot.press("home")
        await check_screen(pilot, table, title_of)
        while table.cursor_row < table.row_count - 1:
            await pilot.press("pagedown")
            await check_screen(pilot, table, title_of)
        assert table.pages.complete and table.row_count == 603
