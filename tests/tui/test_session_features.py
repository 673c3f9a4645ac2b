"""The session screen's tabs and session keys, end to end against the reference server: artifacts,
tool calls, variables, message, event visibility, lifecycle, replay, export, the rate sparkline,
and keys greyed out for a backend without a capability or in read-only mode."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from session_support import (
    SIZE,
    agent_client,
    create_session,
    events_of_type,
    make_app,
    post_event,
    post_messages,
    screen_text,
    wait_for,
)
from textual.binding import Binding
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, TabbedContent

from sessionscope.backends import Capability
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.event_rate import EventRate
from sessionscope.tui.help import collect_keys
from sessionscope.tui.screens.confirm import ConfirmationModal, InfoModal
from sessionscope.tui.screens.export import ExportScreen
from sessionscope.tui.screens.lifecycle import EditSessionScreen, EventVisibilityModal
from sessionscope.tui.screens.message import MessageScreen
from sessionscope.tui.screens.replay import ReplayScreen
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.screens.tool_call import ToolResultScreen
from sessionscope.tui.screens.variables import VariablesScreen
from sessionscope.tui.widgets.artifacts import ArtifactsPane
from sessionscope.tui.widgets.timeline import Timeline
from sessionscope.tui.widgets.tool_calls import ToolCallsPane, ToolCallTable


def visible_rows(timeline: Timeline) -> list[str]:
    return [timeline.render_line(y).text for y in range(timeline.size.height)]


async def open_session(pilot: Pilot[Any], session_id: str, rows: int) -> SessionScreen:
    app = pilot.app
    assert isinstance(app, SessionScopeApp)
    app.open_session(session_id)
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
            screen.timeline.store.row_count >= rows
            and "loading…" not in "".join(visible_rows(screen.timeline))
        ),
        f"{rows} timeline rows",
    )
    return screen


async def back_to(pilot: Pilot[Any], screen: SessionScreen) -> None:
    await wait_for(pilot, lambda: pilot.app.screen is screen, "the session screen again")


async def test_artifacts_tab_shows_an_uploaded_artifact(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Artifacts tab")
        response = await client.post(
            f"/sessions/{session_id}/artifacts",
            json={
                "name": "report.md",
                "mime_type": "text/markdown",
                "data": base64.b64encode(b"# Quarterly report\n\nAll good.").decode(),
            },
        )
        response.raise_for_status()
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 2)
            assert not screen.query(ArtifactsPane), "mounted only when the tab is first shown"
            await pilot.press("2")
            await wait_for(pilot, lambda: bool(screen.query(ArtifactsPane)), "the pane")
            pane = screen.query_one(ArtifactsPane)
            await wait_for(pilot, lambda: pane.shown_id is not None, "the preview")
            assert screen.tabs.active == "tab-artifacts"
            assert [artifact.name for artifact in pane.artifacts] == ["report.md"]
            text = screen_text(app)
            assert "report.md" in text and "Quarterly report" in text
            assert "Refresh" in text or "Reload" in text
            # The header stays; 1 goes back to the timeline with the focus on it.
            assert "Artifacts tab" in text
            await pilot.press("1")
            await wait_for(pilot, lambda: screen.timeline.has_focus, "the timeline")


async def test_tool_calls_tab_masks_secrets_and_enter_submits_a_result(server: Any) -> None:
    ToolCallsPane.REVEAL_SECONDS = 30
    try:
        async with agent_client(server) as client:
            session_id = await create_session(client, "Tool calls tab")
            response = await client.post(
                f"/sessions/{session_id}/tool-calls",
                json={
                    "tool": "crm.lookup",
                    "arguments": [
                        {"name": "customer", "value": "ACME-42"},
                        {"name": "api_token", "value": "tok_live_hunter2", "secret": True},
                    ],
                },
            )
            response.raise_for_status()
            call_id = response.json()["id"]
            app = make_app(server)
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_session(pilot, session_id, 2)
                # Mounted once the timeline has shown its rows; it then counts the calls.
                await wait_for(pilot, lambda: bool(screen.query(ToolCallsPane)), "the pane")
                pane = screen.query_one(ToolCallsPane)
                await wait_for(pilot, lambda: len(pane.calls) == 1, "the outstanding call")
                await wait_for(
                    pilot,
                    lambda: "Tool calls (1)" in screen_text(app),
                    "the tab counting the outstanding call",
                )
                await pilot.press("3")
                await wait_for(pilot, lambda: pane.table.has_focus, "the tool calls table")
                text = screen_text(app)
                assert "crm.lookup" in text and "ACME-42" in text
                assert "hunter2" not in text, "secret values are masked"

                await pilot.press("v")
                await wait_for(pilot, lambda: "tok_live_hunter2" in screen_text(app), "reveal")
                # A second press restarts the countdown: short now, so the mask comes back.
                ToolCallsPane.REVEAL_SECONDS = 0.1
                await pilot.press("v")
                await wait_for(pilot, lambda: "hunter2" not in screen_text(app), "masked again")

                await pilot.press("enter")
                await wait_for(
                    pilot, lambda: isinstance(app.screen, ToolResultScreen), "the result form"
                )
                await pilot.press(*"found", "ctrl+s")
                await back_to(pilot, screen)
                # The result's event arrives on the live stream and empties the list.
                await wait_for(pilot, lambda: not pane.calls and pane.loaded, "an empty list")
                assert "Tool calls (1)" not in screen_text(app)
                results = await events_of_type(client, session_id, "tool_call.result")
                assert [event["payload"]["call_id"] for event in results] == [call_id]
                assert results[0]["payload"]["output"] == "found"

                # A new request on the stream shows up without a key press.
                response = await client.post(
                    f"/sessions/{session_id}/tool-calls", json={"tool": "crm.update"}
                )
                response.raise_for_status()
                await wait_for(pilot, lambda: len(pane.calls) == 1, "the live tool call")
    finally:
        ToolCallsPane.REVEAL_SECONDS = 10.0


async def test_message_key_sends_a_message_that_appears_in_the_timeline(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Message key")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 1)
            await pilot.press("m")
            await wait_for(pilot, lambda: isinstance(app.screen, MessageScreen), "the form")
            await pilot.press(*"please retry [b]now", "ctrl+s")
            await back_to(pilot, screen)
            await wait_for(
                pilot,
                lambda: any(
                    "message.user" in row and "please retry [b]now" in row
                    for row in visible_rows(screen.timeline)
                ),
                "the message in the timeline",
            )


async def test_hide_the_selected_event_from_the_timeline(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Hide key")
        await post_messages(client, session_id, 2, "keep")
        target = await post_event(client, session_id, "message.agent", {"content": "noisy"})
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 4)
            timeline = screen.timeline
            assert timeline.event_at_cursor() is not None
            assert timeline.event_at_cursor().id == target["id"]  # type: ignore[union-attr]
            await pilot.press("x")
            await wait_for(
                pilot, lambda: isinstance(app.screen, EventVisibilityModal), "the visibility modal"
            )
            await pilot.press("h")
            await back_to(pilot, screen)
            await wait_for(
                pilot,
                lambda: any(
                    "hidden event" in row and "noisy" not in row for row in visible_rows(timeline)
                ),
                "the row collapsed as hidden",
            )
            response = await client.get(f"/sessions/{session_id}/events/{target['id']}")
            assert response.json()["hidden"] is True


async def test_visibility_events_on_the_stream_update_the_row(server: Any) -> None:
    """The server may announce hide/unhide/delete as events; the row follows without a reload."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "Visibility events")
        first = await post_event(client, session_id, "message.agent", {"content": "first"})
        second = await post_event(client, session_id, "message.agent", {"content": "second"})
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 3)
            timeline = screen.timeline
            await post_event(
                client,
                session_id,
                "event.hidden",
                {"event_id": first["id"], "sequence": first["sequence"]},
            )
            await post_event(
                client,
                session_id,
                "event.deleted",
                {"event_id": second["id"], "sequence": second["sequence"]},
            )
            await wait_for(pilot, lambda: timeline.store.row_count == 5, "the two notices")
            rows = visible_rows(timeline)
            assert any(
                "event.hidden" in row and f"event #{first['sequence']} hidden" in row
                for row in rows
            )
            assert any("event.deleted" in row for row in rows)
            row_of = {seq: rows[seq - 1] for seq in (first["sequence"], second["sequence"])}
            assert "hidden event" in row_of[first["sequence"]]
            assert "(no event)" in row_of[second["sequence"]]


async def test_an_event_and_its_notice_in_one_batch_end_up_hidden(server: Any) -> None:
    """A resumed backlog, or a burst inside one flush interval, can carry an event and the notice
    that hides or deletes it in one batch: the notice must still find its event."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "One batch")
        await post_event(client, session_id, "message.agent", {"content": "before"})
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 2)
            timeline = screen.timeline
            # Hold the flush so that everything the stream delivers next lands in one batch,
            # whatever the network's timing: the case under test, made deterministic.
            assert not screen._live._scheduled and not len(screen._live)
            screen._live._scheduled = True
            hidden = await post_event(client, session_id, "message.agent", {"content": "tok-1"})
            deleted = await post_event(client, session_id, "message.agent", {"content": "tok-2"})
            for kind, target in (("event.hidden", hidden), ("event.deleted", deleted)):
                notice = await post_event(
                    client,
                    session_id,
                    kind,
                    {"event_id": target["id"], "sequence": target["sequence"]},
                )
            await wait_for(pilot, lambda: len(screen._live) == 4, "the four live events")
            screen._live.flush()
            assert timeline.store.row_count == notice["sequence"]
            await wait_for(
                pilot,
                lambda: "event.deleted" in "".join(visible_rows(timeline)),
                "the batch on screen",
            )
            rows = visible_rows(timeline)
            assert "hidden event" in rows[hidden["sequence"] - 1]
            assert "(no event)" in rows[deleted["sequence"] - 1]
            assert not any("tok-" in row for row in rows), rows


async def test_close_from_the_session_screen(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Close key")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 1)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmationModal), "confirm")
            assert "Close key" in screen_text(app), "the confirmation names the session"
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, InfoModal), "the outcome")
            assert "Billable" in screen_text(app)
            await pilot.press("enter")
            await back_to(pilot, screen)
            await wait_for(pilot, lambda: "CLOSED" in screen_text(app), "the closed status")
            response = await client.get(f"/sessions/{session_id}")
            assert response.json()["status"] == "closed"


async def test_each_session_key_reaches_its_screen(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(
            client, "Keys", context_variables={"ORDER_ID": "42", "REGION": "eu"}
        )
        await post_messages(client, session_id, 3, "step")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 4)
            screens: list[tuple[str, type[Screen[Any]]]] = [
                ("e", EditSessionScreen),
                ("V", VariablesScreen),
                ("R", ReplayScreen),
                ("E", ExportScreen),
                ("C", ConfirmationModal),
                ("D", ConfirmationModal),
            ]
            for key, kind in screens:
                await pilot.press(key)
                await wait_for(pilot, partial(_showing, app, kind), kind.__name__)
                await pilot.press("escape")
                await back_to(pilot, screen)
            response = await client.get(f"/sessions/{session_id}")
            assert response.json()["status"] != "completed", "escape completed nothing"

            await pilot.press("4")
            table = screen.query_one("#variables-table", DataTable)
            await wait_for(pilot, lambda: table.has_focus, "the variables tab")
            text = screen_text(app)
            assert "ORDER_ID" in text and "REGION" in text and "V edits them" in text

            # The sparkline counted the seeded events (created just now).
            await wait_for(pilot, lambda: sum(screen.rate.series(_now())) >= 4, "the rate")


async def test_tabs_mounted_after_the_timeline_open_from_the_first_key(server: Any) -> None:
    """The tool calls and variables tabs are filled once the timeline has shown its rows, or at
    once when their key comes first; either way the key lands on the tab's table."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "Deferred tabs", context_variables={"K": "v1"})
        await post_messages(client, session_id, 3, "step")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            app.open_session(session_id)
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, SessionScreen) and app.screen.is_mounted,
                "the screen",
            )
            screen = app.screen
            assert isinstance(screen, SessionScreen)
            await pilot.press("4")
            await wait_for(
                pilot,
                lambda: any(table.has_focus for table in screen.query("#variables-table")),
                "the variables table",
            )
            await wait_for(pilot, lambda: "v1" in screen_text(app), "the variable")
            await pilot.press("3")
            await wait_for(
                pilot,
                lambda: any(pane.table.has_focus for pane in screen.query(ToolCallsPane)),
                "the tool calls table",
            )
            assert len(screen.query(ToolCallsPane)) == 1, "mounted once"

        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 3)
            # No key pressed: the tabs fill in once the rows are on screen.
            await wait_for(pilot, lambda: bool(screen.query(ToolCallsPane)), "the tool calls")
            await wait_for(pilot, lambda: bool(screen.query("#variables-note")), "the variables")


def _showing(app: SessionScopeApp, kind: type[Screen[Any]]) -> bool:
    return isinstance(app.screen, kind)


def _now() -> Any:
    from sessionscope.tui import clock

    return clock.now()


def _active(screen: SessionScreen, key: str) -> tuple[bool, str]:
    """(enabled, tooltip) of a key as the footer and the help show it."""
    active = screen.active_bindings[key]
    return active.enabled, active.tooltip


async def test_keys_greyed_out_without_the_capability_and_in_read_only(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Capabilities")
        app = make_app(server)
        # An adapter for a platform without messages or artifacts.
        app.backend.capabilities = frozenset(Capability) - {
            Capability.MESSAGES,
            Capability.ARTIFACTS,
        }
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_session(pilot, session_id, 1)
            await pilot.press("m")
            await pilot.pause()
            assert app.screen is screen, "m does nothing without messages"
            enabled, tooltip = _active(screen, "m")
            assert not enabled and "not supported by native" in tooltip
            tabs = screen.query_one(TabbedContent)
            assert tabs.get_tab("tab-artifacts").disabled
            await pilot.press("2")
            await pilot.pause()
            assert tabs.active == "tab-timeline"
            # What `?` lists for the key.
            help_of = {item.binding_id: item for item in collect_keys(app)}
            message_help = help_of["session.message"]
            assert not message_help.enabled
            assert "not supported by native" in message_help.tooltip

    app = make_app(server, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_session(pilot, session_id, 1)
        for key in ("m", "c", "x"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, f"{key} changes nothing in read-only mode"
        enabled, tooltip = _active(screen, "m")
        assert not enabled and "read-only" in tooltip
        help_of = {
            item.binding_id: item for item in collect_keys(app, frozenset(app.iter_mutating()))
        }
        for binding_id in ("session.message", "session.close", "session.event_visibility"):
            assert help_of[binding_id].note == "read-only", binding_id
        assert help_of["session.replay"].enabled, "replay changes nothing"


BINDING_HOLDERS = [SessionScreen, ToolCallsPane, ToolCallTable]


@pytest.mark.parametrize("holder", BINDING_HOLDERS, ids=lambda c: c.__name__)
def test_bindings_have_ids_descriptions_and_tooltips(holder: type) -> None:
    own = [b for b in holder.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
    assert own
    for binding in own:
        assert binding.id and binding.description and binding.tooltip, binding.key


def test_session_keys_do_not_collide() -> None:
    def keys(holder: type) -> list[str]:
        return [
            key
            for binding in holder.__dict__["BINDINGS"]
            for key in binding.key.split(",")
            if isinstance(binding, Binding)
        ]

    screen_keys = keys(SessionScreen)
    assert len(screen_keys) == len(set(screen_keys)), "a key bound twice on the session screen"
    app_keys = set(keys(SessionScopeApp))
    timeline_keys = set(keys(Timeline))
    assert not set(screen_keys) & (app_keys | timeline_keys)
    # The panes shadow only refresh, with the same meaning (reload what they show).
    assert set(keys(ToolCallsPane)) & set(screen_keys) == {"r"}
    assert set(keys(ArtifactsPane)) & set(screen_keys) == {"r"}


def test_event_rate_buckets_and_window() -> None:
    rate = EventRate(bucket_seconds=10, buckets=3)
    now = datetime(2030, 1, 1, 0, 0, 25, tzinfo=UTC)
    for seconds in (1, 12, 13, 24, 25, -40, 3600):
        rate.add(now.replace(second=0) + timedelta(seconds=seconds), now)
    assert rate.series(now) == [1, 2, 2]
    later = now + timedelta(seconds=20)
    assert rate.series(later) == [2, 0, 0]
