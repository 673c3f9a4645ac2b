"""Server-Sent Events: a session's events and the organisation-wide change stream.

Frames: ``id: <cursor>`` / ``event: <type or kind>`` / ``data: <JSON model>``. The session stream's
id is the event's sequence, the organisation stream's the change id. A subscriber first replays
what it missed from the database (id > Last-Event-ID or ``after``), then follows live frames,
skipping any it already sent, so a reconnect yields each frame once, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """One SSE frame, encoded once when published and shared by every subscriber's queue."""

    cursor: int
    hidden: bool
    data: bytes
    #: Where the model's JSON starts in ``data`` (it ends before the closing blank line).
    body_at: int = 0

    @property
    def body(self) -> bytes:
        """The model's JSON, as ``model_dump_json()`` writes it."""
        return self.data[self.body_at : -2]


def live_frame(item: Event | OrgChange) -> LiveFrame:
    """The frame for a session event (id = sequence) or an organisation change (id = change
    id): ``id`` / ``event`` (the event type or change kind) / ``data`` (the model's JSON)."""
    if isinstance(item, Event):
        cursor, name, hidden = item.sequence, item.type, item.hidden
    else:
        cursor, name, hidden = item.id, item.kind, False
    # The serializer's own bytes: the same JSON as model_dump_json() without a str round trip.
    return sse_frame(cursor, name, hidden, item.__pydantic_serializer__.to_json(item))


def sse_frame(cursor: int, name: str, hidden: bool, body: bytes) -> LiveFrame:
    """The frame carrying ``body`` (a model's JSON) as ``live_frame`` lays it out."""
    if "\n" in name or "\r" in name:
        # An agent's event type is untrusted: a line break in it would start a forged field
        # (``data:``, ``id:``) in every subscriber's stream. The data line carries it intact.
        name = name.replace("\r", " ").replace("\n", " ")
    head = b"id: %d\nevent: %s\ndata: " % (cursor, name.encode())
    return LiveFrame(cursor, hidden, b"%s%s\n\n" % (head, body), len(head))


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


async def _follow(
    *,
    broker: Broker,
    channel: Hashable,
    settings: ServerSettings,
    after: int,
    backlog: Callable[[int, int], Awaitable[Sequence[Any]]],
    accept: Callable[[LiveFrame], bool] = lambda frame: True,
) -> AsyncIterator[bytes]:
    # Subscribe before reading the backlog: anything committed after the read is then queued.
    subscription = await broker.subscribe_live(channel)
    try:
        # The opening frame carries an id too (the resume point), like every other frame.
        yield f"id: {after}\nretry: {settings.sse_retry_ms}\n\n".encode()
        last = after
        while True:
            items = await backlog(last, BACKLOG_PAGE)
            if items:
                frames = [live_frame(item) for item in items]
                last = frames[-1].cursor
                yield b"".join(frame.data for frame in frames)
            if len(items) < BACKLOG_PAGE:
                break
        while True:
            # Everything queued goes out in one write: one chunk per wake-up rather than per
            # frame is what lets one process feed hundreds of streams.
            frames = await subscription.get_batch(settings.heartbeat_interval)
            if not frames:
                if subscription.closed.is_set():
                    # Overflowed or the server is stopping: the client reconnects and resumes.
                    return
                yield b": keepalive\n\n"
                continue
            chunk: list[bytes] = []
            for frame in frames:
                if frame.cursor <= last or not accept(frame):
                    continue
                last = frame.cursor
                chunk.append(frame.data)
            if chunk:
                yield b"".join(chunk)
    finally:
        subscription.close()


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
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
    def accept(frame: LiveFrame) -> bool:
        return include_hidden or not frame.hidden

    return sse_response(
        _follow(
            broker=broker,
            channel=channel,
            settings=settings,
            after=after,
            backlog=backlog,
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
    return sse_response(
        _follow(
            broker=broker,
            channel=channel,
            settings=settings,
            after=after,
            backlog=backlog,
        )
    )
