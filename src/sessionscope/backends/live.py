"""The live machinery every platform backend shares: follow a stream of positioned items forever,
each once and in order, over Server-Sent Events with a polling fallback, resuming where it
stopped, reporting its state (live / reconnecting / polling / offline) and backing off with
jitter between reconnects.

A backend supplies what is platform-specific: how to open one stream from a resume point
(``open_stream``), how to poll from a position (``poll``), an item's position, and what to do
when the platform has no stream at that path (``stream_missing``). ``LiveWatch.watch`` does the
rest. ``sse_events`` opens one SSE reply on a backend's ``HttpClient`` and yields its frames.

One retry policy for every backend: a 429 waits what the platform asked for (``Retry-After`` or
its own hint, carried by ``RateLimited.retry_after``) and the state detail says
"rate limited, retrying in N s"; every other failure backs off exponentially with full jitter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from sessionscope.backends._http import (
    Backoff,
    HttpClient,
    error_from_transport,
    neutralise_detail,
    rate_limited_detail,
)
from sessionscope.backends.base import (
    AuthError,
    BackendError,
    ConnectError,
    NotFound,
    RateLimited,
    ValidationFailed,
    WatchState,
    WatchStateCallback,
)

log = logging.getLogger("sessionscope.backends.live")

T = TypeVar("T")

#: Items a poll returns at most; a full page is followed at once by the next poll.
POLL_PAGE = 1000


def stopped_state(error: BackendError) -> WatchState:
    """The state a watch ends in: a server that answered with a refusal is not offline."""
    return WatchState.REFUSED if isinstance(error, AuthError) else WatchState.OFFLINE


class RetryHint:
    """A server's reconnect hint (SSE ``retry:``, a ``disconnecting`` frame), passed up from a
    stream to the reconnect loop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"RetryHint({self.seconds:g})"


class StreamMissing(Exception):
    """The platform has no event stream at this path: fall back to polling."""


class StateReporter:
    """Calls the console back only on a change, and never lets its failure stop the watch."""

    def __init__(self, callback: WatchStateCallback | None, redact: Callable[[str], str]) -> None:
        self._callback = callback
        self._redact = redact
        self._last: tuple[WatchState, str | None] | None = None

    def __call__(self, watch_state: WatchState, detail: str | None = None) -> None:
        if detail is not None:
            detail = self._redact(neutralise_detail(detail, 400))
        if self._callback is None or self._last == (watch_state, detail):
            return
        self._last = (watch_state, detail)
        try:
            self._callback(watch_state, detail)
        except Exception:
            log.exception("watch state callback failed")


@dataclass
class Resume(Generic[T]):
    """Where a new stream starts: after the last delivered item (``None`` before the first) or,
    before any, after ``position`` (the caller's ``after``)."""

    item: T | None
    position: int | None


OpenStream = Callable[[Resume[T], StateReporter], AsyncGenerator["T | RetryHint", None]]
Poll = Callable[[int | None], Awaitable[list[T]]]


class LiveWatch:
    """The reconnect loop's settings, shared by every watch of one backend."""

    def __init__(
        self,
        *,
        display_name: str,
        reconnect: Backoff,
        poll_interval: float,
        redact: Callable[[str], str],
        force_poll: bool = False,
        poll_page: int = POLL_PAGE,
    ) -> None:
        self.display_name = display_name
        self.reconnect = reconnect
        self.poll_interval = max(0.01, poll_interval)
        self.redact = redact
        self.force_poll = force_poll
        self.poll_page = poll_page

    async def polled(
        self,
        *,
        poll: Poll[T],
        position: Callable[[T], int],
        after: int | None,
        on_state: WatchStateCallback | None,
    ) -> AsyncGenerator[T, None]:
        """``watch`` for a platform with no stream at all: poll every ``poll_interval``, each
        item once, in order, forever, with the same state reports and backoff."""
        state = StateReporter(on_state, self.redact)
        state(WatchState.CONNECTING, f"connecting to {self.display_name}")
        polled = self._poll(poll, position, after, state)
        async with aclosing(polled):
            async for item in polled:
                yield item

    async def watch(
        self,
        *,
        open_stream: OpenStream[T],
        position: Callable[[T], int],
        after: int | None,
        on_state: WatchStateCallback | None,
        poll: Poll[T],
        stream_missing: Callable[[], Awaitable[None]],
        where: str,
    ) -> AsyncGenerator[T, None]:
        """Deliver items with position > the last delivered one, each once, in order, forever."""
        state = StateReporter(on_state, self.redact)
        last = after
        last_item: T | None = None
        attempt = 0
        hint: float | None = None
        polling = self.force_poll
        state(WatchState.CONNECTING, f"connecting to {self.display_name}")
        while True:
            if polling:
                polled = self._poll(poll, position, last, state)
                async with aclosing(polled):
                    async for item in polled:
                        last = position(item)
                        yield item
                continue  # _poll never ends on its own
            rate_limited = False
            try:
                stream = open_stream(Resume(last_item, last), state)
                async with aclosing(stream):
                    async for frame in stream:
                        if isinstance(frame, RetryHint):
                            hint = frame.seconds
                            continue
                        if last is not None and position(frame) <= last:
                            continue  # a duplicate after resuming
                        last = position(frame)
                        last_item = frame
                        attempt = 0
                        yield frame
                detail = "the server ended the stream"
                target = WatchState.RECONNECTING
            except StreamMissing:
                try:
                    await stream_missing()
                except BackendError as exc:
                    state(WatchState.OFFLINE, exc.message)
                    raise
                polling = True
                state(
                    WatchState.POLLING,
                    f"no live stream on this server; polling every {self.poll_interval:g} s",
                )
                continue
            except (AuthError, NotFound, ValidationFailed) as exc:
                state(stopped_state(exc), exc.message)
                raise
            except RateLimited as exc:
                hint = exc.retry_after if exc.retry_after is not None else hint
                detail, target, rate_limited = exc.message, WatchState.RECONNECTING, True
            except ConnectError as exc:
                detail, target = exc.message, WatchState.OFFLINE
            except BackendError as exc:
                detail, target = exc.message, WatchState.RECONNECTING
            except httpx.TransportError as exc:
                detail = error_from_transport(exc, where, self.redact).message
                unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                target = WatchState.OFFLINE if unreachable else WatchState.RECONNECTING
            except SSEError as exc:
                detail = f"the server did not send an event stream ({exc})"
                target = WatchState.RECONNECTING
            # A hint (Retry-After, SSE ``retry:``) is a floor: coming back earlier only earns
            # another refusal.
            wait = self.reconnect.delay(attempt, hint)
            if rate_limited:
                state(target, rate_limited_detail(wait))
            else:
                state(target, f"{detail}; retrying in {wait:.1f} s")
            attempt += 1
            await asyncio.sleep(wait)

    async def _poll(
        self,
        poll: Poll[T],
        position: Callable[[T], int],
        last: int | None,
        state: StateReporter,
    ) -> AsyncGenerator[T, None]:
        interval = self.poll_interval
        attempt = 0
        while True:
            try:
                items = await poll(last)
            except (AuthError, NotFound, ValidationFailed) as exc:
                state(stopped_state(exc), exc.message)
                raise
            except RateLimited as exc:
                wait = max(interval, self.reconnect.delay(attempt, exc.retry_after))
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                attempt += 1
                state(WatchState.RECONNECTING, rate_limited_detail(wait))
                await asyncio.sleep(wait)
                continue
            except BackendError as exc:
                wait = max(interval, self.reconnect.delay(attempt))
                attempt += 1
                target = (
                    WatchState.OFFLINE if isinstance(exc, ConnectError) else WatchState.RECONNECTING
                )
                state(target, f"{exc.message}; retrying in {wait:.1f} s")
                await asyncio.sleep(wait)
                continue
            attempt = 0
            state(WatchState.POLLING, f"polling every {interval:g} s")
            fresh = [item for item in items if last is None or position(item) > last]
            fresh.sort(key=position)
            for item in fresh:
                last = position(item)
                yield item
            if len(items) < self.poll_page:
                await asyncio.sleep(interval)


async def sse_events(
    http: HttpClient,
    path: str,
    *,
    state: StateReporter,
    display_name: str,
    read_timeout: float,
    request_timeout: float,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncGenerator[ServerSentEvent, None]:
    """One SSE reply's frames. A reply that is not an event stream (or a 404/405/501 at the
    path) raises ``StreamMissing``; a silence longer than ``read_timeout`` raises a transport
    timeout, which the watch treats as a dead connection and reconnects from."""
    all_headers = {"Accept": "text/event-stream", "Cache-Control": "no-store", **(headers or {})}
    stream_timeout = httpx.Timeout(
        request_timeout, connect=min(request_timeout, 5.0), read=read_timeout
    )
    try:
        async with http.stream(
            "GET", path, headers=all_headers, params=params or {}, timeout=stream_timeout
        ) as response:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                raise StreamMissing
            state(WatchState.LIVE, f"live from {display_name}")
            async for sse in EventSource(response).aiter_sse():
                yield sse
    except NotFound as exc:
        raise StreamMissing from exc
    except BackendError as exc:
        if exc.status in (405, 501):
            raise StreamMissing from exc
        raise
