"""Client tool calls and their results."""

from __future__ import annotations

from fastapi import APIRouter

from sessionscope.models import (
    Page,
    ToolCall,
    ToolCallCreate,
    ToolResult,
)
from sessionscope.server.api.deps import (
    AGENT,
    API_PREFIX,
    OPERATOR,
    READ,
    IdempotencyKey,
    Org,
    StoreDep,
)
from sessionscope.server.wire import StrictJsonRoute

router = APIRouter(prefix=API_PREFIX, route_class=StrictJsonRoute)


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
