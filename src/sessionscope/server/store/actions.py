"""Pending actions: created by agents, decided once by operators, finished after commit, swept
when stale."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    select,
    update,
)

from sessionscope.models import (
    ActionCreate,
    ActionDecisionResult,
    ActionStatus,
    EventType,
    PendingAction,
    SessionStatus,
)
from sessionscope.server import db
from sessionscope.server.errors import ApiError, not_found
from sessionscope.server.store.codecs import action_from_row, new_id, now_utc
from sessionscope.server.store.core import StoreCore, Tx, _refuse_closed


class ActionStore(StoreCore):
    # -- pending actions ------------------------------------------------------------------------

    async def create_action(self, org: str, session_id: str, spec: ActionCreate) -> PendingAction:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            _refuse_closed(session)
            if SessionStatus(session["status"]).is_terminal:
                raise ApiError(409, f"the session is {session['status']}")
            data: dict[str, Any] = {
                "id": new_id("act"),
                "session_id": session_id,
                "org": org,
                "tool": spec.tool,
                "preview": spec.preview,
                "status": ActionStatus.PENDING.value,
                "destructive": spec.destructive,
                "created_at": tx.now,
                "expires_at": spec.expires_at,
                "decided_at": None,
                "confirmed": None,
                "callback_id": None,
                "outcome": None,
                "decision_reply": None,
                "idempotency_key": None,
            }
            await tx.conn.execute(db.actions.insert().values(**data))
            action = action_from_row(data, session["title"])
            session["pending_action_count"] += 1
            if session["status"] in (
                SessionStatus.ACTIVE.value,
                SessionStatus.IDLE.value,
                SessionStatus.CREATED.value,
            ):
                session["status"] = SessionStatus.WAITING.value
            await self._append_event(
                tx,
                session,
                EventType.ACTION_PENDING.value,
                {
                    "action_id": action.id,
                    "tool": action.tool,
                    "preview": action.preview,
                    "expires_at": action.expires_at.isoformat() if action.expires_at else None,
                    "destructive": action.destructive,
                },
            )
            await self._org_change(tx, org, "action.pending", session_id, action=action)
        return action

    async def _actions(self, query: Any) -> list[PendingAction]:
        a = db.actions.c
        query = query.add_columns(db.sessions.c.title).join(
            db.sessions, db.sessions.c.id == a.session_id
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [action_from_row(row, row.title) for row in rows]

    async def list_actions(
        self, org: str, *, status: ActionStatus | None = None, limit: int = 500
    ) -> list[PendingAction]:
        a = db.actions.c
        query = select(db.actions).where(a.org == org)
        if status is not None:
            query = query.where(a.status == status.value)
        return await self._actions(query.order_by(a.created_at, a.id).limit(limit))

    async def list_session_actions(self, org: str, session_id: str) -> list[PendingAction]:
        a = db.actions.c
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
        return await self._actions(
            select(db.actions)
            .where(a.org == org, a.session_id == session_id)
            .order_by(a.created_at, a.id)
        )

    async def get_action(self, org: str, session_id: str, action_id: str) -> PendingAction:
        a = db.actions.c
        found = await self._actions(
            select(db.actions).where(a.org == org, a.session_id == session_id, a.id == action_id)
        )
        if not found:
            raise not_found("action")
        return found[0]

    async def decide_action(
        self,
        org: str,
        session_id: str,
        action_id: str,
        confirmed: bool,
        idempotency_key: str | None,
        actor: dict[str, str] | None = None,
    ) -> tuple[int, ActionDecisionResult]:
        """Apply a decision once; returns (HTTP status, reply). Later identical decisions get the
        first reply again."""
        expired = False
        async with self.write() as tx:
            # The session's row first, as every write of the session takes it: the same
            # decision sent through two replicas queues here, and the second then reads the
            # first's committed reply below and replays it (exactly once across replicas).
            with suppress(ApiError):  # no session: the action lookup answers 404
                await self._load_session(tx, org, session_id)
            row = (
                await tx.conn.execute(
                    select(db.actions)
                    .where(
                        db.actions.c.id == action_id,
                        db.actions.c.session_id == session_id,
                        db.actions.c.org == org,
                    )
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise not_found("action")
            action = dict(row._mapping)
            if action["decision_reply"] is not None:
                if action["confirmed"] is confirmed:
                    return _repeated_decision(action)
                raise ApiError(409, f"the action was already {_decided_word(action)}")
            if action["status"] == ActionStatus.PENDING.value and _is_due(action, tx.now):
                session = await self._load_session(tx, org, session_id)
                await self._resolve_action(tx, session, action, ActionStatus.EXPIRED)
                expired = True
            elif action["status"] == ActionStatus.EXPIRED.value:
                expired = True
            elif action["status"] != ActionStatus.PENDING.value:
                raise ApiError(409, f"the action is already {action['status']}")
            else:
                session = await self._load_session(tx, org, session_id)
                if confirmed:
                    status_code = 202
                    result = ActionDecisionResult(
                        session_id=session_id,
                        action_id=action_id,
                        status=ActionStatus.PROCESSING,
                        callback_id=new_id("cb"),
                        message="confirmed; the outcome will follow as an event",
                    )
                else:
                    status_code = 200
                    result = ActionDecisionResult(
                        session_id=session_id,
                        action_id=action_id,
                        status=ActionStatus.CANCELLED,
                        message="cancelled",
                    )
                action["confirmed"] = confirmed
                action["callback_id"] = result.callback_id
                action["idempotency_key"] = idempotency_key
                action["decision_reply"] = {
                    "status_code": status_code,
                    "body": result.model_dump(mode="json"),
                }
                await self._resolve_action(tx, session, action, result.status)
                if actor is not None:
                    word = "confirmed" if confirmed else "cancelled"
                    await self._audit(
                        tx,
                        session,
                        EventType.AUDIT_DECIDED,
                        actor,
                        f"{word} {action['tool']}",
                        action_id=action_id,
                        tool=action["tool"],
                        confirmed=confirmed,
                    )
                if confirmed:
                    tx.confirmed_actions.append(action_id)
        if expired:
            raise ApiError(410, "the action expired before a decision")
        return status_code, result

    async def _resolve_action(
        self,
        tx: Tx,
        session: dict[str, Any],
        action: dict[str, Any],
        status: ActionStatus,
        *,
        reason: str | None = None,
    ) -> None:
        """Move a pending action to ``status``, keeping the session's counters in step."""
        action["status"] = status.value
        if status is not ActionStatus.EXPIRED:
            action["decided_at"] = tx.now
        await tx.conn.execute(
            update(db.actions)
            .where(db.actions.c.id == action["id"])
            .values(**{k: v for k, v in action.items() if k != "id"})
        )
        session["pending_action_count"] = max(0, session["pending_action_count"] - 1)
        if (
            session["pending_action_count"] == 0
            and session["status"] == SessionStatus.WAITING.value
        ):
            session["status"] = SessionStatus.ACTIVE.value
        event_type = {
            ActionStatus.PROCESSING: EventType.ACTION_CONFIRMED,
            ActionStatus.CANCELLED: EventType.ACTION_CANCELLED,
            ActionStatus.EXPIRED: EventType.ACTION_EXPIRED,
        }[status]
        payload: dict[str, Any] = {"action_id": action["id"], "tool": action["tool"]}
        if action["callback_id"]:
            payload["callback_id"] = action["callback_id"]
        if reason:
            payload["reason"] = reason
        await self._append_event(tx, session, event_type.value, payload)
        await self._org_change(
            tx,
            session["org"],
            "action.resolved",
            session["id"],
            action=action_from_row(action, session["title"]),
        )

    async def _cancel_pending_actions(self, tx: Tx, session: dict[str, Any], reason: str) -> None:
        rows = (
            await tx.conn.execute(
                select(db.actions).where(
                    db.actions.c.session_id == session["id"],
                    db.actions.c.status == ActionStatus.PENDING.value,
                )
            )
        ).all()
        for row in rows:
            await self._resolve_action(
                tx, session, dict(row._mapping), ActionStatus.CANCELLED, reason=reason
            )

    async def _finish_action_later(self, action_id: str) -> None:
        await asyncio.sleep(self.action_completion_delay)
        await self.finish_action(action_id)

    async def finish_action(self, action_id: str) -> bool:
        """Record the outcome of a confirmed action (the reference server pretends it ran)."""
        async with self.write() as tx:
            row = (
                await tx.conn.execute(select(db.actions).where(db.actions.c.id == action_id))
            ).first()
            if row is None or row.status != ActionStatus.PROCESSING.value:
                return False
            try:
                session = await self._load_session(tx, row.org, row.session_id)
            except ApiError:
                return False
            # Again, under the session's lock: another replica's sweep may have finished it
            # between the first read and the lock.
            row = (
                await tx.conn.execute(
                    select(db.actions).where(db.actions.c.id == action_id).with_for_update()
                )
            ).first()
            if row is None or row.status != ActionStatus.PROCESSING.value:
                return False
            action = dict(row._mapping)
            action["status"] = ActionStatus.COMPLETED.value
            action["outcome"] = {"ok": True, "message": f"{action['tool']} completed"}
            await tx.conn.execute(
                update(db.actions)
                .where(db.actions.c.id == action_id)
                .values(status=action["status"], outcome=action["outcome"])
            )
            await self._append_event(
                tx,
                session,
                EventType.ACTION_COMPLETED.value,
                {
                    "action_id": action_id,
                    "tool": action["tool"],
                    "callback_id": action["callback_id"],
                    "outcome": action["outcome"],
                },
            )
            await self._org_change(
                tx,
                session["org"],
                "action.resolved",
                session["id"],
                action=action_from_row(action, session["title"]),
            )
        return True

    async def sweep(self, *, stale_after: float) -> int:
        """Expire actions past ``expires_at``; finish confirmed ones a restart left behind."""
        now = now_utc()
        a = db.actions.c
        async with self.engine.connect() as conn:
            due = (
                await conn.execute(
                    select(a.id, a.org, a.session_id).where(
                        a.status == ActionStatus.PENDING.value,
                        a.expires_at.is_not(None),
                        a.expires_at <= now,
                    )
                )
            ).all()
            stale = (
                await conn.execute(
                    select(a.id).where(
                        a.status == ActionStatus.PROCESSING.value,
                        a.decided_at <= datetime.fromtimestamp(now.timestamp() - stale_after, UTC),
                    )
                )
            ).all()
        for action_id, org, session_id in due:
            async with self.write() as tx:
                # SKIP LOCKED (PostgreSQL): a session or action another replica is writing
                # (its own sweep, a decision) is left to it; a still-pending action comes round
                # again at the next sweep. Never waiting here also means never deadlocking.
                locked = (
                    await tx.conn.execute(
                        select(db.sessions)
                        .where(db.sessions.c.id == session_id, db.sessions.c.org == org)
                        .with_for_update(skip_locked=True)
                    )
                ).first()
                if locked is None:
                    continue
                row = (
                    await tx.conn.execute(
                        select(db.actions)
                        .where(a.id == action_id, a.status == ActionStatus.PENDING.value)
                        .with_for_update(skip_locked=True)
                    )
                ).first()
                if row is None:
                    continue
                session = tx.sessions[session_id] = dict(locked._mapping)
                await self._resolve_action(tx, session, dict(row._mapping), ActionStatus.EXPIRED)
        for (action_id,) in stale:
            await self.finish_action(action_id)
        return len(due) + len(stale)


def _is_due(action: dict[str, Any], now: datetime) -> bool:
    expires_at = action["expires_at"]
    return expires_at is not None and expires_at <= now


def _repeated_decision(action: dict[str, Any]) -> tuple[int, ActionDecisionResult]:
    """The reply to a repeat of the decision taken: the first reply, unless the action moved
    on since (a confirmed one completed or failed), then where it is now."""
    reply = action["decision_reply"]
    result = ActionDecisionResult.model_validate(reply["body"])
    if action["status"] == result.status.value:
        return reply["status_code"], result
    status = ActionStatus(action["status"])
    return 200, result.model_copy(
        update={"status": status, "message": f"confirmed; the action {status.value}"}
    )


def _decided_word(action: dict[str, Any]) -> str:
    return "confirmed" if action["confirmed"] else "cancelled"
