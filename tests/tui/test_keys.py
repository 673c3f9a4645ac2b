"""The key table (``tui/keys.py``): every binding comes from it once; capability gating hides a key
from the footer and lists it in ``?`` as not offered; read-only keys stay in the footer and say
why when pressed; the profile file's ``[keymap]`` remaps keys by binding id."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from session_support import SIZE, agent_client, create_session, make_app, wait_for
from textual.pilot import Pilot
from textual.widgets._footer import FooterKey

from sessionscope.backends import Capability
from sessionscope.config import ConfigError, load_profiles
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.help import collect_keys
from sessionscope.tui.keys import KEYS, KEYS_BY_ID, MUTATING_BINDING_IDS
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.screens.sessions import SessionsScreen
from sessionscope.tui.widgets.session_table import SessionTable
from sessionscope.tui.widgets.timeline import Timeline


def test_every_binding_id_is_in_the_table_once() -> None:
    ids = Counter(key.id for keys in KEYS.values() for key in keys)
    assert [name for name, count in ids.items() if count > 1] == []
    assert set(KEYS_BY_ID) == set(ids)
    for holder, owner in (
        (SessionScopeApp, "app"),
        (SessionsScreen, "sessions"),
        (SessionTable, "session_table"),
        (SessionScreen, "session"),
        (Timeline, "timeline"),
    ):
        assert [binding.id for binding in holder.BINDINGS] == [  # type: ignore[union-attr]
            key.id for key in KEYS[owner]
        ]
    assert {"session.message", "sessions.close", "action.confirm"} <= MUTATING_BINDING_IDS
    assert "session.replay" not in MUTATING_BINDING_IDS


def footer_keys(app: SessionScopeApp) -> set[str]:
    return {key.key for key in app.screen.query(FooterKey)}


async def open_session(pilot: Pilot[Any], session_id: str) -> SessionScreen:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(session_id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SessionScreen) and app.screen.session is not None,
        "the session screen",
    )
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    return screen


async def test_a_key_the_backend_cannot_serve_is_not_in_the_footer(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Not offered")
    app = make_app(server)
    app.backend.capabilities = frozenset(Capability) - {Capability.MESSAGES}
    async with app.run_test(size=SIZE) as pilot:
        await open_session(pilot, session_id)
        await wait_for(pilot, lambda: "f" in footer_keys(app), "the footer")
        assert "m" not in footer_keys(app)
        note = {item.binding_id: item.note for item in collect_keys(app)}["session.message"]
        assert note == "not offered by native"


async def test_a_read_only_key_stays_in_the_footer_and_says_why_when_pressed(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Read-only")
    app = make_app(server, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, session_id)
        await wait_for(pilot, lambda: "m" in footer_keys(app), "the footer")
        await pilot.press("m")
        await wait_for(pilot, lambda: bool(app._notifications), "a flash line")
        (notice,) = list(app._notifications)
        assert notice.message.startswith("Message: Read-only mode")
        assert app.screen is screen


async def test_a_keymap_moves_a_key(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Remapped")
    app = make_app(server, keymap={"session.follow": "F", "no.such_binding": "z"})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, session_id)
        await wait_for(pilot, lambda: "F" in footer_keys(app), "the remapped key in the footer")
        assert "f" not in footer_keys(app)
        following = screen.timeline.follow
        await pilot.press("F")
        await wait_for(pilot, lambda: screen.timeline.follow is not following, "follow toggled")
        messages = [notice.message for notice in app._notifications]
        assert any("no.such_binding" in message for message in messages)


def test_the_profile_file_keymap(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[keymap]\n"session.follow" = "F"\n', encoding="utf-8")
    assert load_profiles(path).keymap == {"session.follow": "F"}
    path.write_text('[keymap]\n"session.follow" = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="keymap"):
        load_profiles(path)
