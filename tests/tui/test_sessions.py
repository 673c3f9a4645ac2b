"""The sessions screen against the reference server on loopback, driven through Pilot."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, Capability, WatchState, create_backend
from sessionscope.backends.native import NativeBackend
from sessionscope.models import OrgChange, SessionStatus
from sessionscope.server.seed import seed_sessions
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.sessions import SessionsScreen
from sessionscope.tui.state.session_pages import SortOrder
from sessionscope.tui.widgets.session_table import SessionTable

SIZE = (120, 36)
SEED_START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_app(url: str, api_key: str | None, **options: Any) -> SessionScopeApp:
    backend = create_backend(
        BackendConfig(
            url=url,
            api_key=api_key,
            timeout=5.0,
            options={"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2},
        )
    )
    return SessionScopeApp(backend, **options)


async def wait_for(
    pilot: Pilot[Any],
    condition: Callable[[], bool],
    what: str,
    state: Callable[[], str] | None = None,
) -> None:
    """Let the app run until ``condition`` holds; fail after a generous deadline."""
    deadline = time.monotonic() + 15
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f" ({state()})" if state else ""))
        await pilot.pause(0.02)


def table_of(app: SessionScopeApp) -> SessionTable:
    return app.sessions_screen.table


def visible_text(table: SessionTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def seeded(make_server: Callable[..., Any], count: int) -> Any:
    running = make_server()
    await seed_sessions(
        str(running.db_path), running.org, count, start=SEED_START, spacing=timedelta(minutes=1)
    )
    return running


@asynccontextmanager
async def seeded_table(
    make_server: Callable[..., Any], count: int, **options: Any
) -> AsyncIterator[tuple[Any, Pilot[Any], SessionTable]]:
    """A server holding ``count`` seeded sessions and the app on it, its first page loaded:
    (the running server, the pilot, the table)."""
    running = await seeded(make_server, count)
    app = make_app(running.url, running.api_key, **options)
    async with app.run_test(size=SIZE) as pilot:
        yield running, pilot, await started(pilot)


async def started(pilot: Pilot[Any]) -> SessionTable:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    await wait_for(pilot, lambda: table_of(app).pages.started, "the first page")
    return table_of(app)


def create_session(running: Any, title: str, **fields: Any) -> dict[str, Any]:
    with httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {running.api_key}"}
    ) as client:
        response = client.post("/v1/sessions", json={"title": title, **fields})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def propose_action(running: Any, session_id: str, tool: str) -> dict[str, Any]:
    with httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {running.api_key}"}
    ) as client:
        response = client.post(
            f"/v1/sessions/{session_id}/actions",
            json={"tool": tool, "preview": {"to": "a@example.com"}},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


async def test_startup_lists_newest_first(make_server: Callable[..., Any]) -> None:
    running = await seeded(make_server, 30)
    app = make_app(running.url, running.api_key)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, SessionsScreen)
        table = await started(pilot)
        assert table.row_count == 30
        lines = visible_text(table)
        assert "STATUS" in lines[0] and "PENDING" in lines[0]
        assert "Seeded session 29" in lines[1]
        assert "Seeded session 28" in lines[2]
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")


async def test_keys_filter_status_sort_refresh(make_server: Callable[..., Any]) -> None:
    running = await seeded(make_server, 30)
    app = make_app(running.url, running.api_key, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        screen = app.sessions_screen

        # `/` text filter: server-side search, applied on enter.
        await pilot.press("slash")
        await pilot.press(*"session 2", "enter")
        await wait_for(pilot, lambda: screen.text_filter == "session 2", "the filter")
        await wait_for(pilot, lambda: table.pages.started and table.row_count == 11, "matches")
        titles = {table.pages.get(i).title for i in range(table.row_count)}  # type: ignore[union-attr]
        assert all("session 2" in title for title in titles)
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.pages.started and table.row_count == 30, "all")

        # `s` cycles the status filter.
        await pilot.press("s")
        assert screen.status_filter is SessionStatus.ACTIVE
        await wait_for(pilot, lambda: table.pages.started, "active sessions")
        statuses = {table.pages.get(i).status for i in range(table.row_count)}  # type: ignore[union-attr]
        assert statuses == {SessionStatus.ACTIVE}
        for _ in range(8):
            await pilot.press("s")
        assert screen.status_filter is None
        await wait_for(pilot, lambda: table.pages.started and table.row_count == 30, "all")

        # `o` changes the order (and says so in the header).
        await pilot.press("o")
        assert table.sort is SortOrder.LAST_ACTIVITY
        await wait_for(pilot, lambda: table.pages.get(0) is not None, "sorted rows")
        assert "(by last activity)" in table.render_line(0).text
        activity = [table.pages.get(i).last_active_at for i in range(30)]  # type: ignore[union-attr]
        assert activity == sorted(activity, reverse=True)
        for _ in range(len(SortOrder) - 1):
            await pilot.press("o")
        assert table.sort is SortOrder.NEWEST

        # `r` refreshes: a session created meanwhile shows up (the live watch is off here).
        await wait_for(pilot, lambda: table.pages.started, "newest order")
        create_session(running, "Made after start")
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: table.pages.started and table.row_count == 31,
            "the refreshed list",
        )
        assert table.pages.get(0).title == "Made after start"  # type: ignore[union-attr]


async def test_enter_opens_session_and_a_opens_inbox_and_q_quits(
    make_server: Callable[..., Any],
) -> None:
    running = await seeded(make_server, 5)
    app = make_app(running.url, running.api_key)
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        await pilot.press("down")
        chosen = table.cursor_session
        assert chosen is not None and chosen.title == "Seeded session 3"
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "SessionScreen", "session")
        assert getattr(app.screen, "session_id", None) == chosen.id
        app.pop_screen()
        await wait_for(pilot, lambda: app.screen is app.sessions_screen, "back home")
        await pilot.press("a")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "InboxScreen", "the inbox")
        app.pop_screen()
        await wait_for(pilot, lambda: app.screen is app.sessions_screen, "back home")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "exit")


async def test_live_insert_keeps_cursor_on_the_same_session(
    make_server: Callable[..., Any],
) -> None:
    running = await seeded(make_server, 200)
    app = make_app(running.url, running.api_key)
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        # Before the operator moves, the cursor stays on the first row, on the newest session.
        create_session(running, "Newest")
        await wait_for(pilot, lambda: table.row_count == 201, "a live insert")
        assert table.cursor_row == 0 and table.cursor_session.title == "Newest"  # type: ignore[union-attr]
        for _ in range(5):
            await pilot.press("down")
        anchor = table.cursor_session
        assert anchor is not None and table.cursor_row == 5

        # Scrolled away from the top: the rows on screen must stay where they are too.
        await pilot.press("pagedown", "pagedown")
        anchor = table.cursor_session
        row, scroll = table.cursor_row, table.scroll_y
        assert anchor is not None and scroll > 0

        for n in range(3):
            create_session(running, f"Live {n}")
        await wait_for(pilot, lambda: table.row_count == 204, "three live inserts")
        assert table.cursor_session is not None and table.cursor_session.id == anchor.id
        assert table.cursor_row == row + 3
        assert table.scroll_y == scroll + 3
        assert table.pages.get(0).title == "Live 2"  # type: ignore[union-attr]


async def test_end_walks_pages_and_evicts_without_oldest_first(
    make_server: Callable[..., Any],
) -> None:
    running = await seeded(make_server, 1200)
    app = make_app(running.url, running.api_key, watch=False)
    # A platform that lists newest first only: the end is reached by walking every page.
    app.backend.capabilities = frozenset(Capability) - {Capability.OLDEST_FIRST}
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        table.pages.max_loaded = 3
        assert table.row_count == 1200  # the first page's total sizes the list
        await pilot.press("end")
        await wait_for(
            pilot,
            lambda: table.pages.complete,
            "the walk to the end",
            lambda: (
                f"{len(table.pages.segments)} segments, {table.pages.known_rows} rows, "
                f"error {table.load_error}, loading {table._loading}"
            ),
        )
        await wait_for(pilot, lambda: table.cursor_session is not None, "the last page")
        assert table.cursor_row == 1199
        assert table.cursor_session.title == "Seeded session 0"  # type: ignore[union-attr]
        assert "Seeded session 0" in "\n".join(visible_text(table))
        held = sum(1 for segment in table.pages.segments if segment.items is not None)
        assert held <= 4  # the LRU plus the pinned first segment
        # Back to the top: evicted pages are fetched again from their own cursors.
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor_session is not None, "the first page")
        assert table.cursor_session.title == "Seeded session 1199"  # type: ignore[union-attr]


async def test_end_on_a_server_that_ignores_order_walks_instead(
    make_server: Callable[..., Any],
) -> None:
    running = await seeded(make_server, 300)
    app = make_app(running.url, running.api_key, watch=False)
    backend = app.backend
    assert isinstance(backend, NativeBackend)

    async def drop_order(request: httpx.Request) -> None:
        # What a server older than ``order=oldest`` sees: it lists newest first.
        request.url = request.url.copy_remove_param("order")

    backend._http.client.event_hooks["request"].append(drop_order)
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        await pilot.press("end")
        await wait_for(pilot, lambda: table.pages.complete, "the walk to the end")
        await wait_for(pilot, lambda: table.cursor_session is not None, "the last page")
        assert table.cursor_row == 299
        # The oldest session at the bottom, not the newest page taken for the oldest one.
        assert table.cursor_session.title == "Seeded session 0"  # type: ignore[union-attr]
        assert not backend.supports(Capability.OLDEST_FIRST)
        assert table.load_error is None
        assert not app.sessions_screen.query_one("#sessions-message").display


async def test_read_only_disables_mutating_keys(make_server: Callable[..., Any]) -> None:
    running = await seeded(make_server, 3)
    app = make_app(running.url, running.api_key, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.sessions_screen
        assert screen.check_action("close_session", ()) is None
        assert screen.check_action("new_session", ()) is None
        await pilot.press("c")
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen
        header = " ".join(str(w.render()) for w in screen.query(".app-header--read-only"))
        assert "READ-ONLY" in header
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", "help")
        keys = app.screen._keys  # type: ignore[attr-defined]
        close = next(k for k in keys if k.binding_id == "sessions.close")
        assert close.note == "read-only" and not close.enabled


async def test_unreachable_server_says_so_and_retries(unused_port: int) -> None:
    app = make_app(f"http://127.0.0.1:{unused_port}", "whatever")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sessions_screen
        message = screen.query_one("#sessions-message")
        await wait_for(pilot, lambda: bool(message.display), "the error message")
        assert "Cannot reach" in str(message.render())
        assert f"127.0.0.1:{unused_port}" in str(message.render())
        assert "press r to retry" in str(message.render()).lower()
        await wait_for(pilot, lambda: app.connection_state is WatchState.OFFLINE, "offline")
        await pilot.press("r")
        await wait_for(pilot, lambda: bool(message.display), "the message again")
        assert app.is_running and app.return_code is None


async def test_wrong_key_says_so(server: Any) -> None:
    app = make_app(server.url, "not-the-key")
    async with app.run_test(size=SIZE) as pilot:
        message = app.sessions_screen.query_one("#sessions-message")
        await wait_for(pilot, lambda: bool(message.display), "the error message")
        text = str(message.render())
        assert "refused the API key" in text
        assert "not-the-key" not in text
        # The server answered: the header says the key was refused, not that it is offline.
        await wait_for(pilot, lambda: app.connection_state is WatchState.REFUSED, "refused")


HOSTILE = [
    "[bold]x",
    "[@click=app.quit]click me[/]",
    "ansi \x1b[2J\x1b[31mred",
    "ctl \x00\x07\x08 bell",
]


async def test_hostile_titles_render_literally(make_server: Callable[..., Any]) -> None:
    running = make_server()
    huge = "A" * 1_000_000
    for title in [huge, *HOSTILE]:
        create_session(running, title, agent_id="[red]agent")
    app = make_app(running.url, running.api_key)
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        lines = visible_text(table)
        body = "\n".join(lines)
        assert "[bold]x" in body
        assert "[@click=app.quit]click me[/]" in body
        assert "␛[2J␛[31mred" in body and "\x1b" not in body
        assert "ctl ␀␇␈ bell" in body
        assert "[red]agent" in body
        oldest = lines[5]  # the 1 MB title: cut to its cell with an ellipsis
        assert "AAAA" in oldest and "…" in oldest
        width = table.scrollable_content_region.width
        assert all(table.render_line(y).cell_length == width for y in range(8))
        # A click on the row must not run the title's "@click" action.
        await pilot.click(SessionTable, offset=(20, 2))
        await pilot.pause()
        assert app.is_running


async def test_pending_action_raises_a_toast(make_server: Callable[..., Any]) -> None:
    running = make_server()
    session = create_session(running, "[b]Refund[/b] for ACME")
    app = make_app(running.url, running.api_key)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        propose_action(running, session["id"], "send_email")
        await wait_for(pilot, lambda: bool(app._notifications), "the toast")
        note = next(iter(app._notifications))
        assert "[b]Refund[/b] for ACME" in note.message
        assert note.markup is False
        table = table_of(app)
        await wait_for(
            pilot,
            lambda: (
                (table.pages.get(0) is not None) and table.pages.get(0).pending_action_count == 1
            ),  # type: ignore[union-attr]
            "the pending count",
        )


async def test_a_pending_action_without_a_title_is_named_by_the_listed_row(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    session = create_session(running, "Listed title")
    app = make_app(running.url, running.api_key, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        # A platform whose change names the session only by id: the list's row has its title.
        app._announce_pending(OrgChange(id=1, kind="action.pending", session_id=session["id"]))
        app._announce_pending(OrgChange(id=2, kind="action.pending", session_id="ses_unlisted"))
        await wait_for(pilot, lambda: len(app._notifications) == 2, "two toasts")
        notes = [note.message for note in app._notifications]
        assert "Listed title" in notes[0]
        assert "ses_unlisted" in notes[1]


async def test_palette_lists_screens(make_server: Callable[..., Any]) -> None:
    running = await seeded(make_server, 3)
    app = make_app(running.url, running.api_key, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CommandPalette", "palette")
        await pilot.press(*"actions inbox")
        await pilot.pause(0.3)  # the palette debounces its search
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "InboxScreen", "the inbox")


async def test_changes_arriving_during_shutdown_are_dropped(
    make_server: Callable[..., Any],
) -> None:
    """Textual removes the screens' widgets before it stops the app's timers; a change flushed
    in between must not query the removed widgets (NoMatches killed the app at exit in CI)."""
    running = make_server()
    session = create_session(running, "Late change")
    app = make_app(running.url, running.api_key)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        change = OrgChange.model_validate(
            {
                "id": 10_000,
                "kind": "session.updated",
                "session_id": session["id"],
                "created_at": session["updated_at"],
                "session": {**session, "title": "Renamed while quitting"},
            }
        )
        # The first steps of App._shutdown: the app stops running, then the screens' widgets go.
        app._running = False
        await app.sessions_screen.query_one("#sessions-summary").remove()
        app._org_live.add(change)
        try:
            app._org_live.flush()
        finally:
            app._running = True  # so that run_test can shut the app down the normal way
