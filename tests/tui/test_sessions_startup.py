"""Startup path of the sessions screen: the first page asked for before the screen is built is
used once, by a matching request only; work deferred until the first page has painted still runs."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from test_sessions import SIZE, make_app, started, table_of, wait_for

from sessionscope.backends import BackendConfig, SessionQuery, create_backend
from sessionscope.models import SessionStatus
from sessionscope.tui import collector
from sessionscope.tui.screens.sessions import PAGE_SIZE, FirstPage, _ListingBackend


def create_session(running: Any, title: str) -> None:
    with httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {running.api_key}"}
    ) as client:
        client.post("/v1/sessions", json={"title": title}).raise_for_status()


async def settled(first: FirstPage) -> None:
    task = first._task
    assert task is not None
    await asyncio.wait([task], timeout=15)
    assert task.done()


async def test_first_page_is_used_once_then_requests_go_to_the_server(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    create_session(running, "before")
    backend = create_backend(BackendConfig(url=running.url, api_key=running.api_key))
    try:
        first = FirstPage.request(backend)
        await settled(first)
        # Created after the early answer: only a request of its own can see it.
        create_session(running, "after")
        table_view = _ListingBackend(backend, first)
        early = await table_view.list_sessions(SessionQuery(), limit=PAGE_SIZE)
        assert [s.title for s in early.data] == ["before"]
        again = await table_view.list_sessions(SessionQuery(), limit=PAGE_SIZE)
        assert [s.title for s in again.data] == ["after", "before"]
    finally:
        await backend.aclose()


async def test_a_different_first_request_is_not_answered_from_startup(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    create_session(running, "created")
    backend = create_backend(BackendConfig(url=running.url, api_key=running.api_key))
    try:
        first = FirstPage.request(backend)
        table_view = _ListingBackend(backend, first)
        page = await table_view.list_sessions(
            SessionQuery(status=SessionStatus.FAILED), limit=PAGE_SIZE
        )
        assert page.data == []
        assert first.take(SessionQuery(), None, PAGE_SIZE) is None  # used up, not kept
        # Everything else the table might use is the backend's own.
        assert table_view.display_name == backend.display_name
    finally:
        await backend.aclose()


async def test_the_app_shows_the_page_asked_for_at_startup(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    create_session(running, "startup-row")
    app = make_app(running.url, running.api_key, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        table = await started(pilot)
        assert app._first_page is not None
        assert app._first_page.take(SessionQuery(), None, PAGE_SIZE) is None  # consumed
        assert table.cursor_session is not None
        assert table.cursor_session.title == "startup-row"


async def test_session_screen_module_is_imported_after_the_first_page(
    make_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "sessionscope.tui.screens.session", raising=False)
    running = make_server()
    create_session(running, "row")
    app = make_app(running.url, running.api_key, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(
            pilot,
            lambda: "sessionscope.tui.screens.session" in sys.modules,
            "the session screen module imported in the background",
        )


def test_a_failing_background_import_is_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionscope.tui import app as app_module

    monkeypatch.setattr(app_module, "WARM_UP_MODULES", ("sessionscope.no_such_module",))
    app_module._import_quietly()  # no exception: opening a session reports it instead


@pytest.fixture
def collector_paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The collector paused as ``sessionscope``'s command pauses it, in a process where the
    startup heap was never frozen; the collector is on again afterwards whatever happens. The
    time limit is out of reach, so that only the path under test can end the pause."""
    from sessionscope.tui import app as app_module

    monkeypatch.setattr(app_module, "STARTUP_COLLECTOR_LIMIT", 60.0)
    monkeypatch.setattr(collector, "_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # the suite's own heap stays collectable
    collector.pause_for_startup()
    try:
        yield
    finally:
        gc.enable()
        monkeypatch.setattr(collector, "_paused", False)


async def test_the_collector_resumes_once_the_first_page_has_painted(
    make_server: Callable[..., Any], collector_paused: None
) -> None:
    running = make_server()
    create_session(running, "row")
    assert not gc.isenabled()
    app = make_app(running.url, running.api_key, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, gc.isenabled, "the collector resumed after the first page")
        assert not collector.paused()


async def test_the_collector_resumes_when_the_first_page_fails(
    make_server: Callable[..., Any], collector_paused: None
) -> None:
    running = make_server()
    app = make_app(running.url, "not-a-valid-key", watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: table_of(app).load_error is not None,
            "the first page to fail",
        )
        await wait_for(pilot, gc.isenabled, "the collector resumed after the failed page")


async def test_the_collector_resumes_when_the_first_page_never_comes(
    collector_paused: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionscope.tui import app as app_module

    monkeypatch.setattr(app_module, "STARTUP_COLLECTOR_LIMIT", 0.2)
    never_answers = asyncio.Event()

    async def list_sessions(*args: Any, **kwargs: Any) -> Any:
        await never_answers.wait()

    app = make_app("http://127.0.0.1:9", None, watch=False)
    monkeypatch.setattr(app.backend, "list_sessions", list_sessions)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, gc.isenabled, "the collector resumed after its time limit")
        assert not table_of(app).pages.started
