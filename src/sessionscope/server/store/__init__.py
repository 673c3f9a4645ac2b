"""Storage: every read and write the API makes, scoped to an organisation.

Writes go through ``Store.write()``: one in-process lock (SQLite has a single writer anyway, and
this avoids "database is locked"), one transaction, then live frames are published in commit
order while the lock is still held, so subscribers never see a later frame before an earlier one.

``Store`` is composed of one part per resource; each part builds on ``StoreCore`` (the
transaction, the reader and writer threads, live publishing):

- ``codecs``: ids, channels, cursors and rows to models;
- ``core``: transactions, session bookkeeping, the org stream;
- ``sessions``, ``ingest`` (event appends, group commit), ``events``, ``artifacts``,
  ``tool_calls``, ``actions``: each resource's reads and writes;
- ``derived``: the timeline and the replay, computed from events.
"""

from __future__ import annotations

from sessionscope.server.store.actions import ActionStore
from sessionscope.server.store.artifacts import ARTIFACT_CHUNKS_PER_READ, ArtifactStore
from sessionscope.server.store.codecs import (
    PREVIEW_CHARS,
    SESSION_COUNTER_TYPES,
    action_from_row,
    artifact_from_row,
    decode_cursor,
    encode_cursor,
    event_from_row,
    new_event_id,
    new_event_ids,
    new_id,
    now_utc,
    org_channel,
    session_channel,
    session_from_row,
    session_wire_from_raw,
    tool_call_from_row,
)
from sessionscope.server.store.core import (
    READER_THREADS,
    Appended,
    StoreCore,
    Tx,
    _AppendBatch,
    _AppendRequest,
    counted,
)
from sessionscope.server.store.derived import build_replay, build_timeline
from sessionscope.server.store.events import EventStore
from sessionscope.server.store.ingest import (
    APPEND_BATCH_REQUESTS,
    APPEND_LEASE_SECONDS,
    IngestStore,
    _append_batch,
)
from sessionscope.server.store.sessions import (
    COUNT_CACHE_ENTRIES,
    COUNT_CACHE_SECONDS,
    TEXT_SCAN_ROWS,
    SessionOrder,
    SessionStore,
)
from sessionscope.server.store.tool_calls import SECRET_MASK, ToolCallStore


class Store(SessionStore, IngestStore, EventStore, ArtifactStore, ToolCallStore, ActionStore):
    """Every read and write the API makes, scoped to an organisation."""


__all__ = [
    "APPEND_BATCH_REQUESTS",
    "APPEND_LEASE_SECONDS",
    "ARTIFACT_CHUNKS_PER_READ",
    "COUNT_CACHE_ENTRIES",
    "COUNT_CACHE_SECONDS",
    "PREVIEW_CHARS",
    "READER_THREADS",
    "SECRET_MASK",
    "SESSION_COUNTER_TYPES",
    "TEXT_SCAN_ROWS",
    "Appended",
    "SessionOrder",
    "Store",
    "StoreCore",
    "Tx",
    "_AppendBatch",
    "_AppendRequest",
    "_append_batch",
    "action_from_row",
    "artifact_from_row",
    "build_replay",
    "build_timeline",
    "counted",
    "decode_cursor",
    "encode_cursor",
    "event_from_row",
    "new_event_id",
    "new_event_ids",
    "new_id",
    "now_utc",
    "org_channel",
    "session_channel",
    "session_from_row",
    "session_wire_from_raw",
    "tool_call_from_row",
]
