"""SVG snapshots, dark and light: session screen, event detail, action modal and inbox.

Deterministic: fixed rows written straight into the reference server's database (fixed ids and
timestamps), read back through the real server and ``NativeBackend``; the console's clock frozen.
Timestamps sit in 2099 so the server's expiry sweeper leaves the pending action alone.

Update with ``uv run pytest tests/tui/test_session_snapshots.py --snapshot-update`` and review the
SVGs in ``__snapshots__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from session_support import SIZE, screen_text, wait_for
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, WatchState
from sessionscope.backends.native import NativeBackend
from sessionscope.server import db
from sessionscope.server.seed import _engine
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.event_detail import EventDetailScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.widgets.timeline import Timeline
from sessionscope.tui.widgets.tool_calls import ToolCallsPane

BASE = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = BASE + timedelta(minutes=10)
SESSION_ID = "ses_snapshot0001"
ACTION_ID = "act_snapshot0001"
TOOL_CALL_ID = "call_snapshot0001"


class FixedNameBackend(NativeBackend):
    """The real client; only the header's server name is fixed (the port changes per run)."""

    @property
    def display_name(self) -> str:
        return "snapshot-server:8765"


def snapshot_app(running: Any) -> SessionScopeApp:
    backend = FixedNameBackend(
        BackendConfig(
            url=running.url,
            api_key=running.api_key,
            timeout=5.0,
            options={"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2},
        )
    )
    return SessionScopeApp(backend, watch=False)


_EVENTS: list[tuple[str, dict[str, Any], bool]] = [
    ("session.created", {"title": "Refund for order 42"}, False),
    ("message.user", {"content": "Please refund order 42; it arrived broken."}, False),
    ("thinking", {"content": "The order is eligible; a refund needs an email to finance."}, False),
    (
        "tool.started",
        {
            "tool": "orders.lookup",
            "arguments": [
                {"name": "order", "value": "42"},
                {"name": "api_token", "value": "tok_live_1234", "secret": True},
            ],
        },
        False,
    ),
    ("tool.completed", {"tool": "orders.lookup", "result": {"total": 129.5}}, False),
    ("log", {"message": "debug trace the operator hid"}, True),
    (
        "message.agent",
        {"content": "I will email finance to approve the refund. [bold]ok[/bold]"},
        False,
    ),
    ("error", {"message": "rate limited by the mail relay; retrying"}, False),
    ("action.pending", {"action_id": ACTION_ID, "tool": "send_email"}, False),
]


async def _insert(db_path: str, org: str) -> None:
    async with _engine(db_path) as engine, engine.begin() as conn:
        await conn.execute(
            db.sessions.insert(),
            [
                {
                    "id": SESSION_ID,
                    "org": org,
                    "title": "Refund for order 42",
                    "agent_id": "support-agent",
                    "task_id": "task-7",
                    "model_id": "gpt-large",
                    "status": "waiting",
                    "tags": [],
                    "metadata": {},
                    "context_variables": {"ORDER_ID": "42", "REGION": "eu"},
                    "created_at": BASE,
                    "updated_at": BASE,
                    "started_at": BASE,
                    "last_active_at": BASE,
                    "finished_at": None,
                    "closed_at": None,
                    "message_count": 2,
                    "event_count": len(_EVENTS),
                    "pending_action_count": 1,
                    "last_sequence": len(_EVENTS),
                    "preview": "Please refund order 42",
                    "output_preview": None,
                    "input_tokens": 1234,
                    "output_tokens": 567,
                    "cost_usd": 0.0123,
                    "billable": None,
                    "duration_seconds": None,
                }
            ],
        )
        await conn.execute(
            db.events.insert(),
            [
                {
                    "id": f"evt_snapshot{sequence:04d}",
                    "session_id": SESSION_ID,
                    "org": org,
                    "sequence": sequence,
                    "type": kind,
                    "created_at": BASE + timedelta(seconds=sequence * 7, milliseconds=sequence),
                    "payload": payload,
                    "hidden": hidden,
                    "hide_reason": "operator" if hidden else None,
                }
                for sequence, (kind, payload, hidden) in enumerate(_EVENTS, start=1)
            ],
        )
        await conn.execute(
            db.actions.insert(),
            [
                {
                    "id": ACTION_ID,
                    "session_id": SESSION_ID,
                    "org": org,
                    "tool": "send_email",
                    "preview": {
                        "to": "finance@example.com",
                        "subject": "Refund approval: order 42",
                        "body": "Hello finance,\n\nPlease approve a refund of 129.50 EUR "
                        "for order 42.\n\nThanks,\nsupport-agent",
                    },
                    "status": "pending",
                    "destructive": True,
                    "created_at": BASE + timedelta(seconds=63),
                    "expires_at": NOW + timedelta(minutes=4, seconds=5),
                    "decided_at": None,
                    "confirmed": None,
                    "callback_id": None,
                    "outcome": None,
                    "decision_reply": None,
                    "idempotency_key": None,
                }
            ],
        )
        await conn.execute(
            db.tool_calls.insert(),
            [
                {
                    "id": TOOL_CALL_ID,
                    "session_id": SESSION_ID,
                    "org": org,
                    "tool": "crm.lookup",
                    "arguments": [
                        {"name": "customer", "value": "ACME-42", "secret": False},
                        {"name": "api_token", "value": "tok_live_1234", "secret": True},
                    ],
                    "status": "pending",
                    "created_at": BASE + timedelta(seconds=70),
                    "resolved_at": None,
                    "result": None,
                    "error": None,
                    "idempotency_key": None,
                }
            ],
        )


@pytest.fixture
def snapshot_server(make_server: Callable[..., Any]) -> Any:
    running = make_server()
    asyncio.run(_insert(str(running.db_path), running.org))
    return running


@pytest.fixture(autouse=True)
def _frozen_clock() -> Any:
    clock.freeze(NOW)
    yield
    clock.freeze(None)


async def _open_session(pilot: Pilot[Any], theme: str) -> Timeline:
    app = pilot.app
    app.theme = theme
    app.open_session(SESSION_ID)  # type: ignore[attr-defined]
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SessionScreen) and bool(app.screen.query(Timeline)),
        "the session screen",
    )
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    timeline = screen.timeline
    await wait_for(
        pilot,
        lambda: (
            timeline.store.row_count == len(_EVENTS)
            and len(screen._actions) == 1
            # laid out, not only shown: the list appears with the layout that follows
            and screen.query_one("#session-actions").size.height > 0
            # and painted: what the snapshot will show (the composited screen, not a widget)
            and "pending action" in screen_text(app)
            and screen.watch_state is WatchState.LIVE
            and any(pane.loaded for pane in screen.query(ToolCallsPane))
            and "loading…" not in "".join(timeline.render_line(y).text for y in range(9))
        ),
        "the session's events",
    )
    await pilot.pause()
    return timeline


def _session_screen(theme: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_session(pilot, theme)

    return run_before


def _event_detail(theme: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        timeline = await _open_session(pilot, theme)
        timeline.move_cursor(3)  # tool.started, with a secret argument
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EventDetailScreen), "detail")
        await pilot.pause()

    return run_before


def _action_modal(theme: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_session(pilot, theme)
        await pilot.press("p", "enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ActionModal), "the modal")
        modal = pilot.app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.READY, "ready")
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_session_screen_snapshot(snapshot_server: Any, snap_compare: Any, theme: str) -> None:
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=SIZE, run_before=_session_screen(theme))


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_event_detail_snapshot(snapshot_server: Any, snap_compare: Any, theme: str) -> None:
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=SIZE, run_before=_event_detail(theme))


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_action_modal_snapshot(snapshot_server: Any, snap_compare: Any, theme: str) -> None:
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=SIZE, run_before=_action_modal(theme))


def _tool_calls_tab(pilot: Pilot[Any]) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_session(pilot, "textual-dark")
        await pilot.press("3")
        pane = pilot.app.screen.query_one(ToolCallsPane)
        await wait_for(pilot, lambda: pane.table.has_focus and len(pane.calls) == 1, "the call")
        await pilot.pause()

    return run_before(pilot)


def test_tool_calls_tab_snapshot(snapshot_server: Any, snap_compare: Any) -> None:
    """The outstanding call with its secret argument masked."""
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=SIZE, run_before=_tool_calls_tab)


def _inbox(theme: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        from sessionscope.tui.screens.inbox import InboxScreen

        pilot.app.theme = theme
        pilot.app.open_inbox()  # type: ignore[attr-defined]
        await wait_for(
            pilot,
            lambda: isinstance(pilot.app.screen, InboxScreen) and pilot.app.screen.loads >= 1,
            "the inbox's first load",
        )
        screen = pilot.app.screen
        assert isinstance(screen, InboxScreen)
        await wait_for(pilot, lambda: len(screen.actions) == 1, "the pending action")
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_inbox_snapshot(snapshot_server: Any, snap_compare: Any, theme: str) -> None:
    """The organisation's inbox: the pending action with time waiting and time left."""
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=SIZE, run_before=_inbox(theme))


# -- a small terminal (80x24): the essential columns and keys stay ---------------------------


def test_session_screen_snapshot_80x24(snapshot_server: Any, snap_compare: Any) -> None:
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_session_screen("textual-dark"))


def test_action_modal_snapshot_80x24(snapshot_server: Any, snap_compare: Any) -> None:
    app = snapshot_app(snapshot_server)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_action_modal("textual-dark"))
