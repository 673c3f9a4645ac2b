"""Sessions: list, create, read, update, delete, close, complete; messages to a session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, WithJsonSchema

from sessionscope.models import (
    CloseResult,
    Event,
    MessageCreate,
    Page,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    validate_context_variables,
)
from sessionscope.server.api.deps import (
    AGENT_OR_OPERATOR,
    API_PREFIX,
    OPERATOR,
    READ,
    CallerDep,
    Org,
    StoreDep,
    audit_log,
    split_values,
)
from sessionscope.server.errors import field_error
from sessionscope.server.store import SessionOrder
from sessionscope.server.wire import StrictJsonRoute

router = APIRouter(prefix=API_PREFIX, route_class=StrictJsonRoute)


_STATUS_NAMES = "|".join(status.value for status in SessionStatus)
#: ``status`` takes one status or several, comma separated (blanks between commas ignored); a
#: value naming no status at all is refused, so that ``?status=`` is not taken for "any".
_STATUSES_SCHEMA = {
    "type": "string",
    "pattern": rf"^(?:\s*,)*\s*(?:{_STATUS_NAMES})\s*(?:,\s*(?:(?:{_STATUS_NAMES})\s*)?)*$",
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
    if status is not None and any(not split_values([value]) for value in status):
        raise field_error("status", "name at least one status, e.g. status=active")
    for value in split_values(status):
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
