"""The sessions list misses no change committed while it loads: at startup (between the first
page's snapshot and the organisation watch's start) and on a reload (while the page is on its
way). Each race is forced by a backend that makes the change at exactly that moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from test_sessions import SIZE, create_session, started, wait_for

from sessionscope.backends import BackendConfig, SessionQuery, WatchState, WatchStateCallback
from sessionscope.backends.native import NativeBackend
from sessionscope.models import OrgChange, Page, Session, SessionCreate
from sessionscope.tui.app import SessionScopeApp

DEADLINE = 15.0


class RacingBackend(NativeBackend):
    """Runs ``after_page`` once, after the next sessions page has come back from the server and
    before the console gets it; records which sessions the organisation watch delivered."""

    def __init__(self, url: str, api_key: str) -> None:
        options = {"retry_attempts": 1, "reconnect_base": 0.05, "reconnect_max": 0.2}
        super().__init__(BackendConfig(url=url, api_key=api_key, timeout=5.0, options=options))
        self.after_page: Callable[[], Awaitable[None]] | None = None
        self.delivered: set[str] = set()
        #: Set once ``after_page`` has run; the watch subscribes only then (see ``watch_org``).
        self.raced = asyncio.Event()

    def create_after_next_page(self, title: str) -> None:
        async def create() -> None:
            await self.create_session(SessionCreate(title=title))

        self.after_page = create

    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        page = await super().list_sessions(query, cursor=cursor, limit=limit)
        hook, self.after_page = self.after_page, None
        if hook is not None:
            await hook()
            self.raced.set()
        return page

    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        # A watch that subscribes before the racing change would see it whatever its starting
        # point: it waits, so that only where it starts from decides.
        await self.raced.wait()
        async for change in super().watch_org(after=after, on_state=on_state):
            self.delivered.add(change.session_id)
            yield change


def titles(app: SessionScopeApp) -> list[str]:
    return [session.title for session in app.sessions_screen.table.pages.loaded()]


async def listed_by_the_time_a_later_one_is(
    pilot: Any, app: SessionScopeApp, running: Any, title: str
) -> None:
    """Changes arrive in order: once a session created now is listed, ``title`` had its
    chance."""
    create_session(running, "later")
    await wait_for(
        pilot, lambda: "later" in titles(app), "the later session", lambda: str(titles(app))
    )
    assert title in titles(app)


async def test_a_session_created_after_the_first_page_before_the_watch_is_listed(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    create_session(running, "listed")
    backend = RacingBackend(running.url, running.api_key)
    backend.create_after_next_page("between")  # the first page asked for at startup
    app = SessionScopeApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        await listed_by_the_time_a_later_one_is(pilot, app, running, "between")


async def test_a_session_created_while_a_reload_is_on_its_way_is_listed(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    create_session(running, "listed")
    backend = RacingBackend(running.url, running.api_key)
    backend.raced.set()  # the startup is not raced here
    app = SessionScopeApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")

        async def create_and_deliver() -> None:
            # After the reload's snapshot: the page will not have it. The watch delivers it
            # and the console hands it to the list before the page gets there.
            made = await backend.create_session(SessionCreate(title="during reload"))
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while made.id not in backend.delivered or len(app._org_live):
                assert asyncio.get_running_loop().time() < deadline, "the change was not delivered"
                await asyncio.sleep(0.01)

        backend.after_page = create_and_deliver
        await pilot.press("r")
        await wait_for(pilot, lambda: backend.after_page is None, "the reload's page")
        await wait_for(pilot, lambda: app.sessions_screen.table.pages.started, "the reloaded list")
        await listed_by_the_time_a_later_one_is(pilot, app, running, "during reload")


async def test_after_a_failed_start_r_follows_from_the_reloaded_page(
    make_server: Callable[..., Any], unused_port: int
) -> None:
    # The key the servers of make_server accept (tests/conftest.py).
    backend = RacingBackend(f"http://127.0.0.1:{unused_port}", "test-key-acme-0123456789")
    app = SessionScopeApp(backend)
    async with app.run_test(size=SIZE) as pilot:
        message = app.sessions_screen.query_one("#sessions-message")
        await wait_for(pilot, lambda: bool(message.display), "the error message")
        # The first page failed: the watch started anyway, with no position ("now").
        assert app._watch_started and app._org_position is None
        running = make_server(port=unused_port)
        create_session(running, "listed")
        backend.create_after_next_page("between")  # the reload's page
        await pilot.press("r")
        await started(pilot)
        await wait_for(pilot, lambda: app.connection_state is WatchState.LIVE, "live")
        await listed_by_the_time_a_later_one_is(pilot, app, running, "between")
