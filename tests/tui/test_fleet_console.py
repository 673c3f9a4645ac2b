"""The fleet console: two reference servers as two profiles of one console, real HTTP, driven
with Pilot: the merged list with its profile column and health strip, one inbox, decisions that
reach only their owner, read-only refusals on the key, batches with one summary, the `:` command
line, `J`, and the bell / desktop-notification sequences captured from the app's output."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from session_support import SIZE, screen_text, wait_for
from textual.drivers.headless_driver import HeadlessDriver
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, create_backend
from sessionscope.backends.fleet import FleetBackend, FleetMember
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.batch import BatchDecisionModal
from sessionscope.tui.screens.command_line import CommandLine
from sessionscope.tui.screens.confirm import InfoModal
from sessionscope.tui.screens.inbox import InboxScreen
from sessionscope.tui.screens.sessions import SessionsScreen
from sessionscope.tui.widgets.fleet_health import FleetHealth

#: A confirmed action runs on the reference server: it reads confirmed, processing or completed.
CONFIRMED = {"confirmed", "processing", "completed"}
FAST = {"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2}


def agent(running: Any) -> httpx.Client:
    return httpx.Client(
        base_url=f"{running.url}/v1",
        headers={"Authorization": f"Bearer {running.api_key}"},
        timeout=10.0,
    )


def create_session(running: Any, title: str) -> str:
    with agent(running) as client:
        response = client.post("/sessions", json={"title": title})
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id


def propose(running: Any, session_id: str, tool: str) -> str:
    with agent(running) as client:
        response = client.post(f"/sessions/{session_id}/actions", json={"tool": tool})
        response.raise_for_status()
        action_id: str = response.json()["id"]
        return action_id


def action_status(running: Any, session_id: str, action_id: str) -> str:
    with agent(running) as client:
        response = client.get(f"/sessions/{session_id}/actions/{action_id}")
        response.raise_for_status()
        status: str = response.json()["status"]
        return status


def member(name: str, running: Any, *, read_only: bool = False) -> FleetMember:
    backend = create_backend(
        BackendConfig(url=running.url, api_key=running.api_key, timeout=5.0, options=dict(FAST))
    )
    return FleetMember(name, backend, read_only=read_only)


def fleet_app(*members: FleetMember, **options: Any) -> SessionScopeApp:
    return SessionScopeApp(FleetBackend(list(members)), **options)


@pytest.fixture
def two_servers(make_server: Callable[..., Any]) -> tuple[Any, Any]:
    return make_server(), make_server()


async def open_inbox(pilot: Pilot[Any], count: int) -> InboxScreen:
    app = pilot.app
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
    inbox = app.screen
    assert isinstance(inbox, InboxScreen)
    await wait_for(pilot, lambda: len(inbox.actions) == count, f"{count} items in the inbox")
    await pilot.pause()
    return inbox


async def test_merged_list_inbox_and_a_decision_reaching_only_its_owner(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    first_session = create_session(first, "alpha work")
    second_session = create_session(second, "beta work")
    first_action = propose(first, first_session, "send_email")
    second_action = propose(second, second_session, "wire_money")
    app = fleet_app(member("alpha", first), member("beta", second))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sessions_screen
        await wait_for(pilot, lambda: screen.table.pages.row_count == 2, "both profiles' rows")
        await wait_for(pilot, lambda: "beta work" in screen_text(app), "the rows painted")
        text = screen_text(app)
        assert "PROFILE" in text
        rows = [line for line in text.splitlines() if "work" in line]
        assert any("alpha" in row and "alpha work" in row for row in rows)
        assert any("beta" in row and "beta work" in row for row in rows)
        health = str(screen.query_one(FleetHealth).render())
        assert "alpha" in health and "beta" in health and "native" in health

        inbox = await open_inbox(pilot, 2)
        assert {getattr(a, "profile", None) for a in inbox.actions} == {"alpha", "beta"}
        assert {getattr(a, "platform", None) for a in inbox.actions} == {"native"}
        inbox_text = screen_text(app)
        assert "Profile" in inbox_text and "Platform" in inbox_text
        beta_row = next(
            i for i, a in enumerate(inbox.actions) if getattr(a, "profile", None) == "beta"
        )
        inbox.query_one("#inbox-table").move_cursor(row=beta_row)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the decision")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.READY, "ready")
        await pilot.press("n")
        await wait_for(pilot, lambda: modal.state is ModalState.DONE, "cancelled")
    assert action_status(second, second_session, second_action) == "cancelled"
    assert action_status(first, first_session, first_action) == "pending"


async def test_a_read_only_profile_is_refused_on_the_key(two_servers: tuple[Any, Any]) -> None:
    first, second = two_servers
    session_id = create_session(second, "watched only")
    action_id = propose(second, session_id, "delete_db")
    app = fleet_app(member("alpha", first), member("beta", second, read_only=True))
    async with app.run_test(size=SIZE) as pilot:
        inbox = await open_inbox(pilot, 1)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any("read-only" in str(n.message) for n in app._notifications),
            "the refusal on enter",
        )
        assert isinstance(app.screen, InboxScreen), "no decision modal for a read-only item"
        await pilot.press("y")
        await pilot.pause()
        assert not isinstance(app.screen, BatchDecisionModal)
        assert inbox.actions and "beta" in str(getattr(inbox.actions[0], "profile", ""))
    assert action_status(second, session_id, action_id) == "pending"


async def test_a_stopped_server_shows_in_its_health_row_while_the_other_works(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    kept = create_session(first, "still here")
    action_id = propose(first, kept, "send_email")
    second.thread.stop()
    app = fleet_app(member("alpha", first), member("beta", second))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sessions_screen
        await wait_for(pilot, lambda: screen.table.pages.row_count == 1, "alpha's row")
        health = screen.query_one(FleetHealth)
        await wait_for(pilot, lambda: "Cannot reach" in str(health.render()), "beta's error")
        beta_line = next(line for line in str(health.render()).splitlines() if "beta" in line)
        assert "Cannot reach" in beta_line
        alpha_line = next(line for line in str(health.render()).splitlines() if "alpha" in line)
        assert "Cannot reach" not in alpha_line
        await open_inbox(pilot, 1)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, BatchDecisionModal), "asked once")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoModal), "the summary")
    assert action_status(first, kept, action_id) in CONFIRMED


async def test_a_batch_of_five_across_two_profiles_is_summarised_once(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    sessions = [(first, create_session(first, "a")), (second, create_session(second, "b"))]
    proposed = [
        (running, session_id, propose(running, session_id, f"tool{n}"))
        for n, (running, session_id) in enumerate((sessions * 3)[:5])
    ]
    app = fleet_app(member("alpha", first), member("beta", second))
    async with app.run_test(size=SIZE) as pilot:
        inbox = await open_inbox(pilot, 5)
        await pilot.press("asterisk")
        assert len(inbox.marked) == 5
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, BatchDecisionModal), "asked once")
        modal = app.screen
        assert isinstance(modal, BatchDecisionModal)
        assert len(modal.requests) == 5
        body = screen_text(app)
        assert "alpha" in body and "beta" in body and "2 profiles" in body
        assert modal.query_one("#batch-no").has_focus, "the safe answer has the focus"
        # Someone else decides one of them meanwhile, through the server directly.
        running, session_id, action_id = proposed[1]
        with agent(running) as client:
            client.post(
                f"/sessions/{session_id}/actions/{action_id}", json={"confirmed": False}
            ).raise_for_status()
        modal.query_one("#batch-reason").value = "nightly sweep"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoModal), "one summary")
        summary = screen_text(app)
        assert "4 sent, 1 already decided" in summary
        assert "already decided" in summary and "tool1" in summary
    statuses = [action_status(r, s, a) for r, s, a in proposed]
    assert statuses[1] == "cancelled"
    assert all(status in CONFIRMED for n, status in enumerate(statuses) if n != 1)


async def test_marking_a_row_and_the_command_line(two_servers: tuple[Any, Any]) -> None:
    first, second = two_servers
    alpha = create_session(first, "alpha one")
    create_session(second, "beta one")
    propose(first, alpha, "send_email")
    app = fleet_app(member("alpha", first), member("beta", second))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sessions_screen
        await wait_for(pilot, lambda: screen.table.pages.row_count == 2, "both rows")
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandLine), "the command line")
        await pilot.press(*"ctx beta", "enter")
        await wait_for(pilot, lambda: screen.table.pages.row_count == 1, "beta only")
        assert "beta one" in screen_text(app) and "alpha one" not in screen_text(app)
        await pilot.press("colon", *"ctx", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoModal), "the profiles")
        assert "alpha  native" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("colon", *"frobnicate", "enter")
        await wait_for(
            pilot,
            lambda: any("Unknown command" in str(n.message) for n in app._notifications),
            "the unknown command said",
        )
        await pilot.press("colon", *"sessions status=waiting", "enter")
        await wait_for(pilot, lambda: screen.status_filter is not None, "the status filter applied")
        assert screen.status_filter is not None and screen.status_filter.value == "waiting"
        await pilot.press("colon", *"inbox", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), "back")
        # J opens the next waiting item from anywhere, here the sessions list.
        await pilot.press("J")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "J's decision")


@pytest.fixture
def terminal_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    written: list[str] = []
    monkeypatch.setattr(HeadlessDriver, "write", lambda self, data: written.append(data))
    yield written


async def test_a_new_waiting_item_rings_and_notifies(
    two_servers: tuple[Any, Any], terminal_output: list[str]
) -> None:
    first, second = two_servers
    create_session(first, "quiet")
    session_id = create_session(second, "about to ask")
    app = fleet_app(member("alpha", first), member("beta", second), bell=True, notify_desktop=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sessions_screen
        await wait_for(pilot, lambda: screen.table.pages.row_count == 2, "both rows")
        await wait_for(pilot, lambda: "0 waiting" in screen_text(app), "the header's count")
        await asyncio.to_thread(propose, second, session_id, "wire\x1b]0;pwned\x07_money")
        await wait_for(pilot, lambda: "\a" in terminal_output, "the bell")
        await wait_for(
            pilot, lambda: any("\x1b]777;notify;" in w for w in terminal_output), "OSC 777"
        )
        osc9 = next(w for w in terminal_output if w.startswith("\x1b]9;"))
        assert "sessionscope: beta" in osc9 and "about to ask" in osc9
        # The agent's text cannot end the sequence early or write one of its own.
        assert osc9.count("\x1b") == 4 and "\x07" not in osc9
        await wait_for(pilot, lambda: "1 waiting" in screen_text(app), "the header's count")
