"""Following the organisation stream from a listing's position misses nothing listed after it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from client_support import fast_config

from sessionscope.backends import Backend, WatchState
from sessionscope.backends.native import NativeBackend
from sessionscope.models import EventType, OrgChange, SessionCreate

DEADLINE = 15.0


async def changes_until(
    watch: AsyncIterator[OrgChange], ready: asyncio.Event, then: Callable[[], Awaitable[Any]]
) -> list[OrgChange]:
    """Changes from ``watch`` until a session titled "later" is created; ``then`` (run once
    ``ready`` is set) creates it."""
    collected: list[OrgChange] = []

    async def collect() -> None:
        async for change in watch:
            collected.append(change)
            if change.kind == "session.created" and change.session is not None:
                if change.session.title == "later":
                    return

    async with asyncio.timeout(DEADLINE):
        collector = asyncio.create_task(collect())
        await ready.wait()
        await then()
        await collector
    await watch.aclose()  # type: ignore[attr-defined]
    return collected


def watch_from(
    backend: Backend, after: int | None, reached: WatchState
) -> tuple[AsyncIterator[OrgChange], asyncio.Event]:
    """The organisation watch from ``after``, and an event set once it reports ``reached``."""
    event = asyncio.Event()
    watch = backend.watch_org(
        after=after,
        on_state=lambda state, _: event.set() if state is reached else None,
    )
    return watch, event


async def test_a_session_created_between_the_page_and_the_watch_is_delivered(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    async with NativeBackend(fast_config(running.url, running.api_key)) as backend:
        await backend.create_session(SessionCreate(title="listed"))
        page = await backend.list_sessions()
        assert [s.title for s in page.data] == ["listed"]
        # After the page's snapshot, before the watch subscribes: the startup race.
        between = await backend.create_session(SessionCreate(title="between"))
        watch, live = watch_from(backend, page.stream_position, WatchState.LIVE)
        changes = await changes_until(
            watch, live, lambda: backend.create_session(SessionCreate(title="later"))
        )
    created = [c.session_id for c in changes if c.kind == "session.created"]
    assert created[0] == between.id  # neither missed nor preceded by what the page shows
    assert len(created) == 2


async def test_polled_changes_are_numbered_above_the_listing_they_were_found_in(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    config = dataclasses.replace(
        fast_config(running.url, running.api_key, poll=True), poll_interval=0.02
    )
    async with NativeBackend(config) as backend:
        for number in range(3):
            await backend.create_session(SessionCreate(title=f"old {number}"))
        watch, polling = watch_from(backend, 0, WatchState.POLLING)
        before: list[int | None] = []

        async def list_then_create() -> Any:
            before.append((await backend.list_sessions()).stream_position)
            return await backend.create_session(SessionCreate(title="later"))

        changes = await changes_until(watch, polling, list_then_create)
    found = changes[-1]
    # A listing from before the change was made must not count it as included: a console
    # that lists while it polls would otherwise skip it.
    assert before[0] is not None and found.id > before[0]


def polling_config(running: Any) -> Any:
    return dataclasses.replace(
        fast_config(running.url, running.api_key, poll=True), poll_interval=0.02
    )


@pytest.mark.parametrize("created_between", [True, False], ids=["changed", "unchanged"])
async def test_polling_from_a_listing_resets_only_when_something_changed_since(
    make_server: Callable[..., Any], created_between: bool
) -> None:
    running = make_server()
    async with NativeBackend(polling_config(running)) as backend:
        await backend.create_session(SessionCreate(title="listed"))
        page = await backend.list_sessions()
        if created_between:
            # After the listing, before the first poll: a poll only sees the result, not the
            # change, so the poller must not take it as its baseline silently.
            await backend.create_session(SessionCreate(title="between"))
        watch, polling = watch_from(backend, page.stream_position, WatchState.POLLING)
        changes = await changes_until(
            watch, polling, lambda: backend.create_session(SessionCreate(title="later"))
        )
    kinds = [change.kind for change in changes]
    if created_between:
        assert kinds == [EventType.STREAM_RESET, "session.created"]
        assert page.stream_position is not None and changes[0].id > page.stream_position
    else:
        assert kinds == ["session.created"]
