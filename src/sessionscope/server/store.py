"""Storage: every read and write the API makes, scoped to an organisation.

Writes go through ``Store.write()``: one in-process lock (SQLite has a single writer anyway, and
this avoids "database is locked"), one transaction, then live frames are published in commit
order while the lock is still held, so subscribers never see a later frame before an earlier one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import pydantic_core
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    LargeBinary,
    Row,
    String,
    Text,
    and_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessionscope.models import (
    VISIBILITY_TYPES,
    ActionCreate,
    ActionDecisionResult,
    ActionStatus,
    Artifact,
    ArtifactCreate,
    ArtifactWithContent,
    CloseResult,
    Event,
    EventType,
    OrgChange,
    Page,
    PendingAction,
    Replay,
    ReplayStep,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    TimelineEntry,
    ToolCall,
    ToolCallArgument,
    ToolCallCreate,
    ToolResult,
)
from sessionscope.server import db, pg_fanout
from sessionscope.server.broker import Broker
from sessionscope.server.errors import ApiError, field_error, not_found
from sessionscope.server.streams import LiveFrame, live_frame, sse_frame

PREVIEW_CHARS = 200
#: How long a filtered sessions COUNT (agent, task, tag, text) is reused: those totals may lag
#: writes by this much; unfiltered and by-status totals come from `db.session_counts`, exact.
COUNT_CACHE_SECONDS = 2.0
COUNT_CACHE_ENTRIES = 1024
#: Sessions a text search (``q``) scans per request, in listing order: its latency bound.
TEXT_SCAN_ROWS = 2_000
#: The orders the sessions listing offers, by creation time.
SessionOrder = Literal["newest", "oldest"]
#: Appends committed together at most (each still gets its own sequence and reply).
APPEND_BATCH_REQUESTS = 256
#: How long the writer thread keeps committing queued appends before it lets other writes
#: (which wait on the same lock) have a turn.
APPEND_LEASE_SECONDS = 0.05
#: Artifact chunks fetched per query when streaming a range (1 MiB).
ARTIFACT_CHUNKS_PER_READ = 4
#: Threads running reads (listings) whole, each on its own connection: SQLite in WAL mode
#: reads concurrently, and one long read (a COUNT, a text window) does not hold up the rest.
READER_THREADS = 2
T = TypeVar("T")
SECRET_MASK = "********"
#: Names the PostgreSQL advisory lock serialising an organisation's stream writers.
ORG_STREAM_LOCK_PREFIX = "sessionscope.org-stream:"


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_event_id() -> str:
    """``evt_``, 12 hex digits of Unix milliseconds, 12 random ones. Ids made together sort
    together, so a group commit adds its rows to the last pages of the primary-key index
    instead of one random page per row (each a page more written per commit)."""
    return f"evt_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def new_event_ids(count: int) -> list[str]:
    """``count`` ids as ``new_event_id`` makes them, from one read of the random source."""
    stamp = f"evt_{time.time_ns() // 1_000_000:012x}"
    random = secrets.token_hex(6 * count)
    return [stamp + random[at : at + 12] for at in range(0, 12 * count, 12)]


def session_channel(org: str, session_id: str) -> Hashable:
    return ("session", org, session_id)


def org_channel(org: str) -> Hashable:
    return ("org", org)


# ---------------------------------------------------------------------------------------------
# Cursors: opaque to clients, base64 of the keyset position.
# ---------------------------------------------------------------------------------------------


def encode_cursor(created_at: datetime, row_id: str, order: str | None = None) -> str:
    """``order`` tags a cursor of a non-default listing order, so that it is never read as a
    position in another order (untagged cursors stay what they were: newest first)."""
    position: list[Any] = [db.to_micros(created_at), row_id]
    if order is not None:
        position.append(order)
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _keyset(micros: int, row_id: str) -> Any:
    # Typed literals: an untyped datetime would bind as text and compare wrongly with the
    # integer column.
    return tuple_(literal(db.from_micros(micros), db.UTCMicros()), literal(row_id, String()))


def decode_cursor(cursor: str, order: str | None = None) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        micros, row_id, *tag = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(micros, int) or not isinstance(row_id, str) or len(tag) > 1:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise field_error(
            "cursor", "the cursor is not one this server issued", status=400
        ) from None
    if (tag[0] if tag else None) != order:
        raise field_error(
            "cursor",
            "the cursor belongs to another listing order; page in the order it came from",
            status=400,
        )
    return micros, row_id


# ---------------------------------------------------------------------------------------------
# Row -> model.
# ---------------------------------------------------------------------------------------------


def session_from_row(row: Any) -> Session:
    m = row._mapping if isinstance(row, Row) else row
    return Session.model_validate(
        {
            "id": m["id"],
            "title": m["title"],
            "agent_id": m["agent_id"],
            "task_id": m["task_id"],
            "model_id": m["model_id"],
            "status": m["status"],
            "tags": m["tags"],
            "metadata": m["metadata"],
            "context_variables": m["context_variables"],
            "created_at": m["created_at"],
            "updated_at": m["updated_at"],
            "started_at": m["started_at"],
            "last_active_at": m["last_active_at"],
            "finished_at": m["finished_at"],
            "closed_at": m["closed_at"],
            "message_count": m["message_count"],
            "event_count": m["event_count"],
            "pending_action_count": m["pending_action_count"],
            "last_sequence": m["last_sequence"],
            "preview": m["preview"],
            "output_preview": m["output_preview"],
            "usage": {
                "input_tokens": m["input_tokens"],
                "output_tokens": m["output_tokens"],
                "total_tokens": m["input_tokens"] + m["output_tokens"],
                "cost_usd": m["cost_usd"],
            },
            "billable": m["billable"],
            "duration_seconds": m["duration_seconds"],
        }
    )


_SESSION_WIRE_COLUMNS = (
    *("id", "title", "agent_id", "task_id", "model_id", "status", "tags", "metadata"),
    *("context_variables", "created_at", "updated_at", "started_at", "last_active_at"),
    *("finished_at", "closed_at", "message_count", "event_count", "pending_action_count"),
    *("last_sequence", "preview", "output_preview"),
)


_SESSION_RAW_TAIL = ("input_tokens", "output_tokens", "cost_usd", "billable", "duration_seconds")
_SESSION_JSON_COLUMNS = ("tags", "metadata", "context_variables")
_SESSION_TIME_COLUMNS = (
    *("created_at", "updated_at", "started_at", "last_active_at", "finished_at", "closed_at"),
)


def _stored(column: Any) -> Any:
    """``column`` as the driver returns it, without SQLAlchemy's result processing (JSON text,
    integer microseconds, 0/1): ``session_wire_from_raw`` converts what a listing needs."""
    if isinstance(column.type, db.UTCMicros):
        return type_coerce(column, BigInteger)
    if isinstance(column.type, JSON):
        return type_coerce(column, Text)
    if isinstance(column.type, Boolean):
        return type_coerce(column, Integer)
    return column


#: The listing's columns, stored form: the wire columns in order, then ``_SESSION_RAW_TAIL``.
_SESSION_RAW_SELECT = [
    _stored(db.sessions.c[name]) for name in (*_SESSION_WIRE_COLUMNS, *_SESSION_RAW_TAIL)
]
_WIRE_WIDTH = len(_SESSION_WIRE_COLUMNS)
_JSON_AT = tuple(_SESSION_WIRE_COLUMNS.index(name) for name in _SESSION_JSON_COLUMNS)
_TIME_AT = tuple(_SESSION_WIRE_COLUMNS.index(name) for name in _SESSION_TIME_COLUMNS)
_CREATED_AT = _SESSION_WIRE_COLUMNS.index("created_at")
_ID_AT = _SESSION_WIRE_COLUMNS.index("id")
#: Decoded short JSON texts (tags lists, small metadata) recur across rows: decode each once.
_JSON_MEMO: dict[str, Any] = {}
_JSON_MEMO_ENTRIES = 4096
_JSON_MEMO_CHARS = 256


def _stored_json(value: Any) -> Any:
    # The memo's objects are shared: they are only ever serialised, never changed.
    if not isinstance(value, str):  # a driver that decodes JSON itself
        return value
    decoded = _JSON_MEMO.get(value)
    if decoded is None:
        decoded = json.loads(value)
        if len(value) <= _JSON_MEMO_CHARS:
            if len(_JSON_MEMO) >= _JSON_MEMO_ENTRIES:
                _JSON_MEMO.clear()
            _JSON_MEMO[value] = decoded
    return decoded


def session_wire_from_raw(row: Sequence[Any]) -> dict[str, Any]:
    """A session row (``_SESSION_RAW_SELECT``) as the JSON object ``Session`` serialises to
    (same keys, same order), for listings: validating 200 models cost about 60 µs each and
    proves nothing about rows this server wrote, and SQLAlchemy's per-column result processing
    cost about as much again; a test holds the two forms byte-identical."""
    values = list(row[:_WIRE_WIDTH])
    for at in _JSON_AT:
        values[at] = _stored_json(values[at])
    for at in _TIME_AT:
        if values[at] is not None:
            values[at] = db.from_micros(values[at])
    wire = dict(zip(_SESSION_WIRE_COLUMNS, values, strict=True))
    input_tokens, output_tokens, cost_usd, billable, duration_seconds = row[_WIRE_WIDTH:]
    wire["usage"] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": float(cost_usd),
    }
    wire["billable"] = None if billable is None else bool(billable)
    wire["duration_seconds"] = duration_seconds
    return wire


def event_from_row(row: Any) -> Event:
    m = row._mapping
    return Event(
        id=m["id"],
        session_id=m["session_id"],
        sequence=m["sequence"],
        type=m["type"],
        created_at=m["created_at"],
        payload=m["payload"],
        hidden=m["hidden"],
        hide_reason=m["hide_reason"],
    )


def artifact_from_row(row: Any) -> Artifact:
    m = row._mapping
    return Artifact(
        id=m["id"],
        session_id=m["session_id"],
        name=m["name"],
        mime_type=m["mime_type"],
        size_bytes=m["size_bytes"],
        checksum_sha256=m["checksum_sha256"],
        description=m["description"],
        metadata=m["metadata"],
        created_at=m["created_at"],
    )


def action_from_row(row: Any, session_title: str | None = None) -> PendingAction:
    m = row._mapping if isinstance(row, Row) else row
    return PendingAction(
        id=m["id"],
        session_id=m["session_id"],
        tool=m["tool"],
        preview=m["preview"],
        status=ActionStatus(m["status"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        decided_at=m["decided_at"],
        callback_id=m["callback_id"],
        outcome=m["outcome"],
        session_title=session_title,
        destructive=m["destructive"],
    )


def tool_call_from_row(row: Any) -> ToolCall:
    m = row._mapping if isinstance(row, Row) else row
    return ToolCall.model_validate(
        {
            "id": m["id"],
            "session_id": m["session_id"],
            "tool": m["tool"],
            "arguments": m["arguments"],
            "status": m["status"],
            "created_at": m["created_at"],
            "result": m["result"],
            "error": m["error"],
        }
    )


# ---------------------------------------------------------------------------------------------
# Transactions.
# ---------------------------------------------------------------------------------------------


@dataclass
class Tx:
    conn: AsyncConnection
    now: datetime
    #: (channel, item) published after commit, in order.
    outbox: list[tuple[Hashable, Any]] = field(default_factory=list)
    #: Session rows loaded for update; written back and announced on the org stream at the end.
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    #: Sessions created in this transaction: announced once, as created, in their final state.
    created: set[str] = field(default_factory=set)
    #: Channels whose streams end after commit (deleted sessions).
    closed_channels: list[Hashable] = field(default_factory=list)
    #: Confirmed actions to finish once committed.
    confirmed_actions: list[str] = field(default_factory=list)


SESSION_COUNTER_TYPES = {EventType.MESSAGE_USER.value, EventType.MESSAGE_AGENT.value}


@dataclass
class _AppendRequest:
    org: str
    session_id: str
    items: list[tuple[str, dict[str, Any]]]
    future: asyncio.Future[Appended]


@dataclass(slots=True)
class Appended:
    """Appended events as their live frames (each frame's body is the event's JSON)."""

    frames: list[LiveFrame] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return [Event.model_validate_json(frame.body) for frame in self.frames]


@dataclass
class _AppendBatch:
    """What one group-commit transaction did: per request its events or its error."""

    results: list[Appended | ApiError] = field(default_factory=list)
    #: (session channel, its new frames) in commit order, consecutive requests to one session
    #: in one group: each group is queued with one offer and one wake-up per subscriber.
    frames: list[tuple[Hashable, list[LiveFrame]]] = field(default_factory=list)
    #: (org channel, session.updated change), published after the frames.
    changes: list[tuple[Hashable, OrgChange]] = field(default_factory=list)
    #: Some session changed status or preview: cached counts may be wrong.
    recount: bool = False
    #: (org, session id) of every session that got events.
    touched: list[tuple[str, str]] = field(default_factory=list)
    #: Those whose session.updated went out in this transaction (the others are owed one).
    announced: list[tuple[str, str]] = field(default_factory=list)


class Store:
    def __init__(
        self,
        engine: AsyncEngine,
        broker: Broker,
        *,
        action_completion_delay: float = 0.5,
        session_update_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.action_completion_delay = action_completion_delay
        self.session_update_interval = session_update_interval
        # session.updated coalescing for appended events: when each session's last frame went
        # out, and the sessions owed a trailing frame with their newest state.
        self._session_update_sent: dict[tuple[str, str], float] = {}
        self._session_update_owed: set[tuple[str, str]] = set()
        self._session_update_flusher: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        #: Live streams fed from the database (several replicas on PostgreSQL): commits notify
        #: and poke it instead of publishing their frames straight to the broker.
        self.fanout: pg_fanout.PgFanout | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: (org, filters) -> (monotonic time, COUNT) for the sessions list's first page.
        self._counts: dict[Hashable, tuple[float, int]] = {}
        # Event appends are queued and committed in groups by one drainer task: appends that
        # arrive while a commit runs share the next transaction (group commit).
        # Filled by the event loop, emptied by the writer thread (deque ends are thread-safe).
        self._appends: deque[_AppendRequest] = deque()
        self._append_drainer: asyncio.Task[None] | None = None
        self._sync_engine = db.make_sync_engine(engine)
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="sessionscope-writer")
            if self._sync_engine is not None
            else None
        )
        self._read_engine = db.make_sync_engine(engine)
        self._readers = (
            ThreadPoolExecutor(READER_THREADS, thread_name_prefix="sessionscope-reader")
            if self._read_engine is not None
            else None
        )

    async def aclose(self) -> None:
        if self._session_update_flusher is not None:
            self._session_update_flusher.cancel()
            await asyncio.gather(self._session_update_flusher, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._append_drainer is not None and not self._append_drainer.done():
            # Let queued appends finish: their callers are waiting for replies.
            await asyncio.gather(self._append_drainer, return_exceptions=True)
        if self._writer is not None and self._sync_engine is not None:
            # pysqlite connections belong to the thread that opened them.
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self._sync_engine.dispose
            )
            self._writer.shutdown(wait=True)
        if self._readers is not None and self._read_engine is not None:
            self._readers.shutdown(wait=True)
            self._read_engine.dispose()

    async def _run_write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction: in the writer thread (one hop for the whole
        transaction) when there is a sync engine, else through the async engine."""
        if self._writer is not None and self._sync_engine is not None:
            sync_engine = self._sync_engine

            def in_transaction() -> T:
                with sync_engine.begin() as conn:
                    return work(conn)

            return await asyncio.get_running_loop().run_in_executor(self._writer, in_transaction)
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def _run_read(self, work: Callable[[Connection], T], *, snapshot: bool = False) -> T:
        """Run ``work`` on one connection: whole in a reader thread (one hop) when there is a
        sync reader engine, else through the async engine.

        ``snapshot``: all of ``work``'s statements read one snapshot (one read transaction).
        Without it each statement sees the newest commit: pysqlite opens no transaction for a
        SELECT, and PostgreSQL's READ COMMITTED takes a snapshot per statement. In-memory
        SQLite, whose single connection the writer shares, gets none (a BEGIN there would
        collide with the writer's transaction)."""
        if self._readers is not None and self._read_engine is not None:
            read_engine = self._read_engine

            def on_connection() -> T:
                with read_engine.connect() as conn:
                    if snapshot:
                        # Deferred: the first SELECT takes the snapshot, kept to the end (in WAL
                        # mode a reader never blocks the writer). The connection's close rolls
                        # the read transaction back.
                        conn.exec_driver_sql("BEGIN")
                    return work(conn)

            return await asyncio.get_running_loop().run_in_executor(self._readers, on_connection)
        async with self.engine.connect() as conn:
            if snapshot and conn.dialect.name != "sqlite":
                # Set before the transaction begins; the pool resets it when the connection
                # is returned.
                await conn.execution_options(isolation_level="REPEATABLE READ")
            return await conn.run_sync(work)

    # -- transaction plumbing -------------------------------------------------------------------

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            async with self.engine.begin() as conn:
                tx = Tx(conn=conn, now=now_utc())
                yield tx
                await self._flush_sessions(tx)
                positions: dict[Hashable, int] = {}
                if self.fanout is not None:
                    positions = pg_fanout.newest_positions(
                        (channel, item.sequence if isinstance(item, Event) else item.id)
                        for channel, item in tx.outbox
                    )
                    if positions or tx.closed_channels:
                        await conn.run_sync(pg_fanout.notify, positions, tx.closed_channels)
            if tx.dirty or tx.created or tx.deleted:
                # Any of these may move a session in or out of a filter: recount.
                self._counts.clear()
            if self.fanout is not None:
                self.fanout.poke(positions)
            else:
                for channel, item in tx.outbox:
                    self._publish(channel, item)
            for channel in tx.closed_channels:
                self.broker.close_channel(channel)
        for action_id in tx.confirmed_actions:
            self._spawn(self._finish_action_later(action_id))

    def _publish(self, channel: Hashable, item: Event | OrgChange | LiveFrame) -> None:
        # Encoded here, once, for every stream on the channel; not at all when none follows it
        # (appended events come encoded: their replies carry the same JSON).
        if self.broker.has_subscribers(channel):
            self.broker.publish(channel, item if isinstance(item, LiveFrame) else live_frame(item))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _load_session(self, tx: Tx, org: str, session_id: str) -> dict[str, Any]:
        cached = tx.sessions.get(session_id)
        if cached is not None:
            return cached
        result = await tx.conn.execute(
            select(db.sessions)
            .where(db.sessions.c.id == session_id, db.sessions.c.org == org)
            .with_for_update()
        )
        row = result.first()
        if row is None:
            raise not_found("session")
        data = dict(row._mapping)
        tx.sessions[session_id] = data
        return data

    def _touch(self, tx: Tx, session: dict[str, Any]) -> None:
        session["updated_at"] = tx.now
        tx.dirty.add(session["id"])

    async def _flush_sessions(self, tx: Tx) -> None:
        for session_id in sorted(tx.dirty - tx.deleted):
            data = tx.sessions[session_id]
            values = {k: v for k, v in data.items() if k not in ("id", "org", "created_at")}
            await tx.conn.execute(
                update(db.sessions).where(db.sessions.c.id == session_id).values(**values)
            )
            kind = "session.created" if session_id in tx.created else "session.updated"
            await self._org_change(tx, data["org"], kind, session_id, data)

    async def _org_change(
        self,
        tx: Tx,
        org: str,
        kind: str,
        session_id: str,
        session: dict[str, Any] | None = None,
        action: PendingAction | None = None,
    ) -> None:
        change = await tx.conn.run_sync(
            _record_org_change, org, kind, session_id, tx.now, session=session, action=action
        )
        tx.outbox.append((org_channel(org), change))

    async def _append_event(
        self,
        tx: Tx,
        session: dict[str, Any],
        event_type: str,
        payload: dict[str, Any],
    ) -> Event:
        sequence = session["last_sequence"] + 1
        session["last_sequence"] = sequence
        session["event_count"] += 1
        session["last_active_at"] = tx.now
        _apply_event_to_session(session, event_type, payload, tx.now)
        self._touch(tx, session)
        event = Event(
            id=new_event_id(),
            session_id=session["id"],
            sequence=sequence,
            type=event_type,
            created_at=tx.now,
            payload=payload,
        )
        await tx.conn.execute(
            db.events.insert().values(
                id=event.id,
                session_id=event.session_id,
                org=session["org"],
                sequence=sequence,
                type=event_type,
                created_at=tx.now,
                payload=payload,
                hidden=False,
                hide_reason=None,
            )
        )
        tx.outbox.append((session_channel(session["org"], session["id"]), event))
        return event

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

    # -- events ---------------------------------------------------------------------------------

    async def append_event(
        self, org: str, session_id: str, event_type: str, payload: dict[str, Any]
    ) -> Event:
        (event,) = await self.append_events(org, session_id, [(event_type, payload)])
        return event

    async def append_events(
        self, org: str, session_id: str, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Event]:
        """Append events (type, payload) in order, atomically; returns them with sequences."""
        return (await self.append_events_encoded(org, session_id, items)).events

    async def append_events_encoded(
        self, org: str, session_id: str, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> Appended:
        """``append_events``, with each event's encoded frame (for replies without encoding
        the events again)."""
        if not items:
            return Appended()
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._appends.append(_AppendRequest(org, session_id, list(items), future))
        if self._append_drainer is None or self._append_drainer.done():
            self._append_drainer = asyncio.create_task(
                self._drain_appends(), name="sessionscope-appends"
            )
        # A caller that goes away cancels only its own future; the commit it may share with
        # other callers goes on (replies to futures already done are skipped).
        return await future

    def _may_announce_session_update(self, key: tuple[str, str]) -> bool:
        """Called in the transaction (writer thread, write lock held): True when the session
        has had no session.updated for an interval, so this one goes out at once."""
        sent = self._session_update_sent.get(key)
        return sent is None or time.monotonic() - sent >= self.session_update_interval

    def _note_session_updates(self, outcome: _AppendBatch) -> None:
        now = time.monotonic()
        for key in outcome.announced:
            self._session_update_sent[key] = now
            self._session_update_owed.discard(key)
        owed = [key for key in outcome.touched if key not in outcome.announced]
        self._session_update_owed.update(owed)
        if self._session_update_owed and (
            self._session_update_flusher is None or self._session_update_flusher.done()
        ):
            self._session_update_flusher = asyncio.create_task(
                self._flush_session_updates(), name="sessionscope-session-updates"
            )

    async def _flush_session_updates(self) -> None:
        """Send each owed session.updated once its interval is over, with the newest state."""
        interval = self.session_update_interval
        while self._session_update_owed:
            now = time.monotonic()
            due = [
                key
                for key in self._session_update_owed
                if now - self._session_update_sent.get(key, 0.0) >= interval
            ]
            if not due:
                earliest = min(
                    self._session_update_sent.get(key, 0.0) for key in self._session_update_owed
                )
                await asyncio.sleep(max(0.0, earliest + interval - now))
                continue
            async with self._write_lock:
                stamp = now_utc()
                changes = await self._run_write(
                    partial(_record_sessions_updated, keys=due, now=stamp, notify=True)
                )
                sent = time.monotonic()
                for key in due:
                    self._session_update_owed.discard(key)
                    self._session_update_sent[key] = sent
                if self.fanout is not None:
                    self.fanout.poke(
                        pg_fanout.newest_positions((channel, c.id) for channel, c in changes)
                    )
                else:
                    for channel, change in changes:
                        self._publish(channel, change)
            # Forget sessions that have been quiet for a while so the map stays small.
            cutoff = time.monotonic() - 10 * interval
            # list() copies in one step: the writer thread may add keys meanwhile.
            for key in [k for k, v in list(self._session_update_sent.items()) if v < cutoff]:
                if key not in self._session_update_owed:
                    del self._session_update_sent[key]

    def _take_appends(self) -> list[_AppendRequest]:
        taken: list[_AppendRequest] = []
        while self._appends and len(taken) < APPEND_BATCH_REQUESTS:
            taken.append(self._appends.popleft())
        return taken

    async def _drain_appends(self) -> None:
        while self._appends:
            async with self._write_lock:
                if self._writer is not None and self._sync_engine is not None:
                    try:
                        job = self._writer.submit(self._commit_appends, asyncio.get_running_loop())
                    except RuntimeError as error:  # the writer is shut down: the store closed
                        while batch := self._take_appends():
                            self._finish_appends(batch, error)
                        return
                    lease = asyncio.wrap_future(job)
                    try:
                        await asyncio.shield(lease)
                    except asyncio.CancelledError:
                        # The writer thread ends its current group regardless: hold the lock
                        # until it has.
                        await asyncio.gather(lease, return_exceptions=True)
                        raise
                    continue
                batch = self._take_appends()
                try:
                    outcome = await self._run_write(
                        partial(
                            _append_batch,
                            requests=batch,
                            now=now_utc(),
                            announce_now=self._may_announce_session_update,
                        )
                    )
                except BaseException as error:
                    self._finish_appends(batch, error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                self._finish_appends(batch, outcome)

    def _commit_appends(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the writer thread, while the drainer holds the write lock: commit queued appends
        group after group for up to a lease, each group's frames and replies handed to the event
        loop in one call. Appends that arrive during a commit make the next group, without the
        loop scheduling anything in between."""
        assert self._sync_engine is not None
        lease_ends = time.monotonic() + APPEND_LEASE_SECONDS
        while batch := self._take_appends():
            outcome: _AppendBatch | BaseException
            try:
                with self._sync_engine.begin() as conn:
                    outcome = _append_batch(
                        conn, batch, now_utc(), announce_now=self._may_announce_session_update
                    )
                # Recorded here, not when the loop gets the group, so that the next group
                # (already being committed by then) does not announce the same session again.
                sent = time.monotonic()
                for key in outcome.announced:
                    self._session_update_sent[key] = sent
            except Exception as error:
                outcome = error
            try:
                loop.call_soon_threadsafe(self._finish_appends, batch, outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            if time.monotonic() >= lease_ends:
                return

    def _finish_appends(
        self, batch: list[_AppendRequest], outcome: _AppendBatch | BaseException
    ) -> None:
        """On the event loop, in commit order: publish a group's frames, then reply."""
        if isinstance(outcome, BaseException):
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(outcome)
            return
        try:
            if outcome.recount:
                self._counts.clear()
            self._note_session_updates(outcome)
            if self.fanout is not None:
                self.fanout.poke(_batch_positions(outcome))
            else:
                for channel, frames in outcome.frames:
                    self.broker.publish_many(channel, frames)
                for channel, change in outcome.changes:
                    self._publish(channel, change)
        finally:
            # Committed is committed: the callers get their replies even if publishing failed
            # (this runs as a bare loop callback, so nobody else would answer them).
            for request, result in zip(batch, outcome.results, strict=True):
                if request.future.done():
                    continue
                if isinstance(result, ApiError):
                    request.future.set_exception(result)
                else:
                    request.future.set_result(result)

    async def send_message(self, org: str, session_id: str, content: str) -> Event:
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            _refuse_closed(session)
            if SessionStatus(session["status"]).is_terminal:
                raise ApiError(409, f"the session is {session['status']}")
            return await self._append_event(
                tx, session, EventType.MESSAGE_USER.value, {"content": content}
            )

    async def _require_session(self, conn: AsyncConnection, org: str, session_id: str) -> None:
        found = (
            await conn.execute(
                select(db.sessions.c.id).where(
                    db.sessions.c.id == session_id, db.sessions.c.org == org
                )
            )
        ).first()
        if found is None:
            raise not_found("session")

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

    async def _audit(
        self,
        tx: Tx,
        session: dict[str, Any],
        kind: EventType,
        actor: dict[str, str],
        what: str,
        **details: Any,
    ) -> None:
        """Record in the session's own timeline who did what: the key's name and role (never
        the key), with a sentence for the timeline."""
        payload = {
            **details,
            **actor,
            "summary": f"{what} (key {actor['key']}, role {actor['role']})",
        }
        await self._append_event(tx, session, kind.value, payload)

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

    # -- artifacts ------------------------------------------------------------------------------

    async def create_artifact(self, org: str, session_id: str, spec: ArtifactCreate) -> Artifact:
        try:
            content = base64.b64decode(spec.data, validate=True)
        except (binascii.Error, ValueError):
            raise field_error("data", "data must be base64") from None
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            _refuse_closed(session)
            artifact = Artifact(
                id=new_id("art"),
                session_id=session_id,
                name=spec.name,
                mime_type=spec.mime_type,
                size_bytes=len(content),
                checksum_sha256=hashlib.sha256(content).hexdigest(),
                description=spec.description,
                metadata=spec.metadata,
                created_at=tx.now,
            )
            await tx.conn.execute(
                db.artifacts.insert().values(**artifact.model_dump(), org=org, content=b"")
            )
            step = db.ARTIFACT_CHUNK_BYTES
            chunks = [
                {
                    "artifact_id": artifact.id,
                    "chunk_index": index,
                    "data": content[start : start + step],
                }
                for index, start in enumerate(range(0, len(content), step))
            ]
            if chunks:
                await tx.conn.execute(db.artifact_chunks.insert(), chunks)
            await self._append_event(
                tx,
                session,
                EventType.ARTIFACT_CREATED.value,
                {
                    "artifact_id": artifact.id,
                    "name": artifact.name,
                    "mime_type": artifact.mime_type,
                    "size_bytes": artifact.size_bytes,
                },
            )
        return artifact

    async def list_artifacts(
        self, org: str, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        a = db.artifacts.c
        columns = [column for column in db.artifacts.c if column.name != "content"]
        query = select(*columns).where(a.session_id == session_id, a.org == org)
        if cursor:
            micros, last_id = decode_cursor(cursor)
            query = query.where(tuple_(a.created_at, a.id) > _keyset(micros, last_id))
        query = query.order_by(a.created_at, a.id).limit(limit + 1)
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            rows = (await conn.execute(query)).all()
            total = (
                await conn.execute(
                    select(func.count()).select_from(db.artifacts).where(a.session_id == session_id)
                )
            ).scalar_one()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return Page[Artifact](
            data=[artifact_from_row(row) for row in rows], next_cursor=next_cursor, total=total
        )

    async def get_artifact_metadata(self, org: str, session_id: str, artifact_id: str) -> Artifact:
        a = db.artifacts.c
        columns = [column for column in db.artifacts.c if column.name != "content"]
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*columns).where(
                        a.id == artifact_id, a.session_id == session_id, a.org == org
                    )
                )
            ).first()
        if row is None:
            raise not_found("artifact")
        return artifact_from_row(row)

    async def read_artifact_range(
        self, artifact: Artifact, first: int, last: int
    ) -> AsyncIterator[bytes]:
        """The bytes ``first..last`` (inclusive) of an artifact, a few chunks per query, so
        memory stays at a few chunks whatever the artifact's size or the range's length."""
        step = db.ARTIFACT_CHUNK_BYTES
        k = db.artifact_chunks.c
        first_index = index = first // step
        last_index = last // step
        while index <= last_index:
            upto = min(last_index, index + ARTIFACT_CHUNKS_PER_READ - 1)
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(k.chunk_index, k.data)
                        .where(
                            k.artifact_id == artifact.id,
                            k.chunk_index >= index,
                            k.chunk_index <= upto,
                        )
                        .order_by(k.chunk_index)
                    )
                ).all()
            if not rows and index == first_index:
                # No chunk where the range starts: stored before chunking, so the bytes are
                # still in artifacts.content (wherever the range starts in them).
                async for part in self._read_legacy_artifact_range(artifact.id, first, last):
                    yield part
                return
            for chunk_index, data in rows:
                start = chunk_index * step
                yield bytes(data[max(0, first - start) : last + 1 - start])
            index = upto + 1

    async def _read_legacy_artifact_range(
        self, artifact_id: str, first: int, last: int
    ) -> AsyncIterator[bytes]:
        """``read_artifact_range`` for an artifact stored before chunking, whose bytes are
        inline in ``artifacts.content``: the range is sliced in SQL, as many chunks' worth per
        query as a chunked read takes, so the column is never loaded whole. ``substr`` counts
        bytes in a BLOB (SQLite) or a BYTEA (PostgreSQL), from 1."""
        content = db.artifacts.c.content
        most = db.ARTIFACT_CHUNK_BYTES * ARTIFACT_CHUNKS_PER_READ
        offset = first
        while offset <= last:
            length = min(most, last + 1 - offset)
            piece = func.substr(content, offset + 1, length, type_=LargeBinary)
            async with self.engine.connect() as conn:
                data = (
                    await conn.execute(select(piece).where(db.artifacts.c.id == artifact_id))
                ).scalar()
            part = bytes(data or b"")
            if part:
                yield part
            if len(part) < length:
                return  # the stored bytes end before the range does
            offset += length

    async def get_artifact(
        self, org: str, session_id: str, artifact_id: str
    ) -> tuple[Artifact, bytes]:
        artifact = await self.get_artifact_metadata(org, session_id, artifact_id)
        if artifact.size_bytes == 0:
            return artifact, b""
        parts = [
            part async for part in self.read_artifact_range(artifact, 0, artifact.size_bytes - 1)
        ]
        return artifact, b"".join(parts)

    async def get_artifact_with_content(
        self, org: str, session_id: str, artifact_id: str
    ) -> ArtifactWithContent:
        artifact, content = await self.get_artifact(org, session_id, artifact_id)
        return ArtifactWithContent(**artifact.model_dump(), data=base64.b64encode(content).decode())

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


class _DriverSql:
    """A Core statement compiled once per dialect and run with ``exec_driver_sql`` on values
    already in storage form: SQLAlchemy's per-call statement building, cache-key generation and
    type processing cost ten times the database work on the append hot path. The SQL is still
    the dialect's own compilation of a portable Core statement."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, str], tuple[str, list[str] | None]] = {}

    def _for(self, conn: Connection) -> tuple[str, list[str] | None]:
        key = (conn.dialect.name, conn.dialect.driver)
        found = self._compiled.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            order = list(compiled.positiontup or []) if compiled.positional else None
            found = self._compiled[key] = (compiled.string, order)
        return found

    def run(self, conn: Connection, params: dict[str, Any]) -> Any:
        sql, order = self._for(conn)
        if order is None:
            return conn.exec_driver_sql(sql, params)
        return conn.exec_driver_sql(sql, tuple(params[n] for n in order))

    def run_many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        sql, order = self._for(conn)
        if order is None:
            conn.exec_driver_sql(sql, rows)
        else:
            conn.exec_driver_sql(sql, [tuple(map(row.__getitem__, order)) for row in rows])


#: The session columns an appended event can change (what ``_apply_event_to_session`` reads).
_HOT_COLUMNS = (
    "status",
    "last_sequence",
    "event_count",
    "message_count",
    "preview",
    "output_preview",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "started_at",
    "finished_at",
)
_TIME_COLUMNS = ("started_at", "finished_at", "last_active_at", "updated_at")
#: A change of one of these may move the session in or out of a sessions-list filter.
_FILTERED_COLUMNS = ("status", "preview")
# FOR UPDATE (on databases that have it): the sequence read here is the one this transaction
# continues; another replica's append to the session waits for this commit.
_SELECT_HOT = _DriverSql(
    select(*(db.sessions.c[name] for name in _HOT_COLUMNS))
    .where(db.sessions.c.id == bindparam("p_id"), db.sessions.c.org == bindparam("p_org"))
    .with_for_update()
)
_LOCK_ORG_STREAM = _DriverSql(
    select(
        func.pg_advisory_xact_lock(
            func.hashtextextended(bindparam("p_key", type_=String), literal_column("0"))
        )
    )
)
_LOCK_SESSION = _DriverSql(
    select(db.sessions.c.id)
    .where(db.sessions.c.id == bindparam("p_id"), db.sessions.c.org == bindparam("p_org"))
    .with_for_update()
)
_UPDATE_HOT = _DriverSql(
    update(db.sessions)
    .where(db.sessions.c.id == bindparam("p_id"))
    .values(
        {name: bindparam(f"v_{name}") for name in (*_HOT_COLUMNS, "last_active_at", "updated_at")}
    )
)
_INSERT_EVENT = _DriverSql(
    db.events.insert().values(
        {column.name: bindparam(f"v_{column.name}") for column in db.events.c}
    )
)


#: ``Event(...).model_dump_json()`` for an appended event (not hidden), from its encoded parts:
#: id, session id, sequence, type, created_at, payload. Tests hold the two byte-identical.
_EVENT_JSON = (
    b'{"id":"%s","session_id":%s,"sequence":%d,"type":%s,"created_at":%s,"payload":%s,'
    b'"hidden":false,"hide_reason":null}'
)


def _append_batch(
    conn: Connection,
    requests: list[_AppendRequest],
    now: datetime,
    announce_now: Callable[[tuple[str, str]], bool] = lambda key: True,
) -> _AppendBatch:
    """One transaction for a group of append requests: read each session once, apply the
    events in memory (the same rules as every other write), then one multi-row INSERT and one
    UPDATE per session. A request that fails (unknown or closed session) adds nothing."""
    outcome = _AppendBatch()
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    originals: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    if conn.dialect.name == "postgresql":
        # Lock every session of the group in one fixed order before any is read: replicas
        # appending to the same sessions then queue on the rows instead of deadlocking, and
        # each reads the last sequence the previous commit left (``_SELECT_HOT`` locks too).
        keys = sorted({(request.session_id, request.org) for request in requests})
        for session_id, org in keys:
            _LOCK_SESSION.run(conn, {"p_id": session_id, "p_org": org})
    now_micros = db.to_micros(now)
    created_json = pydantic_core.to_json(now)
    for request in requests:
        key = (request.org, request.session_id)
        session = sessions.get(key)
        if session is None:
            found = _SELECT_HOT.run(conn, {"p_id": request.session_id, "p_org": request.org})
            values = found.first()
            if values is None:
                outcome.results.append(not_found("session"))
                continue
            session = dict(zip(_HOT_COLUMNS, values, strict=True))
            for name in ("started_at", "finished_at"):
                if session[name] is not None:
                    session[name] = db.from_micros(session[name])
            session["id"], session["org"] = request.session_id, request.org
            sessions[key] = session
            originals[key] = dict(session)
        try:
            _refuse_closed(session)
        except ApiError as error:
            outcome.results.append(error)
            continue
        channel = session_channel(request.org, request.session_id)
        appended = Appended()
        session_json = pydantic_core.to_json(request.session_id)
        event_ids = new_event_ids(len(request.items))
        for (event_type, payload), event_id in zip(request.items, event_ids, strict=True):
            sequence = session["last_sequence"] + 1
            session["last_sequence"] = sequence
            session["event_count"] += 1
            _apply_event_to_session(session, event_type, payload, now)
            # pydantic-core's encoder: several times json.dumps' speed, same JSON value.
            payload_json = pydantic_core.to_json(payload)
            rows.append(
                {
                    "v_id": event_id,
                    "v_session_id": request.session_id,
                    "v_org": request.org,
                    "v_sequence": sequence,
                    "v_type": event_type,
                    "v_created_at": now_micros,
                    "v_payload": payload_json.decode(),
                    "v_hidden": False,
                    "v_hide_reason": None,
                }
            )
            # The event's JSON, encoded once for every live stream and the caller's reply, from
            # parts already encoded: building and validating an ``Event`` per row, then
            # encoding it (the payload again), was a third of the writer's time.
            body = _EVENT_JSON % (
                event_id.encode(),
                session_json,
                sequence,
                pydantic_core.to_json(event_type),
                created_json,
                payload_json,
            )
            appended.frames.append(sse_frame(sequence, event_type, False, body))
        outcome.results.append(appended)
        if outcome.frames and outcome.frames[-1][0] == channel:
            outcome.frames[-1][1].extend(appended.frames)
        else:
            # A copy: the group may grow with the next request's frames, the reply must not.
            outcome.frames.append((channel, list(appended.frames)))
    if rows:
        _INSERT_EVENT.run_many(conn, rows)
    for key, session in sessions.items():
        original = originals[key]
        if session["last_sequence"] == original["last_sequence"]:
            continue
        session["last_active_at"] = session["updated_at"] = now
        params = {"p_id": session["id"]}
        for name in (*_HOT_COLUMNS, "last_active_at", "updated_at"):
            value = session[name]
            if name in _TIME_COLUMNS and value is not None:
                value = db.to_micros(value)
            params[f"v_{name}"] = value
        _UPDATE_HOT.run(conn, params)
        if any(session[name] != original[name] for name in _FILTERED_COLUMNS):
            outcome.recount = True
        outcome.touched.append(key)
        if announce_now(key):
            outcome.announced.append(key)
    outcome.changes.extend(_record_sessions_updated(conn, outcome.announced, now))
    if conn.dialect.name == "postgresql":
        pg_fanout.notify(conn, _batch_positions(outcome))
    return outcome


def _org_stream_head(conn: Connection, org: str) -> int:
    """The organisation stream's newest position, in one statement: the newest kept change, or
    once retention has pruned every change of an idle organisation (the newest kept id is then
    0 while the floor is above it) the floor: a resume from below it would get a reset."""
    c, f = db.org_changes.c, db.org_stream_floor.c
    newest = select(func.max(c.stream_id)).where(c.org == org).scalar_subquery()
    floor = select(f.change_id).where(f.org == org).scalar_subquery()
    return int(conn.execute(select(func.coalesce(newest, floor, 0))).scalar_one())


def _record_org_change(
    conn: Connection,
    org: str,
    kind: str,
    session_id: str,
    now: datetime,
    *,
    session: Any = None,
    action: PendingAction | None = None,
) -> OrgChange:
    """Store one change of the organisation stream, carrying the session (a row or row dict) as
    it now is and/or the action, and return it as the stream sends it."""
    if conn.dialect.name == "postgresql":
        # The organisation stream resumes by id, so within an organisation ids must commit in
        # id order. Writers on several replicas take their ids from one sequence concurrently;
        # this lock (held to commit) makes the organisation's writers take and commit theirs
        # one transaction at a time. Every writer takes it after its session locks.
        _LOCK_ORG_STREAM.run(conn, {"p_key": ORG_STREAM_LOCK_PREFIX + org})
    body: dict[str, Any] = {}
    if session is not None:
        body["session"] = session_from_row(session).model_dump(mode="json")
    if action is not None:
        body["action"] = action.model_dump(mode="json")
    # Writes are serialised, so the head read here is still the head at the insert; the unique
    # index on (org, stream_id) turns a concurrent writer's race into an error, never a
    # duplicate id.
    stream_id = _org_stream_head(conn, org) + 1
    conn.execute(
        db.org_changes.insert().values(
            org=org,
            kind=kind,
            session_id=session_id,
            created_at=now,
            body=body,
            stream_id=stream_id,
        )
    )
    return OrgChange.model_validate(
        {"id": stream_id, "kind": kind, "session_id": session_id, "created_at": now, **body}
    )


def _record_sessions_updated(
    conn: Connection, keys: list[tuple[str, str]], now: datetime, notify: bool = False
) -> list[tuple[Hashable, OrgChange]]:
    """(org channel, change) of a ``session.updated`` org change carrying each session's current
    row (gone ones skipped)."""
    recorded: list[tuple[Hashable, OrgChange]] = []
    s = db.sessions.c
    # In organisation order: each organisation's stream lock is then taken in one fixed order.
    for org, session_id in sorted(keys):
        row = conn.execute(select(db.sessions).where(s.id == session_id, s.org == org)).first()
        if row is not None:
            change = _record_org_change(conn, org, "session.updated", session_id, now, session=row)
            recorded.append((org_channel(org), change))
    if notify:
        pg_fanout.notify(
            conn, pg_fanout.newest_positions((channel, c.id) for channel, c in recorded)
        )
    return recorded


def _batch_positions(outcome: _AppendBatch) -> dict[Hashable, int]:
    """Each channel's newest position written by a group commit."""
    return pg_fanout.newest_positions(
        [
            *((channel, frames[-1].cursor) for channel, frames in outcome.frames if frames),
            *((channel, change.id) for channel, change in outcome.changes),
        ]
    )


def counted(conn: Connection) -> bool:
    """Whether ``db.session_counts`` is kept on this database (see ``db``)."""
    return conn.dialect.name == "sqlite"


def _refuse_closed(session: dict[str, Any]) -> None:
    if session["status"] == _CLOSED:
        raise ApiError(409, "the session is closed")


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


def _masked_argument(argument: ToolCallArgument) -> dict[str, Any]:
    data = argument.model_dump(mode="json")
    if argument.secret:
        data["value"] = SECRET_MASK
    return data


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return None


# Plain strings for the per-event hot path: an enum member's ``.value`` is a descriptor call.
_MESSAGE_USER = EventType.MESSAGE_USER.value
_MESSAGE_AGENT = EventType.MESSAGE_AGENT.value
_SESSION_STATUS = EventType.SESSION_STATUS.value
_SESSION_COMPLETED = EventType.SESSION_COMPLETED.value
_SESSION_FAILED = EventType.SESSION_FAILED.value
_LOG = EventType.LOG.value
_CREATED = SessionStatus.CREATED.value
_IDLE = SessionStatus.IDLE.value
_ACTIVE = SessionStatus.ACTIVE.value
_COMPLETED = SessionStatus.COMPLETED.value
_FAILED = SessionStatus.FAILED.value
_CLOSED = SessionStatus.CLOSED.value


def _apply_event_to_session(
    session: dict[str, Any], event_type: str, payload: dict[str, Any], now: datetime
) -> None:
    """Keep the session's status, counters and previews in step with its events."""
    status = session["status"]
    if event_type in SESSION_COUNTER_TYPES:
        session["message_count"] += 1
        content = _text(payload.get("content"))
        if content is not None:
            if event_type == _MESSAGE_USER and session["preview"] is None:
                session["preview"] = content[:PREVIEW_CHARS]
            if event_type == _MESSAGE_AGENT:
                session["output_preview"] = content[:PREVIEW_CHARS]
    usage = payload.get("usage")
    if isinstance(usage, dict):
        for key in ("input_tokens", "output_tokens"):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                session[key] += value
        cost = usage.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
            session["cost_usd"] += float(cost)
    new_status: str | None = None
    if event_type == _SESSION_STATUS:
        candidate = payload.get("status")
        if candidate in SessionStatus._value2member_map_:
            new_status = str(candidate)
    elif event_type == _SESSION_COMPLETED:
        new_status = _COMPLETED
    elif event_type == _SESSION_FAILED:
        new_status = _FAILED
    elif status in (_CREATED, _IDLE) and not (
        event_type.startswith(("session.", "event.")) or event_type == _LOG
    ):
        new_status = _ACTIVE
    if new_status is not None and new_status != status:
        session["status"] = new_status
        if new_status == _ACTIVE and session["started_at"] is None:
            session["started_at"] = now
        if SessionStatus(new_status).is_terminal:
            session["finished_at"] = session["finished_at"] or now
        elif new_status == _ACTIVE:
            session["finished_at"] = None


# ---------------------------------------------------------------------------------------------
# Timeline and replay, derived from events.
# ---------------------------------------------------------------------------------------------


def _call_key(payload: dict[str, Any]) -> str | None:
    for key in ("call_id", "tool_call_id", "tool_use_id", "id"):
        value = payload.get(key)
        if isinstance(value, str | int):
            return str(value)
    return None


def _tool_name(payload: dict[str, Any]) -> str:
    value = payload.get("tool") or payload.get("name") or "tool"
    return str(value)


def _pair_tools(events: list[Event]) -> dict[str, Event]:
    """tool.started event id -> its tool.completed/tool.failed event (by call id, else by tool)."""
    open_by_key: dict[str, Event] = {}
    open_by_tool: dict[str, list[Event]] = {}
    pairs: dict[str, Event] = {}
    ends = {EventType.TOOL_COMPLETED.value, EventType.TOOL_FAILED.value}
    for event in events:
        if event.type == EventType.TOOL_STARTED.value:
            key = _call_key(event.payload)
            if key is not None:
                open_by_key[key] = event
            else:
                open_by_tool.setdefault(_tool_name(event.payload), []).append(event)
        elif event.type in ends:
            key = _call_key(event.payload)
            started = open_by_key.pop(key, None) if key is not None else None
            if started is None:
                waiting = open_by_tool.get(_tool_name(event.payload))
                started = waiting.pop(0) if waiting else None
            if started is not None:
                pairs[started.id] = event
    return pairs


def _duration_ms(start: Event, end: Event) -> int:
    return max(0, int((end.created_at - start.created_at).total_seconds() * 1000))


def _summary(event: Event) -> str:
    payload = event.payload
    for key in ("content", "message", "text", "summary", "error"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value.splitlines()[0][:PREVIEW_CHARS] if value.strip() else value[:PREVIEW_CHARS]
    if "tool" in payload:
        return _tool_name(payload)
    if "name" in payload:
        return str(payload["name"])
    if "status" in payload:
        return str(payload["status"])
    return ""


def build_timeline(events: list[Event]) -> list[TimelineEntry]:
    # Hide/unhide/delete announcements are for live viewers, not part of the session's story.
    events = [event for event in events if event.type not in VISIBILITY_TYPES]
    pairs = _pair_tools(events)
    ended = {end.id for end in pairs.values()}
    entries: list[TimelineEntry] = []
    for event in events:
        if event.id in ended:
            continue
        end = pairs.get(event.id)
        if end is not None:
            outcome = "failed" if end.type == EventType.TOOL_FAILED.value else "completed"
            entries.append(
                TimelineEntry(
                    sequence=event.sequence,
                    timestamp=event.created_at,
                    kind="tool",
                    summary=f"{_tool_name(event.payload)} {outcome}",
                    event_id=event.id,
                    duration_ms=_duration_ms(event, end),
                )
            )
            continue
        entries.append(
            TimelineEntry(
                sequence=event.sequence,
                timestamp=event.created_at,
                kind=event.type,
                summary=_summary(event),
                event_id=event.id,
            )
        )
    return entries


def build_replay(events: list[Event]) -> list[ReplayStep]:
    pairs = _pair_tools(events)
    ended = {end.id for end in pairs.values()}
    steps: list[ReplayStep] = []
    for event in events:
        if event.id in ended:
            continue
        payload = event.payload
        end = pairs.get(event.id)
        if end is not None:
            steps.append(
                ReplayStep(
                    index=len(steps),
                    timestamp=event.created_at,
                    action=_tool_name(payload),
                    input=payload.get("input", payload.get("arguments")),
                    output=end.payload.get("output", end.payload.get("error")),
                    duration_ms=_duration_ms(event, end),
                )
            )
        elif event.type in SESSION_COUNTER_TYPES:
            steps.append(
                ReplayStep(
                    index=len(steps),
                    timestamp=event.created_at,
                    action=event.type,
                    input=payload.get("content") if event.type == "message.user" else None,
                    output=payload.get("content") if event.type == "message.agent" else None,
                )
            )
        elif event.type == EventType.TOOL_STARTED.value:
            steps.append(
                ReplayStep(
                    index=len(steps),
                    timestamp=event.created_at,
                    action=_tool_name(payload),
                    input=payload.get("input", payload.get("arguments")),
                )
            )
    return steps
