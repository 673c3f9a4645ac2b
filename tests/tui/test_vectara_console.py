"""The console on Vectara, driven with Pilot against the stateful fake (``tests/fakes/vectara.py``)
on loopback: sessions listed, a session's timeline with every event type summarised and followed
by polling, hidden events behind ``h``, a client tool call answered from the tool calls tab, a
message and an interrupt sent; the secret-derived argument never in a captured screen, a log
record or an export until it is revealed. And an SVG snapshot of the session screen."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.vectara import _BASE_TIME, API_KEY, FakeSession, FakeVectara, serve
from session_support import SIZE, screen_text, wait_for
from textual.pilot import Pilot

from sessionscope.backends import BackendConfig, WatchState, create_backend
from sessionscope.backends.vectara import VectaraBackend
from sessionscope.export import export_session
from sessionscope.tui import clock
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.message import MessageScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.screens.tool_call import ToolResultScreen
from sessionscope.tui.widgets.reveal import TimedReveal
from sessionscope.tui.widgets.tool_calls import ToolCallsPane

SECRET = "xoxp-4242-live-slack-token"
SESSION = "ses_refund"
#: The seeded events (the hidden one included).
SEEDED = 14


def seed(fake: FakeVectara) -> FakeSession:
    """One session holding every documented event type, one hidden event and an outstanding
    client tool call whose materialized arguments carry a secret."""
    session = fake.create_session(
        "support",
        "Refund for order 42",
        key=SESSION,
        description="Customer wants a refund",
        metadata={"tier": "gold"},
    )
    add = fake.add_event
    add(session, "input_message", messages=[{"type": "text", "content": "Refund order 42"}])
    add(session, "skill_load", skill_name="refunds", content="How refunds work")
    add(session, "thinking", content="The order is eligible for a refund.")
    add(session, "step_transition", from_step="triage", to_step="billing", content="to billing")
    add(
        session,
        "tool_input",
        tool_call_id="call_1",
        tool_configuration_name="orders",
        tool_name="orders_lookup",
        tool_input={"order": "42"},
    )
    add(
        session,
        "tool_output",
        tool_call_id="call_1",
        tool_configuration_name="orders",
        tool_name="orders_lookup",
        tool_output={"total": 129.5},
        error=False,
    )
    add(session, "structured_output", schema_name="refund", content={"amount": 129.5})
    add(
        session,
        "artifact_upload",
        artifacts=[
            {
                "artifact_id": "art_receipt",
                "filename": "receipt.pdf",
                "mime_type": "application/pdf",
                "size_bytes": 2048,
            }
        ],
    )
    add(session, "image_read", artifact_id="art_receipt", detail="auto")
    hidden = add(session, "agent_output", content="a draft the operator hid")
    hidden["hide_reason"] = "manual"
    add(
        session,
        "context_limit_exceeded",
        message="context nearly full",
        context_limit=200000,
        actual_tokens=210000,
    )
    add(session, "compaction", turns_compacted=3, events_compacted=9, summary_key="sum_1")
    fake.request_client_tool(
        session, "notify_slack", {"channel": "refunds"}, {"slack_token": SECRET}
    )
    return session


@pytest.fixture
def running() -> Iterator[tuple[FakeVectara, str]]:
    fake = FakeVectara()
    seed(fake)
    with serve(fake) as url:
        yield fake, url


def vectara_app(url: str, *, backend_class: type[VectaraBackend] = VectaraBackend) -> Any:
    backend = backend_class(
        BackendConfig(
            name="vectara",
            url=url,
            api_key=API_KEY,
            timeout=5.0,
            poll_interval=0.2,
            options={"agent_key": "support", "retry_attempts": 1, "reconnect_base": 0.05},
        )
    )
    return SessionScopeApp(backend)


async def open_session(pilot: Pilot[Any], rows: int) -> SessionScreen:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(SESSION)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SessionScreen) and app.screen.session is not None,
        "the session screen",
    )
    screen = app.screen
    assert isinstance(screen, SessionScreen)
    await wait_for(
        pilot,
        lambda: (
            screen.timeline.store.row_count >= rows and screen.watch_state is WatchState.POLLING
        ),
        "the timeline's events, polled",
    )
    return screen


async def test_the_console_on_vectara_never_shows_a_secret_until_revealed(
    running: tuple[FakeVectara, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = running
    caplog.set_level(logging.DEBUG)
    captured: list[str] = []

    def capture(app: SessionScopeApp) -> str:
        text = screen_text(app)
        captured.append(text)
        return text

    app = vectara_app(url)
    try:
        TimedReveal.REVEAL_SECONDS = 2.0
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "Refund for order 42" in screen_text(app), "the list")
            assert "Vectara" in capture(app)
            screen = await open_session(pilot, SEEDED)
            await wait_for(
                pilot,
                lambda: "waiting on 1 client tool call: notify_slack" in screen_text(app),
                "the pending call's summary",
            )
            text = capture(app)
            assert "polling every 0.2 s" in text
            for summary in (
                "Refund order 42",
                "loaded skill refunds",
                "step triage → billing",
                'orders_lookup → {"total":129.5}',
                "uploaded receipt.pdf (2,048 bytes)",
                "compacted 3 turns, 9 events",
            ):
                assert summary in text, summary
            assert "a draft the operator hid" not in text
            await pilot.press("h")
            await wait_for(
                pilot, lambda: "[hidden: manual] a draft" in screen_text(app), "the hidden event"
            )
            capture(app)
            await pilot.press("h")

            await pilot.press("3")
            pane = screen.query_one(ToolCallsPane)
            await wait_for(pilot, lambda: len(pane.calls) == 1, "the outstanding call")
            await wait_for(pilot, lambda: pane.table.has_focus, "the tool calls table")
            assert "notify_slack" in capture(app)
            await pilot.press("v")
            # The test can see the secret: so its absence elsewhere means something.
            await wait_for(pilot, lambda: SECRET in screen_text(app), "the revealed secret")
            await wait_for(pilot, lambda: SECRET not in screen_text(app), "masked again")
            await pilot.press("enter")
            await wait_for(
                pilot, lambda: isinstance(app.screen, ToolResultScreen), "the result form"
            )
            capture(app)
            await pilot.press(*"sent", "ctrl+s")
            await wait_for(pilot, lambda: app.screen is screen, "back on the session")
            await wait_for(pilot, lambda: pane.loaded and not pane.calls, "no outstanding call")
            posted = [b for m, p, _q, b in fake.requests if m == "POST" and p.endswith("/events")]
            assert posted[-1]["type"] == "tool_output"
            assert posted[-1]["tool_outputs"][0]["output"] == {"result": "sent"}

            await pilot.press("1", "m")
            await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), "the form")
            assert "Interrupt (ctrl+t)" in capture(app)
            await pilot.press(*"please hurry", "ctrl+s")
            await wait_for(pilot, lambda: app.screen is screen, "back on the session")
            await wait_for(
                pilot, lambda: "echo: please hurry" in screen_text(app), "the reply, polled"
            )
            capture(app)
            await pilot.press("m")
            await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), "the form")
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: app.screen is screen, "back on the session")
            await wait_for(
                pilot, lambda: "session interrupted" in screen_text(app), "the interrupt"
            )
            capture(app)
    finally:
        TimedReveal.REVEAL_SECONDS = 10.0
        await app.backend.aclose()

    async with create_backend(
        BackendConfig(name="vectara", url=url, api_key=API_KEY, options={"agent_key": "support"})
    ) as backend:
        await export_session(backend, SESSION, tmp_path / "export")
    exported = "".join(
        path.read_text(errors="replace")
        for path in (tmp_path / "export").rglob("*")
        if path.is_file()
    )
    assert "client_tool_pending" in exported
    for text in captured:
        assert SECRET not in text
    assert SECRET not in exported
    assert SECRET not in caplog.text
    assert all(SECRET not in record.getMessage() for record in caplog.records)


class FixedNameBackend(VectaraBackend):
    """The real backend; only the header's host is fixed (the fake's port changes per run)."""

    @property
    def display_name(self) -> str:
        return "api.vectara.io"


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    # A day after the events: the rate sparkline's window holds none of them, whichever of the
    # session's first read and the first poll comes first.
    clock.freeze(_BASE_TIME + timedelta(days=1))
    yield
    clock.freeze(None)


def test_session_screen_on_vectara_snapshot(
    running: tuple[FakeVectara, str], snap_compare: Any, frozen_clock: None
) -> None:
    """What the session screen shows on Vectara: the platform's event types summarised, the
    header saying it polls, and only the tabs and keys Vectara supports."""
    _fake, url = running
    app = vectara_app(url, backend_class=FixedNameBackend)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_session(pilot, SEEDED)
        await wait_for(
            pilot,
            lambda: (
                "waiting on 1 client tool call" in screen_text(pilot.app)
                and any(pane.loaded for pane in screen.query(ToolCallsPane))
                and "loading…" not in screen_text(pilot.app)
                and pilot.app.connection_state is WatchState.POLLING
                # the rate line, drawn on the screen's first tick
                and "peak 0" in screen_text(pilot.app)
            ),
            "the painted timeline",
        )
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
