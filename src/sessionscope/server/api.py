"""The HTTP API, all under ``/v1``.

Every list endpoint replies ``{data, next_cursor, total, stream_position}`` (``Page``);
``next_cursor`` is null on the last page; only a sessions listing's first page has a
``stream_position``. Errors are ``application/problem+json``. Organisations are isolated:
another organisation's objects answer 404.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema

import sessionscope
from sessionscope.models import (
    MAX_POSITION,
    MEDIA_TYPE_PATTERN,
    ActionCreate,
    ActionDecision,
    ActionDecisionResult,
    ActionStatus,
    Artifact,
    ArtifactCreate,
    ArtifactWithContent,
    CloseResult,
    Event,
    EventCreate,
    Health,
    KeyIdentity,
    MessageCreate,
    OrgChange,
    Page,
    PendingAction,
    Replay,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    TimelineEntry,
    ToolCall,
    ToolCallCreate,
    ToolResult,
    validate_context_variables,
)
from sessionscope.server import streams
from sessionscope.server.broker import Broker
from sessionscope.server.errors import ApiError, field_error
from sessionscope.server.roles import Caller, key_name
from sessionscope.server.settings import ServerSettings
from sessionscope.server.store import SessionOrder, Store, org_channel, session_channel
from sessionscope.server.wire import StrictJsonRoute, validate_body

router = APIRouter(prefix="/v1", route_class=StrictJsonRoute)
audit_log = logging.getLogger("sessionscope.audit")


# ---------------------------------------------------------------------------------------------
# Dependencies.
# ---------------------------------------------------------------------------------------------


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


# The dependencies are coroutines, though none of them awaits: FastAPI runs a plain ``def``
# dependency in its thread pool, two thread hops per request for a few attribute reads.


async def authenticate(request: Request) -> Caller:
    presented = _presented_key(request)
    if presented is not None:
        settings: ServerSettings = request.app.state.settings
        found: tuple[str, str] | None = None
        for org, key in settings.api_keys:
            # Compare against every key in constant time so timing reveals nothing.
            if hmac.compare_digest(presented.encode(), key.encode()):
                found = (org, key)
        if found is not None:
            org, key = found
            return Caller(org=org, key_name=key_name(key), role=settings.key_roles.get(key))
    raise ApiError(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})


CallerDep = Annotated[Caller, Depends(authenticate)]


async def require_org(caller: CallerDep) -> str:
    return caller.org


def allow(*roles: str) -> Any:
    """A route's roles: a key with another role gets a 403 naming its role (never a 401 or a
    404: the key is valid and the resource may exist). A key without a role may do anything."""

    async def in_role(caller: CallerDep) -> None:
        if caller.role is not None and caller.role not in roles:
            raise ApiError(
                403,
                f"this key's role ({caller.role}) may not do this; it takes " + " or ".join(roles),
                errors=[{"field": "role", "message": caller.role}],
            )

    in_role.__name__ = "role_" + "_".join(roles)
    return Depends(in_role)


#: Every role reads; writes belong to the agent (what it reports) or to the operator (what the
#: console decides, edits and deletes).
READ = allow("agent", "operator", "viewer")
AGENT = allow("agent")
OPERATOR = allow("operator")
AGENT_OR_OPERATOR = allow("agent", "operator")


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


async def get_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


Org = Annotated[str, Depends(require_org)]
StoreDep = Annotated[Store, Depends(get_store)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
#: Stream positions (event sequences, organisation change ids) are integers the store can hold;
#: anything else in ``after``, an events ``cursor`` or ``Last-Event-ID`` is a 400 naming it.
Position = Annotated[int, Query(ge=0, le=MAX_POSITION)]
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=MAX_POSITION,
        description="The id of the last frame received: the stream resumes after it.",
    ),
]
#: The events cursor is the last sequence a page holds, as digits.
EventsCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,19}$", description="A page's `next_cursor`.")
]


def _json(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise once: FastAPI would validate a returned model against ``response_model`` again,
    which doubles the cost of large pages."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _split_values(values: list[str] | None) -> list[str]:
    """Accept both ``?x=a&x=b`` and ``?x=a,b``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


# ---------------------------------------------------------------------------------------------
# Health.
# ---------------------------------------------------------------------------------------------


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok", name="sessionscope", version=sessionscope.__version__)


@router.get("/whoami", response_model=KeyIdentity, dependencies=[READ])
async def whoami(caller: CallerDep) -> KeyIdentity:
    """The presented key's organisation, name and role: a console with a viewer key knows to
    be read-only before it offers a key that would be refused."""
    return KeyIdentity(organisation=caller.org, key=caller.key_name, role=caller.role)


# ---------------------------------------------------------------------------------------------
# Sessions.
# ---------------------------------------------------------------------------------------------


_STATUS_NAMES = "|".join(status.value for status in SessionStatus)
#: ``status`` takes one status or several, comma separated (blanks ignored).
_STATUSES_SCHEMA = {
    "type": "string",
    "pattern": rf"^\s*(?:(?:{_STATUS_NAMES})\s*)?(?:,\s*(?:(?:{_STATUS_NAMES})\s*)?)*$",
}


class SessionListQuery(BaseModel):
    """``GET /v1/sessions``'s query, validated as one model (one pydantic call, not one per
    parameter: FastAPI's per-parameter validation was most of a listing's event-loop time)."""

    status: list[Annotated[str, WithJsonSchema(_STATUSES_SCHEMA)]] | None = None
    agent_id: str | None = None
    task_id: str | None = None
    tag: str | None = None
    q: str | None = Field(None, max_length=500)
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=200)
    order: SessionOrder = Field(
        "newest",
        description="By creation time: newest first (default) or oldest first. A cursor "
        "pages on only in the order it came from.",
    )


@router.get("/sessions", response_model=Page[Session], dependencies=[READ])
async def list_sessions(
    org: Org, store: StoreDep, query: Annotated[SessionListQuery, Query()]
) -> Response:
    status, agent_id, task_id, tag = query.status, query.agent_id, query.task_id, query.tag
    q, cursor, limit, order = query.q, query.cursor, query.limit, query.order
    statuses: list[SessionStatus] = []
    for value in _split_values(status):
        try:
            statuses.append(SessionStatus(value))
        except ValueError:
            allowed = ", ".join(s.value for s in SessionStatus)
            raise field_error("status", f"unknown status {value!r}; one of {allowed}") from None
    # The store's JSON, ``stream_position`` included (first pages only, as only they carry the
    # total; read in the page's own snapshot).
    body = await store.list_sessions_json(
        org,
        statuses=statuses,
        agent_id=agent_id,
        task_id=task_id,
        tag=tag,
        text=q,
        cursor=cursor,
        limit=limit,
        order=order,
    )
    return Response(body, media_type="application/json")


@router.post("/sessions", status_code=201, response_model=Session, dependencies=[AGENT_OR_OPERATOR])
async def create_session(org: Org, store: StoreDep, spec: SessionCreate) -> Session:
    try:
        validate_context_variables(spec.context_variables)
    except ValueError as error:
        raise field_error("context_variables", str(error)) from None
    return await store.create_session(org, spec)


@router.get("/sessions/{session_id}", response_model=Session, dependencies=[READ])
async def get_session(org: Org, store: StoreDep, session_id: str) -> Session:
    return await store.get_session(org, session_id)


@router.patch("/sessions/{session_id}", response_model=Session, dependencies=[OPERATOR])
async def update_session(
    org: Org, store: StoreDep, session_id: str, change: SessionUpdate
) -> Session:
    return await store.update_session(org, session_id, change)


@router.delete("/sessions/{session_id}", status_code=204, dependencies=[OPERATOR])
async def delete_session(caller: CallerDep, store: StoreDep, session_id: str) -> Response:
    await store.delete_session(caller.org, session_id)
    # The session's timeline goes with it: the record is the server's log.
    audit_log.info(
        "session %s of %s deleted by key %s (role %s)",
        session_id,
        caller.org,
        caller.key_name,
        caller.role_name,
    )
    return Response(status_code=204)


@router.post("/sessions/{session_id}/close", response_model=CloseResult, dependencies=[OPERATOR])
async def close_session(caller: CallerDep, store: StoreDep, session_id: str) -> CloseResult:
    return await store.close_session(caller.org, session_id, caller.audit())


@router.post(
    "/sessions/{session_id}/complete", response_model=Session, dependencies=[AGENT_OR_OPERATOR]
)
async def complete_session(org: Org, store: StoreDep, session_id: str) -> Session:
    return await store.complete_session(org, session_id)


@router.post(
    "/sessions/{session_id}/messages",
    status_code=201,
    response_model=Event,
    dependencies=[OPERATOR],
)
async def send_message(org: Org, store: StoreDep, session_id: str, message: MessageCreate) -> Event:
    return await store.send_message(org, session_id, message.content)


# ---------------------------------------------------------------------------------------------
# Events.
# ---------------------------------------------------------------------------------------------


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
        types=_split_values(types),
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


# ---------------------------------------------------------------------------------------------
# Artifacts.
# ---------------------------------------------------------------------------------------------


@router.get("/sessions/{session_id}/artifacts", response_model=Page[Artifact], dependencies=[READ])
async def list_artifacts(
    org: Org,
    store: StoreDep,
    session_id: str,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[Artifact]:
    return await store.list_artifacts(org, session_id, cursor=cursor, limit=limit)


@router.post(
    "/sessions/{session_id}/artifacts",
    status_code=201,
    response_model=Artifact,
    dependencies=[AGENT],
)
async def create_artifact(
    org: Org, store: StoreDep, session_id: str, spec: ArtifactCreate
) -> Artifact:
    return await store.create_artifact(org, session_id, spec)


@router.get(
    "/sessions/{session_id}/artifacts/{artifact_id}",
    response_model=ArtifactWithContent | Artifact,
    dependencies=[READ],
)
async def get_artifact(
    org: Org,
    store: StoreDep,
    session_id: str,
    artifact_id: str,
    content: Annotated[
        bool, Query(description="false: metadata only, without the base64 `data`")
    ] = True,
) -> Response:
    if not content:
        return _json(await store.get_artifact_metadata(org, session_id, artifact_id))
    return _json(await store.get_artifact_with_content(org, session_id, artifact_id))


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range``; None means serve everything (RFC 9110 lets a
    server ignore ranges it does not support, e.g. several at once)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or first > last:
        raise _unsatisfiable(size)
    return first, last


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "the requested range is outside the content",
        headers={"Content-Range": f"bytes */{size}"},
    )


@router.get("/sessions/{session_id}/artifacts/{artifact_id}/content", dependencies=[READ])
async def artifact_content(
    org: Org,
    store: StoreDep,
    session_id: str,
    artifact_id: str,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    artifact = await store.get_artifact_metadata(org, session_id, artifact_id)
    size = artifact.size_bytes
    headers = {
        "Accept-Ranges": "bytes",
        # The name comes from an agent: percent-encode it rather than trust it in a header.
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(artifact.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{artifact.checksum_sha256}"',
    }
    chosen = _byte_range(range_header, size) if range_header else None
    status_code = 200
    if chosen is None:
        first, last = 0, size - 1
    else:
        first, last = chosen
        status_code = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    # Checked at upload; one stored before that is served as bytes, not as what it claims.
    media_type = artifact.mime_type
    if not re.fullmatch(MEDIA_TYPE_PATTERN, media_type):
        media_type = "application/octet-stream"
    if size == 0:
        return Response(b"", media_type=media_type, headers=headers)
    # Streamed chunk by chunk from the database: a preview of a huge artifact costs its range.
    return StreamingResponse(
        store.read_artifact_range(artifact, first, last),
        status_code=status_code,
        media_type=media_type,
        headers=headers,
    )


# ---------------------------------------------------------------------------------------------
# Client tool calls.
# ---------------------------------------------------------------------------------------------


@router.get("/sessions/{session_id}/tool-calls", response_model=Page[ToolCall], dependencies=[READ])
async def list_tool_calls(org: Org, store: StoreDep, session_id: str) -> Page[ToolCall]:
    calls = await store.list_tool_calls(org, session_id)
    return Page[ToolCall](data=calls, total=len(calls))


@router.post(
    "/sessions/{session_id}/tool-calls",
    status_code=201,
    response_model=ToolCall,
    dependencies=[AGENT],
)
async def create_tool_call(
    org: Org, store: StoreDep, session_id: str, spec: ToolCallCreate
) -> ToolCall:
    return await store.create_tool_call(org, session_id, spec)


@router.post(
    "/sessions/{session_id}/tool-calls/{call_id}/result",
    response_model=ToolCall,
    dependencies=[OPERATOR],
)
async def submit_tool_result(
    org: Org,
    store: StoreDep,
    session_id: str,
    call_id: str,
    result: ToolResult,
    idempotency_key: IdempotencyKey = None,
) -> ToolCall:
    return await store.submit_tool_result(org, session_id, call_id, result, idempotency_key)


# ---------------------------------------------------------------------------------------------
# Pending actions.
# ---------------------------------------------------------------------------------------------


@router.get("/actions", response_model=Page[PendingAction], dependencies=[READ])
async def list_actions(
    org: Org,
    store: StoreDep,
    status: ActionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Page[PendingAction]:
    actions = await store.list_actions(org, status=status, limit=limit)
    return Page[PendingAction](data=actions, total=len(actions))


@router.get(
    "/sessions/{session_id}/actions", response_model=Page[PendingAction], dependencies=[READ]
)
async def list_session_actions(org: Org, store: StoreDep, session_id: str) -> Page[PendingAction]:
    actions = await store.list_session_actions(org, session_id)
    return Page[PendingAction](data=actions, total=len(actions))


@router.post(
    "/sessions/{session_id}/actions",
    status_code=201,
    response_model=PendingAction,
    dependencies=[AGENT],
)
async def create_action(
    org: Org, store: StoreDep, session_id: str, spec: ActionCreate
) -> PendingAction:
    return await store.create_action(org, session_id, spec)


@router.get(
    "/sessions/{session_id}/actions/{action_id}", response_model=PendingAction, dependencies=[READ]
)
async def get_action(org: Org, store: StoreDep, session_id: str, action_id: str) -> PendingAction:
    return await store.get_action(org, session_id, action_id)


@router.post(
    "/sessions/{session_id}/actions/{action_id}",
    response_model=ActionDecisionResult,
    responses={202: {"model": ActionDecisionResult}, 409: {}, 410: {}},
    dependencies=[OPERATOR],
)
async def decide_action(
    caller: CallerDep,
    store: StoreDep,
    session_id: str,
    action_id: str,
    decision: ActionDecision,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    status_code, result = await store.decide_action(
        caller.org, session_id, action_id, decision.confirmed, idempotency_key, caller.audit()
    )
    return JSONResponse(result.model_dump(mode="json"), status_code=status_code)
