"""Server-Sent Events: a session's events and the organisation-wide change stream.

Frames: ``id: <cursor>`` / ``event: <type or kind>`` / ``data: <JSON model>``. The session stream's
id is the event's sequence, the organisation stream's the change id. A subscriber first replays
what it missed from the database (id > Last-Event-ID or ``after``), then follows live frames,
skipping any it already sent, so a reconnect yields each frame once, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Any, Protocol

from fastapi.responses import StreamingResponse

from sessionscope.models import Event, OrgChange
from sessionscope.server.broker import Broker
from sessionscope.server.errors import field_error
from sessionscope.server.settings import ServerSettings

BACKLOG_PAGE = 500
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # Proxies such as nginx buffer responses unless told not to; a stream must not be buffered.
    "X-Accel-Buffering": "no",
}


class Frame(Protocol):
    def model_dump_json(self) -> str: ...


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """Where a (re)connecting client resumes: Last-Event-ID wins over ``after``."""
    if last_event_id is not None and last_event_id.strip():
        try:
            value = int(last_event_id.strip())
        except ValueError:
            raise field_error(
                "Last-Event-ID", "Last-Event-ID must be an integer", status=400
            ) from None
        if value < 0:
            raise field_error("Last-Event-ID", "Last-Event-ID must not be negative", status=400)
        return value
    return after or 0


def _frame(frame_id: int, name: str, item: Frame) -> str:
    return f"id: {frame_id}\nevent: {name}\ndata: {item.model_dump_json()}\n\n"


async def _follow(
    *,
    broker: Broker,
    channel: Hashable,
    settings: ServerSettings,
    after: int,
    backlog: Callable[[int, int], Awaitable[Sequence[Any]]],
    cursor_of: Callable[[Any], int],
    name_of: Callable[[Any], str],
    accept: Callable[[Any], bool] = lambda item: True,
) -> AsyncIterator[str]:
    # Subscribe before reading the backlog: anything committed after the read is then queued.
    subscription = broker.subscribe(channel)
    try:
        # The opening frame carries an id too (the resume point), like every other frame.
        yield f"id: {after}\nretry: {settings.sse_retry_ms}\n\n"
        last = after
        while True:
            items = await backlog(last, BACKLOG_PAGE)
            for item in items:
                last = cursor_of(item)
                yield _frame(last, name_of(item), item)
            if len(items) < BACKLOG_PAGE:
                break
        while True:
            item = await subscription.get(settings.heartbeat_interval)
            if item is None:
                if subscription.closed.is_set():
                    # Overflowed or the server is stopping: the client reconnects and resumes.
                    return
                yield ": keepalive\n\n"
                continue
            cursor = cursor_of(item)
            if cursor <= last or not accept(item):
                continue
            last = cursor
            yield _frame(cursor, name_of(item), item)
    finally:
        subscription.close()


def sse_response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


def session_stream(
    *,
    broker: Broker,
    channel: Hashable,
    settings: ServerSettings,
    after: int,
    include_hidden: bool,
    backlog: Callable[[int, int], Awaitable[Sequence[Event]]],
) -> StreamingResponse:
    def cursor_of(event: Event) -> int:
        return event.sequence

    def name_of(event: Event) -> str:
        return event.type

    def accept(event: Event) -> bool:
        return include_hidden or not event.hidden

    return sse_response(
        _follow(
            broker=broker,
            channel=channel,
            settings=settings,
            after=after,
            backlog=backlog,
            cursor_of=cursor_of,
            name_of=name_of,
            accept=accept,
        )
    )


def org_stream(
    *,
    broker: Broker,
    channel: Hashable,
    settings: ServerSettings,
    after: int,
    backlog: Callable[[int, int], Awaitable[Sequence[OrgChange]]],
) -> StreamingResponse:
    def cursor_of(change: OrgChange) -> int:
        return change.id

    def name_of(change: OrgChange) -> str:
        return change.kind

    return sse_response(
        _follow(
            broker=broker,
            channel=channel,
            settings=settings,
            after=after,
            backlog=backlog,
            cursor_of=cursor_of,
            name_of=name_of,
        )
    )
