"""Console-wide consistency: the header on every full screen, org-stream resets, the inbox on the
app's org stream, the action modal's outcome from live events, palette commands per screen, the
sessions rate column. Everything against the reference server on loopback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from session_support import (
    SIZE,
    agent_client,
    create_action,
    create_session,
    make_app,
    post_messages,
    wait_for,
)
from textual.command import CommandList, CommandPalette
from textual.screen import Screen
from textual.widgets import Button, Static

from sessionscope.backends import WatchState
from sessionscope.models import Event, EventType, ToolCallArgument
from sessionscope.server.store import org_channel
from sessionscope.tui import clock, event_summary
from sessionscope.tui.commands import SessionScopeCommands
from sessionscope.tui.screens import action as action_module
from sessionscope.tui.screens import inbox as inbox_module
from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.event_detail import EventDetailScreen
from sessionscope.tui.screens.inbox import InboxScreen
from sessionscope.tui.screens.replay import ReplayScreen
from sessionscope.tui.screens.session import NOT_TIMELINE_TYPES, SessionScreen
from sessionscope.tui.session_rates import SPARK_BLOCKS, SessionRates, sparkline
from sessionscope.tui.widgets.rate_column import RateColumn
from sessionscope.tui.widgets.status import AppHeader, ConnectionIndicator
from sessionscope.tui.widgets.timeline import Timeline
from sessionscope.tui.widgets.tool_calls import argument_text


@pytest.fixture(autouse=True)
def _unfrozen_clock() -> Any:
    yield
    clock.freeze(None)


def header_of(screen: Screen[Any]) -> tuple[str, str]:
    """(server name, connection label) as the screen's own header shows them."""
    header = screen.query_one(AppHeader)
    server = str(header.query_one(".app-header--server").render())
    indicator = str(header.query_one(ConnectionIndicator).render())
    return server, indicator


async def test_every_full_screen_shows_server_and_connection(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Header everywhere")
        await post_messages(client, session_id, 2, "hello")
    app = make_app(server)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        name = app.backend.display_name

        def shows_header() -> bool:
            try:
                server_name, indicator = header_of(app.screen)
            except Exception:
                return False
            return server_name == name and "live" in indicator

        assert shows_header()  # the sessions screen
        app.open_session(session_id)
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the session")
        await wait_for(pilot, shows_header, "the session screen's header")
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        timeline = screen.query_one(Timeline)
        await wait_for(pilot, lambda: timeline.event_at_cursor() is not None, "an event")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "event detail")
        await wait_for(pilot, shows_header, "the event detail's header")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back on the session")
        app.push_screen(ReplayScreen(session_id))
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "replay")
        await wait_for(pilot, shows_header, "the replay's header")
        await pilot.press("escape")
        app.open_inbox()
        await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
        await wait_for(pilot, shows_header, "the inbox's header")
        # The indicator follows the app's state on whichever screen is showing.
        app.connection_state = WatchState.RECONNECTING
        await pilot.pause()
        assert "reconnecting" in header_of(app.screen)[1]


def test_visibility_and_reset_kinds_are_event_types() -> None:
    """The TUI reads the bookkeeping kinds from ``EventType``, the one list of event names."""
    assert EventType.STREAM_RESET == "stream.reset"
    deleted = Event(
        id="evt_2",
        session_id="ses_1",
        sequence=9,
        type=EventType.EVENT_DELETED,
        payload={"event_id": "evt_1", "sequence": 4},
    )
    hidden = deleted.model_copy(update={"type": "event.hidden"})
    unhidden = deleted.model_copy(update={"type": EventType.EVENT_UNHIDDEN.value})
    assert event_summary.visibility_change(deleted) == (4, "evt_1", None)
    assert event_summary.visibility_change(hidden) == (4, "evt_1", True)
    assert event_summary.visibility_change(unhidden) == (4, "evt_1", False)
    # None of them (nor the org stream's reset) is offered by the timeline's type filter.
    assert EventType.STREAM_RESET in NOT_TIMELINE_TYPES
    assert event_summary.VISIBILITY_TYPES <= NOT_TIMELINE_TYPES


async def test_inbox_follows_the_apps_org_stream(
    make_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the timer fallback, only the org stream can bring the new action in.
    monkeypatch.setattr(inbox_module, "FALLBACK_REFRESH_SECONDS", 3600.0)
    running = make_server()
    broker = running.app.state.broker
    async with agent_client(running) as client:
        session_id = await create_session(client, "Inbox stream")
        app = make_app(running)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
            app.open_inbox()
            await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
            inbox = app.screen
            assert isinstance(inbox, InboxScreen)
            await wait_for(pilot, lambda: inbox.loads > 0, "the first fetch")
            action = await create_action(client, session_id, tool="stream_tool")
            await wait_for(
                pilot, lambda: [a.id for a in inbox.actions] == [action["id"]], "the new action"
            )
            # One organisation stream for the whole console.
            assert broker.subscriber_count(org_channel(running.org)) == 1


def _pruned_everything(db_path: Any, org: str) -> bool:
    """The server's retention dropped every org change (the floor is above all of them)."""
    with sqlite3.connect(db_path, timeout=5) as conn:
        left = conn.execute("SELECT count(*) FROM org_changes WHERE org = ?", (org,)).fetchone()
        floor = conn.execute(
            "SELECT change_id FROM org_stream_floor WHERE org = ?", (org,)
        ).fetchone()
    return left[0] == 0 and floor is not None and floor[0] > 0


async def test_stream_reset_reloads_sessions_and_inbox(
    make_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "FALLBACK_REFRESH_SECONDS", 3600.0)
    running = make_server(org_change_retention=0.3)
    async with agent_client(running) as client:
        app = make_app(running)
        async with app.run_test(size=SIZE) as pilot:
            table = app.sessions_screen.table
            await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
            seen = await create_session(client, "Seen live")
            # Listed through the live watch (the first page was taken before it existed).
            await wait_for(
                pilot, lambda: table.pages.index_of(seen) is not None, "the change shown"
            )
            app.open_inbox()
            await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
            inbox = app.screen
            assert isinstance(inbox, InboxScreen)
            await wait_for(pilot, lambda: inbox.loads > 0, "the first fetch")

            # The console goes away; meanwhile things happen and the server prunes them.
            app.workers.cancel_group(app, "org-watch")
            await wait_for(
                pilot,
                lambda: not [w for w in app.workers if w.group == "org-watch" and w.is_running],
                "the watch to stop",
            )
            away = await create_session(client, "Made while away")
            action = await create_action(client, away, tool="away_tool")
            await wait_for(
                pilot, lambda: _pruned_everything(running.db_path, running.org), "pruning"
            )

            # It resumes from its last position, before the server's window: stream.reset.
            app.watch_org_changes()
            await wait_for(
                pilot,
                lambda: any(s.id == away for s in table.pages.loaded()),
                "the sessions list to reload",
            )
            await wait_for(
                pilot, lambda: [a.id for a in inbox.actions] == [action["id"]], "the inbox"
            )


def test_argument_text_is_public() -> None:
    assert argument_text(ToolCallArgument(name="to", value="ops@example.com")) == (
        "ops@example.com"
    )
    assert argument_text(ToolCallArgument(name="n", value={"a": [1, "é"]})) == '{"a": [1, "é"]}'


async def test_action_outcome_arrives_live_and_buttons_look_inert(
    make_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polling while live is only a safety net: make it never fire, so the outcome must come
    # from the organisation stream; the server takes a while to "run" the action.
    monkeypatch.setattr(action_module, "LIVE_OUTCOME_POLL_SECONDS", 3600.0)
    running = make_server(action_completion_delay=1.0)
    async with agent_client(running) as client:
        session_id = await create_session(client, "Live outcome")
        action = await create_action(client, session_id, tool="send_email", destructive=True)
        app = make_app(running)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
            app.open_action(session_id, action["id"])
            await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
            modal = app.screen
            assert isinstance(modal, ActionModal)
            await wait_for(pilot, lambda: modal.state is ModalState.READY, "ready")
            confirm = modal.query_one("#action-confirm", Button)
            cancel = modal.query_one("#action-cancel", Button)
            active_look = confirm.styles.background
            await pilot.press("y")
            await pilot.press(*"send_email", "enter")  # destructive: the name typed
            await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the outcome")
            assert "Completed" in str(modal.query_one("#action-status", Static).render())
            await pilot.pause()
            assert confirm.disabled and cancel.disabled
            # Inert and looking it: no longer the destructive colour, same as the other one.
            assert confirm.styles.background != active_look
            assert confirm.styles.background == cancel.styles.background
            assert confirm.styles.color == cancel.styles.color


async def test_palette_offers_session_commands_on_a_session_screen(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Palette target")
    app = make_app(server)
    async with app.run_test(size=SIZE) as pilot:
        sessions_screen = app.screen
        assert not SessionScopeCommands(sessions_screen)._session_commands()
        app.open_session(session_id)
        await wait_for(pilot, lambda: getattr(app.screen, "session", None) is not None, "loaded")
        screen = app.screen
        names = {name for name, _help, _call in SessionScopeCommands(screen)._commands()}
        assert {
            "Session: send a message",
            "Session: close",
            "Session: delete",
            "Session: replay",
            "Session: export",
            "Session: artifacts tab",
        } <= names
        # Through the real palette: ctrl+p, type, enter.
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"session replay")
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        await wait_for(
            pilot,
            lambda: palette.query_one(CommandList).option_count > 0,
            "the palette's hits",
        )
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay")


async def test_palette_leaves_out_what_read_only_refuses(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Read-only palette")
    app = make_app(server, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session(session_id)
        await wait_for(pilot, lambda: getattr(app.screen, "session", None) is not None, "loaded")
        names = {name for name, _help, _call in SessionScopeCommands(app.screen)._commands()}
        assert "Session: replay" in names and "Session: export" in names
        assert not {"Session: send a message", "Session: close", "Session: delete"} & names


def test_rates_bucket_the_differences_between_samples() -> None:
    rates = SessionRates(buckets=4, bucket_seconds=10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rates.observe("s", 100, start)
    rates.observe("s", 104, start + timedelta(seconds=12))
    rates.observe("s", 104, start + timedelta(seconds=15))  # no change: nothing recorded
    rates.observe("s", 120, start + timedelta(seconds=38))
    assert rates.series("s", start + timedelta(seconds=40)) == [0, 4, 0, 16]
    assert sparkline([0, 4, 0, 16]) == " ▃ █"
    rates.forget_quiet(start + timedelta(seconds=200))
    assert not rates.knows("s")


async def test_rate_column_is_opt_in_and_shows_live_activity(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    async with agent_client(running) as client:
        busy = await create_session(client, "Busy session")
        app = make_app(running)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.sessions_screen
            await wait_for(pilot, lambda: screen.table.pages.started, "the first page")
            await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
            column = screen.query_one(RateColumn)
            assert not column.display
            await pilot.press("R")
            assert column.display
            await pilot.pause()
            assert column.render_line(0).text.strip() == "RATE"
            row = screen.table.pages.index_of(busy)
            assert row is not None
            await post_messages(client, busy, 5, "tick")

            def drawn() -> str:
                return column.render_line(row + 1 - round(screen.table.scroll_y)).text

            await wait_for(pilot, lambda: any(b in drawn() for b in SPARK_BLOCKS), "a sparkline")
            assert sum(screen.rates.series(busy, clock.now())) > 0
            await pilot.press("R")
            assert not column.display
