"""The console on a Viben gateway (the fake written from the vendor's documents), driven with
Pilot: a session paused and resumed from its screen, its messages live, the sessions list kept up
to date by the gateway's event stream; and an SVG snapshot of the session screen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.viben import FakeViben
from session_support import SIZE, screen_text, wait_for
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from sessionscope.backends import BackendConfig, Capability, WatchState, create_backend
from sessionscope.backends.viben import VibenBackend
from sessionscope.models import Session, SessionStatus
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.help import HelpScreen
from sessionscope.tui.screens.lifecycle import CreateSessionScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.widgets.timeline import Timeline

SESSION_ID = "session-abc123"
FAST = {"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2}


@pytest.fixture
def gateway() -> Iterator[FakeViben]:
    with FakeViben() as fake:
        fake.add_session(
            "CLAUDE_CODE",
            task_id="task-xyz",
            status="active",
            data={"workdir": "/path/to/project", "model": "claude-3-sonnet"},
            session_id=SESSION_ID,
        )
        fake.add_message(SESSION_ID, "Initial prompt for the session", role="user")
        fake.add_message(SESSION_ID, "Reading the project layout.")
        fake.add_message(SESSION_ID, "Tests pass; [bold]ready[/bold] for review.")
        yield fake


def viben_config(fake: FakeViben) -> BackendConfig:
    return BackendConfig(
        name="viben", url=fake.url, timeout=5.0, poll_interval=0.1, options=dict(FAST)
    )


async def open_session(pilot: Pilot[Any], rows: int) -> SessionScreen:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(SESSION_ID)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SessionScreen) and bool(app.screen.query(Timeline)),
        "the session screen",
    )
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    await wait_for(
        pilot,
        lambda: (
            screen.session is not None
            and screen.timeline.store.row_count >= rows
            and screen.watch_state is WatchState.LIVE
        ),
        f"{rows} messages and the live stream",
    )
    return screen


def notices(app: SessionScopeApp) -> str:
    return "\n".join(notification.message for notification in app._notifications)


def patches(fake: FakeViben) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.seen("PATCH", f"/api/sessions/{SESSION_ID}")]


async def test_a_viben_session_paused_and_resumed(gateway: FakeViben) -> None:
    app = SessionScopeApp(create_backend(viben_config(gateway)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.loaded_session(SESSION_ID) is not None, "the list")
        screen = await open_session(pilot, 3)
        await wait_for(pilot, lambda: " ACTIVE " in screen_text(app), "the ACTIVE badge")

        await pilot.press("P")
        await wait_for(pilot, lambda: gateway.sessions[SESSION_ID]["status"] == "paused", "pause")
        await wait_for(pilot, lambda: " PAUSED " in screen_text(app), "the PAUSED badge")
        assert patches(gateway) == [{"status": "paused"}]
        # The gateway's stream told the sessions list too.
        await wait_for(
            pilot,
            lambda: getattr(app.loaded_session(SESSION_ID), "status", None) is SessionStatus.PAUSED,
            "the list's row paused",
        )
        await pilot.press("P")  # already paused: said, not sent again
        await wait_for(pilot, lambda: "already paused" in notices(app), "the notice")
        assert len(patches(gateway)) == 1

        await pilot.press("U")
        await wait_for(pilot, lambda: gateway.sessions[SESSION_ID]["status"] == "active", "resume")
        await wait_for(pilot, lambda: " ACTIVE " in screen_text(app), "the ACTIVE badge again")
        assert patches(gateway) == [{"status": "paused"}, {"status": "active"}]
        await wait_for(
            pilot,
            lambda: getattr(app.loaded_session(SESSION_ID), "status", None) is SessionStatus.ACTIVE,
            "the list's row active",
        )

        # `?` lists both keys, offered.
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        listed = {item.binding_id: item for item in app.screen._keys}  # type: ignore[attr-defined]
        assert listed["session.pause"].enabled and listed["session.resume"].enabled
        assert listed["session.pause"].key == "P" and listed["session.resume"].key == "U"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back on the session")

        # The agent answers: the open session shows it at once.
        gateway.add_message(SESSION_ID, "Resumed; continuing with the migration.")
        await wait_for(pilot, lambda: screen.timeline.store.row_count == 4, "the live message")
        await wait_for(pilot, lambda: "continuing with the migration" in screen_text(app), "row")


@pytest.mark.parametrize("why", ["read-only", "unsupported"])
async def test_pause_is_off_in_read_only_mode_or_without_the_capability(
    gateway: FakeViben, why: str
) -> None:
    backend = create_backend(viben_config(gateway))
    if why == "unsupported":
        backend.capabilities = backend.capabilities - {Capability.PAUSE}
    app = SessionScopeApp(backend, read_only=why == "read-only")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, 3)
        await pilot.press("P")
        await pilot.press("U")
        await pilot.pause()
        assert patches(gateway) == []
        offered = {
            active.binding.id: active.enabled
            for active in screen.active_bindings.values()
            if active.binding.id in ("session.pause", "session.resume")
        }
        assert offered == {"session.pause": False, "session.resume": False}
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        notes = {item.binding_id: item.note for item in app.screen._keys}  # type: ignore[attr-defined]
        expected = "read-only" if why == "read-only" else "not offered by Viben"
        assert notes["session.pause"] == notes["session.resume"] == expected


async def test_a_viben_session_created_from_the_form(gateway: FakeViben) -> None:
    """The form offers exactly what the gateway takes: agent, task and prompt."""
    app = SessionScopeApp(create_backend(viben_config(gateway)))
    created: list[Session | None] = []
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(CreateSessionScreen(), created.append)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CreateSessionScreen) and app.screen.focused is not None,
            "the form",
        )
        form = app.screen
        assert not form.query("#create-title") and not form.query("#create-tags")
        await pilot.press(*"CODEX")  # the agent field has the focus
        form.query_one("#create-task", Input).value = "task-42"
        form.query_one("#create-prompt", TextArea).text = "Fix the flaky test"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: bool(created), "the session to be created")
    session = created[0]
    assert session is not None and session.status is SessionStatus.CREATED
    bodies = [json.loads(r.body) for r in gateway.seen("POST", "/api/sessions")]
    assert bodies == [{"agent_id": "CODEX", "task_id": "task-42", "prompt": "Fix the flaky test"}]


async def test_an_api_key_given_for_viben_is_noted_on_screen(gateway: FakeViben) -> None:
    config = BackendConfig(name="viben", url=gateway.url, api_key="sk-not-for-viben")
    app = SessionScopeApp(create_backend(config))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "ignored and never sent" in notices(app), "the note")
        await wait_for(pilot, lambda: app.loaded_session(SESSION_ID) is not None, "the list")
    assert gateway.requests
    assert all("authorization" not in r.headers for r in gateway.requests)


class FixedNameViben(VibenBackend):
    """The real backend; only the header's server name is fixed (the port changes per run)."""

    @property
    def display_name(self) -> str:
        return "127.0.0.1:18790"


@pytest.fixture
def frozen_clock(gateway: FakeViben) -> Iterator[None]:
    clock.freeze(gateway.clock_start.replace(minute=5))
    yield
    clock.freeze(None)


def test_viben_session_screen_snapshot(
    gateway: FakeViben, frozen_clock: None, snap_compare: Any
) -> None:
    app = SessionScopeApp(FixedNameViben(viben_config(gateway)), watch=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_session(pilot, 3)
        await wait_for(
            pilot,
            lambda: (
                "loading…" not in "".join(screen.timeline.render_line(y).text for y in range(6))
                and "claude-3-sonnet" in screen_text(app)
            ),
            "the painted rows and header",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
