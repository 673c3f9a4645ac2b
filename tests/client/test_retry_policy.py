"""The one retry policy every backend shares (backends/live.py, backends/_http.py): a 429 waits
what the platform asked for, through Retry-After or a hint in its error body, and says
"rate limited, retrying in N s" on the watch state and to the request's retry listener."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from rawserver import RawRequest, RawServer, json_response

from sessionscope.backends import WatchState
from sessionscope.backends._http import platform_retry_hint
from sessionscope.backends.native import NativeBackend

StartServer = Callable[..., Awaitable[RawServer]]
Build = Callable[..., NativeBackend]


def test_platform_retry_hints_are_read_from_the_error_body() -> None:
    assert platform_retry_hint({"status": 429, "retry_after_seconds": 3}) == 3.0  # Everruns
    assert platform_retry_hint({"error": "x", "details": {"retry_after": 7}}) == 7.0  # AG2Trust
    assert platform_retry_hint({"retry_after": "2"}) == 2.0
    assert platform_retry_hint({"retry_after_seconds": -1}) is None
    assert platform_retry_hint({"retry_after_seconds": True}) is None
    assert platform_retry_hint(["not", "a", "problem"]) is None


async def test_a_watch_waits_out_a_429_and_says_so(
    raw_server: StartServer, backends: Build
) -> None:
    """The stream answers 429 with the wait in the problem body only (no Retry-After): the
    watch reports it in the shared words and reconnects no earlier than asked."""
    opened: list[float] = []
    loop = asyncio.get_running_loop()

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        opened.append(loop.time())
        if len(opened) == 1:
            problem = {"title": "Too Many Requests", "status": 429, "retry_after_seconds": 1}
            writer.write(json_response(429, problem, content_type="application/problem+json"))
            return
        frame = json.dumps({"id": "e1", "session_id": "s1", "sequence": 1, "type": "log"})
        writer.write(
            (
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                f"id: 1\ndata: {frame}\n\n"
            ).encode()
        )

    server = await raw_server(handler)
    states: list[tuple[WatchState, str | None]] = []
    watch = backends(server.url, reconnect_max=5.0).watch_session(
        "s1", on_state=lambda s, d: states.append((s, d))
    )
    async with asyncio.timeout(15):
        async for event in watch:
            assert event.sequence == 1
            break
        await watch.aclose()  # type: ignore[attr-defined]
    assert (WatchState.RECONNECTING, "rate limited, retrying in 1 s") in states
    assert opened[1] - opened[0] >= 0.95


async def test_a_request_retried_after_a_429_tells_its_listener(
    raw_server: StartServer, backends: Build
) -> None:
    calls: list[str] = []

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        calls.append(request.path)
        if len(calls) == 1:
            writer.write(json_response(429, {"title": "slow down"}, headers={"Retry-After": "1"}))
            return
        writer.write(json_response(200, {"status": "ok"}))

    server = await raw_server(handler)
    backend = backends(server.url)
    notices: list[str] = []
    backend._http.on_retry = notices.append
    assert await backend.health() == {"status": "ok"}
    assert notices == ["rate limited, retrying in 1 s"]


@pytest.mark.parametrize(
    ("value", "polls"),
    [("false", False), ("0", False), ("no", False), (False, False), ("true", True), (True, True)],
)
def test_an_on_off_option_given_as_text_means_what_it_says(value: object, polls: bool) -> None:
    from sessionscope.backends._http import flag_option
    from sessionscope.backends.base import BackendConfig

    assert flag_option(BackendConfig(options={"poll": value}), "poll") is polls
