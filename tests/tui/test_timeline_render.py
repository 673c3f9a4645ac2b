"""The timeline and its scrollbar finish their lines themselves (instead of through Textual's
styles cache), so that a followed live timeline repaints the rows it drew before from their
strips and what Textual caches on them. What they produce must be what the styles cache would
have produced, in every state a row can be drawn in."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from session_support import SIZE, agent_client, create_session, make_app, post_event, wait_for
from test_session_screen import open_session, visible_rows
from test_sessions_render import same_as_styles_cache

from sessionscope.tui.widgets.scrolling import StripScrollBar
from sessionscope.tui.widgets.timeline import Timeline, _fit


def check(timeline: Timeline) -> None:
    same_as_styles_cache(timeline)
    same_as_styles_cache(timeline.vertical_scrollbar)


async def test_timeline_and_scrollbar_lines_match_the_styles_cache(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Render")
        for n in range(60):
            kind = ("message.agent", "tool.started", "log", "error")[n % 4]
            # Long rows, some beyond Latin ("⏎" for a newline, wide CJK), are cut to the view.
            tail = ("x", "line\nbreak ", "宽字符", "é")[n % 4] * (n * 2)
            await post_event(client, session_id, kind, {"content": f"row {n} {tail}"})
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


def test_fit_cuts_as_text_truncate_does() -> None:
    samples = [
        "plain ascii " * 20,
        "tool → result ⏎ next line " * 8,
        "宽字符" * 60,
        "a宽" * 70,
        "e\u0301" * 150,  # combining accents: more characters than cells
        "x" * 69 + "宽" + "y" * 100,  # a wide character across the cut
        "👩\u200d💻 ok " * 30,  # zero-width joiners
        "✔\ufe0f done " * 30,  # variation selectors
        "short →",
        "",
    ]
    for text in samples:
        for room in (2, 10, 69, 70, 71, 120):
            expected = Text(text, end="")
            expected.truncate(room, overflow="ellipsis")
            cut, cells = _fit(text, room)
            assert (cut, cells) == (expected.plain, expected.cell_len), (text, room)
