"""The console learns its key's role from the server: a viewer key makes it read-only, saying
why; other keys change nothing."""

from __future__ import annotations

from typing import Any

import httpx
from session_support import SIZE, wait_for

from sessionscope.backends import BackendConfig, create_backend
from sessionscope.models import Event, EventType
from sessionscope.tui import event_summary
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.sessions import SessionsScreen

FULL = "tui-roles-full-0001"
VIEWER = "tui-roles-viewer-0002"
OPERATOR = "tui-roles-operator-0003"


def _roles_server(make_server: Any) -> Any:
    return make_server(
        api_keys=[("acme", FULL), ("acme", VIEWER), ("acme", OPERATOR)],
        key_roles={VIEWER: "viewer", OPERATOR: "operator"},
    )


def _app(running: Any, key: str) -> SessionScopeApp:
    backend = create_backend(
        BackendConfig(url=running.url, api_key=key, timeout=5.0, options={"retry_attempts": 1})
    )
    return SessionScopeApp(backend)


def _role_learnt(app: SessionScopeApp) -> bool:
    return not any(worker.group == "key-role" and worker.is_running for worker in app.workers)


async def test_a_viewer_key_makes_the_console_read_only_and_says_why(make_server: Any) -> None:
    running = _roles_server(make_server)
    app = _app(running, VIEWER)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.read_only, "read-only from the key's role")
        assert "READ-ONLY (viewer key)" in app.sub_title
        await wait_for(
            pilot,
            lambda: any("role is viewer" in str(note.message) for note in app._notifications),
            "the notice saying why",
        )
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), "the list")
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, SessionsScreen)
    async with httpx.AsyncClient(base_url=running.url, headers={"X-API-Key": FULL}) as api:
        assert (await api.get("/v1/sessions")).json()["data"] == []


async def test_other_keys_keep_the_console_writable(make_server: Any) -> None:
    running = _roles_server(make_server)
    for key in (OPERATOR, FULL):
        app = _app(running, key)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda app=app: _role_learnt(app), "the key's role")
            assert not app.read_only and "READ-ONLY" not in app.sub_title


def test_audit_records_are_summarised_as_plain_text() -> None:
    event = Event(
        id="evt_1",
        session_id="ses_1",
        sequence=3,
        type=EventType.AUDIT_DECIDED,
        payload={
            "summary": "confirmed [b]rm[/b] \x1b[2J (key key-abc, role operator)",
            "key": "key-abc",
            "role": "operator",
        },
    )
    line = event_summary.summarize(event)
    assert line.startswith("confirmed [b]rm[/b]") and "\x1b" not in line
    assert "role operator" in line
