"""``Capability.OLDEST_FIRST`` is claimed only while the server honours ``order=oldest``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from client_support import fast_config

from sessionscope.backends import Capability, SessionQuery, Unsupported
from sessionscope.backends.native import NativeBackend
from sessionscope.models import SessionCreate


def as_an_older_server(backend: NativeBackend) -> None:
    """Requests reach the server without ``order``: what a server that predates it sees."""

    async def drop_order(request: httpx.Request) -> None:
        request.url = request.url.copy_remove_param("order")

    backend._http.client.event_hooks["request"].append(drop_order)


async def test_a_server_that_ignores_order_loses_the_capability(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    async with NativeBackend(fast_config(running.url, running.api_key)) as backend:
        for number in range(3):
            await backend.create_session(SessionCreate(title=f"session {number}"))
        oldest = await backend.list_sessions(SessionQuery(order="oldest"))
        assert [s.title for s in oldest.data] == ["session 0", "session 1", "session 2"]
        assert backend.supports(Capability.OLDEST_FIRST)

        as_an_older_server(backend)
        with pytest.raises(Unsupported) as raised:
            await backend.list_sessions(SessionQuery(order="oldest"))
        assert raised.value.capability is Capability.OLDEST_FIRST
        assert not backend.supports(Capability.OLDEST_FIRST)
        assert backend.supports(Capability.LIST_SESSIONS)
        newest = await backend.list_sessions()
        assert [s.title for s in newest.data] == ["session 2", "session 1", "session 0"]
    # Per backend: another one against a current server still has it.
    assert Capability.OLDEST_FIRST in NativeBackend.capabilities


async def test_a_single_row_does_not_drop_it(
    make_server: Callable[..., Any],
) -> None:
    running = make_server()
    async with NativeBackend(fast_config(running.url, running.api_key)) as backend:
        await backend.create_session(SessionCreate(title="only"))
        as_an_older_server(backend)
        # One row is the same in either order: nothing is wrong with it.
        page = await backend.list_sessions(SessionQuery(order="oldest"))
        assert [s.title for s in page.data] == ["only"]
        assert backend.supports(Capability.OLDEST_FIRST)
