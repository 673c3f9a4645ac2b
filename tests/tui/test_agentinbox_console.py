"""The console on AgentInbox, driven with Pilot against the fake AgentInbox (written from the
platform's documents): a session's waits shown with their countdown where pending actions show
(the session header, the session screen, the inbox) and watched, never decided; the timeline's
one-line summaries, followed by polling; an SVG snapshot of the session screen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.agentinbox import AgentInboxFake
from session_support import SIZE, screen_lines, screen_text, wait_for
from textual.pilot import Pilot
from textual.widgets import Button, TextArea

from sessionscope.backends import BackendConfig, WatchState, create_backend
from sessionscope.backends.agentinbox import AgentInboxBackend
from sessionscope.models import ActionStatus, Session
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.inbox import InboxScreen
from sessionscope.tui.screens.lifecycle import CreateSessionScreen
from sessionscope.tui.screens.replay import ReplayScreen
from sessionscope.tui.screens.session import SessionScreen

BASE = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = BASE + timedelta(seconds=75)
SNAPSHOT_SESSION = "sess_snapshot0001"


def backend_config(fake: AgentInboxFake, poll_interval: float = 0.05) -> BackendConfig:
    return BackendConfig(
        name="agentinbox",
        url=fake.url,
        api_key=fake.api_key,
        timeout=5.0,
        poll_interval=poll_interval,
        options={"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2},
    )


def make_app(fake: AgentInboxFake) -> SessionScopeApp:
    return SessionScopeApp(create_backend(backend_config(fake)))


@pytest.fixture(autouse=True)
def _unfrozen_clock() -> Iterator[None]:
    yield
    clock.freeze(None)


@pytest.fixture
def fake() -> Iterator[AgentInboxFake]:
    with AgentInboxFake() as running:
        yield running


async def open_session(pilot: Pilot[Any], session_id: str) -> SessionScreen:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(session_id)
    await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the session screen")
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    return screen


def posts_to_waits(fake: AgentInboxFake) -> list[str]:
    return [
        f"{r.method} {r.path}" for r in fake.requests if "/waits" in r.path and r.method != "GET"
    ]


async def test_a_wait_is_shown_with_its_countdown_and_cannot_be_decided(
    fake: AgentInboxFake,
) -> None:
    session_id = fake.add_session("user-signup-flow", {"environment": "staging"})
    fake.add_inbox(session_id)
    wait_id = fake.add_wait(session_id, "otp", 120)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, session_id)
        await wait_for(pilot, lambda: len(screen._actions) == 1, "the wait")
        await wait_for(pilot, lambda: "waiting" in screen_text(app), "the wait painted")
        text = screen_text(app)
        assert "wait: otp" in text and "cannot be decided" in text
        assert "pending 1" in text  # the session header counts it
        assert "1m 5" in text or "2m 00s" in text  # the time left of timeoutSeconds
        await pilot.press("p", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the wait's modal")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.WATCHING, "watching")
        await wait_for(pilot, lambda: "Watch only" in screen_text(app), "the note painted")
        text = screen_text(app)
        assert "cannot be confirmed or cancelled" in text and "expires in 1m" in text
        assert not modal.query_one("#action-confirm", Button).display
        assert not modal.query_one("#action-cancel", Button).display
        # Neither key is offered, and pressing them sends nothing.
        assert modal.check_action("confirm", ()) is False
        assert modal.check_action("cancel_action", ()) is False
        await pilot.press("y", "n")
        assert modal.decisions_sent == 0 and posts_to_waits(fake) == []
        # The wait ends on the platform: the modal reads it again and shows the result.
        fake.complete_wait(wait_id, {"type": "otp", "value": "123456", "confidence": 0.98})
        await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the wait's end")
        await wait_for(pilot, lambda: "123456" in screen_text(app), "the result painted")
        assert "Completed." in screen_text(app)
        assert modal.action is not None and modal.action.status is ActionStatus.COMPLETED
        await pilot.press("escape")
        # The timeline polls in the wait's completion; the pending list empties.
        await wait_for(pilot, lambda: not screen._actions, "the wait gone from the list")
        await wait_for(
            pilot, lambda: f"wait {wait_id} completed" in screen_text(app), "wait.completed"
        )


async def test_the_inbox_lists_waits_as_watch_only(fake: AgentInboxFake) -> None:
    first = fake.add_session("signup")
    second = fake.add_session("password reset")
    fake.add_wait(first, "magic_link", 300)
    fake.add_wait(second, "password_reset", 600)
    done = fake.add_wait(second, "email", 600)
    fake.complete_wait(done, {"type": "email", "value": "msg_1"})
    fake.add_session("finished", status="completed")
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        app.open_inbox()
        await wait_for(pilot, lambda: isinstance(app.screen, InboxScreen), "the inbox")
        inbox = app.screen
        assert isinstance(inbox, InboxScreen)
        await wait_for(pilot, lambda: inbox.loads >= 1, "the inbox loaded")
        assert sorted(action.tool for action in inbox.actions) == [
            "wait: magic_link",
            "wait: password_reset",
        ]
        await wait_for(pilot, lambda: "waits cannot be decided" in screen_text(app), "note")
        text = screen_text(app)
        assert "signup" in text and "password reset" in text
        assert "4m 5" in text or "5m 00s" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.WATCHING, "watching")
        assert posts_to_waits(fake) == []


async def test_the_timeline_follows_new_entries_with_summaries(fake: AgentInboxFake) -> None:
    session_id = fake.add_session("followed")
    inbox_id = fake.add_inbox(session_id)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, session_id)
        await wait_for(pilot, lambda: f"inbox {inbox_id} created" in screen_text(app), "entry")
        assert f"session {session_id} created" in screen_text(app)
        assert screen.watch_state is WatchState.POLLING
        assert "polling every" in screen_text(app)
        # The header: the platform, its host, and how the console follows it.
        await wait_for(
            pilot, lambda: app.connection_state is WatchState.POLLING, "the org watch polling"
        )
        await wait_for(pilot, lambda: "polling" in screen_lines(app)[0], "the header's state")
        assert "AgentInbox" in screen_lines(app)[0]
        message_id = fake.receive_message(session_id)
        fake.add_event(session_id, "inbox.deleted", {"inboxId": inbox_id})
        await wait_for(
            pilot, lambda: f"message {message_id} received" in screen_text(app), "a new message"
        )
        await wait_for(
            pilot, lambda: f'{{"inboxId":"{inbox_id}"}}' in screen_text(app), "the raw entry"
        )
        assert screen.timeline.store.row_count == 4


async def test_the_replay_steps_show_in_the_waterfall(fake: AgentInboxFake) -> None:
    session_id = fake.add_session("replayed")
    inbox_id = fake.add_inbox(session_id)
    wait_id = fake.add_wait(session_id, "otp", 120)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, session_id)
        await wait_for(pilot, lambda: len(screen._actions) == 1, "the session opened")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay")
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        await wait_for(pilot, lambda: len(replay.steps) == 2, "the replay's steps")
        await wait_for(pilot, lambda: "create_wait" in screen_text(app), "the waterfall")
        text = screen_text(app)
        assert "create_inbox" in text and "120ms" in text and "45ms" in text
        assert [step.output for step in replay.steps] == [{"id": inbox_id}, {"id": wait_id}]
        assert [r.method for r in fake.requests if r.path.endswith("/replay")] == ["POST"]


async def test_platform_text_is_shown_as_plain_text(fake: AgentInboxFake) -> None:
    session_id = fake.add_session("[bold]signup[/bold] \x1b[2J")
    wait_id = fake.add_wait(session_id, "otp", 120)
    fake.complete_wait(wait_id, {"type": "otp", "value": "[red]123456[/red] \x1b]0;pwned\x07"})
    fake.add_event(session_id, "message.received", {"messageId": "[link=x]m[/link]"})
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await open_session(pilot, session_id)
        await wait_for(pilot, lambda: "[link=x]m[/link]" in screen_text(app), "the raw id")
        assert "[bold]signup[/bold] ␛[2J" in screen_text(app)
        app.open_action(session_id, wait_id)
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.DONE, "the completed wait")
        await wait_for(pilot, lambda: "[red]123456[/red]" in screen_text(app), "the result")
        assert "pwned" in screen_text(app) and "\x1b" not in screen_text(app)


async def test_the_new_session_form_offers_a_name_and_metadata_only(
    fake: AgentInboxFake,
) -> None:
    app = make_app(fake)
    created: list[Session | None] = []
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(CreateSessionScreen(), created.append)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CreateSessionScreen) and app.screen.focused is not None,
            "the form",
        )
        form = app.screen
        assert not form.query("#create-agent") and not form.query("#create-tags")
        assert not form.query("#create-prompt")
        await pilot.press(*"user-signup-flow")  # the title has the focus
        metadata = form.query_one("#create-metadata", TextArea)
        metadata.text = "[1, 2]"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "JSON object" in screen_text(app), "the metadata error")
        assert not [r for r in fake.requests if r.method == "POST"]
        metadata.text = '{"environment": "staging"}'
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: bool(created), "the session created")
    posted = [r.body for r in fake.requests if r.method == "POST"]
    assert posted == [{"name": "user-signup-flow", "metadata": {"environment": "staging"}}]
    session = created[0]
    assert session is not None and fake.sessions[session.id].metadata == {"environment": "staging"}


class FixedNameBackend(AgentInboxBackend):
    """The real client; only the header's server name is fixed (the port changes per run)."""

    @property
    def display_name(self) -> str:
        return "agentinbox.in"


@pytest.fixture
def snapshot_fake() -> Iterator[AgentInboxFake]:
    with AgentInboxFake(clock=BASE) as running:
        session_id = running.add_session(
            "user-signup-flow", {"environment": "staging"}, session_id=SNAPSHOT_SESSION
        )
        running.add_inbox(session_id, at=BASE + timedelta(seconds=1))
        running.receive_message(session_id, at=BASE + timedelta(seconds=30))
        link = running.add_wait(
            session_id, "magic_link", 60, at=BASE + timedelta(seconds=2), wait_id="wait_link01"
        )
        running.complete_wait(
            link,
            {"type": "magic_link", "value": "https://example.com/verify?t=1"},
            at=BASE + timedelta(seconds=31),
        )
        running.add_wait(
            session_id, "otp", 120, at=BASE + timedelta(seconds=40), wait_id="wait_otp0001"
        )
        yield running


def test_agentinbox_session_screen_snapshot(
    snapshot_fake: AgentInboxFake, snap_compare: Any
) -> None:
    clock.freeze(NOW)
    app = SessionScopeApp(FixedNameBackend(backend_config(snapshot_fake, 2.0)), watch=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_session(pilot, SNAPSHOT_SESSION)
        await wait_for(
            pilot,
            lambda: (
                bool(screen.query("#session-actions"))
                and screen.timeline.store.row_count == 4
                and len(screen._actions) == 1
                and screen.query_one("#session-actions").size.height > 0
                and "waiting" in screen_text(app)
                and screen.watch_state is WatchState.POLLING
                and "loading…" not in screen_text(app)
                # the polled entries counted in the rate sparkline (drawn once a second)
                and "peak 2" in screen_text(app)
            ),
            "the session, its timeline and its wait",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
