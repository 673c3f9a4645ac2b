"""The local record of AG2Trust threads: what the platform does not keep for a console.

AG2Trust has no list of sessions and no event log (``ag2trust-sessions.txt``): a thread exists
only through the pool endpoint's replies. So every thread started or messaged through the console,
every reply, every decision and every completion webhook is written here, in one SQLite file,
before anything is shown; the sessions list and the timeline are read from it.

- Each write is one ``BEGIN IMMEDIATE`` transaction: a reply and everything it implies (the
  message, its pending action, the result of an earlier confirmed action) are recorded together
  or not at all, and two processes (the console and ``sessionscope webhook``) never hand out the
  same sequence number.
- Sequences are local, per thread, and only grow: ``Event.sequence`` is the resume cursor.
- The file carries its format and schema version. A file that is not a record, is damaged, or was
  written by a newer sessionscope is refused with a clear message and never modified.

Stdlib ``sqlite3`` only (backends do not import SQLAlchemy); callers on an event loop run these
blocking calls through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionscope.backends.base import BackendError
from sessionscope.models import (
    ActionStatus,
    Event,
    EventType,
    PendingAction,
    Session,
    SessionStatus,
)

FORMAT = "sessionscope-ag2trust-record"
SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: marks the file as ours for tools like ``file(1)``.
APPLICATION_ID = 0x41473254  # "AG2T"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE threads (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id TEXT NOT NULL UNIQUE,
    endpoint TEXT,
    title TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    agent_id TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at TEXT,
    duration_seconds INTEGER,
    billable INTEGER,
    context_variables TEXT NOT NULL DEFAULT '{}',
    requested_variables TEXT NOT NULL DEFAULT '[]',
    preview TEXT,
    output_preview TEXT,
    message_count INTEGER NOT NULL DEFAULT 0,
    last_sequence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (
    thread_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- What the event records (a reply's response_id, a webhook delivery): recorded once.
    origin TEXT UNIQUE,
    PRIMARY KEY (thread_id, sequence)
);
CREATE TABLE actions (
    action_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    preview TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    decided_at TEXT,
    callback_id TEXT,
    outcome TEXT,
    -- The Idempotency-Key of the decision, chosen before it is first sent: a repeat reuses it.
    decision_key TEXT,
    decision_confirmed INTEGER
);
CREATE INDEX actions_by_thread ON actions (thread_id, status);
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    action_id TEXT,
    created_at TEXT NOT NULL
);
"""


class RecordError(BackendError):
    """The record cannot be used; the message says why and what to do, for an operator."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def parse_time(value: Any) -> datetime | None:
    """A platform timestamp (ISO 8601, ``Z`` or offset); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


@dataclass(frozen=True)
class ThreadQuery:
    status: str | None = None
    text: str | None = None
    agent_id: str | None = None
    tag: str | None = None
    oldest_first: bool = False


class Record:
    """One open record file. Thread-safe: calls are serialised on one connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = _open(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # One snapshot for the whole read, even across several statements.
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    # -- writes ---------------------------------------------------------------------------------
    def _append(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        event_type: str,
        payload: dict[str, Any],
        *,
        at: datetime | None = None,
        origin: str | None = None,
    ) -> int | None:
        """Append one event; None when ``origin`` was recorded before (nothing written)."""
        if origin is not None:
            seen = db.execute("SELECT 1 FROM events WHERE origin = ?", (origin,)).fetchone()
            if seen:
                return None
        row = db.execute(
            "SELECT last_sequence FROM threads WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        sequence = int(row[0]) + 1
        moment = _iso(at or now_utc())
        db.execute(
            "INSERT INTO events (thread_id, sequence, type, created_at, payload, origin) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (thread_id, sequence, event_type, moment, _dumps(payload), origin),
        )
        counted = 1 if event_type.startswith("message.") else 0
        db.execute(
            "UPDATE threads SET last_sequence = ?, updated_at = ?, "
            "message_count = message_count + ? WHERE thread_id = ?",
            (sequence, _iso(now_utc()), counted, thread_id),
        )
        return sequence

    def _change(
        self, db: sqlite3.Connection, kind: str, thread_id: str, action_id: str | None = None
    ) -> None:
        db.execute(
            "INSERT INTO changes (kind, thread_id, action_id, created_at) VALUES (?, ?, ?, ?)",
            (kind, thread_id, action_id, _iso(now_utc())),
        )

    def _ensure_thread(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        *,
        endpoint: str | None,
        title: str = "",
        tags: list[str] | None = None,
        preview: str | None = None,
    ) -> bool:
        """Create the thread's row if it is new; True when it was."""
        exists = db.execute("SELECT 1 FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
        if exists:
            return False
        moment = _iso(now_utc())
        db.execute(
            "INSERT INTO threads (thread_id, endpoint, title, tags, created_at, updated_at, "
            "preview) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (thread_id, endpoint, title, _dumps(tags or []), moment, moment, preview),
        )
        return True

    def record_outgoing(self, thread_id: str, content: str, idempotency_key: str) -> int:
        """The operator's message on a known thread, written before it is sent: whatever happens
        to the request, the record shows what was asked."""
        with self._write() as db:
            if not db.execute("SELECT 1 FROM threads WHERE thread_id = ?", (thread_id,)).fetchone():
                raise KeyError(thread_id)
            sequence = self._append(
                db,
                thread_id,
                EventType.MESSAGE_USER,
                {"content": content, "idempotency_key": idempotency_key},
                origin=f"ask:{idempotency_key}",
            )
            self._change(db, "session.updated", thread_id)
        return sequence or 0

    def record_undelivered(self, thread_id: str, idempotency_key: str, reason: str) -> None:
        with self._write() as db:
            self._append(
                db,
                thread_id,
                EventType.ERROR,
                {"message": f"no reply recorded: {reason}", "idempotency_key": idempotency_key},
                origin=f"undelivered:{idempotency_key}",
            )
            self._change(db, "session.updated", thread_id)

    def record_reply(
        self,
        reply: dict[str, Any],
        *,
        endpoint: str | None,
        first_message: tuple[str, str] | None = None,
        title: str = "",
        tags: list[str] | None = None,
        context_variables: dict[str, str] | None = None,
    ) -> str:
        """Record a pool reply and all it implies in one transaction; returns its thread id.

        ``first_message`` is (content, idempotency key) of the prompt that started the thread:
        the thread has no id before the reply, so the prompt is recorded with it."""
        thread_id = str(reply["thread_id"])
        response_id = reply.get("response_id")
        with self._write() as db:
            preview = first_message[0][:200] if first_message else None
            created = self._ensure_thread(
                db, thread_id, endpoint=endpoint, title=title, tags=tags, preview=preview
            )
            if first_message is not None:
                self._append(
                    db,
                    thread_id,
                    EventType.MESSAGE_USER,
                    {"content": first_message[0], "idempotency_key": first_message[1]},
                    origin=f"ask:{first_message[1]}",
                )
            if context_variables:
                self._merge_variables(db, thread_id, context_variables)
            origin = f"reply:{response_id}" if response_id else None
            if origin and db.execute("SELECT 1 FROM events WHERE origin = ?", (origin,)).fetchone():
                return thread_id  # a retried request answered with the reply already recorded
            at = parse_time(reply.get("timestamp"))
            self._complete_processing(db, thread_id, reply)
            content = reply.get("content")
            payload = {
                key: reply[key]
                for key in (
                    "content",
                    "response_id",
                    "agent_id",
                    "timestamp",
                    "citations",
                    "files",
                    "draft",
                    "suggested_actions",
                    "requested_variables",
                )
                if reply.get(key) not in (None, [], {})
            }
            self._append(db, thread_id, EventType.MESSAGE_AGENT, payload, at=at, origin=origin)
            updates: dict[str, Any] = {}
            if isinstance(content, str):
                updates["output_preview"] = content[:200]
            if isinstance(reply.get("agent_id"), str):
                updates["agent_id"] = reply["agent_id"]
            requested = _names(reply.get("requested_variables"))
            if requested:
                updates["requested_variables"] = _dumps(requested)
                self._append(
                    db,
                    thread_id,
                    "variables.requested",
                    {"names": requested, "message": "the agent asks for " + ", ".join(requested)},
                )
            if updates:
                assignments = ", ".join(f"{name} = ?" for name in updates)
                db.execute(
                    f"UPDATE threads SET {assignments} WHERE thread_id = ?",
                    (*updates.values(), thread_id),
                )
            pending = reply.get("pending_action")
            if isinstance(pending, dict) and pending.get("action_id"):
                self._record_pending(db, thread_id, pending)
            self._change(db, "session.created" if created else "session.updated", thread_id)
        return thread_id

    def _record_pending(
        self, db: sqlite3.Connection, thread_id: str, pending: dict[str, Any]
    ) -> None:
        action_id = str(pending["action_id"])
        if db.execute("SELECT 1 FROM actions WHERE action_id = ?", (action_id,)).fetchone():
            return
        preview = pending.get("preview")
        preview = preview if isinstance(preview, dict) else {"preview": preview}
        expires_at = _iso(parse_time(pending.get("expires_at")))
        tool = str(pending.get("tool") or "action")
        db.execute(
            "INSERT INTO actions (action_id, thread_id, tool, preview, status, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                action_id,
                thread_id,
                tool,
                _dumps(preview),
                ActionStatus.PENDING.value,
                _iso(now_utc()),
                expires_at,
            ),
        )
        self._append(
            db,
            thread_id,
            EventType.ACTION_PENDING,
            {"action_id": action_id, "tool": tool, "preview": preview, "expires_at": expires_at},
        )
        self._change(db, "action.pending", thread_id, action_id)

    def _complete_processing(
        self, db: sqlite3.Connection, thread_id: str, reply: dict[str, Any]
    ) -> None:
        """A reply on a thread with a confirmed action carries that action's result (the
        document: "the next call to the pool endpoint with the same thread_id will include the
        action result")."""
        rows = db.execute(
            "SELECT action_id, tool FROM actions WHERE thread_id = ? AND status = ?",
            (thread_id, ActionStatus.PROCESSING.value),
        ).fetchall()
        result = reply.get("action_result")
        for action_id, tool in rows:
            outcome: dict[str, Any]
            status = ActionStatus.COMPLETED
            if isinstance(result, dict) and result.get("action_id") in (None, action_id):
                outcome = result
                if str(result.get("status", "")).lower() in ("failed", "error"):
                    status = ActionStatus.FAILED
            else:
                outcome = {"response_id": reply.get("response_id"), "content": reply.get("content")}
            self._resolve(db, thread_id, action_id, tool, status, outcome=outcome)

    def _resolve(
        self,
        db: sqlite3.Connection,
        thread_id: str,
        action_id: str,
        tool: str,
        status: ActionStatus,
        *,
        outcome: dict[str, Any] | None = None,
        callback_id: str | None = None,
        message: str | None = None,
        origin: str | None = None,
    ) -> None:
        moment = _iso(now_utc())
        db.execute(
            "UPDATE actions SET status = ?, decided_at = COALESCE(decided_at, ?), "
            "outcome = COALESCE(?, outcome), callback_id = COALESCE(?, callback_id) "
            "WHERE action_id = ?",
            (
                status.value,
                moment,
                _dumps(outcome) if outcome is not None else None,
                callback_id,
                action_id,
            ),
        )
        event_type = {
            ActionStatus.PROCESSING: EventType.ACTION_CONFIRMED,
            ActionStatus.CANCELLED: EventType.ACTION_CANCELLED,
            ActionStatus.EXPIRED: EventType.ACTION_EXPIRED,
            ActionStatus.COMPLETED: EventType.ACTION_COMPLETED,
            ActionStatus.FAILED: EventType.ACTION_FAILED,
        }[status]
        payload: dict[str, Any] = {"action_id": action_id, "tool": tool, "status": status.value}
        if message:
            payload["message"] = message
        if callback_id:
            payload["callback_id"] = callback_id
        if outcome is not None:
            payload["result"] = outcome
        self._append(db, thread_id, event_type, payload, origin=origin)
        # Confirmed (processing) counts as resolved too: the action no longer waits on anyone.
        self._change(db, "action.resolved", thread_id, action_id)

    def decision_key(self, action_id: str, confirmed: bool, fresh_key: str) -> str:
        """The Idempotency-Key of this action's decision: the one chosen by the first attempt
        (even one that never got an answer), else ``fresh_key``. Raises KeyError for an unknown
        action and ValueError when the opposite decision was already sent."""
        with self._write() as db:
            row = db.execute(
                "SELECT decision_key, decision_confirmed FROM actions WHERE action_id = ?",
                (action_id,),
            ).fetchone()
            if row is None:
                raise KeyError(action_id)
            key, earlier = row
            if key is not None:
                if bool(earlier) is not confirmed:
                    raise ValueError("decided the other way")
                return str(key)
            db.execute(
                "UPDATE actions SET decision_key = ?, decision_confirmed = ? WHERE action_id = ?",
                (fresh_key, int(confirmed), action_id),
            )
            return fresh_key

    def record_decision(
        self,
        action_id: str,
        status: ActionStatus,
        *,
        callback_id: str | None = None,
        message: str | None = None,
    ) -> None:
        with self._write() as db:
            row = db.execute(
                "SELECT thread_id, tool, status FROM actions WHERE action_id = ?", (action_id,)
            ).fetchone()
            if row is None or row[2] != ActionStatus.PENDING.value:
                return  # already recorded (a repeat, or the result arrived first)
            self._resolve(
                db,
                row[0],
                action_id,
                row[1],
                status,
                callback_id=callback_id,
                message=message,
                origin=f"decision:{action_id}",
            )

    def expire_due(self, moment: datetime | None = None) -> int:
        """Record as cancelled by expiry every pending action past its ``expires_at`` (the
        platform cancels those by itself); returns how many."""
        cutoff = _iso(moment or now_utc())
        with self._lock:
            due = self._db.execute(
                "SELECT 1 FROM actions WHERE status = ? AND expires_at IS NOT NULL "
                "AND expires_at <= ? LIMIT 1",
                (ActionStatus.PENDING.value, cutoff),
            ).fetchone()
        if not due:
            return 0
        count = 0
        with self._write() as db:
            rows = db.execute(
                "SELECT action_id, thread_id, tool FROM actions WHERE status = ? "
                "AND expires_at IS NOT NULL AND expires_at <= ?",
                (ActionStatus.PENDING.value, cutoff),
            ).fetchall()
            for action_id, thread_id, tool in rows:
                self._resolve(
                    db,
                    thread_id,
                    action_id,
                    tool,
                    ActionStatus.EXPIRED,
                    message="cancelled by expiry",
                    outcome={"reason": "cancelled by expiry"},
                    origin=f"expired:{action_id}",
                )
                count += 1
        return count

    def _merge_variables(
        self, db: sqlite3.Connection, thread_id: str, variables: dict[str, str]
    ) -> dict[str, str]:
        row = db.execute(
            "SELECT context_variables, requested_variables FROM threads WHERE thread_id = ?",
            (thread_id,),
        ).fetchone()
        merged = {**_loads(row[0], {}), **variables}
        still_requested = [name for name in _loads(row[1], []) if name not in merged]
        db.execute(
            "UPDATE threads SET context_variables = ?, requested_variables = ? WHERE thread_id = ?",
            (_dumps(merged), _dumps(still_requested), thread_id),
        )
        return merged

    def record_variables(
        self, thread_id: str, variables: dict[str, str], reply: dict[str, Any]
    ) -> None:
        with self._write() as db:
            self._merge_variables(db, thread_id, variables)
            self._append(
                db,
                thread_id,
                EventType.VARIABLES_UPDATED,
                {
                    "names": sorted(variables),
                    "variables_updated": reply.get("variables_updated"),
                    "total_variables": reply.get("total_variables"),
                },
            )
            self._change(db, "session.updated", thread_id)

    def record_close(self, thread_id: str, reply: dict[str, Any]) -> None:
        with self._write() as db:
            closed_at = _iso(parse_time(reply.get("closed_at")) or now_utc())
            duration = reply.get("duration_seconds")
            billable = reply.get("billable")
            db.execute(
                "UPDATE threads SET status = ?, closed_at = ?, duration_seconds = ?, "
                "billable = ? WHERE thread_id = ?",
                (
                    SessionStatus.CLOSED.value,
                    closed_at,
                    duration if isinstance(duration, int) else None,
                    int(billable) if isinstance(billable, bool) else None,
                    thread_id,
                ),
            )
            self._append(
                db,
                thread_id,
                EventType.SESSION_CLOSED,
                {
                    "closed_at": closed_at,
                    "duration_seconds": duration,
                    "billable": billable,
                },
                origin=f"close:{thread_id}",
            )
            self._change(db, "session.updated", thread_id)

    def update_thread(
        self, thread_id: str, *, title: str | None = None, tags: list[str] | None = None
    ) -> None:
        """Title and tags exist only in the record (AG2Trust threads have neither)."""
        with self._write() as db:
            if title is not None:
                db.execute("UPDATE threads SET title = ? WHERE thread_id = ?", (title, thread_id))
            if tags is not None:
                db.execute(
                    "UPDATE threads SET tags = ? WHERE thread_id = ?", (_dumps(tags), thread_id)
                )
            db.execute(
                "UPDATE threads SET updated_at = ? WHERE thread_id = ?",
                (_iso(now_utc()), thread_id),
            )
            self._change(db, "session.updated", thread_id)

    def record_webhook(
        self, payload: dict[str, Any], delivery_id: str, *, endpoint: str | None = None
    ) -> int | None:
        """Append one verified completion webhook; None when this delivery was recorded before
        (platforms redeliver). A delivery names its thread; an action it names is resolved."""
        thread_id = str(payload["thread_id"])
        origin = f"webhook:{delivery_id}"
        with self._write() as db:
            if db.execute("SELECT 1 FROM events WHERE origin = ?", (origin,)).fetchone():
                return None
            created = self._ensure_thread(db, thread_id, endpoint=endpoint, title="", preview=None)
            action_id = payload.get("action_id")
            row = None
            if isinstance(action_id, str):
                row = db.execute(
                    "SELECT tool, status, decision_confirmed FROM actions "
                    "WHERE action_id = ? AND thread_id = ?",
                    (action_id, thread_id),
                ).fetchone()
            if row is not None and row[1] in (ActionStatus.PENDING.value, "processing"):
                if row[1] == ActionStatus.PENDING.value and row[2]:
                    # The completion overtook the 202 of our own confirmation: record that
                    # confirmation first, so the timeline reads in the order things happened.
                    callback = payload.get("callback_id")
                    self._resolve(
                        db,
                        thread_id,
                        str(action_id),
                        row[0],
                        ActionStatus.PROCESSING,
                        callback_id=callback if isinstance(callback, str) else None,
                        origin=f"decision:{action_id}",
                    )
                failed = str(payload.get("status", "")).lower() in ("failed", "error")
                status = ActionStatus.FAILED if failed else ActionStatus.COMPLETED
                self._resolve(
                    db, thread_id, str(action_id), row[0], status, outcome=payload, origin=origin
                )
                sequence = int(
                    db.execute(
                        "SELECT last_sequence FROM threads WHERE thread_id = ?", (thread_id,)
                    ).fetchone()[0]
                )
            else:
                event_type = (
                    EventType.MESSAGE_AGENT
                    if isinstance(payload.get("content"), str)
                    else "webhook"
                )
                sequence = self._append(db, thread_id, event_type, payload, origin=origin) or 0
                if isinstance(payload.get("content"), str):
                    db.execute(
                        "UPDATE threads SET output_preview = ? WHERE thread_id = ?",
                        (payload["content"][:200], thread_id),
                    )
            self._change(db, "session.created" if created else "session.updated", thread_id)
            return sequence

    # -- reads ----------------------------------------------------------------------------------
    def list_threads(
        self, query: ThreadQuery, *, after_local_id: int | None, limit: int
    ) -> tuple[list[Session], int | None, int, int]:
        """A page of threads, the cursor (local id) of the next one, the total, and the last
        change the page includes (all read in one snapshot)."""
        where, params = self._filters(query)
        order = "ASC" if query.oldest_first else "DESC"
        page_where = list(where)
        page_params = list(params)
        if after_local_id is not None:
            page_where.append("local_id > ?" if query.oldest_first else "local_id < ?")
            page_params.append(after_local_id)
        sql_where = f"WHERE {' AND '.join(page_where)}" if page_where else ""
        count_where = f"WHERE {' AND '.join(where)}" if where else ""
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM threads {sql_where} ORDER BY local_id {order} LIMIT ?",
                (*page_params, limit + 1),
            ).fetchall()
            total = int(
                db.execute(f"SELECT COUNT(*) FROM threads {count_where}", params).fetchone()[0]
            )
            sessions = [self._session(db, row) for row in rows[:limit]]
            position = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()[0])
        next_id = int(rows[limit - 1]["local_id"]) if len(rows) > limit else None
        return sessions, next_id, total, position

    def _filters(self, query: ThreadQuery) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if query.status == SessionStatus.WAITING.value:
            where.append(
                "status != 'closed' AND EXISTS (SELECT 1 FROM actions a WHERE "
                "a.thread_id = threads.thread_id AND a.status = 'pending')"
            )
        elif query.status == SessionStatus.ACTIVE.value:
            where.append(
                "status = 'active' AND NOT EXISTS (SELECT 1 FROM actions a WHERE "
                "a.thread_id = threads.thread_id AND a.status = 'pending')"
            )
        elif query.status is not None:
            where.append("status = ?")
            params.append(query.status)
        if query.agent_id:
            where.append("agent_id = ?")
            params.append(query.agent_id)
        if query.tag:
            where.append("EXISTS (SELECT 1 FROM json_each(threads.tags) WHERE value = ?)")
            params.append(query.tag)
        if query.text:
            needle = (
                "%" + query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            where.append(
                "(title LIKE ? ESCAPE '\\' OR thread_id LIKE ? ESCAPE '\\' "
                "OR preview LIKE ? ESCAPE '\\' OR output_preview LIKE ? ESCAPE '\\')"
            )
            params.extend([needle] * 4)
        return where, params

    def get_thread(self, thread_id: str) -> Session | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
            return self._session(db, row) if row is not None else None

    def endpoint_of(self, thread_id: str) -> str | None:
        with self._read() as db:
            row = db.execute(
                "SELECT endpoint FROM threads WHERE thread_id = ?", (thread_id,)
            ).fetchone()
        if row is None:
            raise KeyError(thread_id)
        return row[0]

    def _session(self, db: sqlite3.Connection, row: sqlite3.Row) -> Session:
        pending = int(
            db.execute(
                "SELECT COUNT(*) FROM actions WHERE thread_id = ? AND status = 'pending' "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (row["thread_id"], _iso(now_utc())),
            ).fetchone()[0]
        )
        status = SessionStatus(row["status"])
        if status is SessionStatus.ACTIVE and pending:
            status = SessionStatus.WAITING
        requested = _loads(row["requested_variables"], [])
        created = parse_time(row["created_at"])
        return Session(
            id=row["thread_id"],
            title=row["title"] or "",
            agent_id=row["agent_id"],
            status=status,
            tags=_loads(row["tags"], []),
            metadata={
                "endpoint": row["endpoint"],
                **({"requested_variables": requested} if requested else {}),
            },
            context_variables=_loads(row["context_variables"], {}),
            created_at=created or now_utc(),
            updated_at=parse_time(row["updated_at"]) or now_utc(),
            started_at=created,
            last_active_at=parse_time(row["updated_at"]),
            closed_at=parse_time(row["closed_at"]),
            message_count=row["message_count"],
            event_count=row["last_sequence"],
            pending_action_count=pending,
            last_sequence=row["last_sequence"],
            preview=row["preview"],
            output_preview=row["output_preview"],
            billable=None if row["billable"] is None else bool(row["billable"]),
            duration_seconds=row["duration_seconds"],
        )

    def events(
        self, thread_id: str, *, after: int, limit: int, types: list[str] | None = None
    ) -> tuple[list[Event], bool]:
        """Events with sequence > ``after``, oldest first; and whether more follow."""
        sql = "SELECT * FROM events WHERE thread_id = ? AND sequence > ?"
        params: list[Any] = [thread_id, after]
        if types:
            sql += f" AND type IN ({', '.join('?' for _ in types)})"
            params.extend(types)
        sql += " ORDER BY sequence LIMIT ?"
        params.append(limit + 1)
        with self._read() as db:
            rows = db.execute(sql, params).fetchall()
        return [_event(row) for row in rows[:limit]], len(rows) > limit

    def event(self, thread_id: str, sequence: int) -> Event | None:
        with self._read() as db:
            row = db.execute(
                "SELECT * FROM events WHERE thread_id = ? AND sequence = ?",
                (thread_id, sequence),
            ).fetchone()
        return _event(row) if row is not None else None

    def last_sequence(self, thread_id: str) -> int | None:
        with self._read() as db:
            row = db.execute(
                "SELECT last_sequence FROM threads WHERE thread_id = ?", (thread_id,)
            ).fetchone()
        return None if row is None else int(row[0])

    def actions(
        self, *, thread_id: str | None = None, pending_only: bool = False
    ) -> list[PendingAction]:
        sql = (
            "SELECT actions.*, threads.title AS thread_title FROM actions "
            "JOIN threads USING (thread_id)"
        )
        where: list[str] = []
        params: list[Any] = []
        if thread_id is not None:
            where.append("actions.thread_id = ?")
            params.append(thread_id)
        if pending_only:
            where.append("actions.status = 'pending' AND (expires_at IS NULL OR expires_at > ?)")
            params.append(_iso(now_utc()))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY actions.created_at, actions.rowid"
        with self._read() as db:
            rows = db.execute(sql, params).fetchall()
        return [_action(row) for row in rows]

    def action(self, action_id: str) -> PendingAction | None:
        with self._read() as db:
            row = db.execute(
                "SELECT actions.*, threads.title AS thread_title FROM actions "
                "JOIN threads USING (thread_id) WHERE action_id = ?",
                (action_id,),
            ).fetchone()
        return _action(row) if row is not None else None

    def changes(self, after: int, limit: int = 500) -> list[tuple[int, str, str, str | None]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, kind, thread_id, action_id FROM changes WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(int(row[0]), row[1], row[2], row[3]) for row in rows]

    def last_change(self) -> int:
        with self._read() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()
        return int(row[0])


def _names(value: Any) -> list[str]:
    """``requested_variables`` as names: the platform may send a list of names or of objects,
    or a mapping from name to description."""
    if isinstance(value, dict):
        return [str(name) for name in value]
    if isinstance(value, list):
        names: list[str] = []
        for item in value:
            if isinstance(item, str):
                names.append(item)
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(item["name"])
        return names
    return []


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=f"{row['thread_id']}#{row['sequence']}",
        session_id=row["thread_id"],
        sequence=row["sequence"],
        type=row["type"],
        created_at=parse_time(row["created_at"]) or now_utc(),
        payload=_loads(row["payload"], {}),
    )


def _action(row: sqlite3.Row) -> PendingAction:
    status = ActionStatus(row["status"])
    expires_at = parse_time(row["expires_at"])
    outcome = _loads(row["outcome"], None)
    if status is ActionStatus.PENDING and expires_at is not None and expires_at <= now_utc():
        # The platform cancels it by itself at its deadline, recorded or not yet.
        status = ActionStatus.EXPIRED
        outcome = {"reason": "cancelled by expiry"}
    return PendingAction(
        id=row["action_id"],
        session_id=row["thread_id"],
        tool=row["tool"],
        preview=_loads(row["preview"], {}),
        status=status,
        created_at=parse_time(row["created_at"]) or now_utc(),
        expires_at=expires_at,
        decided_at=parse_time(row["decided_at"]),
        callback_id=row["callback_id"],
        outcome=outcome,
        session_title=row["thread_title"] or None,
    )


# -- opening ------------------------------------------------------------------------------------


def _open(path: Path) -> sqlite3.Connection:
    """Open (or create) a record, refusing anything it cannot safely use."""
    fresh = not path.exists()
    if fresh:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode={'rwc' if fresh else 'rw'}",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=10.0,
        )
    except sqlite3.Error as error:
        raise RecordError(f"cannot open the AG2Trust record {path}: {error}") from None
    db.row_factory = sqlite3.Row
    try:
        _check_or_create(db, path)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
    except RecordError:
        db.close()
        raise
    except sqlite3.DatabaseError as error:
        db.close()
        raise RecordError(
            f"the AG2Trust record {path} is damaged or not a database ({error}); it was left "
            "untouched: move it aside (or restore a backup) and start again"
        ) from None
    return db


def _check_or_create(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        }
        if version == 0 and not tables:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('format', ?), ('schema_version', ?)",
                (FORMAT, str(SCHEMA_VERSION)),
            )
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
            return
        marker = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            marker = row[0] if row else None
        if marker != FORMAT:
            raise RecordError(
                f"{path} is not an AG2Trust record of sessionscope (another program's "
                "database?); it was left untouched: choose another file with --option record=PATH"
            )
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"the AG2Trust record {path} was written by a newer sessionscope (schema "
                f"{version}; this one reads up to {SCHEMA_VERSION}); it was left untouched: "
                "upgrade sessionscope to open it"
            )
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise RecordError(
                f"the AG2Trust record {path} is damaged ({check}); it was left untouched: move "
                "it aside (or restore a backup) and start again"
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
