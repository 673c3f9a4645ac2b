"""Pending actions: list, create, read, decide."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from sessionscope.models import (
    ActionCreate,
    ActionDecision,
    ActionDecisionResult,
    ActionStatus,
    Page,
    PendingAction,
)
from sessionscope.server.api.deps import (
    AGENT,
    API_PREFIX,
    OPERATOR,
    READ,
    CallerDep,
    IdempotencyKey,
    Org,
    StoreDep,
)
from sessionscope.server.wire import StrictJsonRoute

router = APIRouter(prefix=API_PREFIX, route_class=StrictJsonRoute)


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
