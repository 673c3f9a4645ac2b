"""Agent-controlled text is shown literally: markup, ANSI, control characters and huge lines."""

from __future__ import annotations

from typing import Any

from session_support import (
    SIZE,
    agent_client,
    create_action,
    create_session,
    make_app,
    post_event,
    screen_lines,
    wait_for,
)

from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.event_detail import EventDetailScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.widgets.timeline import Timeline

MARKUP = "[bold]x[/bold] [@click=app.quit]click[/] [link=https://evil.example]l[/link]"
ANSI = "\x1b[31mred\x1b[0m\x1b[2J\x1b]52;c;aGVsbG8=\x07"
CONTROLS = "nul\x00 bel\x07 bs\x08 del\x7f c1\x9b bidi\u202eevil"
HUGE = "A" * 1_000_000


def assert_layout_intact(lines: list[str]) -> None:
    width, height = SIZE
    assert len(lines) == height
    for line in lines:
        assert len(line) <= width, "a row spilled over the terminal's width"
        assert "\x1b" not in line and "\x07" not in line and "\x00" not in line
        assert "\u202e" not in line


async def test_hostile_text_renders_literally(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, f"title {MARKUP} {ANSI}")
        await post_event(client, session_id, "message.agent", {"content": f"m {MARKUP}"})
        await post_event(client, session_id, "message.user", {"content": f"a {ANSI} {CONTROLS}"})
        await post_event(
            client,
            session_id,
            "tool.started",
            {"tool": f"t{MARKUP}", "arguments": [{"name": "q", "value": ANSI}]},
        )
        huge = await post_event(client, session_id, "message.agent", {"content": HUGE})
        action = await create_action(
            client,
            session_id,
            tool=f"send {MARKUP}",
            preview={"to": ANSI, "subject": MARKUP, "body": f"{CONTROLS}\n{HUGE}"},
        )
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            app.open_session(session_id)
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, SessionScreen)
                    and bool(app.screen.query(Timeline))
                    and app.screen.query_one(Timeline).store.row_count >= 6
                    and "loading…" not in "\n".join(screen_lines(app))
                    and "title" in "\n".join(screen_lines(app))
                ),
                "the hostile session",
            )
            await pilot.pause()
            lines = screen_lines(app)
            text = "\n".join(lines)
            assert_layout_intact(lines)
            assert "[bold]x[/bold]" in text
            assert "[@click=app.quit]click[/]" in text
            assert "␛[31mred␛[0m␛[2J" in text
            assert "nul␀ bel␇ bs␈ del␡" in text
            assert "AAAA" in text
            assert app.is_running

            # The 1 MB message: its JSON is clipped, not drawn as a million characters.
            timeline = app.screen.query_one(Timeline)
            timeline.move_cursor(huge["sequence"] - 1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "detail")
            await pilot.pause()
            lines = screen_lines(app)
            assert_layout_intact(lines)
            assert huge["id"] in "\n".join(lines)
            await pilot.press("end")
            await pilot.pause()
            assert "more characters]" in "\n".join(screen_lines(app))
            await pilot.press("escape")

            app.open_action(session_id, action["id"])
            await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
            modal = app.screen
            assert isinstance(modal, ActionModal)
            await wait_for(pilot, lambda: modal.state is ModalState.READY, "ready")
            await pilot.pause()
            lines = screen_lines(app)
            text = "\n".join(lines)
            assert_layout_intact(lines)
            assert "send [bold]x[/bold]" in text
            assert "␛[31mred" in text
            assert "nul␀ bel␇" in text
            assert app.is_running
