"""What a new operator tripped over in the session screen (issue 19), against the reference
server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from session_support import (
    SIZE,
    agent_client,
    create_action,
    create_session,
    make_app,
    post_event,
    post_messages,
    screen_text,
    wait_for,
)
from test_session_screen import open_session
from textual.pilot import Pilot
from textual.widgets import Button, OptionList, Static

from sessionscope.backends import Capability, WatchState
from sessionscope.models import Event
from sessionscope.tui.app import SessionScopeApp, human_screen_name
from sessionscope.tui.feedback import count_of
from sessionscope.tui.screens.action import ActionModal, ModalState
from sessionscope.tui.screens.event_detail import DescribeScreen, EventDetailScreen
from sessionscope.tui.screens.message import MessageScreen
from sessionscope.tui.screens.session import ALL_TYPES, SessionScreen, TypeFilterModal
from sessionscope.tui.state.event_store import FilteredStore


def status_line(app: SessionScopeApp) -> str:
    return str(app.screen.query_one("#timeline-status", Static).render())


async def wait_status(pilot: Pilot[Any], app: SessionScopeApp, text: str) -> None:
    await wait_for(pilot, lambda: text in status_line(app), f"status {text!r}")


async def test_search_from_follow_mode_finds_visible_rows_and_wraps(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Search while following")
        await post_messages(client, session_id, 3, "noise")
        await post_event(client, session_id, "tool.started", {"tool": "needle-one"})
        await post_messages(client, session_id, 4, "noise")
        await post_event(client, session_id, "tool.started", {"tool": "needle-two"})
        await post_messages(client, session_id, 2, "tail")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 12)
            assert timeline.follow and timeline.cursor_row == 11
            await pilot.press("/", *"needle", "enter")
            # Following, the nearest match is the newest one, above the cursor.
            await wait_for(pilot, lambda: timeline.cursor_row == 9, "the newest match")
            await wait_status(pilot, app, "match 2/2")
            assert "No match" not in screen_text(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: timeline.cursor_row == 4, "n wraps to the top")
            await wait_status(pilot, app, "match 1/2 (from the top)")
            await pilot.press("N")
            await wait_for(pilot, lambda: timeline.cursor_row == 9, "N wraps to the bottom")
            await wait_status(pilot, app, "match 2/2 (from the bottom)")
            # A live match joins the count without a rescan of the rows already seen.
            await post_event(client, session_id, "tool.started", {"tool": "needle-three"})
            await wait_for(pilot, lambda: timeline.store.row_count == 13, "the live row")
            await pilot.press("n")
            await wait_for(pilot, lambda: timeline.cursor_row == 12, "the live match")
            await wait_status(pilot, app, "match 3/3")


async def test_type_filter_lists_types_seen_and_counts_its_rows(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Type filter")
        await post_messages(client, session_id, 3, "noise")
        await post_event(client, session_id, "tool.started", {"tool": "one"})
        await post_event(client, session_id, "tool.started", {"tool": "two"})
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            timeline = await open_session(pilot, session_id, 6)
            seen = {
                event.type
                for row in range(timeline.store.row_count)
                if isinstance(event := timeline.store.lookup(row), Event)
            }
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, TypeFilterModal), "type picker")
            options = app.screen.query_one("#type-filter-options", OptionList)
            listed = {options.get_option_at_index(i).id for i in range(options.option_count)}
            assert listed == {ALL_TYPES, *seen}, "only the types the session had"
            assert "tool.started" in listed and "action.requested" not in listed
            options.highlighted = options.get_option_index("tool.started")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(timeline.store, FilteredStore), "the filter")
            await wait_for(
                pilot,
                lambda: timeline.store.row_count == 2 and not timeline.store.wants_more(),
                "the filtered rows",
            )
            await wait_status(pilot, app, "2 rows  ·")
            assert "0 rows" not in status_line(app)


def toast_texts(app: SessionScopeApp) -> list[str]:
    """The toasts mounted on the screen shown now (the ones a rule hides included)."""
    return [str(toast.render()) for toast in app.screen.query("Toast")]


async def test_repeated_notices_fold_into_one_toast_with_a_count(server: Any) -> None:
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        for _ in range(3):
            app.notify("Select an event first.", timeout=30)
        app.notify("Something else.", timeout=30)
        await wait_for(pilot, lambda: len(toast_texts(app)) == 2, "two toasts")
        texts = toast_texts(app)
        assert any("Select an event first. (3 times)" in text for text in texts), texts
        assert any(text.endswith("Something else.") for text in texts), texts


async def test_toasts_over_the_action_modal_leave_its_buttons_visible(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Small terminal")
        action = await create_action(client, session_id, tool="deploy")
    app = make_app(server, watch=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.open_action(session_id, action["id"])
        await wait_for(pilot, lambda: isinstance(app.screen, ActionModal), "the modal")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, lambda: modal.state is ModalState.READY, "ready")
        for n in range(4):
            app.notify(f"Notice number {n} with a few words to wrap.", title="Note", timeout=30)
        await wait_for(pilot, lambda: len(toast_texts(app)) == 4, "the toasts")
        await pilot.pause()
        buttons = [modal.query_one(f"#action-{name}", Button) for name in ("confirm", "cancel")]
        shown = [toast for toast in modal.query("Toast") if toast.region.area]
        assert len(shown) == 1 and "Notice number 3" in str(shown[0].render())
        for toast in shown:
            for button in buttons:
                assert not toast.region.overlaps(button.region), (toast.region, button.region)


async def test_pending_toast_names_the_inbox_key_only_where_it_works(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Where to decide")
        app = make_app(server)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
            await create_action(client, session_id, tool="first_tool")
            await wait_for(
                pilot, lambda: any("first_tool" in t for t in toast_texts(app)), "the toast"
            )
            assert any("Press a for the inbox." in t for t in toast_texts(app))
            timeline = await open_session(pilot, session_id, 1)
            assert timeline.is_mounted
            await create_action(client, session_id, tool="second_tool")
            await wait_for(
                pilot, lambda: any("second_tool" in t for t in toast_texts(app)), "the toast"
            )
            second = next(t for t in toast_texts(app) if "second_tool" in t)
            assert "for the inbox" not in second, second


async def test_a_key_the_platform_does_not_offer_says_why(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "No messages here")
    app = make_app(server)
    backend = app.console_context.backend
    backend.capabilities = backend.capabilities - {Capability.MESSAGES}  # type: ignore[misc]
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_session(pilot, session_id, 1)
        await pilot.press("m", "m")
        # One line, folded: the second press counts instead of stacking a toast.
        await wait_for(
            pilot,
            lambda: (
                [t for t in toast_texts(app) if "Message" in t]
                == [f"Message: not supported by {app.console_context.platform}. (2 times)"]
            ),
            "the reason, once",
        )
        assert not isinstance(app.screen, MessageScreen)


async def test_help_is_titled_with_a_human_name(server: Any) -> None:
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "SessionsScreen", "the list")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "Keys — " in screen_text(app), "the help")
        assert "Keys — Sessions" in screen_text(app)
        assert "SessionsScreen" not in screen_text(app)
    assert human_screen_name(TypeFilterModal([], None)) == "Type filter"


async def test_reveal_says_when_the_server_stored_secrets_masked(server: Any) -> None:
    def event(value: str) -> Event:
        argument = {"name": "token", "value": value, "secret": True}
        return Event(
            id="evt_1",
            session_id="ses_1",
            sequence=1,
            type="tool.started",
            payload={"tool": "pay", "arguments": [argument]},
        )

    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        for value, said in (
            ("********", "Nothing to reveal: the server stored these secret values masked."),
            ("tok-123", "Secrets revealed."),
        ):
            app.push_screen(EventDetailScreen(event(value)))
            await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the JSON")
            await pilot.press("s")
            await wait_for(
                pilot, lambda s=said: any(t.endswith(s) for t in toast_texts(app)), repr(said)
            )
            app.pop_screen()
            app.clear_notifications()


def test_counts_are_plural_only_when_more_than_one() -> None:
    assert count_of(1, "artifact") == "1 artifact"
    assert count_of(0, "variable") == "0 variables"
    assert count_of(1_200, "event") == "1,200 events"


async def test_header_shows_tags_and_metadata_and_d_describes_the_session(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(
            client,
            "Described",
            tags=["billing", "eu"],
            metadata={"ticket": "T-42", "attempt": 2},
            context_variables={"API_TOKEN": "tok-hush", "REGION": "eu-west"},
        )
    app = make_app(server, watch=False)
    async with app.run_test(size=(160, 36)) as pilot:
        await open_session(pilot, session_id, 1)
        await wait_for(pilot, lambda: "tags billing, eu" in screen_text(app), "the tags")
        assert "metadata ticket=T-42, attempt=2" in screen_text(app)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DescribeScreen), "describe")
        await pilot.pause()
        text = str(app.screen.query_one("#describe-json", Static).render())
        assert f'"id": "{session_id}"' in text and '"ticket": "T-42"' in text
        assert '"REGION": "eu-west"' in text
        assert "tok-hush" not in text, "a secret-looking variable is masked"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DescribeScreen), "back")


async def test_enter_opens_the_highlighted_row_while_live_rows_arrive(server: Any) -> None:
    """Hunting the one-time report "enter opened the row below the highlighted one while the
    list was updating live": rows arrive above the cursor between key presses."""
    async with agent_client(server) as client:
        for n in range(8):
            await create_session(client, f"hunt {n}")
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
            table = app.sessions_screen.table
            await wait_for(pilot, lambda: table.pages.started, "the first page")
            await pilot.press("down", "down", "down")
            target = table.cursor_session
            assert target is not None

            def highlighted_line() -> str:
                return table.render_line(table.cursor_row - round(table.scroll_y) + 1).text

            for n in range(6):
                created = asyncio.create_task(create_session(client, f"live row {n}"))
                await pilot.press("down", "up")
                await created
                assert table.cursor_session is not None
                assert table.cursor_session.id == target.id
            await wait_for(
                pilot,
                lambda: (table.pages.index_of(target.id) or 0) >= 9,
                "the live rows above the cursor",
            )
            await pilot.press("down", "up")
            assert table.cursor_session is not None and table.cursor_session.id == target.id
            assert target.title in highlighted_line()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the session")
            screen = app.screen
            assert isinstance(screen, SessionScreen) and screen.session_id == target.id
