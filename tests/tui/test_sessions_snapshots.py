"""SVG snapshots of the sessions screen, dark and light, with a frozen clock and seeded data.

Update after an intended change with ``uv run pytest tests/tui/test_sessions_snapshots.py
--snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, WatchState
from sessionscope.backends.native import NativeBackend
from sessionscope.server.seed import seed_sessions
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.widgets.session_table import (
    COLUMNS,
    COMFORTABLE_TITLE,
    MIN_AGENT,
    column_widths,
)

SEED_START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = SEED_START + timedelta(hours=2)


class FixedNameBackend(NativeBackend):
    """The real client; only the header's server name is fixed (the port changes per run)."""

    @property
    def display_name(self) -> str:
        return "snapshot-server:8765"


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze(NOW)
    yield
    clock.freeze(None)


@pytest.fixture
def seeded_server(make_server: Callable[..., Any]) -> Any:
    running = make_server()
    asyncio.run(
        seed_sessions(
            str(running.db_path),
            running.org,
            40,
            start=SEED_START,
            spacing=timedelta(minutes=3),
            title_prefix="Nightly report",
        )
    )
    return running


def make_app(running: Any, **options: Any) -> SessionScopeApp:
    backend = FixedNameBackend(BackendConfig(url=running.url, api_key=running.api_key))
    return SessionScopeApp(backend, **options)


def ready(theme: str, presses: tuple[str, ...] = ()) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, SessionScopeApp)
        app.theme = theme
        deadline = time.monotonic() + 15
        table = app.sessions_screen.table
        while not (
            table.pages.started
            and app.connection_state is WatchState.LIVE
            and all(table.pages.get(row) is not None for row in range(30))
        ):
            assert time.monotonic() < deadline, "the sessions screen never settled"
            await pilot.pause(0.02)
        for key in presses:
            await pilot.press(key)
        # The organisation watch runs forever; every other worker must be done.
        finite = [w for w in pilot.app.workers if w.group != "org-watch"]
        if finite:  # an empty list would mean "every worker" to wait_for_complete
            await pilot.app.workers.wait_for_complete(finite)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_sessions_screen(
    snap_compare: Any, seeded_server: Any, frozen_clock: None, theme: str
) -> None:
    app = make_app(seeded_server)
    assert snap_compare(app, terminal_size=(120, 36), run_before=ready(theme, ("down", "down")))


def test_sessions_screen_read_only_help(
    snap_compare: Any, seeded_server: Any, frozen_clock: None
) -> None:
    app = make_app(seeded_server, read_only=True)
    assert snap_compare(
        app, terminal_size=(120, 36), run_before=ready("textual-dark", ("question_mark",))
    )


def test_sessions_screen_80x24(snap_compare: Any, seeded_server: Any, frozen_clock: None) -> None:
    """A small terminal: the title keeps room before the agent column gives up cells."""
    app = make_app(seeded_server)
    assert snap_compare(app, terminal_size=(80, 24), run_before=ready("textual-dark", ("down",)))


def test_at_80_columns_the_title_comes_before_the_agent() -> None:
    widths = dict(zip((c.key for c in COLUMNS), column_widths(80), strict=True))
    assert widths["title"] >= COMFORTABLE_TITLE - 4 and widths["agent"] >= MIN_AGENT
    assert sum(widths.values()) + len(widths) - 1 + 2 <= 80
    wide = dict(zip((c.key for c in COLUMNS), column_widths(160), strict=True))
    assert wide["agent"] == 18, "a wide terminal keeps the agent column whole"
