"""The console shell: bindings, help, palette, header."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, WatchState, create_backend
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.commands import SessionScopeCommands
from sessionscope.tui.help import HelpScreen
from sessionscope.tui.screens.sessions import SessionsScreen
from sessionscope.tui.widgets.session_table import SessionTable
from sessionscope.tui.widgets.status import ConnectionIndicator

OWN_BINDING_HOLDERS = [SessionScopeApp, SessionsScreen, SessionTable, HelpScreen]


@pytest.mark.parametrize("holder", OWN_BINDING_HOLDERS, ids=lambda c: c.__name__)
def test_every_binding_has_an_id_and_a_description(holder: type) -> None:
    own = [b for b in holder.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
    assert own, f"{holder.__name__} declares no bindings"
    for binding in own:
        assert binding.id, f"{holder.__name__}: {binding.key} has no id"
        assert binding.description, f"{holder.__name__}: {binding.key} has no description"
        assert binding.tooltip, f"{holder.__name__}: {binding.key} has no tooltip"


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 15
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def make_app(server: Any) -> SessionScopeApp:
    return SessionScopeApp(
        create_backend(BackendConfig(url=server.url, api_key=server.api_key, timeout=5.0))
    )


async def test_header_shows_server_and_live_state(server: Any) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        await pilot.pause()
        header = app.screen.query_one(".app-header--server")
        assert str(header.render()) == app.backend.display_name
        indicator = app.screen.query_one(ConnectionIndicator)
        assert "live" in str(indicator.render())
        assert indicator.has_class("-live")


async def test_question_mark_lists_every_key(server: Any) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        ids = {item.binding_id for item in app.screen._keys}  # type: ignore[attr-defined]
        for expected in (
            "sessions.filter",
            "sessions.status",
            "sessions.sort",
            "sessions.refresh",
            "sessions.inbox",
            "sessions.open",
            "app.quit",
            "app.help",
        ):
            assert expected in ids
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), "back")


async def test_palette_provider_offers_screens_and_actions(server: Any) -> None:
    app = make_app(server)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        provider = SessionScopeCommands(app.screen)
        names = {name for name, _help, _call in provider._commands()}
        assert {"Sessions", "Actions inbox", "Refresh", "Keys", "Quit"} <= names
        assert "Show waiting sessions" in names
        hits = [hit async for hit in provider.search("inbox")]
        assert any("inbox" in str(hit.text or hit.match_display).lower() for hit in hits)
