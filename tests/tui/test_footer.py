"""AppFooter: the screen's keys, rebuilt once per change of what it shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from sessionscope.tui.widgets.footer import AppFooter


class KeysScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "explode", "Explode"),
        Binding("f3", "yawn", "Yawn"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.explode_enabled = True

    def compose(self) -> ComposeResult:
        yield Input(id="first")
        yield Input(id="second")
        yield AppFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "explode":
            return True if self.explode_enabled else None
        return True


class KeysApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.keys_screen = KeysScreen()

    def on_mount(self) -> None:
        self.push_screen(self.keys_screen)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def shown_keys(footer: AppFooter) -> dict[str, bool]:
    """Description -> enabled, for every key in the footer."""
    return {key.description: not key.has_class("-disabled") for key in footer.query(FooterKey)}


async def test_footer_shows_the_screen_keys_and_follows_check_action() -> None:
    app = KeysApp()
    async with app.run_test(size=(100, 10)) as pilot:
        footer = app.keys_screen.query_one(AppFooter)
        await wait_for(pilot, lambda: "Explode" in shown_keys(footer), "the screen's keys")
        assert shown_keys(footer)["Explode"] is True
        assert "Yawn" in shown_keys(footer)
        # Keys bound to a non-compact footer are not compact (the palette key has its own style).
        keys = [key for key in footer.query(FooterKey) if not key.has_class("-command-palette")]
        assert keys and not any(key.has_class("-compact") for key in keys)

        app.keys_screen.explode_enabled = False
        app.keys_screen.refresh_bindings()
        await wait_for(pilot, lambda: shown_keys(footer).get("Explode") is False, "disabled key")


async def test_many_binding_refreshes_in_one_tick_rebuild_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = KeysApp()
    async with app.run_test(size=(100, 10)) as pilot:
        footer = app.keys_screen.query_one(AppFooter)
        await wait_for(pilot, lambda: "Explode" in shown_keys(footer), "the screen's keys")
        rebuilds = 0
        recompose = AppFooter.recompose

        async def counting_recompose(self: AppFooter) -> None:
            nonlocal rebuilds
            rebuilds += 1
            await recompose(self)

        monkeypatch.setattr(AppFooter, "recompose", counting_recompose)

        # Focus moves (each publishes a bindings refresh) that change nothing the footer shows.
        app.keys_screen.query_one("#first", Input).focus()
        app.keys_screen.query_one("#second", Input).focus()
        app.keys_screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert rebuilds == 0

        app.keys_screen.explode_enabled = False
        for _ in range(5):
            app.keys_screen.refresh_bindings()
        await wait_for(pilot, lambda: shown_keys(footer).get("Explode") is False, "disabled key")
        await pilot.pause()
        assert rebuilds == 1
