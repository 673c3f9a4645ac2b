"""The console on Everruns, driven with Pilot against the Everruns fake (tests/fakes, written from
the platform's spec and documents): sessions listed, a timeline followed live over SSE, a pause
of two held calls decided in one screen (one allowed, one rejected, with a reason) and the
request body checked at the fake; an SVG snapshot of the session screen on Everruns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.everruns import FakeEverruns
from session_support import SIZE, screen_text, wait_for
from textual.pilot import Pilot
from textual.widgets import Input, Static

from sessionscope.backends import BackendConfig, WatchState, create_backend
from sessionscope.backends.everruns import EverrunsBackend
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.decision import CallChoices, DecisionScreen, DecisionState
from sessionscope.tui.screens.lifecycle import CreateSessionScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.widgets.timeline import Timeline

TOKEN = "evr_pat_console_test"
BASE = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = BASE + timedelta(seconds=75)


def backend_config(
    fake: FakeEverruns, poll_interval: float = 0.05, **options: object
) -> BackendConfig:
    return BackendConfig(
        name="everruns",
        url=fake.url,
        api_key=TOKEN,
        timeout=5.0,
        poll_interval=poll_interval,
        options={
            "org_id": fake.org_id,
            "retry_attempts": 1,
            "reconnect_base": 0.05,
            "reconnect_max": 0.2,
            **options,
        },
    )


@pytest.fixture(autouse=True)
def _unfrozen_clock() -> Iterator[None]:
    yield
    clock.freeze(None)


@pytest.fixture
async def fake() -> AsyncIterator[FakeEverruns]:
    running = await FakeEverruns(token=TOKEN).start()
    try:
        yield running
    finally:
        await running.stop()


async def open_session(pilot: Pilot[Any], session_id: str) -> SessionScreen:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(session_id)
    await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the session screen")
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    await wait_for(pilot, lambda: bool(screen.query(Timeline)), "the timeline mounted")
    return screen


async def test_sessions_listed_and_a_timeline_followed_live(fake: FakeEverruns) -> None:
    session_id = fake.add_session("Debug login issue")
    fake.add_session("Q3 marketing brief")
    fake.agent_says(session_id, 2)
    app = SessionScopeApp(create_backend(backend_config(fake)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "Q3 marketing brief" in screen_text(app), "the list")
        text = screen_text(app)
        assert "Debug login issue" in text
        assert "Everruns 127.0.0.1" in text  # the header names the platform and the host
        # No organisation stream on Everruns: the list is kept fresh by polling, and says so.
        await wait_for(pilot, lambda: "polling every 0.05 s" in screen_text(app), "the mode")
        screen = await open_session(pilot, session_id)
        await wait_for(pilot, lambda: "status started" in screen_text(app), "the platform status")
        # One row per event: the ephemeral deltas' sequence numbers leave no empty rows.
        await wait_for(pilot, lambda: screen.timeline.store.row_count == 3, "the timeline")
        await wait_for(pilot, lambda: screen.watch_state is WatchState.LIVE, "the live stream")
        fake.agent_says(session_id, 2)
        await wait_for(pilot, lambda: screen.timeline.store.row_count == 5, "live events")
        assert "(no event)" not in screen_text(app)
        assert fake.stream_queries, "the timeline followed the SSE stream"
        assert "output.message.delta" not in screen_text(app)
        # The gate holds two calls: the live event brings them to the session's pending items.
        fake.hold_calls(session_id, [("send_email", {"to": "a@example.com"}), ("rm", {})])
        await wait_for(pilot, lambda: len(screen._actions) == 2, "the held calls listed")
        await wait_for(pilot, lambda: "2 calls held for approval" in screen_text(app), "summary")
        await pilot.press("p", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionScreen), "the decision")


async def test_a_pause_of_two_held_calls_is_decided_in_one_screen(fake: FakeEverruns) -> None:
    session_id = fake.add_session("Payments run")
    first, second = fake.hold_calls(
        session_id,
        [("send_email", {"to": "cfo@example.com", "subject": "Q3"}), ("wire_money", {"usd": 5})],
    )
    app = SessionScopeApp(create_backend(backend_config(fake)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "Payments run" in screen_text(app), "the list")
        app.open_action(session_id, first)
        await wait_for(pilot, lambda: isinstance(app.screen, DecisionScreen), "the decision")
        decision = app.screen
        assert isinstance(decision, DecisionScreen)
        await wait_for(pilot, lambda: decision.state is DecisionState.READY, "ready")
        sets = list(decision.query(CallChoices))
        assert [choices.action.id for choices in sets] == [first, second]
        # Exactly the platform's choices, each on a key; the safe one picked and focused.
        assert [c.id for c in sets[0].choices] == [
            "reject",
            "allow",
            "allow_always",
            "reject_always",
        ]
        assert [choice for _, choice in decision.chosen()] == ["reject", "reject"]
        assert decision.focused is sets[0]
        assert decision.check_action("choose", ("confirm",)) is False  # not offered here
        text = screen_text(app)
        assert "counts as rejected" in text
        assert "expires in 14m" in text or "expires in 15m 00s" in text
        assert "Allow always (A)" in text and "covers every call" in text
        await pilot.press("a")  # the first call: allow once
        await pilot.press("tab")  # the second keeps its refusal
        assert decision.focused is sets[1]
        decision.query_one("#decision-reason", Input).focus()
        await pilot.press(*"no wires without a ticket")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: decision.state is DecisionState.DONE, "sent")
        assert "Sent." in screen_text(app)
        await pilot.press("ctrl+s")  # a second send does nothing
        assert decision.decisions_sent == 1
    assert len(fake.approvals) == 1
    assert fake.approvals[0].body == {
        "decisions": [
            {"tool_call_id": first, "decision": "allow"},
            {"tool_call_id": second, "decision": "reject"},
        ]
    }
    assert fake.approvals[0].headers["everruns-change-reason"] == "no wires without a ticket"


class FixedNameBackend(EverrunsBackend):
    """The real client; only the header's host is fixed (the port changes per run)."""

    @property
    def display_name(self) -> str:
        return "everruns.example.com"


@pytest.fixture
def snapshot_fake() -> Iterator[FakeEverruns]:
    fake = FakeEverruns(token=TOKEN, clock=BASE, deterministic_ids=True)
    fake.org_id = "org_" + "0" * 31 + "1"
    session_id = fake.add_session("Debug login issue", agent_id="agent_" + "a" * 32)
    fake.sessions[session_id]["status"] = "idle"
    fake.sessions[session_id]["preview"] = "Why does login fail on staging?"
    fake.agent_says(session_id, 2)
    with fake:
        yield fake


def test_everruns_session_screen_snapshot(snapshot_fake: FakeEverruns, snap_compare: Any) -> None:
    clock.freeze(NOW)
    session_id = next(iter(snapshot_fake.sessions))
    app = SessionScopeApp(FixedNameBackend(backend_config(snapshot_fake, 2.0)))

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_session(pilot, session_id)
        await wait_for(
            pilot,
            lambda: (
                screen.timeline.store.row_count == 3
                and screen.watch_state is WatchState.LIVE
                and "polling every 2 s" in screen_text(app)
                and "events 5" in screen_text(app)
                and "3 rows " in screen_text(app)
                # the loaded events counted in the rate sparkline (drawn once a second)
                and "peak 3" in screen_text(app)
                and "loading…" not in screen_text(app)
            ),
            "the session and its live timeline",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_the_new_session_form_offers_the_platforms_fields_and_checks_ids(
    fake: FakeEverruns,
) -> None:
    fake.add_session("existing")
    app = SessionScopeApp(create_backend(backend_config(fake)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "existing" in screen_text(app), "the list")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, CreateSessionScreen), "the form")
        form = app.screen
        assert isinstance(form, CreateSessionScreen)
        # Exactly everruns-create-session.txt's fields: no metadata, no first prompt.
        for present in ("#create-agent", "#create-title", "#create-tags", "#create-model"):
            assert form.query(present), present
        assert form.query("#create-capabilities")
        assert not form.query("#create-metadata") and not form.query("#create-prompt")
        form.query_one("#create-agent", Input).value = "agent_42"
        form.query_one("#create-title", Input).value = "Debug login issue"
        await pilot.press("ctrl+s")
        error = form.query_one("#create-agent_id-error", Static)
        await wait_for(pilot, lambda: "32 hex" in str(error.render()), "the field's error")
        assert len(fake.sessions) == 1, "nothing was sent"
        form.query_one("#create-agent", Input).value = "agent_" + "a" * 32
        form.query_one("#create-model", Input).value = "model_" + "b" * 32
        form.query_one("#create-capabilities", Input).value = "tool_approval, current_time"
        form.query_one("#create-tags", Input).value = "debugging, urgent"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(fake.sessions) == 2, "the created session")
    created = next(s for s in fake.sessions.values() if s["title"] == "Debug login issue")
    assert created["agent_id"] == "agent_" + "a" * 32
    assert created["model_id"] == "model_" + "b" * 32
    assert created["tags"] == ["debugging", "urgent"]
    assert created["capabilities"] == [{"ref": "tool_approval"}, {"ref": "current_time"}]


async def test_a_rate_limited_request_says_how_long_it_waits(fake: FakeEverruns) -> None:
    fake.add_session("busy")
    # Requests retry (after the platform's hint); the list's own poll is slow enough not to
    # meet the injected failure first.
    config = backend_config(fake, 60.0, retry_attempts=3, retry_base=0.01)
    app = SessionScopeApp(create_backend(config))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "busy" in screen_text(app), "the list")
        fake.fail_next(429, retry_after_seconds=1)
        fake.add_session("arrived later")
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any(
                note.message == "rate limited, retrying in 1 s" for note in app._notifications
            ),
            "the notice",
        )
        await wait_for(pilot, lambda: "arrived later" in screen_text(app), "the retried list")
