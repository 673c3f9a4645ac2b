"""The pending-action modal and the actions inbox against the reference server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from session_support import (
    SIZE,
    agent_client,
    create_action,
    create_session,
    events_of_type,
    get_action,
    make_app,
    screen_text,
    wait_for,
)
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input

from sessionscope.models import PendingAction
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.action import (
    ActionModal,
    ModalState,
    is_destructive,
    render_preview,
)
from sessionscope.tui.screens.inbox import InboxScreen


async def open_modal(pilot: Pilot[Any], session_id: str, action_id: str) -> ActionModal:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_action(session_id, action_id)
    await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
    modal = app.screen
    assert isinstance(modal, ActionModal)
    await wait_for(pilot, lambda: modal.state is not ModalState.LOADING, "the action to load")
    return modal


@pytest.fixture(autouse=True)
def _unfrozen_clock() -> Any:
    yield
    clock.freeze(None)


async def test_confirm_shows_processing_then_outcome(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Confirm me")
        action = await create_action(client, session_id, tool="send_email", destructive=True)
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            # The state flips before the next frame paints the preview.
            await wait_for(pilot, lambda: "expires in" in screen_text(app), "the preview painted")
            text = screen_text(app)
            assert "send_email" in text and "Confirm me" in text
            assert "ops@example.com" in text and "Refund order 42." in text
            assert "expires in" in text
            # The safe button has the focus: enter would close, never confirm.
            assert app.focused is modal.query_one("#action-close", Button)
            # Destructive: y asks for the tool's name; only typing it confirms.
            await pilot.press("y")
            await wait_for(pilot, lambda: "type the tool name" in screen_text(app), "the ask")
            await pilot.press(*"send_email", "enter")
            await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the outcome")
            await wait_for(pilot, lambda: "Completed" in screen_text(app), "Completed")
            # Decided: the outcome shows, with nothing left to race or press.
            assert "expires in" not in screen_text(app)
            assert not modal.query_one("#action-confirm", Button).display
            assert not modal.query_one("#action-cancel", Button).display
            assert app.focused is modal.query_one("#action-close", Button)
            body = await get_action(client, session_id, action["id"])
            assert body["status"] == "completed"


async def test_double_press_sends_one_decision(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Double")
        action = await create_action(client, session_id, tool="deploy")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            await pilot.press("y", "y", "n", "y")
            await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the outcome")
            assert modal.decisions_sent == 1
        confirmed = await events_of_type(client, session_id, "action.confirmed")
        cancelled = await events_of_type(client, session_id, "action.cancelled")
        assert len(confirmed) == 1 and not cancelled


async def test_cancel_and_escape(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Cancel me")
        kept = await create_action(client, session_id, tool="keep")
        refused = await create_action(client, session_id, tool="refuse")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            await open_modal(pilot, session_id, kept["id"])
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ActionModal), "closed")
            assert (await get_action(client, session_id, kept["id"]))["status"] == "pending"

            modal = await open_modal(pilot, session_id, refused["id"])
            await pilot.press("n")
            await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the cancellation")
            await wait_for(pilot, lambda: "Cancelled" in screen_text(app), "Cancelled")
            assert (await get_action(client, session_id, refused["id"]))["status"] == "cancelled"


async def test_countdown_reaching_zero_says_expired(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Hurry")
        action = await create_action(client, session_id, tool="rush", expires_in=3)
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            await wait_for(pilot, lambda: modal.state is ModalState.EXPIRED, "the expiry")
            await wait_for(pilot, lambda: "expired" in screen_text(app), "expired")
            await pilot.press("y")
            assert modal.decisions_sent == 0
            assert modal.query_one("#action-confirm", Button).disabled


async def test_server_says_gone(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Gone")
        action = await create_action(client, session_id, tool="late", expires_in=5)
        # The console's clock lags: it still believes there is time; the server knows better.
        clock.freeze(datetime.now(UTC) - timedelta(minutes=5))

        async def expired_on_server() -> bool:
            return (await get_action(client, session_id, action["id"]))["status"] == "expired"

        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            assert modal.state is ModalState.READY
            expired = False
            for _ in range(300):
                if await expired_on_server():
                    expired = True
                    break
                await pilot.pause(0.05)
            assert expired, "the server never expired the action"
            await pilot.press("y")
            await wait_for(pilot, lambda: modal.state is ModalState.EXPIRED, "the Gone reply")
            await wait_for(pilot, lambda: "expired" in screen_text(app), "expired")


async def test_already_decided_says_so(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Raced")
        action = await create_action(client, session_id, tool="race")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            # Someone else decides first.
            response = await client.post(
                f"/sessions/{session_id}/actions/{action['id']}", json={"confirmed": False}
            )
            response.raise_for_status()
            await pilot.press("y")
            await wait_for(
                pilot, lambda: modal.state is ModalState.DECIDED_ELSEWHERE, "the conflict"
            )
            # Whether the organisation stream tells first ("just decided elsewhere") or the
            # refused decision does ("already decided elsewhere"), the operator learns that
            # someone else decided, and what; this console sent nothing that took effect.
            await wait_for(
                pilot,
                lambda: "decided elsewhere: cancelled" in screen_text(app),
                "decided elsewhere: cancelled",
            )
            assert not modal.query_one("#action-confirm", Button).display
            # Opening it again says so straight away.
            await pilot.press("escape")
            modal = await open_modal(pilot, session_id, action["id"])
            assert modal.state is ModalState.DECIDED_ELSEWHERE
            await wait_for(
                pilot,
                lambda: "already decided: cancelled" in screen_text(app),
                "already decided: cancelled",
            )


async def test_read_only_disables_decisions(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Look only")
        action = await create_action(client, session_id, tool="look")
        app = make_app(server, read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            confirm = modal.query_one("#action-confirm", Button)
            assert confirm.disabled and "read-only" in str(confirm.label)
            await wait_for(pilot, lambda: "Read-only mode" in screen_text(app), "Read-only mode")
            await pilot.press("y", "n")
            await pilot.pause()
            assert modal.decisions_sent == 0
        assert (await get_action(client, session_id, action["id"]))["status"] == "pending"


async def test_inbox_lists_oldest_first_and_opens_modal(make_server: Callable[..., Any]) -> None:
    running = make_server()
    async with agent_client(running) as client:
        first = await create_session(client, "First session")
        second = await create_session(client, "Second session")
        oldest = await create_action(client, first, tool="oldest_tool")
        newer = await create_action(client, second, tool="newer_tool", expires_in=20)
        app = make_app(running)
        async with app.run_test(size=SIZE) as pilot:
            app.open_inbox()
            await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
            inbox = app.screen
            assert isinstance(inbox, InboxScreen)
            await wait_for(pilot, lambda: len(inbox.actions) == 2, "two actions")
            assert [a.id for a in inbox.actions] == [oldest["id"], newer["id"]]
            await wait_for(pilot, lambda: "newer_tool" in screen_text(app), "the rows painted")
            text = screen_text(app)
            assert text.index("oldest_tool") < text.index("newer_tool")
            assert "First session" in text and "Second session" in text
            # The footer offers the inbox's main key, not hidden behind the table's own enter.
            await wait_for(pilot, lambda: "Decide" in screen_text(app), "the footer's Decide key")
            # A new action elsewhere shows up without a manual refresh (org stream or timer).
            third = await create_action(client, first, tool="third_tool")
            await wait_for(pilot, lambda: len(inbox.actions) == 3, "the new action")
            assert inbox.actions[-1].id == third["id"]

            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
            modal = app.screen
            assert isinstance(modal, ActionModal) and modal.action_id == newer["id"]
            await wait_for(pilot, lambda: modal.state is ModalState.READY, "ready")
            await pilot.press("n")
            await wait_for(pilot, lambda: modal.state is ModalState.DONE, "cancelled")
            await pilot.press("escape")
            await wait_for(pilot, lambda: len(inbox.actions) == 2, "the decided action to leave")
            assert isinstance(inbox.query_one(DataTable), DataTable)


def test_preview_shows_commands_verbatim_and_other_values_as_key_values() -> None:
    command = render_preview({"command": "rm -rf /tmp/x && echo '[bold]ok[/bold]'", "cwd": "/srv"})
    assert command.plain.startswith("$ rm -rf /tmp/x && echo '[bold]ok[/bold]'")
    assert "cwd: /srv" in command.plain
    other = render_preview(
        {
            "amount": 12,
            "account": {"iban": "X"},
            "token": {"name": "t", "value": "s3cret", "secret": True},
        }
    )
    assert "amount: 12" in other.plain and '"iban": "X"' in other.plain
    assert "s3cret" not in other.plain


async def test_destructive_tool_name_needs_the_name_typed(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Careful")
        # Not flagged by the platform: the tool's name alone makes it destructive.
        action = await create_action(client, session_id, tool="delete_user")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            modal = await open_modal(pilot, session_id, action["id"])
            await pilot.press("y")
            await wait_for(pilot, lambda: "type the tool name" in screen_text(app), "the ask")
            typed = modal.query_one("#action-typed", Input)
            assert app.focused is typed
            await pilot.press(*"delete", "enter")
            await wait_for(pilot, lambda: "nothing was sent" in screen_text(app), "the refusal")
            assert modal.state is ModalState.READY and modal.decisions_sent == 0
            assert (await get_action(client, session_id, action["id"]))["status"] == "pending"
            typed.value = ""
            await pilot.press(*"delete_user", "enter")
            await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the outcome")
            assert modal.decisions_sent == 1


def test_destructive_words_in_tool_names() -> None:
    def action(tool: str, destructive: bool = False) -> PendingAction:
        return PendingAction(id="a", session_id="s", tool=tool, destructive=destructive)

    for tool in ("delete_user", "bank.transfer", "rmTree", "rm -rf /", "DropTable"):
        assert is_destructive(action(tool)), tool
    for tool in ("deploy", "send_email", "formatted_report", "lookup"):
        assert not is_destructive(action(tool)), tool
    assert is_destructive(action("deploy", destructive=True))
