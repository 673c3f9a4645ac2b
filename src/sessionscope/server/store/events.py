"""Events: listing, reading, hiding and deleting; messages; the org change stream's reads; the
timeline and replay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionscope.models import (
    Event,
    EventType,
    OrgChange,
    Page,
    Replay,
    SessionStatus,
    TimelineEntry,
)
from sessionscope.server import db
from sessionscope.server.errors import ApiError, not_found
from sessionscope.server.store.codecs import event_from_row, now_utc
from sessionscope.server.store.core import StoreCore, Tx, _org_stream_head, _refuse_closed
from sessionscope.server.store.derived import build_replay, build_timeline


class EventStore(StoreCore):
    async def send_message(self, org: str, session_id: str, content: str) -> Event:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            _refuse_closed(session)
            if SessionStatus(session["status"]).is_terminal:
                raise ApiError(409, f"the session is {session['status']}")
            return await self._append_event(
                tx, session, EventType.MESSAGE_USER.value, {"content": content}
            )

    async def list_events(
        self,
        org: str,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: Sequence[str] = (),
        include_hidden: bool = False,
    ) -> Page[Event]:
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            events = await self._events_after(
                conn, session_id, after, limit + 1, types=types, include_hidden=include_hidden
            )
        more = len(events) > limit
        events = events[:limit]
        next_cursor = str(events[-1].sequence) if more and events else None
        return Page[Event](data=events, next_cursor=next_cursor)

    async def _events_after(
        self,
        conn: AsyncConnection,
        session_id: str,
        after: int,
        limit: int,
        *,
        types: Sequence[str] = (),
        include_hidden: bool = False,
    ) -> list[Event]:
        e = db.events.c
        query = select(db.events).where(e.session_id == session_id, e.sequence > after)
        if types:
            query = query.where(e.type.in_(list(types)))
        if not include_hidden:
            query = query.where(e.hidden.is_(False))
        query = query.order_by(e.sequence).limit(limit)
        return [event_from_row(row) for row in (await conn.execute(query)).all()]

    async def events_after(
        self, org: str, session_id: str, after: int, limit: int, *, include_hidden: bool = False
    ) -> list[Event]:
        """For live streams: the backlog after ``after`` (raises 404 for a missing session)."""
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            return await self._events_after(
                conn, session_id, after, limit, include_hidden=include_hidden
            )

    async def get_event(self, org: str, session_id: str, event_id: str) -> Event:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(db.events).where(
                        db.events.c.id == event_id,
                        db.events.c.session_id == session_id,
                        db.events.c.org == org,
                    )
                )
            ).first()
        if row is None:
            raise not_found("event")
        return event_from_row(row)

    async def delete_event(
        self, org: str, session_id: str, event_id: str, actor: dict[str, str] | None = None
    ) -> None:
        async with self.write() as tx:
            e = db.events.c
            where = (e.id == event_id, e.session_id == session_id, e.org == org)
            found = (await tx.conn.execute(select(e.sequence, e.type).where(*where))).first()
            if found is None:
                raise not_found("event")
            sequence, event_type = found
            await tx.conn.execute(delete(db.events).where(*where))
            await self._announce_event_change(
                tx, org, session_id, EventType.EVENT_DELETED.value, event_id, sequence
            )
            if actor is not None:
                session = await self._load_session(tx, org, session_id)
                await self._audit(
                    tx,
                    session,
                    EventType.AUDIT_DELETED,
                    actor,
                    f"deleted event #{sequence} ({event_type})",
                    event_id=event_id,
                    sequence=sequence,
                )

    async def _announce_event_change(
        self, tx: Tx, org: str, session_id: str, kind: str, event_id: str, sequence: int
    ) -> None:
        """Live viewers learn of a hide, unhide or delete through an event of its own, with its
        own sequence, so a resumed stream replays it in order too."""
        session = await self._load_session(tx, org, session_id)
        await self._append_event(tx, session, kind, {"event_id": event_id, "sequence": sequence})

    async def set_event_hidden(
        self, org: str, session_id: str, event_id: str, hidden: bool
    ) -> Event:
        async with self.write() as tx:
            result = await tx.conn.execute(
                update(db.events)
                .where(
                    db.events.c.id == event_id,
                    db.events.c.session_id == session_id,
                    db.events.c.org == org,
                )
                .values(hidden=hidden, hide_reason="manual" if hidden else None)
            )
            if result.rowcount == 0:
                raise not_found("event")
            row = (await tx.conn.execute(select(db.events).where(db.events.c.id == event_id))).one()
            await self._announce_event_change(
                tx,
                org,
                session_id,
                (EventType.EVENT_HIDDEN if hidden else EventType.EVENT_UNHIDDEN).value,
                event_id,
                row.sequence,
            )
        return event_from_row(row)

    async def timeline(
        self, org: str, session_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[TimelineEntry]:
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            events = await self._events_after(conn, session_id, after, limit)
        return build_timeline(events)

    async def replay(self, org: str, session_id: str, *, limit: int = 10_000) -> Replay:
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            events = await self._events_after(conn, session_id, 0, limit)
        return Replay(session_id=session_id, steps=build_replay(events))

    # -- organisation stream --------------------------------------------------------------------

    async def org_changes_since(self, org: str, after: int, limit: int) -> list[OrgChange]:
        """Up to ``limit`` changes of the organisation stream after ``after``, in order. When
        retention pruned changes after ``after``, a ``stream.reset`` numbered at the retention
        floor comes first (the client reloads) and the changes go on from the floor. The floor
        and the changes are read in one snapshot, so a prune between them cannot open a gap."""

        def read(conn: Connection) -> list[OrgChange]:
            f = db.org_stream_floor.c
            floor = int(conn.execute(select(f.change_id).where(f.org == org)).scalar() or 0)
            changes: list[OrgChange] = []
            if after < floor:
                changes.append(OrgChange(id=floor, kind=EventType.STREAM_RESET, session_id=""))
            c = db.org_changes.c
            query = (
                select(db.org_changes)
                .where(c.org == org, c.stream_id > max(after, floor))
                .order_by(c.stream_id)
                .limit(limit - len(changes))
            )
            for row in conn.execute(query):
                changes.append(
                    OrgChange.model_validate(
                        {
                            "id": row.stream_id,
                            "kind": row.kind,
                            "session_id": row.session_id,
                            "created_at": row.created_at,
                            **row.body,
                        }
                    )
                )
            return changes

        return await self._run_read(read, snapshot=True)

    async def prune_org_changes(self, retention_seconds: float) -> int:
        """Drop org changes older than the retention window, remembering per organisation the
        newest id dropped (a resume from before it is told to reload). Returns rows dropped."""
        cutoff = datetime.fromtimestamp(now_utc().timestamp() - retention_seconds, UTC)
        c = db.org_changes.c
        f = db.org_stream_floor.c
        async with self.write() as tx:
            newest = (
                await tx.conn.execute(
                    select(c.org, func.max(c.stream_id))
                    .where(c.created_at < cutoff)
                    .group_by(c.org)
                )
            ).all()
            if not newest:
                return 0
            for org, change_id in newest:
                updated = await tx.conn.execute(
                    update(db.org_stream_floor).where(f.org == org).values(change_id=change_id)
                )
                if updated.rowcount == 0:
                    await tx.conn.execute(
                        db.org_stream_floor.insert().values(org=org, change_id=change_id)
                    )
            result = await tx.conn.execute(delete(db.org_changes).where(c.created_at < cutoff))
        return int(result.rowcount or 0)

    async def org_stream_head(self, org: str) -> int:
        """Where a fresh subscriber of the organisation stream starts (see ``_org_stream_head``)."""
        return await self._run_read(lambda conn: _org_stream_head(conn, org))
