"""Tool calls: recorded with their arguments (secrets masked on the way out) and their results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
    update,
)

from sessionscope.models import (
    EventType,
    ToolCall,
    ToolCallArgument,
    ToolCallCreate,
    ToolResult,
)
from sessionscope.server import db
from sessionscope.server.errors import ApiError, not_found
from sessionscope.server.store.codecs import new_id, tool_call_from_row
from sessionscope.server.store.core import StoreCore, _refuse_closed

SECRET_MASK = "********"


class ToolCallStore(StoreCore):
    # -- client tool calls ----------------------------------------------------------------------

    async def create_tool_call(self, org: str, session_id: str, spec: ToolCallCreate) -> ToolCall:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            _refuse_closed(session)
            call = ToolCall(
                id=new_id("call"),
                session_id=session_id,
                tool=spec.tool,
                arguments=spec.arguments,
                created_at=tx.now,
            )
            await tx.conn.execute(
                db.tool_calls.insert().values(
                    id=call.id,
                    session_id=session_id,
                    org=org,
                    tool=call.tool,
                    arguments=[arg.model_dump(mode="json") for arg in call.arguments],
                    status="pending",
                    created_at=tx.now,
                )
            )
            await self._append_event(
                tx,
                session,
                EventType.TOOL_CALL_REQUESTED.value,
                {
                    "call_id": call.id,
                    "tool": call.tool,
                    # The event log is shown and exported widely: secret values stay out of it.
                    "arguments": [_masked_argument(arg) for arg in call.arguments],
                },
            )
        return call

    async def list_tool_calls(self, org: str, session_id: str) -> list[ToolCall]:
        t = db.tool_calls.c
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            rows = (
                await conn.execute(
                    select(db.tool_calls)
                    .where(t.session_id == session_id, t.org == org, t.status == "pending")
                    .order_by(t.created_at, t.id)
                )
            ).all()
        return [tool_call_from_row(row) for row in rows]

    async def submit_tool_result(
        self,
        org: str,
        session_id: str,
        call_id: str,
        result: ToolResult,
        idempotency_key: str | None,
    ) -> ToolCall:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            row = (
                await tx.conn.execute(
                    select(db.tool_calls).where(
                        db.tool_calls.c.id == call_id,
                        db.tool_calls.c.session_id == session_id,
                        db.tool_calls.c.org == org,
                    )
                )
            ).first()
            if row is None:
                raise not_found("tool call")
            if row.status != "pending":
                if idempotency_key and idempotency_key == row.idempotency_key:
                    return tool_call_from_row(row)
                raise ApiError(409, "this tool call already has a result")
            status = "failed" if result.error is not None else "succeeded"
            values = {
                "status": status,
                "resolved_at": tx.now,
                "result": result.output,
                "error": result.error,
                "idempotency_key": idempotency_key,
            }
            await tx.conn.execute(
                update(db.tool_calls).where(db.tool_calls.c.id == call_id).values(**values)
            )
            await self._append_event(
                tx,
                session,
                EventType.TOOL_CALL_RESULT.value,
                {
                    "call_id": call_id,
                    "tool": row.tool,
                    "status": status,
                    "output": result.output,
                    "error": result.error,
                },
            )
            data = {**row._mapping, **values}
        return tool_call_from_row(data)


def _masked_argument(argument: ToolCallArgument) -> dict[str, Any]:
    data = argument.model_dump(mode="json")
    if argument.secret:
        data["value"] = SECRET_MASK
    return data
