"""The console on AG2Trust (the fake platform from the vendor documents, on loopback), driven with
Pilot: start a thread, see its pending action, confirm it, see the result arrive with the next
reply; and an SVG snapshot of the session screen."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.ag2trust import API_KEY, ENDPOINT, FakeAG2Trust, LoopbackServer, Reply
from session_support import SIZE, screen_text, wait_for
from textual.widgets import Input, Static, TextArea

from sessionscope.backends import BackendConfig, WatchState, create_backend
from sessionscope.backends.ag2trust import AG2TrustBackend
from sessionscope.backends.ag2trust_record import Record
from sessionscope.models import ActionStatus, SessionCreate
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.confirm import ConfirmationModal, InfoModal
from sessionscope.tui.screens.lifecycle import CreateSessionScreen
from sessionscope.tui.screens.message import MessageScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.screens.variables import VariablesScreen
from sessionscope.tui.widgets.timeline import Timeline
from sessionscope.webhook import create_app

BASE = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = BASE + timedelta(minutes=1)


def config(fake: FakeAG2Trust, record: Path) -> BackendConfig:
    return BackendConfig(
        name="ag2trust",
        url=fake.url,
        api_key=API_KEY,
        timeout=5.0,
        options={"endpoint": ENDPOINT, "record": str(record), "record_poll": 0.05},
    )


@pytest.fixture
def fake() -> Iterator[FakeAG2Trust]:
    with FakeAG2Trust() as running:
        yield running


def on_top(app: SessionScopeApp, screen_type: type[Any]) -> bool:
    return isinstance(app.screen, screen_type) and app.screen.focused is not None


async def test_start_a_thread_confirm_its_action_and_see_the_result(
    fake: FakeAG2Trust, tmp_path: Path
) -> None:
    backend = create_backend(config(fake, tmp_path / "record.sqlite3"))
    app = SessionScopeApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen is app.sessions_screen, "the sessions list")
        await pilot.press("n")
        await wait_for(pilot, lambda: on_top(app, CreateSessionScreen), "the new-session form")
        form = app.screen
        # The pool assigns the agent: no agent field; the first prompt is what starts a thread.
        assert not form.query("#create-agent")
        assert "First prompt (optional)" not in screen_text(app)
        form.query_one("#create-title", Input).value = "Order 123"
        form.query_one("#create-prompt", TextArea).text = "Please email me the order confirmation"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the new thread")
        screen = app.screen
        assert isinstance(screen, SessionScreen)
        await wait_for(
            pilot,
            lambda: "pending action" in screen_text(app) and "send_email" in screen_text(app),
            "the pending action",
        )
        assert "Reply to: Please email me" in screen_text(app)

        await pilot.press("p", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the action modal")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.READY, "the action")
        text = screen_text(app)
        assert "user@example.com" in text and "Order Confirmation" in text
        assert "expires in" in text
        await pilot.press("y")
        await wait_for(pilot, lambda: modal.state is ModalState.PROCESSING, "processing")
        assert "processing" in screen_text(app)
        decisions = fake.posts(f"/api/v1/sessions/{screen.session_id}/actions/")
        assert len(decisions) == 1

        # The result comes with the next pool reply on the thread: ask for it with a message.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "the session screen again")
        await pilot.press("m")
        await wait_for(pilot, lambda: on_top(app, MessageScreen), "the message form")
        await pilot.press(*"Has it been sent?", "ctrl+s")
        await wait_for(
            pilot,
            lambda: "Done: send_email completed" in screen_text(app),
            "the action's result in the timeline",
        )
        assert "pending action" not in screen_text(app)
        action = await backend.get_action(screen.session_id, decisions[0][1].rsplit("/", 1)[1])
        assert action.status is ActionStatus.COMPLETED


async def test_a_completion_webhook_reaches_the_open_modal_and_the_list_survives_a_restart(
    fake: FakeAG2Trust, tmp_path: Path
) -> None:
    record_path = tmp_path / "record.sqlite3"
    receiver_record = Record(record_path)
    receiver = LoopbackServer(create_app(receiver_record, API_KEY)).start()
    fake.webhook_url = receiver.url + "/webhook"
    try:
        backend = create_backend(config(fake, record_path))
        thread_id = (
            await backend.create_session(SessionCreate(title="Receipt", prompt="email a receipt"))
        ).id
        [action] = await backend.list_pending_actions()
        app = SessionScopeApp(backend)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "Receipt" in screen_text(app), "the thread listed")
            app.open_action(thread_id, action.id)
            await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
            modal = app.screen
            assert isinstance(modal, ActionModal)
            await wait_for(pilot, lambda: modal.state is ModalState.READY, "the action")
            await pilot.press("y")
            # No message sent: the platform's webhook, through the receiver and the record.
            await wait_for(pilot, lambda: "Completed" in screen_text(app), "the outcome")
            assert len(fake.posts("/api/v1/ask/")) == 1
            events = (await backend.list_events(thread_id)).data
            timeline = [(event.sequence, event.type) for event in events]
            assert timeline[-2:] == [(4, "action.confirmed"), (5, "action.completed")]
    finally:
        receiver.stop()
        receiver_record.close()

    # A new console on the same record: the thread and its timeline, nothing lost.
    restarted = create_backend(config(fake, record_path))
    again = SessionScopeApp(restarted)
    async with again.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "Receipt" in screen_text(again), "the thread listed")
        again.open_session(thread_id)
        await wait_for(
            pilot,
            lambda: (
                "action.completed" in screen_text(again) and "email a receipt" in screen_text(again)
            ),
            "the whole timeline",
        )
        events = (await restarted.list_events(thread_id)).data
        assert [(event.sequence, event.type) for event in events] == timeline


def static_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_requested_variables_are_asked_for_and_closing_says_it_stops_billing(
    fake: FakeAG2Trust, tmp_path: Path
) -> None:
    backend = create_backend(config(fake, tmp_path / "record.sqlite3"))
    fake.script(Reply(requested_variables=["ORDER_ID"]))
    thread_id = (await backend.create_session(SessionCreate(prompt="Where is my parcel?"))).id
    app = SessionScopeApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session(thread_id)
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the thread")
        session_screen = app.screen
        await wait_for(pilot, lambda: "asks for ORDER_ID" in screen_text(app), "the request")
        await pilot.press("V")
        await wait_for(pilot, lambda: on_top(app, VariablesScreen), "the variables form")
        form = app.screen
        assert isinstance(form, VariablesScreen)
        await wait_for(pilot, lambda: form.loaded, "the variables")
        assert "asks for ORDER_ID" in static_text(form, "#form-status")
        [row] = form.rows()
        assert row.key_input.value == "ORDER_ID"
        row.value_input.value = "A-123"
        # A key that breaks the rules: refused in the form, nothing sent.
        await form.action_add_row()
        form.rows()[-1].key_input.value = "order_note"
        await pilot.pause()
        assert "UPPERCASE_SNAKE_CASE" in static_text(form, "#variables-error")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert fake.posts(f"/api/v1/sessions/{thread_id}") == []
        form.rows()[-1].key_input.value = ""
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: fake.threads[thread_id].variables, "the PATCH")
        assert fake.threads[thread_id].variables == {"ORDER_ID": "A-123"}
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is session_screen, "the thread again")

        await pilot.press("c")
        await wait_for(pilot, lambda: on_top(app, ConfirmationModal), "the close question")
        assert "stops billing" in static_text(app.screen, "#confirm-body")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoModal), "the outcome")
        outcome = static_text(app.screen, "#info-body")
        assert "Duration: " in outcome and "Billable: yes" in outcome
    assert fake.threads[thread_id].closed


async def test_the_status_line_says_when_the_rate_budget_runs_low(
    fake: FakeAG2Trust, tmp_path: Path
) -> None:
    fake.rate_limit = 30
    backend = create_backend(config(fake, tmp_path / "record.sqlite3"))
    thread_id = (await backend.create_session(SessionCreate(prompt="hello"))).id
    app = SessionScopeApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        app.open_session(thread_id)
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the thread")
        await wait_for(pilot, lambda: "stream live" in screen_text(app), "the watch")
        assert "rate limit" not in screen_text(app)  # 29 of 30 left: nothing to say
        fake.spend(25)  # other clients of the organisation spend the budget
        await backend.send_message(thread_id, "are you there?")
        await wait_for(
            pilot,
            lambda: "rate limit low: 3 of 30 requests left" in screen_text(app),
            "the hint in the status line",
        )


# -- snapshot ------------------------------------------------------------------------------------


class FixedNameBackend(AG2TrustBackend):
    """The real backend; only the header's host is fixed (the port changes per run)."""

    @property
    def display_name(self) -> str:
        return "api.ag2trust.com · support-pool"


def _build_record(fake: FakeAG2Trust, record: Path) -> str:
    async def build() -> str:
        backend = create_backend(config(fake, record))
        try:
            fake.script(Reply(requested_variables=["ORDER_ID"]))
            session = await backend.create_session(
                SessionCreate(title="Refund for order 42", prompt="Please refund order 42.")
            )
            fake.script(
                Reply(
                    content="I can refund it once you confirm the email to finance.",
                    pending_action={
                        "tool": "send_email",
                        "preview": {"to": "finance@example.com", "subject": "Refund order 42"},
                        "expires_at": BASE + timedelta(minutes=15),
                    },
                )
            )
            await backend.send_message(session.id, "It arrived broken.")
            return session.id
        finally:
            await backend.aclose()

    thread_id = asyncio.run(build())
    # Fixed times, so the snapshot does not depend on when it runs.
    with sqlite3.connect(record) as db:
        db.execute(
            "UPDATE events SET created_at = ? || printf('%02d', sequence) || '+00:00'",
            (BASE.strftime("%Y-%m-%dT%H:%M:"),),
        )
        db.execute(
            "UPDATE threads SET created_at = ?, updated_at = ?",
            (BASE.isoformat(), (BASE + timedelta(seconds=30)).isoformat()),
        )
        db.execute("UPDATE actions SET created_at = ?", (BASE.isoformat(),))
    db.close()
    return thread_id


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze(NOW)
    yield
    clock.freeze(None)


def test_session_screen_snapshot(
    fake: FakeAG2Trust, tmp_path: Path, snap_compare: Any, frozen_clock: None
) -> None:
    record = tmp_path / "record.sqlite3"
    thread_id = _build_record(fake, record)
    app = SessionScopeApp(FixedNameBackend(config(fake, record)), watch=False)

    async def run_before(pilot: Any) -> None:
        app.open_session(thread_id)
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
                screen.timeline.store.row_count == 6
                and len(screen._actions) == 1
                and screen.query_one("#session-actions").size.height > 0
                and "pending action" in screen_text(app)
                and screen.watch_state is WatchState.LIVE
            ),
            "the thread's events",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
