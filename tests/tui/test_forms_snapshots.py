"""Snapshot of the variables form over fixed data, showing an inline rule violation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from textual.app import App

from sessionscope.backends.base import Backend, Capability
from sessionscope.models import Session
from sessionscope.tui import clock
from sessionscope.tui.context import ConsoleContext
from sessionscope.tui.screens.variables import VariablesScreen
from sessionscope.tui.styles import stylesheet

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class FixedSessionBackend(Backend):
    name = "fixed"
    capabilities = frozenset({Capability.VARIABLES})

    @property
    def display_name(self) -> str:
        return "fixed"

    async def get_session(self, session_id: str) -> Session:
        return Session(
            id=session_id,
            title="invoice reminders",
            created_at=T0,
            updated_at=T0,
            context_variables={"REGION": "eu-west-1", "TIER": "gold", "MAX_RETRIES": "3"},
        )


class Host(App[None]):
    CSS_PATH: ClassVar = [stylesheet("app.tcss")]

    def __init__(self) -> None:
        super().__init__()
        self.console_context = ConsoleContext.create(self, FixedSessionBackend())

    def on_mount(self) -> None:
        self.push_screen(VariablesScreen("ses_variables_demo"))


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze(T0)
    yield
    clock.freeze(None)


def test_variables_form_with_a_violation(snap_compare: Any, frozen_clock: None) -> None:
    async def break_a_key(pilot: Any) -> None:
        screen = pilot.app.screen
        for _ in range(200):
            if isinstance(screen, VariablesScreen) and screen.loaded:
                break
            await pilot.pause(0.01)
        assert isinstance(screen, VariablesScreen) and screen.loaded
        screen.rows()[1].key_input.value = "tier-level"
        await pilot.pause()
        screen.rows()[1].key_input.focus()
        await pilot.pause()

    assert snap_compare(Host(), terminal_size=(120, 36), run_before=break_a_key)
