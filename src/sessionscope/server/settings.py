"""Server settings: everything the app, the runner and the test fixtures configure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sessionscope.models import MAX_EVENT_BYTES, MAX_REPLY_BYTES

DEFAULT_ORG = "default"
API_KEYS_ENV = "SESSIONSCOPE_SERVER_API_KEYS"
#: What a key may do (``--api-key ORG:KEY:ROLE``); a key without a role may do everything.
#: agent: append events, propose actions, upload artifacts, request tool calls (and read);
#: operator: what an operator does from the console (and read); viewer: read only.
ROLES = ("agent", "operator", "viewer")


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    #: 0 picks a free port (the runner reports the one it got).
    port: int = 8765
    #: A SQLAlchemy async URL; see ``database_url``.
    db_url: str = "sqlite+aiosqlite:///sessionscope.db"
    #: (organisation, key) pairs. The first one is the simulator's.
    api_keys: list[tuple[str, str]] = field(default_factory=list, repr=False)
    #: key -> role (one of ``ROLES``) for the keys that have one.
    key_roles: dict[str, str] = field(default_factory=dict, repr=False)
    simulate: bool = False
    #: Simulated events per second.
    rate: float = 2.0
    seed: int | None = None
    #: Seconds between SSE heartbeat comments; the API promises at most 15.
    heartbeat_interval: float = 15.0
    #: The reconnect delay suggested to SSE clients (``retry:``), in milliseconds.
    sse_retry_ms: int = 2000
    #: Frames a live subscriber may have queued before it is disconnected (it resumes later).
    stream_queue_size: int = 1000
    #: Seconds between sweeps for expired actions and confirmed actions to finish.
    sweep_interval: float = 1.0
    #: Seconds between a confirmation and the action's outcome event.
    action_completion_delay: float = 0.5
    #: Largest request body accepted, declared or chunked. Artifact uploads are base64 inside
    #: JSON (4/3 of the artifact's size): 96 MiB takes an artifact of 72 MiB, and the console
    #: is tested with one of 50 MB.
    max_body_bytes: int = 96 * 1024 * 1024
    #: Largest body of any other request (events, messages, sessions, actions): each becomes an
    #: event or an object a client reads back, and a client reads at most ``max_reply_bytes``.
    max_event_bytes: int = MAX_EVENT_BYTES
    #: Largest page of events the server sends: the client's read limit, less room for the
    #: page's own fields.
    max_reply_bytes: int = MAX_REPLY_BYTES
    #: Least seconds between two ``session.updated`` org-stream frames caused by appended events
    #: for one session: the first is sent at once, later ones coalesce into one with the newest
    #: counters (a busy session would otherwise add an org change per event).
    session_update_interval: float = 1.0
    #: Seconds org-stream changes are kept for resuming; a client resuming from before that gets
    #: a ``stream.reset`` frame first and should reload its list.
    org_change_retention: float = 6 * 3600.0
    #: PostgreSQL (several replicas): seconds between the live fan-out's catch-up reads,
    #: the longest a change missed by a lost notification (or a dropped listener connection)
    #: waits before it reaches the streams of this replica.
    fanout_catch_up_interval: float = 1.0
    #: Uvicorn access log; off by default (tests, demo).
    access_log: bool = False

    @property
    def first_key(self) -> tuple[str, str] | None:
        return self.api_keys[0] if self.api_keys else None


def parse_api_key(spec: str) -> tuple[str, str]:
    """``[ORG:]KEY[:ROLE]`` -> (org, key); a key without an organisation belongs to
    ``default``. See ``parse_api_key_spec`` for the role."""
    org, key, _role = parse_api_key_spec(spec)
    return org, key


def parse_api_key_spec(spec: str) -> tuple[str, str, str | None]:
    """``[ORG:]KEY`` or ``ORG:KEY:ROLE`` -> (org, key, role or None). A third part must be a
    role: a mistyped one is an error, never a key with full rights."""
    spec = spec.strip()
    parts = spec.split(":")
    if len(parts) == 1:
        return DEFAULT_ORG, spec, None
    if len(parts) > 3 or not all(parts):
        raise ValueError("an API key must look like KEY, ORG:KEY or ORG:KEY:ROLE")
    role = parts[2] if len(parts) == 3 else None
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r} for an API key; one of {', '.join(ROLES)}")
    return parts[0], parts[1], role


def api_key_specs_from_env(
    environ: dict[str, str] | None = None,
) -> list[tuple[str, str, str | None]]:
    raw = (environ if environ is not None else os.environ).get(API_KEYS_ENV, "")
    return [parse_api_key_spec(part) for part in raw.split(",") if part.strip()]


def api_keys_from_env(environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    return [(org, key) for org, key, _role in api_key_specs_from_env(environ)]


def database_url(db: str | Path) -> str:
    """A file path or a SQLAlchemy URL -> an async SQLAlchemy URL."""
    text = str(db)
    if "://" not in text:
        return f"sqlite+aiosqlite:///{Path(text).expanduser().resolve()}"
    scheme, rest = text.split("://", 1)
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    return text


def sqlite_path(db_url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    if not db_url.startswith("sqlite"):
        return None
    path = db_url.split(":///", 1)[1] if ":///" in db_url else ""
    if not path or path == ":memory:":
        return None
    return Path(path)
