"""Bulk seeding straight into the database, for tests and benchmarks.

Rows go in with ``executemany`` in large batches, bypassing the API (and its live streams), so a
million events take seconds. Run it against a database no server is writing to at the same time,
or accept that SQLite's busy timeout serialises the two writers.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessionscope.models import EventType, SessionStatus
from sessionscope.server import db
from sessionscope.server.settings import database_url

SESSION_BATCH = 5_000
EVENT_BATCH = 20_000
_STATUSES = [
    SessionStatus.ACTIVE,
    SessionStatus.IDLE,
    SessionStatus.WAITING,
    SessionStatus.COMPLETED,
    SessionStatus.FAILED,
    SessionStatus.CLOSED,
]


class _RawInsert:
    """An INSERT compiled once for the engine's dialect and run with executemany on plain
    tuples: skipping SQLAlchemy's per-row type processing is what makes a million rows fast.
    Values must already be in storage form (timestamps as microseconds, JSON as text) and in
    ``columns`` order."""

    def __init__(self, engine: AsyncEngine, table: Table, columns: list[str]) -> None:
        statement = table.insert().values({name: bindparam(name) for name in columns})
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.columns = columns
        self.positional = bool(compiled.positional)
        order = list(compiled.positiontup or []) if self.positional else columns
        #: None when the driver takes the values in ``columns`` order already.
        self.permutation = None if order == columns else [columns.index(n) for n in order]

    def params(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        if not self.positional:
            return [dict(zip(self.columns, row, strict=True)) for row in rows]
        if self.permutation is None:
            return rows
        permutation = self.permutation
        return [tuple(row[i] for i in permutation) for row in rows]

    async def run(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        await conn.exec_driver_sql(self.sql, self.params(rows))

    async def run_dicts(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        columns = self.columns
        await self.run(conn, [tuple(row[name] for name in columns) for row in rows])


@asynccontextmanager
async def _engine(target: AsyncEngine | str) -> AsyncIterator[AsyncEngine]:
    if isinstance(target, AsyncEngine):
        yield target
        return
    engine = db.make_engine(database_url(target))
    try:
        await db.prepare_schema(engine)
        yield engine
    finally:
        await engine.dispose()


async def seed_sessions(
    target: AsyncEngine | str,
    org: str,
    count: int = 100_000,
    *,
    start: datetime | None = None,
    spacing: timedelta = timedelta(seconds=1),
    agent_id: str | None = "seed-agent",
    title_prefix: str = "Seeded session",
    batch_size: int = SESSION_BATCH,
) -> list[str]:
    """Insert ``count`` sessions created ``spacing`` apart, ending at ``start`` (default: now
    minus ``count * spacing``, so they are all older than anything created afterwards). Returns
    their ids, oldest first."""
    if start is None:
        start = datetime.now(UTC) - spacing * (count + 1)
    ids = [f"ses_seed{secrets.token_hex(6)}{n:08d}" for n in range(count)]
    first_micros = db.to_micros(start)
    step = int(spacing.total_seconds() * 1_000_000)
    empty = json.dumps({})
    async with _engine(target) as engine:
        insert_sessions = _RawInsert(engine, db.sessions, [c.name for c in db.sessions.c])
        tag_columns = ["session_id", "org", "tag", "created_at"]
        insert_tags = _RawInsert(engine, db.session_tags, tag_columns)
        for offset in range(0, count, batch_size):
            rows: list[dict[str, Any]] = []
            for n in range(offset, min(offset + batch_size, count)):
                created = first_micros + step * n
                status = _STATUSES[n % len(_STATUSES)]
                tag = f"batch-{n % 10}"
                rows.append(
                    {
                        "id": ids[n],
                        "org": org,
                        "title": f"{title_prefix} {n}",
                        "agent_id": agent_id,
                        "task_id": f"task-{n % 100}",
                        "model_id": "seed-model",
                        "status": status.value,
                        "tags": json.dumps([tag]),
                        "metadata": empty,
                        "context_variables": empty,
                        "created_at": created,
                        "updated_at": created,
                        "started_at": created,
                        "last_active_at": created,
                        "finished_at": created if status.is_terminal else None,
                        "closed_at": created if status is SessionStatus.CLOSED else None,
                        "message_count": 0,
                        "event_count": 0,
                        "pending_action_count": 0,
                        "last_sequence": 0,
                        "preview": f"seeded prompt {n}",
                        "output_preview": None,
                        "input_tokens": 0,
                        "output_tokens": 0,
                        "cost_usd": 0.0,
                        "billable": None,
                        "duration_seconds": None,
                    }
                )
            tags = [
                (ids[n], org, f"batch-{n % 10}", first_micros + step * n)
                for n in range(offset, min(offset + batch_size, count))
            ]
            async with engine.begin() as conn:
                await insert_sessions.run_dicts(conn, rows)
                await insert_tags.run(conn, tags)
    return ids


async def seed_events(
    target: AsyncEngine | str,
    org: str,
    session_id: str,
    count: int = 1_000_000,
    *,
    batch_size: int = EVENT_BATCH,
    content_bytes: int = 80,
) -> int:
    """Append ``count`` agent messages to an existing session, keeping its counters right.
    Returns the session's last sequence."""
    filler = "x" * content_bytes
    async with _engine(target) as engine:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(db.sessions.c.last_sequence, db.sessions.c.message_count).where(
                        db.sessions.c.id == session_id, db.sessions.c.org == org
                    )
                )
            ).first()
        if row is None:
            raise LookupError(f"no session {session_id} in organisation {org}")
        first_sequence = row.last_sequence + 1
        base = db.to_micros(datetime.now(UTC)) - count
        prefix = f"evt_seed{secrets.token_hex(4)}"
        message = EventType.MESSAGE_AGENT.value
        columns = ["id", "session_id", "org", "sequence", "type", "created_at", "payload"]
        columns += ["hidden", "hide_reason"]
        insert_events = _RawInsert(engine, db.events, columns)
        for offset in range(0, count, batch_size):
            rows = [
                (
                    f"{prefix}{n:09d}",
                    session_id,
                    org,
                    first_sequence + n,
                    message,
                    base + n,
                    f'{{"content": "message {n} {filler}"}}',
                    False,
                    None,
                )
                for n in range(offset, min(offset + batch_size, count))
            ]
            async with engine.begin() as conn:
                await insert_events.run(conn, rows)
        last_sequence = first_sequence + count - 1
        async with engine.begin() as conn:
            await conn.execute(
                update(db.sessions)
                .where(db.sessions.c.id == session_id)
                .values(
                    last_sequence=last_sequence,
                    event_count=db.sessions.c.event_count + count,
                    message_count=db.sessions.c.message_count + count,
                    last_active_at=datetime.now(UTC),
                )
            )
    return last_sequence
