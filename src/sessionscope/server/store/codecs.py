"""Ids, live channels, opaque keyset cursors, and database rows to models (and to wire JSON)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Integer,
    Row,
    String,
    Text,
    literal,
    tuple_,
    type_coerce,
)

from sessionscope.models import (
    ActionStatus,
    Artifact,
    Event,
    EventType,
    PendingAction,
    Session,
    ToolCall,
)
from sessionscope.server import db
from sessionscope.server.errors import field_error

PREVIEW_CHARS = 200


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


SESSION_COUNTER_TYPES = {EventType.MESSAGE_USER.value, EventType.MESSAGE_AGENT.value}
