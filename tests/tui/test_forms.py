"""Session-editing flows end to end: Pilot drives the console, NativeBackend talks to the real
reference server on loopback, and the outcome is checked on the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Static, TextArea

from sessionscope.backends import BackendConfig, NotFound, create_backend
from sessionscope.backends.base import Backend
from sessionscope.models import (
    Session,
    SessionCreate,
    SessionStatus,
    ToolCall,
)
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.safe import SECRET_MASK
from sessionscope.tui.screens.confirm import READ_ONLY_MESSAGE, ConfirmationModal, InfoModal
from sessionscope.tui.screens.export import ExportScreen
from sessionscope.tui.screens.lifecycle import (
    CreateSessionScreen,
    EditSessionScreen,
    EventVisibilityModal,
    VisibilityOutcome,
    close_session,
    complete_session,
    decide_event_visibility,
    delete_session,
)
from sessionscope.tui.screens.message import MessageScreen
from sessionscope.tui.screens.replay import ReplayScreen
from sessionscope.tui.screens.tool_call import ToolResultScreen
from sessionscope.tui.screens.variables import VariablesScreen

DEADLINE = 15.0
SIZE = (120, 36)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], object], what: str) -> None:
    """Let the app run until ``condition()`` holds; fail after DEADLINE seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def text_of(screen: Screen[Any], selector: str) -> str:
    try:
        return str(screen.query_one(selector, Static).render())
    except NoMatches:  # not composed yet
        return ""


def ready(app: SessionScopeApp, screen_type: type[Screen[Any]]) -> bool:
    """``screen_type`` is on top, composed, and has put the focus where it wants it."""
    return isinstance(app.screen, screen_type) and app.screen.focused is not None


def asking(app: SessionScopeApp) -> bool:
    """A confirmation is on screen, mounted, with its default focus."""
    return isinstance(app.screen, ConfirmationModal) and app.screen.focused is not None


@pytest.fixture
async def backend(server: Any) -> AsyncIterator[Backend]:
    native = create_backend(BackendConfig(url=server.url, api_key=server.api_key, timeout=10))
    async with native:
        yield native


@pytest.fixture
async def agent(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The agent-facing side of the API (events, tool calls), which the console never uses."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=10
    ) as client:
        yield client


def make_app(server: Any, *, read_only: bool = False) -> SessionScopeApp:
    # The app owns (and closes) its own backend, as in production.
    native = create_backend(BackendConfig(url=server.url, api_key=server.api_key, timeout=10))
    return SessionScopeApp(native, read_only=read_only, watch=False)


async def new_session(backend: Backend, **fields: Any) -> Session:
    return await backend.create_session(SessionCreate(**{"title": "ops [bold]test[/]", **fields}))


# -- lifecycle ---------------------------------------------------------------------------------


async def test_create_session(server: Any, backend: Backend) -> None:
    app = make_app(server)
    created: list[Session | None] = []
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(CreateSessionScreen(), created.append)
        await wait_for(pilot, lambda: ready(app, CreateSessionScreen), "the form")
        await pilot.press(*"agent-7")  # the agent field has the focus
        screen = app.screen
        screen.query_one("#create-title", Input).value = "nightly [red]billing[/] run"
        screen.query_one("#create-tags", Input).value = "billing, nightly ,"
        screen.query_one("#create-prompt", TextArea).text = "Summarise yesterday's invoices."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: created, "the session to be created")
    session = created[0]
    assert session is not None
    stored = await backend.get_session(session.id)
    assert stored.agent_id == "agent-7"
    assert stored.title == "nightly [red]billing[/] run"
    assert stored.tags == ["billing", "nightly"]
    events = await backend.list_events(session.id)
    assert any(
        event.type == "message.user"
        and event.payload.get("content") == "Summarise yesterday's invoices."
        for event in events.data
    )


async def test_edit_session_rejects_bad_metadata_then_saves(server: Any, backend: Backend) -> None:
    session = await new_session(backend, tags=["a"], metadata={"team": "ops"})
    app = make_app(server)
    edited: list[Session | None] = []
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(EditSessionScreen(session.id), edited.append)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, EditSessionScreen) and app.screen.session is not None,
            "the session to load",
        )
        screen = app.screen
        assert screen.query_one("#edit-title", Input).value == session.title
        assert json.loads(screen.query_one("#edit-metadata", TextArea).text) == {"team": "ops"}

        screen.query_one("#edit-metadata", TextArea).text = "[1, 2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "not valid JSON" in text_of(screen, "#edit-metadata-error")
        assert not edited

        screen.query_one("#edit-title", Input).value = "renamed"
        screen.query_one("#edit-tags", Input).value = "x, y"
        screen.query_one("#edit-metadata", TextArea).text = '{"team": "sre", "tier": 2}'
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: edited, "the edit to be saved")
    stored = await backend.get_session(session.id)
    assert (stored.title, stored.tags) == ("renamed", ["x", "y"])
    assert stored.metadata == {"team": "sre", "tier": 2}


async def test_edit_of_a_missing_session_says_so(server: Any) -> None:
    app = make_app(server)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(EditSessionScreen("ses_does_not_exist"))
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, EditSessionScreen)
                and "Loading" not in text_of(app.screen, "#form-status")
                and text_of(app.screen, "#form-status")
            ),
            "the error",
        )
        assert app.screen.query_one("#form-status").has_class("-error")


async def test_close_confirms_then_shows_duration_and_billable(
    server: Any, backend: Backend
) -> None:
    session = await new_session(backend)
    app = make_app(server)
    async with app.run_test(size=SIZE) as pilot:
        close_session(app, session.id)
        await wait_for(pilot, lambda: asking(app), "the question")
        modal = app.screen
        assert modal.focused is modal.query_one("#confirm-no", Button), "No is the default"
        body = text_of(modal, "#confirm-body")
        assert "ops [bold]test[/]" in body and session.id in body, "names the session literally"
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoModal), "the outcome")
        outcome = text_of(app.screen, "#info-body")
        assert "Duration: " in outcome and "Billable: " in outcome
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, InfoModal), "the outcome to close")
    stored = await backend.get_session(session.id)
    assert stored.status is SessionStatus.CLOSED
    billable = "yes" if stored.billable else "no"
    assert f"Billable: {billable}" in outcome


async def test_close_answered_no_changes_nothing(server: Any, backend: Backend) -> None:
    session = await new_session(backend)
    app = make_app(server)
    results: list[Any] = []
    async with app.run_test(size=SIZE) as pilot:
        close_session(app, session.id, results.append)
        await wait_for(pilot, lambda: asking(app), "the question")
        await pilot.press("n")
        await wait_for(pilot, lambda: results, "the flow to end")
    assert results == [None]
    assert (await backend.get_session(session.id)).status is not SessionStatus.CLOSED


async def test_complete(server: Any, backend: Backend) -> None:
    session = await new_session(backend)
    app = make_app(server)
    results: list[Any] = []
    async with app.run_test(size=SIZE) as pilot:
        complete_session(app, session.id, results.append)
        await wait_for(pilot, lambda: asking(app), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: results, "the flow to end")
    assert results[0] is not None
    assert (await backend.get_session(session.id)).status is SessionStatus.COMPLETED


async def test_delete_only_after_an_explicit_yes(server: Any, backend: Backend) -> None:
    session = await new_session(backend)
    app = make_app(server)
    results: list[bool] = []
    async with app.run_test(size=SIZE) as pilot:
        delete_session(app, session.id, results.append)
        await wait_for(pilot, lambda: asking(app), "the question")
        # Deleting asks for the title: enter and y alone delete nothing.
        await pilot.press("enter", "y", "enter")
        await pilot.pause()
        assert asking(app) and not results
        assert app.screen.query_one("#confirm-yes", Button).disabled
        await pilot.press("escape")
        await wait_for(pilot, lambda: results, "the first answer")
        assert results == [False]
        await backend.get_session(session.id)  # still there

        delete_session(app, session.id, results.append)
        await wait_for(pilot, lambda: asking(app), "the question")
        await pilot.press(*session.title, "enter")
        await wait_for(pilot, lambda: len(results) == 2, "the second answer")
    assert results == [False, True]
    with pytest.raises(NotFound):
        await backend.get_session(session.id)


async def test_hide_unhide_and_delete_an_event(
    server: Any, backend: Backend, agent: httpx.AsyncClient
) -> None:
    session = await new_session(backend)
    response = await agent.post(
        f"/v1/sessions/{session.id}/events", json={"type": "log", "payload": {"text": "noise"}}
    )
    assert response.status_code == 201, response.text
    event = (await backend.list_events(session.id, types=["log"])).data[0]
    app = make_app(server)
    outcomes: list[VisibilityOutcome | None] = []

    async def decide(target: Any) -> None:
        outcomes.append(await decide_event_visibility(app, session.id, target))

    async with app.run_test(size=SIZE) as pilot:
        app.run_worker(decide(event))
        await wait_for(pilot, lambda: ready(app, EventVisibilityModal), "the choice")
        await pilot.press("h")
        await wait_for(pilot, lambda: outcomes, "the hide")
        hidden = outcomes[-1]
        assert hidden is not None and hidden.action == "hidden" and hidden.event is not None
        assert hidden.event.hidden

        app.run_worker(decide(hidden.event))
        await wait_for(pilot, lambda: ready(app, EventVisibilityModal), "the choice")
        await pilot.press("u")
        await wait_for(pilot, lambda: len(outcomes) == 2, "the unhide")
        assert outcomes[-1] is not None and outcomes[-1].action == "unhidden"

        app.run_worker(decide(event))
        await wait_for(pilot, lambda: ready(app, EventVisibilityModal), "the choice")
        await pilot.press("d")
        await wait_for(pilot, lambda: asking(app), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(outcomes) == 3, "the delete")
        assert outcomes[-1] == VisibilityOutcome("deleted", None)
    remaining = await backend.list_events(session.id, types=["log"], include_hidden=True)
    assert remaining.data == []


# -- variables ---------------------------------------------------------------------------------


async def test_variables_rules_are_enforced_before_sending(server: Any, backend: Backend) -> None:
    session = await new_session(backend, context_variables={"REGION": "eu"})
    app = make_app(server)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(VariablesScreen(session.id))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, VariablesScreen) and app.screen.loaded,
            "the variables",
        )
        screen = app.screen
        assert isinstance(screen, VariablesScreen)
        rows = screen.rows()
        assert [(row.key_input.value, row.value_input.value) for row in rows] == [("REGION", "eu")]

        # A lower-case key: shown inline, the row marked, nothing sent.
        rows[0].key_input.value = "region"
        await pilot.pause()
        assert "UPPERCASE_SNAKE_CASE" in text_of(screen, "#variables-error")
        assert rows[0].key_input.has_class("-invalid")
        assert screen.query_one("#variables-save", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Not sent" in text_of(screen, "#form-status")

        # Too many variables.
        await screen.set_rows({f"KEY_{n}": "v" for n in range(21)})
        await pilot.pause()
        assert "at most 20" in text_of(screen, "#variables-error")

        # Too many bytes.
        await screen.set_rows({"BIG": "x" * 5000})
        await pilot.pause()
        assert "at most 4096" in text_of(screen, "#variables-error")
        assert (await backend.get_session(session.id)).context_variables == {"REGION": "eu"}

        # A valid set is saved and the server's answer shown.
        await screen.set_rows({"REGION": "us", "TIER": "gold"})
        await pilot.press("ctrl+n")
        added = screen.rows()[-1]
        added.key_input.value = "MAX_RETRIES"
        added.value_input.value = "3"
        await pilot.pause()
        assert text_of(screen, "#variables-error") == ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Saved" in text_of(screen, "#form-status"), "the answer")
        assert "3 variable" in text_of(screen, "#form-status")
    assert (await backend.get_session(session.id)).context_variables == {
        "REGION": "us",
        "TIER": "gold",
        "MAX_RETRIES": "3",
    }


# -- messages ----------------------------------------------------------------------------------


async def test_message_is_sent_and_appears_as_an_event(server: Any, backend: Backend) -> None:
    session = await new_session(backend)
    app = make_app(server)
    sent: list[Any] = []
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(MessageScreen(session.id), sent.append)
        await wait_for(pilot, lambda: ready(app, MessageScreen), "the form")
        await pilot.press(*"first line")
        await pilot.press("enter")
        await pilot.press(*"second [b]line")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: sent, "the message to be sent")
    assert sent[0] is not None
    events = (await backend.list_events(session.id, types=["message.user"])).data
    assert [event.payload.get("content") for event in events] == ["first line\nsecond [b]line"]


async def test_read_only_refuses_to_send(server: Any, backend: Backend) -> None:
    session = await new_session(backend)
    app = make_app(server, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(MessageScreen(session.id))
        await wait_for(pilot, lambda: ready(app, MessageScreen), "the form")
        screen = app.screen
        assert screen.query_one("#read-only-notice").display
        await pilot.press(*"hello", "ctrl+s")
        await pilot.pause()
        assert READ_ONLY_MESSAGE in text_of(screen, "#form-status")
    assert (await backend.list_events(session.id, types=["message.user"])).data == []


# -- tool calls --------------------------------------------------------------------------------


async def test_tool_result_secret_masked_revealed_masked_then_submitted(
    server: Any, backend: Backend, agent: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ToolResultScreen, "REVEAL_SECONDS", 1.0)
    session = await new_session(backend)
    response = await agent.post(
        f"/v1/sessions/{session.id}/tool-calls",
        json={
            "tool": "fetch_invoice",
            "arguments": [
                {"name": "invoice_id", "value": "INV-42"},
                {"name": "token", "value": "tok-SECRET-99", "secret": True},
            ],
        },
    )
    assert response.status_code == 201, response.text
    call = ToolCall.model_validate(response.json())
    app = make_app(server)
    answered: list[Any] = []
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ToolResultScreen(session.id, call), answered.append)
        await wait_for(pilot, lambda: ready(app, ToolResultScreen), "the form")
        screen = app.screen
        arguments = lambda: text_of(screen, "#tool-args-text")  # noqa: E731
        assert "INV-42" in arguments() and SECRET_MASK in arguments()
        assert "tok-SECRET-99" not in arguments()

        screen.query_one("#tool-arguments").focus()  # v must not be typed into the form
        await pilot.press("v")
        assert "tok-SECRET-99" in arguments(), "revealed as soon as v is handled"
        await wait_for(pilot, lambda: "tok-SECRET-99" not in arguments(), "the mask to return")
        assert SECRET_MASK in arguments()

        result_input = screen.query_one("#tool-result-input", TextArea)
        result_input.focus()
        await pilot.press(*"ok")
        parse = screen.query_one("#tool-result-json", Checkbox)
        await pilot.pause()
        assert not parse.value, "plain text goes as a string"
        result_input.clear()
        # Valid JSON: "Parse as JSON" turns on by itself, so the answer is not sent as a string.
        await pilot.press(*'{"amount": 12.5}')
        await wait_for(pilot, lambda: parse.value, "Parse as JSON on")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: answered, "the submission")
    calls = {c.id: c for c in await backend.list_tool_calls(session.id)}
    submitted = calls.get(call.id)
    if submitted is not None:  # the server may list only outstanding calls
        assert submitted.status == "succeeded" and submitted.result == {"amount": 12.5}
    assert answered[0] is not None and answered[0].result == {"amount": 12.5}


# -- replay and export -------------------------------------------------------------------------


async def test_replay_waterfall_shows_steps_and_their_io(
    server: Any, backend: Backend, agent: httpx.AsyncClient
) -> None:
    session = await new_session(backend)
    for body in (
        {"type": "message.user", "payload": {"content": "find invoices"}},
        {"type": "tool.started", "payload": {"tool": "search", "call_id": "c1", "input": {"q": 1}}},
        {"type": "tool.completed", "payload": {"tool": "search", "call_id": "c1", "output": [7]}},
        {"type": "message.agent", "payload": {"content": "found one [bold]x"}},
    ):
        response = await agent.post(f"/v1/sessions/{session.id}/events", json=body)
        assert response.status_code == 201, response.text
    app = make_app(server)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ReplayScreen(session.id))
        await wait_for(
            pilot, lambda: isinstance(app.screen, ReplayScreen) and app.screen.steps, "the steps"
        )
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        actions = [step.action for step in screen.steps]
        assert "search" in actions
        await pilot.press("home")
        await wait_for(
            pilot, lambda: "find invoices" in text_of(screen, "#replay-detail-text"), "detail"
        )
        for _ in range(actions.index("search")):
            await pilot.press("down")
        await wait_for(pilot, lambda: '"q": 1' in text_of(screen, "#replay-detail-text"), "io")
        assert "7" in text_of(screen, "#replay-detail-text")


async def test_export_screen(server: Any, backend: Backend, tmp_path: Path) -> None:
    session = await new_session(backend)
    await backend.send_message(session.id, "hello")
    app = make_app(server, read_only=True)  # exporting reads only: allowed
    out = tmp_path / "export"
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ExportScreen(session.id, out))
        await wait_for(pilot, lambda: ready(app, ExportScreen), "the screen")
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: "Exported" in text_of(app.screen, "#form-status"), "the export"
        )
    assert json.loads((out / "session.json").read_text())["id"] == session.id
    assert b"hello" in (out / "events.jsonl").read_bytes()
