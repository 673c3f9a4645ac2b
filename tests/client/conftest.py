from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from client_support import SECRET, fast_config
from rawserver import Handler, RawServer

from sessionscope.backends.native import NativeBackend


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        server = await RawServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., NativeBackend]]:
    """Build NativeBackends that are closed after the test."""
    made: list[NativeBackend] = []

    def build(url: str, api_key: str | None = SECRET, **options: Any) -> NativeBackend:
        backend = NativeBackend(fast_config(url, api_key, **options))
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()
