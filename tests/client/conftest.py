from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from rawserver import Handler, RawServer

from sessionscope.backends import BackendConfig
from sessionscope.backends.native import NativeBackend

#: Tiny backoffs so retry and reconnect paths run in milliseconds, not seconds.
FAST: dict[str, Any] = {
    "retry_attempts": 3,
    "retry_base": 0.001,
    "retry_max": 0.005,
    "reconnect_base": 0.001,
    "reconnect_max": 0.02,
    "seed": 7,
}

SECRET = "sk-live-SECRET-4f9a1c"


def fast_config(url: str, api_key: str | None = SECRET, **options: Any) -> BackendConfig:
    return BackendConfig(
        name="native", url=url, api_key=api_key, timeout=5.0, options={**FAST, **options}
    )


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
