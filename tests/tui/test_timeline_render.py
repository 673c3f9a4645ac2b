"""The timeline and its scrollbar finish their lines themselves (instead of through Textual's
styles cache), so that a followed live timeline repaints the rows it drew before from their
strips and what Textual caches on them. What they produce must be what the styles cache would
have produced, in every state a row can be drawn in."""

from __future__ import annotations

from typing import Any

from session_support import SIZE, agent_client, create_session, make_app, post_event, wait_for
from test_session_screen import open_session, visible_rows
from test_sessions_render import same_as_styles_cache

from sessionscope.tui.widgets.scrolling import StripScrollBar
from sessionscope.tui.widgets.timeline import Timeline


def check(timeline: Timeline) -> None:
    same_as_styles_cache(timeline)
    same_as_styles_cache(timeline.vertical_scrollbar)


async def test_timeline_and_scrollbar_lines_match_the_styles_cache(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Render")
        for n in range(60):
            kind = ("message.agent", "tool.started", "log", "error")[n % 4]
            await post_event(client, session_id, kind, {"content": f"row {n} " + "x" * (n * 3)})
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 61)
            assert isinstance(timeline.vertical_scrollbar, StripScrollBar)
            await wait_for(pilot, lambda: timeline.show_vertical_scrollbar, "a scrollbar")
            check(timeline)
            # Live rows while following: the view scrolls, old rows come from the line cache.
            for n in range(5):
                await post_event(client, session_id, "message.agent", {"content": f"live {n}"})
            await wait_for(
                pilot,
                lambda: any("live 4" in row for row in visible_rows(timeline)),
                "the live rows",
            )
            await pilot.pause()
            check(timeline)
            # The cursor row elsewhere, a search highlight, hidden rows shown, unfocused.
            await pilot.press("up", "up")
            await pilot.pause()
            check(timeline)
            timeline.search_term = "row 5"
            await pilot.pause()
            check(timeline)
            timeline.search_term = ""
            timeline.show_hidden = True
            await pilot.pause()
            check(timeline)
            timeline.blur()
            await pilot.pause()
            check(timeline)
