"""What every part of the store shares: the write transaction (``Tx``), the reader and writer
threads, live publishing, session bookkeeping and the organisation change stream."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    String,
    bindparam,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessionscope.models import (
    Event,
    EventType,
    OrgChange,
    PendingAction,
    SessionStatus,
)
from sessionscope.server import db, pg_fanout
from sessionscope.server.broker import Broker
from sessionscope.server.errors import ApiError, not_found
from sessionscope.server.store.codecs import (
    PREVIEW_CHARS,
    SESSION_COUNTER_TYPES,
    new_event_id,
    now_utc,
    org_channel,
    session_channel,
    session_from_row,
)
from sessionscope.server.streams import LiveFrame, live_frame

#: Threads running reads (listings) whole, each on its own connection: SQLite in WAL mode
#: reads concurrently, and one long read (a COUNT, a text window) does not hold up the rest.
READER_THREADS = 2
T = TypeVar("T")
#: Names the PostgreSQL advisory lock serialising an organisation's stream writers.
ORG_STREAM_LOCK_PREFIX = "sessionscope.org-stream:"


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


class StoreCore:
    """The transaction, threads and live publishing every part of ``Store`` builds on."""

    if TYPE_CHECKING:
        # Provided by ActionStore: a commit finishes the actions it confirmed, and ending a
        # session cancels its pending ones.
        async def _finish_action_later(self, action_id: str) -> None: ...

        async def _cancel_pending_actions(
            self, tx: Tx, session: dict[str, Any], reason: str
        ) -> None: ...

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


_LOCK_ORG_STREAM = _DriverSql(
    select(
        func.pg_advisory_xact_lock(
            func.hashtextextended(bindparam("p_key", type_=String), literal_column("0"))
        )
    )
)


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


def counted(conn: Connection) -> bool:
    """Whether ``db.session_counts`` is kept on this database (see ``db``)."""
    return conn.dialect.name == "sqlite"


def _refuse_closed(session: dict[str, Any]) -> None:
    if session["status"] == _CLOSED:
        raise ApiError(409, "the session is closed")


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
