"""Events (pages, appends, one event, hide and delete), a session's live stream, its timeline and
replay, and the organisation's change stream."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from sessionscope.models import (
    MAX_POSITION,
    Event,
    EventCreate,
    OrgChange,
    Page,
    Replay,
    TimelineEntry,
)
from sessionscope.server import streams
from sessionscope.server.api.deps import (
    AGENT,
    API_PREFIX,
    OPERATOR,
    READ,
    BrokerDep,
    CallerDep,
    EventsCursor,
    LastEventId,
    Org,
    Position,
    SettingsDep,
    StoreDep,
    split_values,
)
from sessionscope.server.errors import field_error
from sessionscope.server.store import org_channel, session_channel
from sessionscope.server.wire import StrictJsonRoute, validate_body

router = APIRouter(prefix=API_PREFIX, route_class=StrictJsonRoute)


def _event_page_json(page: Page[Event], budget: int) -> bytes:
    """``page``'s JSON, ended early (with a cursor to the rest) where it would pass ``budget``
    bytes: a client reads no more than that of one reply. A page always holds its first event,
    which the body limit keeps well under any budget."""
    parts: list[bytes] = []
    size = 0
    next_cursor = page.next_cursor
    for event in page.data:
        body = event.__pydantic_serializer__.to_json(event)
        size += len(body) + 1
        if parts and size > budget:
            next_cursor = str(page.data[len(parts) - 1].sequence)
            break
        parts.append(body)
    cursor_json = b"null" if next_cursor is None else b'"%s"' % next_cursor.encode()
    return b'{"data":[%s],"next_cursor":%s,"total":null,"stream_position":null}' % (
        b",".join(parts),
        cursor_json,
    )


#: Room in a reply for what is not an event (the page's own fields).
_PAGE_OVERHEAD = 1024


@router.get("/sessions/{session_id}/events", response_model=Page[Event], dependencies=[READ])
async def list_events(
    org: Org,
    store: StoreDep,
    settings: SettingsDep,
    session_id: str,
    after: Position = 0,
    cursor: EventsCursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    types: Annotated[list[str] | None, Query()] = None,
    include_hidden: bool = False,
) -> Response:
    if cursor:
        # The events cursor is the last sequence seen: the same as ``after``.
        if int(cursor) > MAX_POSITION:
            raise field_error("cursor", "the cursor is not one this server issued", status=400)
        after = max(after, int(cursor))
    page = await store.list_events(
        org,
        session_id,
        after=after,
        limit=limit,
        types=split_values(types),
        include_hidden=include_hidden,
    )
    body = _event_page_json(page, settings.max_reply_bytes - _PAGE_OVERHEAD)
    return Response(body, media_type="application/json")


@router.post(
    "/sessions/{session_id}/events", status_code=201, response_model=Event, dependencies=[AGENT]
)
async def append_event(org: Org, store: StoreDep, session_id: str, spec: EventCreate) -> Response:
    appended = await store.append_events_encoded(org, session_id, [(spec.type, spec.payload)])
    return Response(appended.frames[0].body, status_code=201, media_type="application/json")


MAX_BATCH_EVENTS = 1000


class EventBatch(BaseModel):
    """``POST /v1/sessions/{id}/events:batch``: events appended in order, all or none."""

    events: list[EventCreate] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


def _event_batch_schema() -> dict[str, Any]:
    # EventCreate is in the document's components already (the single append's body).
    schema = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


#: The batch body is parsed by the model straight from the bytes (pydantic's JSON parser):
#: FastAPI's json.loads then validating the objects took twice as long (1000 events: 5.4 vs
#: 3.2 ms), on the ingest hot path. The schema is declared here for the OpenAPI document.
_EVENT_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _event_batch_schema()}},
    }
}


@router.post(
    "/sessions/{session_id}/events:batch",
    status_code=201,
    response_model=Page[Event],
    openapi_extra=_EVENT_BATCH_BODY,
    dependencies=[AGENT],
)
@router.post(
    "/sessions/{session_id}/events/batch",
    status_code=201,
    response_model=Page[Event],
    include_in_schema=False,
    dependencies=[AGENT],
)
async def append_events(org: Org, store: StoreDep, session_id: str, request: Request) -> Response:
    """Replies with the appended events (their ids and sequences) in the order given."""
    try:
        batch = validate_body(EventBatch, await request.body())
    except json.JSONDecodeError as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": error.msg}]
        ) from None
    except ValidationError as error:
        raise RequestValidationError(
            [{**detail, "loc": ("body", *detail["loc"])} for detail in error.errors()]
        ) from None
    appended = await store.append_events_encoded(
        org, session_id, [(spec.type, spec.payload) for spec in batch.events]
    )
    # ``Page[Event](data=events)``'s JSON, from the events' frames: encoded once, not twice.
    events = b",".join(frame.body for frame in appended.frames)
    body = b'{"data":[%s],"next_cursor":null,"total":null,"stream_position":null}' % events
    return Response(body, status_code=201, media_type="application/json")


@router.get(
    "/sessions/{session_id}/events/stream", response_class=StreamingResponse, dependencies=[READ]
)
async def stream_session_events(
    org: Org,
    store: StoreDep,
    broker: BrokerDep,
    settings: SettingsDep,
    session_id: str,
    last_event_id: LastEventId = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
    include_hidden: bool = False,
) -> StreamingResponse:
    # Last-Event-ID (a reconnect) wins over ``after`` (the first connection).
    start = last_event_id if last_event_id is not None else after or 0
    await store.get_session(org, session_id)

    async def backlog(after_sequence: int, limit: int) -> list[Event]:
        return await store.events_after(
            org, session_id, after_sequence, limit, include_hidden=include_hidden
        )

    return streams.session_stream(
        broker=broker,
        channel=session_channel(org, session_id),
        settings=settings,
        after=start,
        include_hidden=include_hidden,
        backlog=backlog,
    )


@router.get("/sessions/{session_id}/events/{event_id}", response_model=Event, dependencies=[READ])
async def get_event(org: Org, store: StoreDep, session_id: str, event_id: str) -> Event:
    return await store.get_event(org, session_id, event_id)


@router.delete("/sessions/{session_id}/events/{event_id}", status_code=204, dependencies=[OPERATOR])
async def delete_event(
    caller: CallerDep, store: StoreDep, session_id: str, event_id: str
) -> Response:
    await store.delete_event(caller.org, session_id, event_id, caller.audit())
    return Response(status_code=204)


@router.post(
    "/sessions/{session_id}/events/{event_id}/hide", response_model=Event, dependencies=[OPERATOR]
)
async def hide_event(org: Org, store: StoreDep, session_id: str, event_id: str) -> Event:
    return await store.set_event_hidden(org, session_id, event_id, True)


@router.post(
    "/sessions/{session_id}/events/{event_id}/unhide", response_model=Event, dependencies=[OPERATOR]
)
async def unhide_event(org: Org, store: StoreDep, session_id: str, event_id: str) -> Event:
    return await store.set_event_hidden(org, session_id, event_id, False)


@router.get(
    "/sessions/{session_id}/timeline", response_model=Page[TimelineEntry], dependencies=[READ]
)
async def timeline(
    org: Org,
    store: StoreDep,
    session_id: str,
    after: Position = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Page[TimelineEntry]:
    entries = await store.timeline(org, session_id, after=after, limit=limit)
    return Page[TimelineEntry](data=entries)


@router.post("/sessions/{session_id}/replay", response_model=Replay, dependencies=[READ])
async def replay(org: Org, store: StoreDep, session_id: str) -> Replay:
    return await store.replay(org, session_id)


# ---------------------------------------------------------------------------------------------
# Organisation stream.
# ---------------------------------------------------------------------------------------------


@router.get("/stream", response_class=StreamingResponse, dependencies=[READ])
async def stream_org(
    org: Org,
    store: StoreDep,
    broker: BrokerDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
) -> StreamingResponse:
    if last_event_id is not None:
        start = last_event_id
    elif after is not None:
        start = after
    else:
        # A fresh subscriber wants what happens from now on, not the organisation's history:
        # from the stream's head, the position a first listing page carries too.
        start = await store.org_stream_head(org)

    async def backlog(after_id: int, limit: int) -> list[OrgChange]:
        return await store.org_changes_since(org, after_id, limit)

    return streams.org_stream(
        broker=broker, channel=org_channel(org), settings=settings, after=start, backlog=backlog
    )
