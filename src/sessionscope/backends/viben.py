"""The backend for a Viben gateway: a local agent/task orchestrator (``viben-sessions.txt``).

What the platform gives, and how the console's interface is served from it:

- No authentication. A key given anyway is never sent: it is dropped with a log warning and a
  notice the console shows (``notices``).
- ``GET /api/sessions`` is one unpaginated list (filters ``task_id``, ``agent_id``, ``status``).
  It is paged here, behind an opaque keyset cursor over the list sorted by creation time, so the
  console's table stays virtual; the pages after the first come from the first page's copy of
  the list while it is kept, else from a fresh read continued after the cursor's key.
- A session's messages (``GET /api/sessions/:id/messages``) are its timeline. They have no
  sequence: each session's messages are numbered here in the platform's order, a number kept for
  a message once given (by its id, or its time, role and content when it has none).
- Live: ``GET /api/events`` is a Server-Sent Events stream of changes, with no event ids and no
  resume. Its frames are therefore taken as news that something changed, and what changed is
  re-read: a session's messages for ``watch_session``, the sessions list (or one session) for
  ``watch_org``. After every (re)connection everything is re-read and compared with what was
  delivered, so a dropped stream loses nothing and repeats nothing. Where the gateway refuses the
  stream (404/405/501, or a reply that is not an event stream) the ``/ws`` subscription
  (``{"type": "subscribe", "channels": [...]}``, then ``{channel, type, data, timestamp}``
  messages) serves the same way; where that is refused too, the watches poll.
- Statuses created/active/paused/completed/failed; pause and resume are ``PATCH`` with
  ``status`` (``Capability.PAUSE``), complete is ``status=completed``.

Options read from ``BackendConfig.options`` (all optional): ``retry_attempts``, ``retry_base``,
``retry_max``, ``max_retry_after`` (request retries, as every HTTP backend); ``reconnect_base``
(0.5 s), ``reconnect_max`` (15 s); ``stream_read_timeout`` (300 s: an SSE stream silent this
long is re-opened, which also re-reads; the documents promise no heartbeat, so an idle gateway's
stream is quiet and this is kept long; the WebSocket pings every 20 s instead); ``poll``
(false: poll every ``poll_interval`` instead of streaming); ``list_cache_seconds`` (30 s: how
long a listing's copy serves its later pages); ``seed``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import EventSource
from pydantic import TypeAdapter

from sessionscope.backends._http import (
    USER_AGENT,
    Backoff,
    HttpClient,
    error_from_response,
    flag_option,
    neutralise_detail,
    option,
)
from sessionscope.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capability,
    ConnectError,
    NotFound,
    ProtocolError,
    SessionQuery,
    ValidationFailed,
    WatchState,
    WatchStateCallback,
)
from sessionscope.backends.live import LiveWatch, Resume, RetryHint, StateReporter, StreamMissing
from sessionscope.models import (
    Event,
    EventType,
    OrgChange,
    Page,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
)

log = logging.getLogger("sessionscope.backends.viben")

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:18790"

#: The statuses the gateway documents; any other is refused before a request is sent.
VIBEN_STATUSES: frozenset[SessionStatus] = frozenset(
    {
        SessionStatus.CREATED,
        SessionStatus.ACTIVE,
        SessionStatus.PAUSED,
        SessionStatus.COMPLETED,
        SessionStatus.FAILED,
    }
)
#: Statuses outside the documented five that a gateway might still send.
_STATUS_ALIASES: dict[str, SessionStatus] = {
    "running": SessionStatus.ACTIVE,
    "idle": SessionStatus.IDLE,
    "waiting": SessionStatus.WAITING,
    "error": SessionStatus.FAILED,
    "cancelled": SessionStatus.CLOSED,
    "canceled": SessionStatus.CLOSED,
    "closed": SessionStatus.CLOSED,
    "done": SessionStatus.COMPLETED,
}
_MESSAGE_TYPES: dict[str, str] = {
    "user": EventType.MESSAGE_USER.value,
    "human": EventType.MESSAGE_USER.value,
    "assistant": EventType.MESSAGE_AGENT.value,
    "agent": EventType.MESSAGE_AGENT.value,
    "model": EventType.MESSAGE_AGENT.value,
}
#: ``/ws`` channels subscribed to ("sessions" is the documented one).
WS_CHANNELS = ["sessions", "messages"]
_MAX_EVENT_PAGE = 1000
_MAX_SESSION_PAGE = 500
#: Sessions whose message numbering is kept; older ones are renumbered from the platform's order
#: (the same numbers while the gateway's lists only grow).
_MAX_LEDGERS = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ANY = TypeAdapter(Any)


def _seg(value: str) -> str:
    """An id as one path segment: ids come from the gateway, so ``../`` stays literal."""
    return quote(str(value), safe="")


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Epoch seconds, or milliseconds (JavaScript's Date.now()).
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _status(value: Any) -> SessionStatus:
    text = str(value or "").strip().lower()
    try:
        return SessionStatus(text)
    except ValueError:
        return _STATUS_ALIASES.get(text, SessionStatus.ACTIVE)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_line(text: str | None, limit: int = 200) -> str | None:
    if not text:
        return None
    return neutralise_detail(text.strip().splitlines()[0] if text.strip() else text, limit)


def session_from(raw: dict[str, Any], where: str) -> Session:
    """A gateway session (list item or detail) as the console's ``Session``. ``data`` goes to
    ``metadata``; its ``model`` is the model id; the raw status is kept as ``viben_status``."""
    session_id = raw.get("id")
    if not isinstance(session_id, str | int) or isinstance(session_id, bool) or session_id == "":
        raise ProtocolError(f"The gateway sent a session without an id ({where})")
    data = raw.get("data")
    metadata: dict[str, Any] = data if isinstance(data, dict) else {}
    created = _parse_time(raw.get("created_at")) or _EPOCH
    last_active = _parse_time(raw.get("last_active"))
    count = raw.get("message_count")
    messages = count if isinstance(count, int) and not isinstance(count, bool) else 0
    prompt = _text(raw.get("prompt"))
    model = metadata.get("model")
    return Session(
        id=str(session_id),
        title=_text(raw.get("title")) or _text(raw.get("name")) or "",
        agent_id=_text(raw.get("agent_id")),
        task_id=_text(raw.get("task_id")),
        model_id=model if isinstance(model, str) else None,
        status=_status(raw.get("status")),
        metadata=metadata,
        created_at=created,
        updated_at=last_active or created,
        last_active_at=last_active,
        message_count=messages,
        event_count=messages,
        last_sequence=messages,
        preview=_first_line(prompt),
        viben_status=str(raw.get("status") or ""),
    )


def _listed_fields(session: Session) -> tuple[Any, ...]:
    """What a list item says about a session (a list item carries no ``data``)."""
    return (
        session.status,
        session.agent_id,
        session.task_id,
        session.message_count,
        session.last_active_at,
        session.created_at,
        session.title,
    )


def _with_known_data(session: Session, before: Session | None) -> Session:
    """A list item keeps the ``data`` an earlier detail read gave (a list item has none)."""
    if before is None or session.metadata or not before.metadata:
        return session
    return session.model_copy(update={"metadata": before.metadata, "model_id": before.model_id})


def _changed(before: Session, after: Session) -> bool:
    if _listed_fields(before) != _listed_fields(after):
        return True
    # ``data`` only counts when this reading has some (a list item never does).
    return bool(after.metadata) and (
        before.metadata != after.metadata or before.model_id != after.model_id
    )


# -- messages ------------------------------------------------------------------------------------


def _messages_of(body: Any, where: str) -> list[dict[str, Any]]:
    """The messages reply: a bare list, or ``{messages: [...]}`` (like ``{sessions: [...]}``),
    or ``{data: [...]}``."""
    items = body
    if isinstance(body, dict):
        items = body.get("messages", body.get("data"))
    if not isinstance(items, list):
        raise ProtocolError(f"The gateway's reply has no list of messages ({where})")
    return [item if isinstance(item, dict) else {"content": item} for item in items]


def _message_key(message: dict[str, Any], occurrence: int) -> str:
    for name in ("id", "message_id", "uuid"):
        value = message.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return f"id:{value}"
    # No id: the same time, role and content twice are told apart by how many came before.
    material = json.dumps(
        [
            message.get("timestamp", message.get("created_at")),
            message.get("role"),
            message.get("content"),
            occurrence,
        ],
        sort_keys=True,
        default=str,
    )
    return "h:" + hashlib.sha256(material.encode()).hexdigest()[:32]


def _message_event(session_id: str, sequence: int, key: str, message: dict[str, Any]) -> Event:
    role = str(message.get("role") or message.get("type") or "agent").lower()
    event_type = _MESSAGE_TYPES.get(role) or f"message.{neutralise_detail(role, 40)}"
    created = (
        _parse_time(message.get("timestamp"))
        or _parse_time(message.get("created_at"))
        or datetime.now(UTC)
    )
    event_id = key[3:] if key.startswith("id:") else f"msg-{sequence}"
    return Event(
        id=event_id,
        session_id=session_id,
        sequence=sequence,
        type=event_type,
        created_at=created,
        payload=message,
    )


@dataclasses.dataclass
class _Ledger:
    """One session's messages as events, numbered in the order first seen, never renumbered."""

    events: list[Event] = dataclasses.field(default_factory=list)
    keys: dict[str, int] = dataclasses.field(default_factory=dict)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def last(self) -> int:
        return self.events[-1].sequence if self.events else 0

    def merge(self, session_id: str, messages: list[dict[str, Any]]) -> list[Event]:
        added: list[Event] = []
        seen: dict[tuple[Any, ...], int] = {}
        for message in messages:
            identity = (
                message.get("timestamp", message.get("created_at")),
                message.get("role"),
                json.dumps(message.get("content"), sort_keys=True, default=str),
            )
            occurrence = seen.get(identity, 0)
            seen[identity] = occurrence + 1
            key = _message_key(message, occurrence)
            if key in self.keys:
                continue
            event = _message_event(session_id, self.last + 1, key, message)
            self.keys[key] = event.sequence
            self.events.append(event)
            added.append(event)
        return added

    def after(self, sequence: int) -> list[Event]:
        # Sequences are 1..last without gaps: the position is the index.
        return self.events[max(0, sequence) :]


# -- the listing cursor --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ListCursor:
    snapshot: str
    order: Literal["newest", "oldest"]
    created_at: str
    session_id: str

    def encode(self) -> str:
        raw = json.dumps([self.snapshot, self.order, self.created_at, self.session_id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> _ListCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            snapshot, order, created_at, session_id = json.loads(raw)
            if order not in ("newest", "oldest"):
                raise ValueError(order)
            return cls(str(snapshot), order, str(created_at), str(session_id))
        except (ValueError, TypeError) as exc:
            raise ValidationFailed(
                "The page cursor is not one this console issued", status=400
            ) from exc


def _sort_key(session: Session) -> tuple[datetime, str]:
    return (session.created_at, session.id)


# -- live frames ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Frame:
    """One change the gateway announced: ``{channel, type, data, timestamp}`` (the ``/ws``
    message shape; the SSE stream's JSON is read the same way, its ``event:`` standing in for a
    missing ``type``)."""

    channel: str
    type: str
    data: dict[str, Any]

    @property
    def about_messages(self) -> bool:
        return "message" in self.channel or "message" in self.type

    @property
    def about_sessions(self) -> bool:
        return not self.about_messages and ("session" in self.channel or "session" in self.type)

    @property
    def deletes(self) -> bool:
        return "delet" in self.type or "remov" in self.type

    @property
    def session_id(self) -> str | None:
        data = self.data
        for name in ("session_id", "sessionId"):
            value = data.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
        session = data.get("session")
        if isinstance(session, dict) and isinstance(session.get("id"), str | int):
            return str(session["id"])
        if self.about_sessions and isinstance(data.get("id"), str | int):
            return str(data["id"])
        return None

    @property
    def message_key(self) -> str | None:
        message = self.data.get("message")
        if not isinstance(message, dict):
            message = self.data if self.about_messages else None
        if message is None:
            return None
        for name in ("id", "message_id"):
            value = message.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                return f"id:{value}"
        return None

    @property
    def session(self) -> dict[str, Any] | None:
        """The whole session, when the frame carries one."""
        candidate = self.data.get("session")
        if not isinstance(candidate, dict):
            candidate = self.data if self.about_sessions else None
        if candidate is not None and "id" in candidate and "status" in candidate:
            return candidate
        return None


def _frame_from(event_name: str, data: str) -> _Frame | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    inner = body.get("data")
    payload = inner if isinstance(inner, dict) else body
    kind = body.get("type")
    channel = body.get("channel")
    return _Frame(
        channel=channel.lower() if isinstance(channel, str) else "",
        type=(kind if isinstance(kind, str) else event_name or "").lower(),
        data=payload,
    )


class _SseRefused(Exception):
    """``GET /api/events`` is not an event stream here: try the ``/ws`` subscription."""


class VibenBackend(Backend):
    name = "viben"
    platform_label = "Viben"
    create_fields = frozenset({"agent_id", "task_id", "prompt"})
    capabilities = frozenset(
        {
            Capability.LIST_SESSIONS,
            Capability.CREATE_SESSION,
            Capability.UPDATE_SESSION,
            Capability.DELETE,
            Capability.COMPLETE,
            Capability.PAUSE,
            Capability.MESSAGES,
            Capability.EVENTS,
            Capability.LIVE_STREAM,
            Capability.ORG_STREAM,
            Capability.OLDEST_FIRST,
        }
    )

    def __init__(self, config: BackendConfig) -> None:
        notices: list[str] = []
        if config.api_key:
            notices.append(
                "Viben gateways take no API key: the key given is ignored and never sent."
            )
            log.warning("viben: the gateway has no authentication; the API key is not sent")
            # The key never reaches the HTTP layer, so it cannot travel in any request.
            config = dataclasses.replace(config, api_key=None)
        self.notices = tuple(notices)
        self.config = config
        seed = config.options.get("seed")
        self._rng = random.Random(seed) if seed is not None else random.Random()
        self._http = HttpClient(config, rng=self._rng)
        url = self._http.base_url
        port = url.port or (443 if url.scheme == "https" else 80)
        self._display_name = f"{url.host}:{port}"
        self._reconnect = Backoff(
            base=option(config, "reconnect_base", 0.5),
            cap=option(config, "reconnect_max", 15.0),
            rng=self._rng,
        )
        self._stream_read_timeout = option(config, "stream_read_timeout", 300.0)
        self._live = LiveWatch(
            display_name=self._display_name,
            reconnect=self._reconnect,
            poll_interval=config.poll_interval,
            redact=self._http.redact,
            force_poll=flag_option(config, "poll"),
        )
        self._list_cache_seconds = option(config, "list_cache_seconds", 30.0)
        #: The gateway refused the SSE stream once: its ``/ws`` subscription is used instead.
        self._sse_refused = False
        self._ledgers: OrderedDict[str, _Ledger] = OrderedDict()
        #: Listings kept for their later pages: snapshot id -> (taken at, sorted sessions).
        self._listings: OrderedDict[str, tuple[float, list[Session]]] = OrderedDict()
        #: The whole sessions list as the organisation watch last reported it (or a complete
        #: listing showed it); ``None`` until one was read.
        self._seen: dict[str, Session] | None = None
        #: The organisation watch's change ids (``OrgChange.id``), local and only growing.
        self._org_counter = 0

    def __repr__(self) -> str:
        return f"VibenBackend({self._display_name})"

    @property
    def display_name(self) -> str:
        return self._display_name

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- sessions -------------------------------------------------------------------------------
    async def _fetch_sessions(self, query: SessionQuery | None) -> list[Session]:
        params: dict[str, str] = {}
        if query is not None:
            if query.task_id:
                params["task_id"] = query.task_id
            if query.agent_id:
                params["agent_id"] = query.agent_id
            if query.status is not None:
                params["status"] = query.status.value
        where = "GET /api/sessions"
        body = await self._http.json_as(_ANY, "GET", "/api/sessions", params=params)
        items = body.get("sessions") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProtocolError(f"The gateway's reply has no list of sessions ({where})")
        return [session_from(item, where) for item in items if isinstance(item, dict)]

    def _remember_listing(self, sessions: list[Session]) -> str:
        now = time.monotonic()
        while self._listings:
            _, (taken, _) = next(iter(self._listings.items()))
            if now - taken <= self._list_cache_seconds and len(self._listings) < 16:
                break
            self._listings.popitem(last=False)
        snapshot = f"{now:.6f}-{self._rng.getrandbits(32):08x}"
        self._listings[snapshot] = (now, sessions)
        return snapshot

    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        query = query or SessionQuery()
        limit = max(1, min(limit, _MAX_SESSION_PAGE))
        if query.status is not None and query.status not in VIBEN_STATUSES:
            return Page(data=[], total=0)  # a status Viben never has
        position = self._org_counter
        position_known = False
        after: _ListCursor | None = _ListCursor.decode(cursor) if cursor else None
        order = after.order if after is not None else query.order
        cached = self._listings.get(after.snapshot) if after is not None else None
        if cached is not None:
            snapshot = after.snapshot if after is not None else ""
            ordered = cached[1]
        else:
            fetched = await self._fetch_sessions(query)
            unfiltered = not (query.status or query.agent_id or query.task_id)
            if unfiltered:
                self._learn_all(fetched)
                position_known = after is None
            if query.text:
                needle = query.text.casefold()
                fetched = [
                    s
                    for s in fetched
                    if any(
                        needle in (part or "").casefold()
                        for part in (s.title, s.preview, s.id, s.agent_id, s.task_id)
                    )
                ]
            ordered = sorted(fetched, key=_sort_key, reverse=order == "newest")
            snapshot = self._remember_listing(ordered)
        start = 0
        if after is not None:
            key = (_parse_time(after.created_at) or _EPOCH, after.session_id)
            if order == "newest":
                start = next((i for i, s in enumerate(ordered) if _sort_key(s) < key), len(ordered))
            else:
                start = next((i for i, s in enumerate(ordered) if _sort_key(s) > key), len(ordered))
        data = ordered[start : start + limit]
        next_cursor = None
        if start + limit < len(ordered) and data:
            last = data[-1]
            next_cursor = _ListCursor(
                snapshot, order, last.created_at.isoformat(), last.id
            ).encode()
        first = after is None
        return Page(
            data=data,
            next_cursor=next_cursor,
            total=len(ordered) if first else None,
            # The watch's position from before the read: the page includes every change up to
            # it (possibly more: a change is then both listed and delivered, never lost).
            stream_position=position if first and position_known else None,
        )

    def _learn_all(self, sessions: list[Session]) -> None:
        """A complete list: the organisation watch's baseline from now on."""
        before = self._seen or {}
        self._seen = {s.id: _with_known_data(s, before.get(s.id)) for s in sessions}

    async def get_session(self, session_id: str) -> Session:
        where = f"GET /api/sessions/{session_id}"
        body = await self._http.json_as(_ANY, "GET", f"/api/sessions/{_seg(session_id)}")
        return session_from(_session_body(body, where), where)

    async def create_session(self, spec: SessionCreate) -> Session:
        dropped = [name for name, value in (("title", spec.title), ("tags", spec.tags)) if value]
        if dropped or spec.metadata or spec.context_variables:
            raise ValidationFailed(
                "Rejected: a Viben session takes an agent id, a task id and a prompt only "
                f"(no {', '.join(dropped) or 'metadata or context variables'})",
                errors=[{"field": name, "message": "not supported"} for name in dropped],
            )
        if not spec.agent_id:
            raise ValidationFailed(
                "Rejected: a Viben session needs an agent id (agent_id)",
                errors=[{"field": "agent_id", "message": "required"}],
            )
        body: dict[str, Any] = {"agent_id": spec.agent_id}
        if spec.task_id:
            body["task_id"] = spec.task_id
        if spec.prompt:
            body["prompt"] = spec.prompt
        reply = await self._http.json_as(_ANY, "POST", "/api/sessions", json_body=body)
        session = session_from(_session_body(reply, "POST /api/sessions"), "POST /api/sessions")
        if spec.prompt and not session.preview:
            session = session.model_copy(update={"preview": _first_line(spec.prompt)})
        return session

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        """``status``, ``metadata`` (the session's ``data``) and ``prompt`` (an extra field of
        ``SessionUpdate``). The gateway has no titles, tags or context variables."""
        unsupported = [
            name
            for name, value in (
                ("title", update.title),
                ("tags", update.tags),
                ("context variables", update.context_variables),
            )
            if value
        ]
        if unsupported:
            raise ValidationFailed(
                f"Rejected: Viben sessions have no {', '.join(unsupported)}; "
                "only status, data and prompt can change",
                errors=[{"field": name, "message": "not supported"} for name in unsupported],
            )
        body: dict[str, Any] = {}
        if update.status is not None:
            if update.status not in VIBEN_STATUSES:
                allowed = ", ".join(sorted(s.value for s in VIBEN_STATUSES))
                raise ValidationFailed(
                    f"Rejected: Viben has no status {update.status.value!r} (one of {allowed})",
                    errors=[{"field": "status", "message": "unknown status"}],
                )
            body["status"] = update.status.value
        if update.metadata is not None:
            body["data"] = update.metadata
        prompt = (update.model_extra or {}).get("prompt")
        if isinstance(prompt, str):
            body["prompt"] = prompt
        path = f"/api/sessions/{_seg(session_id)}"
        if body:
            # The same partial update applied twice leaves the same session.
            reply = await self._http.json_as(_ANY, "PATCH", path, json_body=body, idempotent=True)
            if isinstance(reply, dict) and ("id" in reply or "session" in reply):
                return session_from(_session_body(reply, f"PATCH {path}"), f"PATCH {path}")
        # The reply's shape is not documented: read the session back when it is not one.
        return await self.get_session(session_id)

    async def pause_session(self, session_id: str) -> Session:
        return await self.update_session(session_id, SessionUpdate(status=SessionStatus.PAUSED))

    async def resume_session(self, session_id: str) -> Session:
        return await self.update_session(session_id, SessionUpdate(status=SessionStatus.ACTIVE))

    async def complete_session(self, session_id: str) -> Session:
        return await self.update_session(session_id, SessionUpdate(status=SessionStatus.COMPLETED))

    async def delete_session(self, session_id: str) -> None:
        await self._http.request("DELETE", f"/api/sessions/{_seg(session_id)}")
        self._ledgers.pop(session_id, None)

    async def send_message(self, session_id: str, content: str) -> Event:
        path = f"/api/sessions/{_seg(session_id)}/message"
        reply = await self._http.json_as(_ANY, "POST", path, json_body={"content": content})
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        ledger = await self._refresh(session_id)
        if message_id is not None and f"id:{message_id}" in ledger.keys:
            return ledger.events[ledger.keys[f"id:{message_id}"] - 1]
        # Not (yet) in the gateway's list: the event the console shows now is numbered after
        # everything known, the place the message takes once listed.
        sent = reply if isinstance(reply, dict) else {}
        return Event(
            id=str(message_id or f"msg-{ledger.last + 1}"),
            session_id=session_id,
            sequence=ledger.last + 1,
            type=EventType.MESSAGE_USER.value,
            created_at=_parse_time(sent.get("timestamp")) or datetime.now(UTC),
            payload={"role": "user", "content": content, **sent},
        )

    # -- events: the session's messages ---------------------------------------------------------
    def _ledger(self, session_id: str) -> _Ledger:
        ledger = self._ledgers.get(session_id)
        if ledger is None:
            ledger = self._ledgers[session_id] = _Ledger()
            while len(self._ledgers) > _MAX_LEDGERS:
                self._ledgers.popitem(last=False)
        else:
            self._ledgers.move_to_end(session_id)
        return ledger

    async def _refresh(self, session_id: str) -> _Ledger:
        """Read the session's messages; new ones get the next numbers."""
        ledger = self._ledger(session_id)
        async with ledger.lock:
            path = f"/api/sessions/{_seg(session_id)}/messages"
            body = await self._http.json_as(_ANY, "GET", path)
            ledger.merge(session_id, _messages_of(body, f"GET {path}"))
        return ledger

    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        limit = max(1, min(limit, _MAX_EVENT_PAGE))
        ledger = self._ledger(session_id)
        if types or ledger.last <= after + limit:
            # Messages once numbered never change: only a range reaching past what is known
            # needs the gateway.
            ledger = await self._refresh(session_id)
        events = ledger.after(after)
        if types:
            wanted = set(types)
            events = [event for event in events if event.type in wanted]
        data = events[:limit]
        more = len(events) > limit
        return Page(data=data, next_cursor=str(data[-1].sequence) if more and data else None)

    async def get_event(self, session_id: str, event_id: str) -> Event:
        ledger = await self._refresh(session_id)
        for event in ledger.events:
            if event.id == event_id:
                return event
        raise NotFound(f"Not found: no message {neutralise_detail(event_id, 80)} in this session")

    # -- live -----------------------------------------------------------------------------------
    async def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        last = after

        async def fresh() -> list[Event]:
            nonlocal last
            ledger = await self._refresh(session_id)
            new = ledger.after(last)
            if new:
                last = new[-1].sequence
            return new

        async def on_frame(frame: _Frame) -> list[Event]:
            named = frame.session_id
            if named is not None and named != session_id:
                return []
            if frame.about_sessions and frame.deletes and named == session_id:
                raise NotFound("Not found: the session was deleted")
            if frame.about_sessions:
                # A session's own update may be the only news of its messages: re-read when it
                # counts more than are known.
                whole = frame.session or frame.data
                count = whole.get("message_count")
                known = self._ledger(session_id).last
                if named == session_id and isinstance(count, int) and count > known:
                    return await fresh()
                return []
            if not frame.about_messages:
                return []
            key = frame.message_key
            if key is not None and key in self._ledger(session_id).keys:
                return []  # already delivered
            return await fresh()

        async def stream_missing() -> None:
            await self.get_session(session_id)  # NotFound here: the session is gone

        follow = self._follow(
            catch_up=fresh,
            on_frame=on_frame,
            position=lambda event: event.sequence,
            after=after,
            on_state=on_state,
            stream_missing=stream_missing,
        )
        async with aclosing(follow):
            async for event in follow:
                yield event

    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        if after is not None:
            self._org_counter = max(self._org_counter, after)

        async def resync() -> list[OrgChange]:
            sessions = await self._fetch_sessions(None)
            if self._seen is None:
                # The first read is the baseline: nothing to compare it with.
                self._learn_all(sessions)
                return []
            return self._diff_all(sessions)

        async def on_frame(frame: _Frame) -> list[OrgChange]:
            if not (frame.about_sessions or frame.about_messages):
                return []
            named = frame.session_id
            if frame.about_sessions and frame.deletes and named is not None:
                return self._removed(named)
            whole = frame.session if frame.about_sessions else None
            if whole is not None:
                try:
                    return self._diff_one(session_from(whole, "GET /api/events"))
                except ProtocolError:
                    pass
            if named is None:
                return await resync()
            try:
                return self._diff_one(await self.get_session(named))
            except NotFound:
                return self._removed(named)

        async def stream_missing() -> None:
            return None

        follow = self._follow(
            catch_up=resync,
            on_frame=on_frame,
            position=lambda change: change.id,
            after=after,
            on_state=on_state,
            stream_missing=stream_missing,
        )
        async with aclosing(follow):
            async for change in follow:
                yield change

    def _change(self, kind: str, session: Session) -> OrgChange:
        self._org_counter += 1
        return OrgChange(
            id=self._org_counter,
            kind=kind,
            session_id=session.id,
            session=session,
            created_at=datetime.now(UTC),
        )

    def _diff_all(self, sessions: list[Session]) -> list[OrgChange]:
        before = self._seen or {}
        changes: list[OrgChange] = []
        current: dict[str, Session] = {}
        for session in sorted(sessions, key=_sort_key):
            old = before.get(session.id)
            session = _with_known_data(session, old)
            current[session.id] = session
            if old is None:
                changes.append(self._change("session.created", session))
            elif _changed(old, session):
                changes.append(self._change("session.updated", session))
        for session_id, old in before.items():
            if session_id not in current:
                changes.append(self._change("session.deleted", old))
        self._seen = current
        return changes

    def _diff_one(self, session: Session) -> list[OrgChange]:
        if self._seen is None:
            self._seen = {}
        old = self._seen.get(session.id)
        session = _with_known_data(session, old)
        self._seen[session.id] = session
        if old is None:
            return [self._change("session.created", session)]
        if _changed(old, session):
            return [self._change("session.updated", session)]
        return []

    def _removed(self, session_id: str) -> list[OrgChange]:
        old = (self._seen or {}).pop(session_id, None)
        if old is None:
            return []
        return [self._change("session.deleted", old)]

    def _follow(
        self,
        *,
        catch_up: Callable[[], Awaitable[list[T]]],
        on_frame: Callable[[_Frame], Awaitable[list[T]]],
        position: Callable[[T], int],
        after: int | None,
        on_state: WatchStateCallback | None,
        stream_missing: Callable[[], Awaitable[None]],
    ) -> AsyncGenerator[T, None]:
        """Follow the gateway's event stream forever (the shared reconnect loop): ``catch_up``
        after every (re)connection, for what happened while not connected, then ``on_frame``
        for each frame; polling with ``catch_up`` where there is no stream."""

        async def open_stream(
            _resume: Resume[T], state: StateReporter
        ) -> AsyncGenerator[T | RetryHint, None]:
            frames = self._frames(state)
            async with aclosing(frames):
                async for frame in frames:
                    if isinstance(frame, RetryHint):
                        yield frame
                        continue
                    # Open now, so nothing from here on is missed: read what came before.
                    items = await (catch_up() if frame is None else on_frame(frame))
                    for item in items:
                        yield item

        async def poll(_last: int | None) -> list[T]:
            return await catch_up()

        return self._live.watch(
            open_stream=open_stream,
            position=position,
            after=after,
            on_state=on_state,
            poll=poll,
            stream_missing=stream_missing,
            where="GET /api/events",
        )

    async def _frames(
        self, state: StateReporter
    ) -> AsyncGenerator[_Frame | RetryHint | None, None]:
        """One connection's frames, ``None`` first once it is open: the SSE stream, or the
        ``/ws`` subscription where the gateway refuses the stream (then for good: one refusal
        says what the gateway is). Neither: ``StreamMissing`` (the watch polls)."""
        if not self._sse_refused:
            try:
                sse = self._sse_frames(state)
                async with aclosing(sse):
                    async for frame in sse:
                        yield frame
                return
            except _SseRefused:
                self._sse_refused = True
                log.info("viben: no SSE stream at /api/events; subscribing on /ws instead")
        websocket = self._ws_frames(state)
        async with aclosing(websocket):
            async for frame in websocket:
                yield frame

    async def _sse_frames(
        self, state: StateReporter
    ) -> AsyncGenerator[_Frame | RetryHint | None, None]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        timeout = httpx.Timeout(
            self.config.timeout,
            connect=min(self.config.timeout, 5.0),
            read=self._stream_read_timeout,
        )
        try:
            async with self._http.stream(
                "GET", "/api/events", headers=headers, timeout=timeout
            ) as response:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    raise _SseRefused
                state(WatchState.LIVE, f"live from {self.display_name}")
                yield None
                async for sse in EventSource(response).aiter_sse():
                    if sse.retry is not None:
                        yield RetryHint(sse.retry / 1000)
                    frame = _frame_from(sse.event, sse.data) if sse.data else None
                    if frame is not None:
                        yield frame
        except BackendError as exc:
            # Only the stream's own reply is read here (re-reads run in the caller).
            if exc.status in (404, 405, 501):
                raise _SseRefused from exc
            raise

    async def _ws_frames(
        self, state: StateReporter
    ) -> AsyncGenerator[_Frame | RetryHint | None, None]:
        """``/ws``: subscribe to the sessions and messages channels, then read
        ``{channel, type, data, timestamp}`` messages (the vendor notes' shape)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        base = self._http.base_url
        url = base.copy_with(
            scheme="wss" if base.scheme == "https" else "ws",
            path=base.path.rstrip("/") + "/ws",
            query=None,
        )
        where = "WebSocket /ws"
        try:
            async with connect(
                str(url),
                open_timeout=min(self.config.timeout, 5.0),
                # As the HTTP client: no proxy from the environment, our user agent.
                proxy=None,
                user_agent_header=USER_AGENT,
                ping_interval=min(20.0, self._stream_read_timeout),
                ping_timeout=min(20.0, self._stream_read_timeout),
                max_size=4 * 1024 * 1024,
            ) as websocket:
                await websocket.send(json.dumps({"type": "subscribe", "channels": WS_CHANNELS}))
                state(WatchState.LIVE, f"live from {self.display_name} (WebSocket)")
                yield None
                async for message in websocket:
                    text = (
                        message.decode("utf-8", "replace")
                        if isinstance(message, bytes)
                        else message
                    )
                    frame = _frame_from("", text)
                    if frame is not None:
                        yield frame
        except InvalidStatus as exc:
            status = exc.response.status_code
            # The gateway has no keys, so no refusal is about credentials: any but a rate
            # limit means no subscription here.
            if (400 <= status < 500 and status != 429) or status == 501:
                raise StreamMissing from exc
            body = bytes(exc.response.body or b"")
            response = httpx.Response(
                status, headers=list(exc.response.headers.raw_items()), content=body
            )
            raise error_from_response(response, body, where, self._http.redact) from None
        except InvalidHandshake as exc:
            raise StreamMissing from exc
        except ConnectionClosed as exc:
            raise ProtocolError(
                f"The gateway closed the WebSocket ({neutralise_detail(str(exc), 120)}; {where})"
            ) from None
        except (OSError, TimeoutError) as exc:
            text = self._http.redact(neutralise_detail(str(exc) or type(exc).__name__, 160))
            raise ConnectError(f"Cannot reach the gateway: {text} ({where})") from None


def _session_body(body: Any, where: str) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("session"), dict) and "id" not in body:
        inner: dict[str, Any] = body["session"]
        return inner
    if not isinstance(body, dict):
        raise ProtocolError(f"The gateway's reply is not a session ({where})")
    return body
