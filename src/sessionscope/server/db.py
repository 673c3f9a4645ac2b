"""Schema and engine. SQLAlchemy Core with portable types only, so a PostgreSQL URL works too.

Timestamps are stored as integer microseconds since the epoch (UTC): exact, cheap to index and to
compare in keyset pagination, and identical on every database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

#: Bump together with an entry in ``MIGRATIONS`` whenever the schema changes.
SCHEMA_VERSION = 7
#: Any constant: the key of the PostgreSQL advisory lock that lets one replica at a time create
#: or migrate the schema (several starting together on an empty database would each create it).
SCHEMA_LOCK_KEY = 0x5E55_10_5C


class UTCMicros(TypeDecorator[datetime]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    # A third of fromtimestamp(..., UTC).replace(...)'s cost (which asks the tzinfo for its
    # offset), same value: every listed session has six of these, every event one.
    return _EPOCH + timedelta(microseconds=value)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCMicros, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org", String(128), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("agent_id", String(255)),
    Column("task_id", String(255)),
    Column("model_id", String(255)),
    Column("status", String(32), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("context_variables", JSON, nullable=False),
    Column("created_at", UTCMicros, nullable=False),
    Column("updated_at", UTCMicros, nullable=False),
    Column("started_at", UTCMicros),
    Column("last_active_at", UTCMicros),
    Column("finished_at", UTCMicros),
    Column("closed_at", UTCMicros),
    Column("message_count", Integer, nullable=False, default=0),
    Column("event_count", Integer, nullable=False, default=0),
    Column("pending_action_count", Integer, nullable=False, default=0),
    Column("last_sequence", BigInteger, nullable=False, default=0),
    Column("preview", Text),
    Column("output_preview", Text),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("billable", Boolean),
    Column("duration_seconds", Integer),
    Index("ix_sessions_org_created", "org", "created_at", "id"),
    Index("ix_sessions_org_status_created", "org", "status", "created_at", "id"),
    Index("ix_sessions_org_agent_created", "org", "agent_id", "created_at", "id"),
    Index("ix_sessions_org_task_created", "org", "task_id", "created_at", "id"),
)

# Tags live in their own table so that the tag filter is an indexed lookup on every database.
# The session's created_at is copied here so that a tag's sessions are one index range in
# listing order: a page walks ``limit`` index entries, however rare or common the tag.
session_tags = Table(
    "session_tags",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id"), primary_key=True),
    Column("tag", String(255), primary_key=True),
    Column("org", String(128), nullable=False),
    # Nullable only because ALTER TABLE ADD COLUMN cannot add a NOT NULL column without a
    # default; every writer sets it and migration 4 fills older rows.
    Column("created_at", UTCMicros),
    Index("ix_session_tags_org_tag_created", "org", "tag", "created_at", "session_id"),
)

# Sessions per (organisation, status), kept by triggers on every insert, status change and
# delete, whoever writes (the API, the bulk seeder, another process): the listing's totals
# (unfiltered or by status, the common first pages) are a sum over a handful of rows instead
# of a COUNT walking an index entry per session (9 ms per 100k sessions, more under load).
# SQLite only (the triggers are SQLite's dialect); other databases COUNT. Not in ``metadata``
# for that reason: ``install_session_counts`` creates it.
counts_metadata = MetaData()
session_counts = Table(
    "session_counts",
    counts_metadata,
    Column("org", String(128), primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
_COUNT_UP = (
    "INSERT INTO session_counts (org, status, n) VALUES (NEW.org, NEW.status, 1)"
    " ON CONFLICT (org, status) DO UPDATE SET n = n + 1;"
)
_COUNT_DOWN = "UPDATE session_counts SET n = n - 1 WHERE org = OLD.org AND status = OLD.status;"
SESSION_COUNT_TRIGGERS = (
    f"CREATE TRIGGER tr_sessions_counted_insert AFTER INSERT ON sessions BEGIN {_COUNT_UP} END",
    f"CREATE TRIGGER tr_sessions_counted_delete AFTER DELETE ON sessions BEGIN {_COUNT_DOWN} END",
    "CREATE TRIGGER tr_sessions_counted_update AFTER UPDATE OF org, status ON sessions"
    " WHEN OLD.org IS NOT NEW.org OR OLD.status IS NOT NEW.status"
    f" BEGIN {_COUNT_DOWN} {_COUNT_UP} END",
)


def install_session_counts(conn: Connection) -> None:
    """Create ``session_counts`` filled from the sessions, and its triggers (SQLite only)."""
    if conn.dialect.name != "sqlite":
        return
    session_counts.create(conn, checkfirst=True)
    conn.exec_driver_sql("DELETE FROM session_counts")
    conn.exec_driver_sql(
        "INSERT INTO session_counts (org, status, n)"
        " SELECT org, status, count(*) FROM sessions GROUP BY org, status"
    )
    for trigger in SESSION_COUNT_TRIGGERS:
        # Rebuilt, not skipped, when present: a file downgraded by hand may still carry them.
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger.split()[2]}")
        conn.exec_driver_sql(trigger)


events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("org", String(128), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("type", String(128), nullable=False),
    Column("created_at", UTCMicros, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("hidden", Boolean, nullable=False, default=False),
    Column("hide_reason", String(64)),
    Index("ux_events_session_sequence", "session_id", "sequence", unique=True),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("org", String(128), nullable=False),
    Column("name", Text, nullable=False),
    Column("mime_type", String(255), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("checksum_sha256", String(64), nullable=False),
    Column("description", Text),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UTCMicros, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Index("ix_artifacts_session_created", "session_id", "created_at", "id"),
)

#: Artifact bytes in fixed-size chunks, so that a range reads only the chunks it covers
#: (``artifacts.content`` is empty for chunked artifacts; older ones keep their bytes there).
ARTIFACT_CHUNK_BYTES = 256 * 1024
artifact_chunks = Table(
    "artifact_chunks",
    metadata,
    Column("artifact_id", String(64), primary_key=True),
    Column("chunk_index", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

actions = Table(
    "actions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("org", String(128), nullable=False),
    Column("tool", String(255), nullable=False),
    Column("preview", JSON, nullable=False),
    Column("status", String(32), nullable=False),
    Column("destructive", Boolean, nullable=False, default=False),
    Column("created_at", UTCMicros, nullable=False),
    Column("expires_at", UTCMicros),
    Column("decided_at", UTCMicros),
    Column("confirmed", Boolean),
    Column("callback_id", String(64)),
    Column("outcome", JSON),
    #: The first decision's reply (status code and body), replayed to every later identical call.
    Column("decision_reply", JSON),
    Column("idempotency_key", String(255)),
    Index("ix_actions_org_status_created", "org", "status", "created_at", "id"),
    Index("ix_actions_session_created", "session_id", "created_at", "id"),
    Index("ix_actions_status_expires", "status", "expires_at"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("org", String(128), nullable=False),
    Column("tool", String(255), nullable=False),
    Column("arguments", JSON, nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", UTCMicros, nullable=False),
    Column("resolved_at", UTCMicros),
    Column("result", JSON),
    Column("error", Text),
    Column("idempotency_key", String(255)),
    Index("ix_tool_calls_session_status", "session_id", "status", "created_at"),
)

# The organisation-wide stream, persisted so that a reconnecting client can resume by id.
org_changes = Table(
    "org_changes",
    metadata,
    # 64-bit where the database has a choice (PostgreSQL's SERIAL is 32-bit: about two billion
    # changes, which a busy deployment reaches); SQLite's INTEGER key is 64-bit already and
    # must be spelled INTEGER to be its rowid.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("org", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("created_at", UTCMicros, nullable=False),
    Column("body", JSON, nullable=False),
    #: The change's id within its organisation's stream (``OrgChange.id``): one counter per
    #: organisation, so the ids a client sees say nothing of other organisations' activity (a
    #: shared counter's gaps did). Rows from before it was added carry their global ``id``.
    Column("stream_id", BigInteger, nullable=False),
    Index("ix_org_changes_org_id", "org", "id"),
    Index("ux_org_changes_org_stream_id", "org", "stream_id", unique=True),
    Index("ix_org_changes_created", "created_at"),
    sqlite_autoincrement=True,
)

# Per organisation, the newest org change id pruned by retention: resuming from before it has a
# gap the server must announce.
org_stream_floor = Table(
    "org_stream_floor",
    metadata,
    Column("org", String(128), primary_key=True),
    Column("change_id", BigInteger, nullable=False),
)


class SchemaTooNew(RuntimeError):
    pass


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (streams, listings) run while a write commits; the busy timeout covers
    # writers from other processes (e.g. bulk seeding) since in-process writes are serialised.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(db_url: str) -> AsyncEngine:
    engine = create_async_engine(db_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def make_sync_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on the same SQLite file, for work run whole in one thread: the
    event-append writer and the listing readers. aiosqlite hops to its thread for every cursor,
    execute, fetch and commit (about 16 hops per appended event, three per listing page: about
    2 ms for 0.4 ms of SQL); a whole transaction or read in one thread is one hop. Only for a
    SQLite file: other databases (and in-memory SQLite, which a second engine would not share)
    keep using the async engine for the same statements. Each caller gets its own engine, so
    its own pool."""
    url = engine.url
    if engine.dialect.name != "sqlite" or not url.database or url.database == ":memory:":
        return None
    # Pooled connections move between the reader threads, one thread at a time. (SQLAlchemy 2
    # already defaults to this for SQLite files; the readers depend on it, so it is explicit.)
    sync_engine = create_engine(
        url.set(drivername="sqlite+pysqlite"), connect_args={"check_same_thread": False}
    )
    event.listen(sync_engine, "connect", _sqlite_pragmas)
    return sync_engine


def _widen_org_change_ids(conn: Connection) -> None:
    """org_changes.id to 64 bits on PostgreSQL (see the table); nothing to do on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql("ALTER TABLE org_changes ALTER COLUMN id TYPE BIGINT")
    conn.exec_driver_sql("ALTER SEQUENCE org_changes_id_seq AS BIGINT")


def add_org_stream_ids(conn: Connection) -> None:
    """Schema 7: per-organisation ids for the organisation stream. Existing changes keep the id
    clients hold (their global one); each organisation's ids grow from its own newest. A
    database whose tables already have the column (made by a newer create_all) is left as is."""
    if "stream_id" in {column["name"] for column in inspect(conn).get_columns("org_changes")}:
        return
    conn.exec_driver_sql("ALTER TABLE org_changes ADD COLUMN stream_id BIGINT")
    conn.exec_driver_sql("UPDATE org_changes SET stream_id = id")
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX ux_org_changes_org_stream_id ON org_changes (org, stream_id)"
    )


#: version -> steps upgrading from version - 1, in order: portable SQL, a table to create
#: (SQLAlchemy then writes the dialect's own DDL, e.g. BLOB on SQLite and BYTEA on PostgreSQL),
#: or a function run on the connection. Version 1 is the initial ``create_all``; a new database
#: gets the latest schema directly (see ``prepare_schema``).
MIGRATIONS: dict[int, list[str | Table | Callable[[Connection], None]]] = {
    2: ["CREATE INDEX ix_org_changes_created ON org_changes (created_at)", org_stream_floor],
    3: [artifact_chunks],
    4: [
        "ALTER TABLE session_tags ADD COLUMN created_at BIGINT",
        "UPDATE session_tags SET created_at = (SELECT sessions.created_at FROM sessions"
        " WHERE sessions.id = session_tags.session_id)",
        "CREATE INDEX ix_session_tags_org_tag_created"
        " ON session_tags (org, tag, created_at, session_id)",
        "DROP INDEX ix_session_tags_org_tag",
    ],
    5: [install_session_counts],
    6: [_widen_org_change_ids],
    7: [add_org_stream_ids],
}


async def prepare_schema(engine: AsyncEngine) -> int:
    """Create the schema when missing and apply pending migrations; returns the version."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together: the first creates or migrates, the others wait here
            # and then find the work done. (PostgreSQL's DDL is transactional: all or nothing.)
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
        await conn.run_sync(schema_version.create, checkfirst=True)
        current = await _current_version(conn)
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database has schema version {current}; this server knows {SCHEMA_VERSION}"
            )
        if current == 0:
            # A new database gets the latest schema directly, not the migration history.
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(install_session_counts)
            await _record(conn, SCHEMA_VERSION)
            return SCHEMA_VERSION
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for step in MIGRATIONS[version]:
                if isinstance(step, Table):
                    await conn.run_sync(step.create, checkfirst=True)
                elif isinstance(step, str):
                    await conn.exec_driver_sql(step)
                else:
                    await conn.run_sync(step)
            await _record(conn, version)
    return SCHEMA_VERSION


async def _record(conn: AsyncConnection, version: int) -> None:
    await conn.execute(
        schema_version.insert().values(version=version, applied_at=datetime.now(UTC))
    )


async def _current_version(conn: AsyncConnection) -> int:
    result = await conn.execute(select(schema_version.c.version))
    versions = [row[0] for row in result]
    return max(versions, default=0)
