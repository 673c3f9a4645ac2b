"""SVG snapshot of the fleet inbox: two reference servers as two profiles, each with the fixed
rows of ``test_session_snapshots`` (fixed ids and timestamps), the console's clock frozen. One
item marked, so the mark column shows too.

Update with ``uv run pytest tests/tui/test_fleet_snapshots.py --snapshot-update`` and review the
SVG in ``__snapshots__``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from session_support import SIZE, wait_for
from test_session_snapshots import NOW, _insert
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig
from sessionscope.backends.fleet import FleetBackend, FleetMember
from sessionscope.backends.native import NativeBackend
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.inbox import InboxScreen


@pytest.fixture(autouse=True)
def _frozen_clock() -> Iterator[None]:
    clock.freeze(NOW)
    yield
    clock.freeze(None)


@pytest.fixture
def fleet_servers(make_server: Callable[..., Any]) -> tuple[Any, Any]:
    servers = make_server(), make_server()
    for running in servers:
        asyncio.run(_insert(str(running.db_path), running.org))
    return servers


def _member(name: str, running: Any, read_only: bool = False) -> FleetMember:
    backend = NativeBackend(
        BackendConfig(
            url=running.url, api_key=running.api_key, timeout=5.0, options={"retry_attempts": 1}
        )
    )
    return FleetMember(name, backend, read_only=read_only)


async def _marked_inbox(pilot: Pilot[Any]) -> None:
    pilot.app.open_inbox()  # type: ignore[attr-defined]
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, InboxScreen) and len(pilot.app.screen.actions) == 2,
        "both profiles' items",
    )
    await wait_for(pilot, lambda: len(pilot.app.console_context.waiting) == 2, "the header's count")
    await pilot.press("space")
    await pilot.pause()


def test_fleet_inbox_snapshot(fleet_servers: tuple[Any, Any], snap_compare: Any) -> None:
    """Profile and platform columns, soonest deadline first, one mark, the fleet's count."""
    first, second = fleet_servers
    app = SessionScopeApp(
        FleetBackend([_member("prod-eu", first), _member("staging", second, read_only=True)]),
        watch=False,
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=_marked_inbox)
