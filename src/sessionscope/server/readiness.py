"""``GET /v1/ready``: whether this replica should get traffic (for load balancers and
orchestrators). ``GET /v1/health`` says the process is up; ready says it can serve: its
database answers, and on PostgreSQL its live fan-out listener is connected (without it, live
streams here would lag by up to the catch-up interval). No key needed, nothing revealed."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from sessionscope.server.errors import problem

router = APIRouter(prefix="/v1")
#: A database that does not answer in this long counts as down.
READY_TIMEOUT = 2.0


@router.get(
    "/ready",
    responses={200: {"description": "Ready"}, 503: {"description": "Not ready, with why"}},
)
async def ready(request: Request) -> Response:
    state = request.app.state
    store = getattr(state, "store", None)
    if store is None:
        return problem(503, "starting")
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with store.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        return problem(503, "the database does not answer")
    fanout = getattr(state, "fanout", None)
    if fanout is not None and not fanout.listening:
        return problem(503, "the live fan-out listener is reconnecting")
    return JSONResponse({"status": "ready"})
