"""Helpers for the session, action, inbox and hostile-content console tests.

Everything talks to the reference server on loopback: the console through ``NativeBackend``, the
test through the agent-facing HTTP API (or, for deterministic snapshots, rows written straight into
the server's database).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, create_backend
from sessionscope.tui.app import SessionScopeApp

SIZE = (120, 36)
#: Generous: the machine running the tests may be busy; conditions normally hold in ms.
DEADLINE_SECONDS = 30.0


def make_app(running: Any, **options: Any) -> SessionScopeApp:
    backend = create_backend(
        BackendConfig(
            url=running.url,
            api_key=running.api_key,
            timeout=5.0,
            options={"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2},
        )
    )
    return SessionScopeApp(backend, **options)


def agent_client(running: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{running.url}/v1",
        headers={"Authorization": f"Bearer {running.api_key}"},
        timeout=10.0,
    )


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds; fail after a generous deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def create_session(client: httpx.AsyncClient, title: str, **fields: Any) -> str:
    response = await client.post("/sessions", json={"title": title, **fields})
    response.raise_for_status()
    session_id: str = response.json()["id"]
    return session_id


async def post_event(
    client: httpx.AsyncClient, session_id: str, event_type: str, payload: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        f"/sessions/{session_id}/events", json={"type": event_type, "payload": payload}
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def post_messages(
    client: httpx.AsyncClient, session_id: str, count: int, prefix: str
) -> None:
    for n in range(count):
        await post_event(client, session_id, "message.agent", {"content": f"{prefix} {n}"})


async def create_action(
    client: httpx.AsyncClient,
    session_id: str,
    tool: str = "send_email",
    preview: dict[str, Any] | None = None,
    *,
    expires_in: float | None = 600,
    destructive: bool = False,
) -> dict[str, Any]:
    expires_at = (
        (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()
        if expires_in is not None
        else None
    )
    response = await client.post(
        f"/sessions/{session_id}/actions",
        json={
            "tool": tool,
            "preview": preview
            if preview is not None
            else {"to": "ops@example.com", "subject": "Refund", "body": "Refund order 42."},
            "expires_at": expires_at,
            "destructive": destructive,
        },
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def get_action(client: httpx.AsyncClient, session_id: str, action_id: str) -> dict[str, Any]:
    response = await client.get(f"/sessions/{session_id}/actions/{action_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def events_of_type(
    client: httpx.AsyncClient, session_id: str, event_type: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/sessions/{session_id}/events", params={"types": event_type, "limit": 1000}
    )
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def screen_lines(app: SessionScopeApp) -> list[str]:
    """What the terminal shows right now, one string per row."""
    update = app.screen._compositor.render_full_update()
    return ["".join(segment.text for segment in strip) for strip in update.strips]


def screen_text(app: SessionScopeApp) -> str:
    return "\n".join(screen_lines(app))
