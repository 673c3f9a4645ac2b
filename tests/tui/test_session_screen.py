"""The session screen against the reference server: header, live timeline, keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from session_support import (
    SIZE,
    agent_client,
    create_action,
    create_session,
    make_app,
    post_event,
    post_messages,
    screen_text,
    wait_for,
)
from textual.pilot import Pilot

from sessionscope.server.seed import seed_events
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.action import ActionModal
from sessionscope.tui.screens.event_detail import EventDetailScreen
from sessionscope.tui.screens.session import SessionScreen, TypeFilterModal
from sessionscope.tui.state.event_store import DEFAULT_MAX_PAGES, FilteredStore
from sessionscope.tui.widgets.timeline import Timeline


def timeline_of(app: SessionScopeApp) -> Timeline:
    screen = app.screen
    assert isinstance(screen, SessionScreen), type(screen).__name__
    return screen.timeline


def visible_rows(timeline: Timeline) -> list[str]:
    return [timeline.render_line(y).text for y in range(timeline.size.height)]


async def open_session(pilot: Pilot[Any], session_id: str, rows: int) -> Timeline:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(session_id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SessionScreen) and bool(app.screen.query(Timeline)),
        "the session screen",
    )
    timeline = timeline_of(app)
    await wait_for(
        pilot,
        lambda: (
            timeline.store.row_count >= rows and "loading…" not in "".join(visible_rows(timeline))
        ),
        f"{rows} timeline rows",
    )
    return timeline


async def test_open_session_shows_header_and_events(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(
            client, "Refund desk", agent_id="agent-7", model_id="model-x"
        )
        await post_messages(client, session_id, 5, "hello")
        await create_action(client, session_id, tool="send_email")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 7)
            screen = app.screen
            assert isinstance(screen, SessionScreen)
            await wait_for(pilot, lambda: "pending 1" in screen_text(app), "the pending action")
            text = screen_text(app)
            assert "Refund desk" in text
            assert "agent-7" in text and "model-x" in text
            assert "pending 1" in text
            assert "send_email" in text
            rows = visible_rows(timeline)
            assert any("message.agent" in row and "hello 4" in row for row in rows)
            assert any("action.pending" in row for row in rows)
            # p then enter on the pending action opens the modal.
            await pilot.press("p", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the action modal")


async def test_follow_live_events_and_toggle_follow(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Live")
        await post_messages(client, session_id, 3, "before")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 4)
            assert timeline.follow
            await post_messages(client, session_id, 40, "live")
            await wait_for(
                pilot,
                lambda: any("live 39" in row for row in visible_rows(timeline)),
                "the newest live event on screen",
            )
            # session.created is sequence 1, so 44 rows.
            assert timeline.cursor_row == timeline.store.row_count - 1 == 43
            # Rows added below a scrolling view grow the scrollbar without a layout pass.
            assert timeline.virtual_size.height == 44
            assert timeline.vertical_scrollbar.window_virtual_size == 44
            assert timeline.scroll_offset.y == 44 - timeline.scrollable_content_region.height

            await pilot.press("f")
            assert not timeline.follow
            await pilot.press("home")
            assert timeline.cursor_row == 0
            await post_messages(client, session_id, 5, "paused")
            await wait_for(pilot, lambda: timeline.store.row_count == 49, "events while paused")
            assert timeline.cursor_row == 0
            assert any("before 0" in row for row in visible_rows(timeline))
            assert "paused (f follows)" in screen_text(app)

            await pilot.press("f")
            assert timeline.follow
            await wait_for(
                pilot,
                lambda: any("paused 4" in row for row in visible_rows(timeline)),
                "the tail after following again",
            )
            assert timeline.cursor_row == 48


async def test_enter_opens_json_and_y_copies(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Detail")
        event = await post_event(
            client,
            session_id,
            "tool.started",
            {
                "tool": "db.query",
                "arguments": [
                    {"name": "sql", "value": "select 1"},
                    {"name": "password", "value": "hunter2", "secret": True},
                ],
            },
        )
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 2)
            assert "hunter2" not in "".join(visible_rows(timeline))
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "detail")
            await pilot.pause()
            text = screen_text(app)
            assert event["id"] in text
            assert '"db.query"' in text
            assert "hunter2" not in text, "secrets are masked until revealed"
            await pilot.press("y")
            assert event["id"] in app.clipboard
            assert "hunter2" not in app.clipboard
            await pilot.press("s")
            await pilot.pause()
            assert "hunter2" in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "back")


async def test_search_and_type_filter(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Search")
        await post_messages(client, session_id, 30, "noise")
        await post_event(client, session_id, "tool.started", {"tool": "needle-tool"})
        await post_messages(client, session_id, 30, "more noise")
        await post_event(client, session_id, "tool.started", {"tool": "second-needle"})
        await post_messages(client, session_id, 5, "tail")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 68)
            await pilot.press("home")
            await pilot.press("/")
            await pilot.press(*"needle")
            await pilot.press("enter")
            await wait_for(pilot, lambda: timeline.cursor_row == 31, "the first match")
            await pilot.press("n")
            await wait_for(pilot, lambda: timeline.cursor_row == 62, "the next match")
            await pilot.press("N")
            await wait_for(pilot, lambda: timeline.cursor_row == 31, "the previous match")

            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, TypeFilterModal), "type picker")
            picker = app.screen
            assert isinstance(picker, TypeFilterModal)
            options = picker.query_one("#type-filter-options")
            index = options.get_option_index("tool.started")  # type: ignore[attr-defined]
            options.highlighted = index  # type: ignore[attr-defined]
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "back")
            await wait_for(
                pilot,
                lambda: (
                    isinstance(timeline.store, FilteredStore) and not timeline.store.wants_more()
                ),
                "the filtered rows",
            )
            assert timeline.store.row_count == 2
            rows = [row for row in visible_rows(timeline) if row.strip()]
            assert len(rows) == 2 and all("tool.started" in row for row in rows)
            # Live events that match join the filtered view; others do not.
            await post_event(client, session_id, "tool.started", {"tool": "third"})
            await post_messages(client, session_id, 2, "ignored")
            await wait_for(pilot, lambda: timeline.store.row_count == 3, "the live match")

            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, TypeFilterModal), "type picker")
            await pilot.press("home", "enter")
            await wait_for(
                pilot, lambda: not isinstance(timeline.store, FilteredStore), "all types again"
            )
            await wait_for(pilot, lambda: timeline.store.row_count == 71, "every row")


async def test_hidden_events_are_collapsed_until_toggled(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Hidden")
        await post_messages(client, session_id, 2, "visible")
        secret = await post_event(client, session_id, "message.agent", {"content": "hide me"})
        response = await client.post(f"/sessions/{session_id}/events/{secret['id']}/hide")
        response.raise_for_status()
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 4)
            row = next(r for r in visible_rows(timeline) if f" {secret['sequence']}  " in r)
            assert "hidden event" in row and "hide me" not in row
            await pilot.press("h")
            await pilot.pause()
            row = next(r for r in visible_rows(timeline) if f" {secret['sequence']}  " in r)
            assert "hide me" in row and "[hidden" in row


async def test_large_session_is_windowed(make_server: Callable[..., Any]) -> None:
    running = make_server()
    async with agent_client(running) as client:
        session_id = await create_session(client, "Big")
    await seed_events(str(running.db_path), running.org, session_id, 50_000, batch_size=10_000)
    app = make_app(running)
    async with app.run_test(size=SIZE) as pilot:
        timeline = await open_session(pilot, session_id, 50_001)
        assert timeline.cursor_row == 50_000
        assert timeline.virtual_size.height == 50_001
        assert any("message 49999" in row for row in visible_rows(timeline))
        await pilot.press("g")
        await wait_for(pilot, lambda: "message 0 " in visible_rows(timeline)[1], "the first event")
        assert not timeline.follow
        timeline.move_cursor(25_000)
        await wait_for(
            pilot,
            lambda: any("message 24999 " in row for row in visible_rows(timeline)),
            "the middle",
        )
        await pilot.press("G")
        await wait_for(
            pilot,
            lambda: any("message 49999" in row for row in visible_rows(timeline)),
            "the last event",
        )
        # Only the windows on screen were fetched: a handful of pages, never the session.
        assert timeline.store.cached_pages() <= 6 <= DEFAULT_MAX_PAGES
