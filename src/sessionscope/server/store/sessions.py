"""Sessions: create, list (keyset pages, cached filtered counts), update, close, delete."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any, Literal

import pydantic_core
from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    delete,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection

from sessionscope.models import (
    CloseResult,
    EventType,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
)
from sessionscope.server import db
from sessionscope.server.errors import ApiError, not_found
from sessionscope.server.store.codecs import (
    _CREATED_AT,
    _ID_AT,
    _SESSION_RAW_SELECT,
    _keyset,
    decode_cursor,
    encode_cursor,
    new_id,
    session_channel,
    session_from_row,
    session_wire_from_raw,
)
from sessionscope.server.store.core import StoreCore, Tx, _org_stream_head, counted

#: How long a filtered sessions COUNT (agent, task, tag, text) is reused: those totals may lag
#: writes by this much; unfiltered and by-status totals come from `db.session_counts`, exact.
COUNT_CACHE_SECONDS = 2.0
COUNT_CACHE_ENTRIES = 1024
#: Sessions a text search (``q``) scans per request, in listing order: its latency bound.
TEXT_SCAN_ROWS = 2_000
#: The orders the sessions listing offers, by creation time.
SessionOrder = Literal["newest", "oldest"]


class SessionStore(StoreCore):
    # -- sessions -------------------------------------------------------------------------------

    async def create_session(self, org: str, spec: SessionCreate) -> Session:
        async with self.write() as tx:
            session_id = new_id("ses")
            data: dict[str, Any] = {
                "id": session_id,
                "org": org,
                "title": spec.title,
                "agent_id": spec.agent_id,
                "task_id": spec.task_id,
                "model_id": spec.model_id,
                "status": SessionStatus.CREATED.value,
                "tags": list(dict.fromkeys(spec.tags)),
                "metadata": spec.metadata,
                "context_variables": spec.context_variables,
                "created_at": tx.now,
                "updated_at": tx.now,
                "started_at": None,
                "last_active_at": None,
                "finished_at": None,
                "closed_at": None,
                "message_count": 0,
                "event_count": 0,
                "pending_action_count": 0,
                "last_sequence": 0,
                "preview": None,
                "output_preview": None,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
                "billable": None,
                "duration_seconds": None,
            }
            await tx.conn.execute(db.sessions.insert().values(**data))
            await self._write_tags(tx, org, session_id, data["tags"], tx.now)
            tx.sessions[session_id] = data
            tx.created.add(session_id)
            await self._append_event(
                tx, data, EventType.SESSION_CREATED.value, {"title": spec.title}
            )
            if spec.prompt:
                await self._append_event(
                    tx, data, EventType.MESSAGE_USER.value, {"content": spec.prompt}
                )
        return session_from_row(data)

    async def _write_tags(
        self, tx: Tx, org: str, session_id: str, tags: list[str], created_at: datetime
    ) -> None:
        await tx.conn.execute(
            delete(db.session_tags).where(db.session_tags.c.session_id == session_id)
        )
        if tags:
            await tx.conn.execute(
                db.session_tags.insert(),
                [
                    {"session_id": session_id, "org": org, "tag": tag, "created_at": created_at}
                    for tag in tags
                ],
            )

    async def get_session(self, org: str, session_id: str) -> Session:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(db.sessions).where(
                        db.sessions.c.id == session_id, db.sessions.c.org == org
                    )
                )
            ).first()
        if row is None:
            raise not_found("session")
        return session_from_row(row)

    def _session_page(
        self,
        conn: Connection,
        org: str,
        *,
        statuses: Sequence[SessionStatus] = (),
        agent_id: str | None = None,
        task_id: str | None = None,
        tag: str | None = None,
        text: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        order: SessionOrder = "newest",
    ) -> tuple[Sequence[Row[Any]], str | None, int | None]:
        """(rows, next cursor, total) of one page, in ``order`` of creation (the keyset walks
        the same indexes backwards or forwards, so the oldest page costs what the newest does).
        Rows are ``_SESSION_RAW_SELECT`` tuples (see ``session_wire_from_raw``).
        """
        s = db.sessions.c
        conditions: list[ColumnElement[bool]] = [s.org == org]
        if len(statuses) == 1:
            # Equality (not IN) lets SQLite walk the (org, status, created_at) index in order.
            conditions.append(s.status == statuses[0].value)
        elif statuses:
            conditions.append(s.status.in_([status.value for status in statuses]))
        if agent_id is not None:
            conditions.append(s.agent_id == agent_id)
        if task_id is not None:
            conditions.append(s.task_id == task_id)
        source: Any = db.sessions
        #: The listing order's columns, and the table whose index walks them.
        key_created, key_id = s.created_at, s.id
        if tag is not None:
            # Walk the tag's (org, tag, created_at, session_id) range and join each entry to
            # its session: ``limit`` entries per page instead of every tagged id up front.
            t = db.session_tags.c
            source = db.session_tags.join(db.sessions, s.id == t.session_id)
            key_created, key_id = t.created_at, t.session_id
            conditions[0] = t.org == org
            conditions.append(t.tag == tag)
        page_conditions = list(conditions)
        oldest = order == "oldest"
        position = tuple_(key_created, key_id)
        #: Tags the cursors of the non-default order (see ``encode_cursor``).
        cursor_tag = "oldest" if oldest else None
        if cursor:
            after = _keyset(*decode_cursor(cursor, cursor_tag))
            page_conditions.append(position > after if oldest else position < after)
        sort = (key_created.asc(), key_id.asc()) if oldest else (key_created.desc(), key_id.desc())
        total: int | None = None
        # Text search is a substring match no index serves, so each request scans a bounded
        # window of the newest TEXT_SCAN_ROWS candidates (an index walk) and filters those.
        # A window that ends before the page fills still hands out a cursor (at the window's
        # end): pages may be short, even empty, yet every match is reached by paging on.
        window_end: tuple[int, str] | None = None
        if text:
            boundary = (
                conn.execute(
                    select(key_created, key_id)
                    .select_from(source)
                    .where(and_(*page_conditions))
                    .order_by(*sort)
                    .limit(1)
                    .offset(TEXT_SCAN_ROWS - 1)
                )
            ).first()
            if conn.dialect.name == "sqlite":
                # SQLite's LIKE already ignores ASCII case and its lower() folds nothing
                # else, so lower() on both sides only doubled the scan's cost.
                matches = or_(
                    s.title.contains(text, autoescape=True),
                    s.preview.contains(text, autoescape=True),
                )
            else:
                matches = or_(
                    s.title.icontains(text, autoescape=True),
                    s.preview.icontains(text, autoescape=True),
                )
            conditions.append(matches)
            page_conditions.append(matches)
            if boundary is not None:
                window_end = (db.to_micros(boundary[0]), boundary[1])
                end = _keyset(*window_end)
                page_conditions.append(position <= end if oldest else position >= end)
        query = (
            select(*_SESSION_RAW_SELECT)
            .select_from(source)
            .where(and_(*page_conditions))
            .order_by(*sort)
            .limit(limit + 1)
        )
        rows = conn.execute(query).all()
        if not cursor and not (agent_id or task_id or tag or text) and counted(conn):
            # Unfiltered or by status: exact and current, from the counts the triggers keep.
            c = db.session_counts.c
            counted_total = select(func.coalesce(func.sum(c.n), 0)).where(c.org == org)
            if statuses:
                counted_total = counted_total.where(c.status.in_([x.value for x in statuses]))
            total = conn.execute(counted_total).scalar_one()
        elif not cursor and not (text and window_end is not None):
            # A COUNT walks every matching row (hundreds of ms with 100k sessions), so only
            # the first page carries it, from a short-lived cache: a client paging on keeps
            # the total it got first (the API allows null on later pages). A text search
            # whose window did not reach the oldest session has no total (null): counting
            # it would scan every row.
            count_key = (org, tuple(s.value for s in statuses), agent_id, task_id, tag, text)
            # Here without the SQLite counts (PostgreSQL): unfiltered and by-status totals are
            # counted every time, as the README promises them exact; a cached one would miss
            # another replica's writes (this replica clears its cache on its own writes only).
            exact = not (agent_id or task_id or tag or text)
            total = None if exact else self._cached_count(count_key)
            # A tag alone is counted in its own index, without visiting the sessions.
            count_source = db.session_tags if tag is not None and len(conditions) == 2 else source
            if total is None:
                total = (
                    conn.execute(select(func.count()).select_from(count_source).where(*conditions))
                ).scalar_one()
                self._remember_count(count_key, total)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = encode_cursor(db.from_micros(last[_CREATED_AT]), last[_ID_AT], cursor_tag)
        elif window_end is not None:
            next_cursor = encode_cursor(db.from_micros(window_end[0]), window_end[1], cursor_tag)
        return rows, next_cursor, total

    async def list_sessions_json(self, org: str, **filters: Any) -> bytes:
        """One page of the organisation's sessions (a ``Page[Session]``), newest first unless
        ``order="oldest"`` (see ``_session_page``), serialised straight from the stored rows:
        the API's listing reply.

        A first page (no cursor) carries ``stream_position``: the organisation stream position
        its snapshot includes, read in the page's own read transaction, so a watch resumed from
        it gets exactly the changes the page does not show. Later pages read no position and
        need no transaction."""
        first = not filters.get("cursor")

        def page_json(conn: Connection) -> bytes:
            # Read first: where there is no snapshot (in-memory SQLite) the position can then
            # only be behind the page (a change listed and replayed), never ahead (one lost).
            position = _org_stream_head(conn, org) if first else None
            rows, next_cursor, total = self._session_page(conn, org, **filters)
            return pydantic_core.to_json(
                {
                    "data": [session_wire_from_raw(row) for row in rows],
                    "next_cursor": next_cursor,
                    "total": total,
                    "stream_position": position,
                }
            )

        return await self._run_read(page_json, snapshot=first)

    def _cached_count(self, key: Hashable) -> int | None:
        cached = self._counts.get(key)
        if cached is None or time.monotonic() - cached[0] > COUNT_CACHE_SECONDS:
            return None
        return cached[1]

    def _remember_count(self, key: Hashable, total: int) -> None:
        if len(self._counts) >= COUNT_CACHE_ENTRIES:
            now = time.monotonic()
            self._counts = {
                k: v for k, v in self._counts.items() if now - v[0] <= COUNT_CACHE_SECONDS
            }
            if len(self._counts) >= COUNT_CACHE_ENTRIES:
                self._counts.clear()
        self._counts[key] = (time.monotonic(), total)

    async def update_session(self, org: str, session_id: str, change: SessionUpdate) -> Session:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            changed: dict[str, Any] = {}
            if change.title is not None and change.title != session["title"]:
                session["title"] = changed["title"] = change.title
            if change.tags is not None:
                tags = list(dict.fromkeys(change.tags))
                session["tags"] = changed["tags"] = tags
                await self._write_tags(tx, org, session_id, tags, session["created_at"])
            if change.metadata is not None:
                session["metadata"] = changed["metadata"] = change.metadata
            if change.context_variables is not None:
                session["context_variables"] = change.context_variables
                await self._append_event(
                    tx,
                    session,
                    EventType.VARIABLES_UPDATED.value,
                    {"keys": sorted(change.context_variables)},
                )
            if change.status is SessionStatus.CLOSED and session["status"] != change.status.value:
                # Closing is more than a status: duration, billing, pending actions.
                await self._close(tx, session)
            elif change.status is not None and change.status.value != session["status"]:
                await self._append_event(
                    tx, session, EventType.SESSION_STATUS.value, {"status": change.status.value}
                )
            if changed:
                await self._append_event(
                    tx, session, EventType.SESSION_UPDATED.value, {"fields": sorted(changed)}
                )
            self._touch(tx, session)
        return session_from_row(session)

    async def delete_session(self, org: str, session_id: str) -> None:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            await self._cancel_pending_actions(tx, session, reason="session deleted")
            await tx.conn.execute(
                delete(db.artifact_chunks).where(
                    db.artifact_chunks.c.artifact_id.in_(
                        select(db.artifacts.c.id).where(db.artifacts.c.session_id == session_id)
                    )
                )
            )
            for table in (db.events, db.artifacts, db.actions, db.tool_calls, db.session_tags):
                await tx.conn.execute(delete(table).where(table.c.session_id == session_id))
            await tx.conn.execute(delete(db.sessions).where(db.sessions.c.id == session_id))
            tx.deleted.add(session_id)
            tx.closed_channels.append(session_channel(org, session_id))
            await self._org_change(tx, org, "session.deleted", session_id, session)

    async def close_session(
        self, org: str, session_id: str, actor: dict[str, str] | None = None
    ) -> CloseResult:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            if session["status"] == SessionStatus.CLOSED.value:
                raise ApiError(409, "the session is already closed")
            if actor is not None:
                # Before the close: a closed session's last event is its session.closed.
                await self._audit(tx, session, EventType.AUDIT_CLOSED, actor, "closed the session")
            await self._close(tx, session)
        return CloseResult(
            id=session_id,
            closed_at=session["closed_at"],
            duration_seconds=session["duration_seconds"],
            billable=session["billable"],
        )

    async def _close(self, tx: Tx, session: dict[str, Any]) -> None:
        await self._cancel_pending_actions(tx, session, reason="session closed")
        started = session["started_at"] or session["created_at"]
        duration = max(0, int((tx.now - started).total_seconds()))
        session["closed_at"] = tx.now
        session["finished_at"] = session["finished_at"] or tx.now
        session["duration_seconds"] = duration
        session["billable"] = session["message_count"] > 0
        await self._append_event(
            tx,
            session,
            EventType.SESSION_CLOSED.value,
            {"duration_seconds": duration, "billable": session["billable"]},
        )
        session["status"] = SessionStatus.CLOSED.value

    async def complete_session(self, org: str, session_id: str) -> Session:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            if session["status"] == SessionStatus.CLOSED.value:
                raise ApiError(409, "the session is closed")
            if session["status"] != SessionStatus.COMPLETED.value:
                await self._cancel_pending_actions(tx, session, reason="session completed")
                await self._append_event(tx, session, EventType.SESSION_COMPLETED.value, {})
        return session_from_row(session)
