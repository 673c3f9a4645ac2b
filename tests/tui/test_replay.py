"""Replay waterfall: bar geometry, and a snapshot over fixed data (the real server stamps steps
with the wall clock, which a snapshot cannot use; the flow against the server is in
test_forms.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from textual.app import App

from sessionscope.backends.base import Backend, Capability
from sessionscope.models import Replay, ReplayStep
from sessionscope.tui import clock
from sessionscope.tui.context import ConsoleContext
from sessionscope.tui.screens.replay import ReplayScreen, waterfall_geometry
from sessionscope.tui.styles import stylesheet

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def step(index: int, start_ms: int, duration_ms: int, action: str, **io: Any) -> ReplayStep:
    return ReplayStep(
        index=index,
        timestamp=T0 + timedelta(milliseconds=start_ms),
        action=action,
        duration_ms=duration_ms,
        **io,
    )


STEPS = [
    step(0, 0, 0, "message.user", input="Find last month's unpaid invoices [bold]now[/]"),
    step(
        1,
        200,
        1800,
        "search_invoices",
        input={"status": "unpaid", "month": "2024-12"},
        output=[{"id": "INV-7", "amount": 120.5}],
    ),
    step(2, 2100, 600, "fetch_customer", input={"id": "C-3"}, output={"name": "Acme\x1b[31m"}),
    step(3, 2800, 4000, "send_email", input={"to": "ops@example.com"}, output="queued"),
    step(4, 7000, 0, "message.agent", output="Sent a reminder for INV-7."),
]


class FixedReplayBackend(Backend):
    name = "fixed"
    capabilities = frozenset({Capability.REPLAY})

    @property
    def display_name(self) -> str:
        return "fixed"

    async def replay(self, session_id: str) -> Replay:
        return Replay(session_id=session_id, steps=STEPS)


class Host(App[None]):
    CSS_PATH: ClassVar = [stylesheet("app.tcss")]

    def __init__(self) -> None:
        super().__init__()
        self.console_context = ConsoleContext.create(self, FixedReplayBackend())

    def on_mount(self) -> None:
        self.push_screen(ReplayScreen("ses_replay_demo"))


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze(T0)
    yield
    clock.freeze(None)


def test_bars_are_offset_by_start_and_proportional_to_duration() -> None:
    geometry = waterfall_geometry(STEPS, 70)  # the session spans 7000 ms: 100 ms per cell
    assert geometry[1] == (2, 18)
    assert geometry[2] == (21, 6)
    assert geometry[3] == (28, 40)
    assert geometry[0] == (0, 1) and geometry[4] == (69, 1), "instant steps still show"
    assert all(offset + length <= 70 for offset, length in geometry)


def test_geometry_of_nothing() -> None:
    assert waterfall_geometry([], 40) == []
    assert waterfall_geometry([step(0, 0, 0, "x")], 40) == [(0, 1)]


async def test_selecting_a_step_shows_its_input_and_output() -> None:
    app = Host()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await pilot.press("down")
        await pilot.pause()
        detail = str(screen.query_one("#replay-detail-text").render())
        assert '"status": "unpaid"' in detail and '"INV-7"' in detail
        await pilot.press("down")
        await pilot.pause()
        detail = str(screen.query_one("#replay-detail-text").render())
        assert "Acme" in detail and "\x1b" not in detail, "no raw escape reaches the terminal"


def test_snapshot(snap_compare: Any, frozen_clock: None) -> None:
    async def select_a_tool_step(pilot: Any) -> None:
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(Host(), terminal_size=(120, 36), run_before=select_a_tool_step)
