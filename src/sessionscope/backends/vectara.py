"""The backend for Vectara's Agents API v2 (``/v2/agents/{agent_key}/sessions...``), over httpx.

Written from ``vectara-agent-sessions.txt`` and the agent paths of ``vectara-openapi.yaml``.

SDK: the ``vectara`` package on PyPI pins ``PyYAML==6.0.2`` and caps ``pydantic-core`` below the
release this project uses, so it cannot be installed beside it; this module speaks the documented
HTTP API with plain httpx instead (the shared ``HttpClient``: retries, typed errors, redaction).

How the platform's shapes map onto the console's:

* Auth: the key goes in the ``x-api-key`` header. Errors ``{messages[], request_id,
  field_errors}`` become the typed errors, with the messages and the request id (what Vectara
  support asks for) in the operator's message.
* Sessions belong to an agent. With the ``agent_key`` option a session's id is its session key.
  Without it the backend lists the account's agents (``GET /v2/agents``) and merges every agent's
  sessions newest first, and a session's id is ``agent_key/session_key``: an operator watching an
  account sees everything that happens in it without first having to know which agent to look at,
  and the console needs no extra screen to pick one. Lists page with ``limit`` and ``page_key``
  (the next key in ``metadata.page_key``) behind our opaque cursor.
* Status: ``unstarted`` -> created, ``running`` -> active, ``stopped`` -> idle; a session that is
  not ``enabled`` (it accepts no input) shows as paused. The platform's own fields (``description``,
  ``current_step_name``, ``enabled``, ``tti_minutes``, the raw ``status``) stay on the ``Session``
  as extra fields; session secrets are never copied (only their names).
* Events have ``aev_`` ids and no sequence: the backend numbers them 1, 2, 3... in the platform's
  order, the first time it sees each one, and keeps the platform's page keys to page on. The same
  event keeps its number for the life of the backend instance. Events are always read with
  ``include_hidden=true`` so that numbering does not depend on what is hidden. Which of them are
  hidden: their ``hide_reason`` where the platform sends one; the spec's ``AgentEvent`` has no
  such field, so while none has been seen the same range is also read with
  ``include_hidden=false`` and what that leaves out is hidden. Hidden events are left out unless
  ``include_hidden`` is asked for.
* Live: the platform has no subscription to an existing session, so ``watch_session`` polls the
  events from the last page read (the newest event id known is the cursor: only events after it
  are new) every ``poll_interval`` seconds, and reports ``polling every N s``. ``watch_org``
  polls the newest sessions the same way and reports the ones created or changed.
* Input: ``send_message`` posts an ``input_message`` with ``stream_response: true`` and returns as
  soon as the platform has recorded it; the rest of the reply is read in the background (the poll
  shows its events). ``cancel_turn`` posts an ``interrupt``.
* Client tool calls: ``GET .../outstanding_client_tool_calls`` carries secret-derived argument
  values unmasked, so every argument is marked secret (masked on screen until revealed), each
  value is added to the redaction of every error message and log line, and inside events
  (``client_tool_pending``) the arguments take the same secret-flagged shape. The answer goes
  back as a ``tool_output`` input.
* Artifacts: the content comes base64 inside the single GET's JSON. ``read_artifact`` scans that
  reply as it arrives and decodes the ``data`` member piece by piece, never holding more than a
  read chunk, and checks ``checksum_sha256`` over the whole content before its last piece is
  handed over (a mismatch raises ``ProtocolError``).

Options (``BackendConfig.options``): ``agent_key``; ``poll_interval`` (seconds, default the
config's 2); ``page_size`` (platform page size, 1-100, default 100); the shared ``retry_*``,
``reconnect_base``/``reconnect_max``, ``max_connections``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from sessionscope.backends._http import (
    Backoff,
    HttpClient,
    error_from_transport,
    neutralise_detail,
    option,
    parse_json_as,
)
from sessionscope.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capability,
    ConnectError,
    NotFound,
    ProtocolError,
    ServerError,
    SessionQuery,
    ValidationFailed,
    WatchStateCallback,
)
from sessionscope.backends.live import (
    POLL_PAGE,
    LiveWatch,
)
from sessionscope.models import (
    Artifact,
    Event,
    OrgChange,
    Page,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    ToolCall,
    ToolCallArgument,
    ToolResult,
    Usage,
)

log = logging.getLogger("sessionscope.backends.vectara")

DEFAULT_URL = "https://api.vectara.io"
_AGENTS = "/v2/agents"
#: The platform's largest page (``limit`` maximum 100 on every list).
_MAX_PLATFORM_PAGE = 100
#: A listing that follows page keys stops after this many pages in one call (a server handing
#: out endless keys must not hold the console).
_MAX_PAGES_PER_CALL = 200
#: Non-content members of an artifact reply are kept at most this large.
_MAX_ARTIFACT_META_BYTES = 1024 * 1024

#: Every event type the platform's documents and SDK name.
EVENT_TYPES: tuple[str, ...] = (
    "input_message",
    "tool_input",
    "tool_output",
    "thinking",
    "agent_output",
    "structured_output",
    "artifact_upload",
    "step_transition",
    "step_transition_limit_exceeded",
    "compaction",
    "image_read",
    "context_limit_exceeded",
    "session_interrupted",
    "skill_load",
    "client_tool_pending",
)

_STATUS = {
    "unstarted": SessionStatus.CREATED,
    "running": SessionStatus.ACTIVE,
    "stopped": SessionStatus.IDLE,
}


# -- wire shapes (only what we rely on; everything else is kept as extra fields) ---------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class _ListMetadata(_Wire):
    page_key: str | None = None


class _WireAgent(_Wire):
    key: str


class _WireAgents(_Wire):
    agents: list[_WireAgent]
    metadata: _ListMetadata = Field(default_factory=_ListMetadata)


class _WireSession(_Wire):
    key: str
    agent_key: str | None = None
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    current_step_name: str | None = None
    enabled: bool | None = None
    status: str | None = None
    tti_minutes: int | None = None
    created_at: datetime | None = None


class _WireSessions(_Wire):
    sessions: list[_WireSession]
    metadata: _ListMetadata = Field(default_factory=_ListMetadata)


class _WireEvent(_Wire):
    id: str
    type: str = "unknown"
    created_at: datetime | None = None
    session_key: str | None = None


class _WireEvents(_Wire):
    events: list[dict[str, Any]]
    metadata: _ListMetadata = Field(default_factory=_ListMetadata)


class _WireAgentResponse(_Wire):
    events: list[dict[str, Any]] = Field(default_factory=list)
    session_key: str | None = None


class _WireToolCall(_Wire):
    event_id: str
    tool_name: str
    tool_configuration_name: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)


class _WireToolCalls(_Wire):
    client_tool_calls: list[_WireToolCall]


class _WireArtifact(_Wire):
    artifact_id: str
    filename: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None
    checksum_sha256: str | None = None
    metadata: dict[str, Any] | None = None
    description: str | None = None
    ttl_days: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class _WireArtifacts(_Wire):
    artifacts: list[_WireArtifact]
    metadata: _ListMetadata = Field(default_factory=_ListMetadata)


_AGENTS_PAGE = TypeAdapter(_WireAgents)
_SESSIONS_PAGE = TypeAdapter(_WireSessions)
_SESSION = TypeAdapter(_WireSession)
_EVENTS_PAGE = TypeAdapter(_WireEvents)
_EVENT = TypeAdapter(_WireEvent)
_ANY_DICT = TypeAdapter(dict[str, Any])
_AGENT_RESPONSE = TypeAdapter(_WireAgentResponse)
_TOOL_CALLS = TypeAdapter(_WireToolCalls)
_ARTIFACTS_PAGE = TypeAdapter(_WireArtifacts)
_ARTIFACT = TypeAdapter(_WireArtifact)


def _seg(value: str) -> str:
    """An id as one path segment: ids come from servers and agents, so ``../`` stays literal."""
    return quote(str(value), safe="")


def _encode_cursor(state: Any) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error):
        raise ValidationFailed("The page cursor is not one this console handed out") from None


def _leaf_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaf_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaf_strings(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_arguments(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool call's arguments as ``ToolCallArgument`` dicts, every one flagged secret (the
    platform does not say which values are secret-derived)."""
    return [
        {"name": str(name), "value": value, "secret": True} for name, value in arguments.items()
    ]


@dataclass
class _Anchors:
    """Where the pages of one platform listing start: (sequence of the page's first event, the
    page key that fetches that page), ascending."""

    pages: list[tuple[int, str | None]] = field(default_factory=list)

    def anchor(self, first_sequence: int, key: str | None) -> None:
        for index, (sequence, _known) in enumerate(self.pages):
            if sequence == first_sequence:
                self.pages[index] = (sequence, key)
                return
            if sequence > first_sequence:
                self.pages.insert(index, (first_sequence, key))
                return
        self.pages.append((first_sequence, key))

    def start_for(self, after: int) -> str | None:
        """The page key of the last page starting at or before the event after ``after``."""
        key: str | None = None
        for sequence, known in self.pages:
            if sequence > after + 1:
                break
            key = known
        return key


@dataclass
class _EventLog:
    """What the backend knows of one session's events: the local numbering, and the page keys
    it can page on from."""

    sequence_by_id: dict[str, int] = field(default_factory=dict)
    #: Pages of the whole listing (``include_hidden=true``), which the numbering follows.
    every: _Anchors = field(default_factory=_Anchors)
    #: Pages of the visible listing, read only while the platform does not flag hidden events.
    visible: _Anchors = field(default_factory=_Anchors)
    #: Visibility this backend set itself (event id -> hide reason, ``None`` = unhidden).
    visibility: dict[str, str | None] = field(default_factory=dict)
    #: The platform's events carry ``hide_reason`` (seen on at least one of them).
    flags_hidden: bool = False
    last_sequence: int = 0

    def number(self, event_id: str) -> int:
        sequence = self.sequence_by_id.get(event_id)
        if sequence is None:
            self.last_sequence += 1
            sequence = self.sequence_by_id[event_id] = self.last_sequence
        return sequence


class VectaraBackend(Backend):
    name = "vectara"
    platform_label = "Vectara"
    #: A session has a name, metadata and a first message; the agent is asked for only when
    #: no ``agent_key`` option chooses it (set per instance).
    create_fields = frozenset({"title", "metadata", "prompt"})
    #: The platform reports the agent and the last call's tokens; no model, cost, variables,
    #: event count or pending actions.
    header_details = frozenset({"agent", "tokens"})
    capabilities = frozenset(
        {
            Capability.LIST_SESSIONS,
            Capability.CREATE_SESSION,
            Capability.UPDATE_SESSION,
            Capability.DELETE,
            Capability.MESSAGES,
            Capability.CANCEL_TURN,
            Capability.EVENTS,
            Capability.HIDE_EVENTS,
            Capability.LIVE_STREAM,
            Capability.ORG_STREAM,
            Capability.ARTIFACTS,
            Capability.TOOL_CALLS,
        }
    )

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self._http = HttpClient(config, auth_header="x-api-key", auth_scheme="")
        url = self._http.base_url
        port = url.port or (443 if url.scheme == "https" else 80)
        default_port = port == (443 if url.scheme == "https" else 80)
        self._display_name = url.host if default_port else f"{url.host}:{port}"
        agent_key = config.options.get("agent_key")
        self.agent_key: str | None = str(agent_key) if agent_key else None
        if not self.agent_key:
            self.create_fields = self.create_fields | {"agent_id"}
        self._page_size = max(1, min(_MAX_PLATFORM_PAGE, int(option(config, "page_size", 100))))
        # The platform has no subscription to an existing session: every watch polls.
        self._live = LiveWatch(
            display_name=self._display_name,
            reconnect=Backoff(
                base=option(config, "reconnect_base", 0.5),
                cap=option(config, "reconnect_max", 15.0),
            ),
            # An operator's ``--option poll_interval=5`` (or profile option) wins.
            poll_interval=option(config, "poll_interval", config.poll_interval),
            redact=self._http.redact,
            force_poll=True,
        )
        self._logs: dict[str, _EventLog] = {}
        self._agents: list[str] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"VectaraBackend({self._display_name})"

    @property
    def display_name(self) -> str:
        return self._display_name

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._http.aclose()

    # -- ids ------------------------------------------------------------------------------------
    def _session_id(self, agent_key: str, session_key: str) -> str:
        return session_key if self.agent_key else f"{agent_key}/{session_key}"

    def _locate(self, session_id: str) -> tuple[str, str]:
        if self.agent_key:
            return self.agent_key, session_id
        agent_key, slash, session_key = session_id.partition("/")
        if not slash or not agent_key or not session_key:
            raise NotFound(
                f"Not found: {neutralise_detail(session_id, 80)!r} is not an agent_key/session_key "
                "pair (set the agent_key option to use bare session keys)"
            )
        return agent_key, session_key

    def _session_path(self, session_id: str) -> str:
        agent_key, session_key = self._locate(session_id)
        return f"{_AGENTS}/{_seg(agent_key)}/sessions/{_seg(session_key)}"

    # -- sessions -------------------------------------------------------------------------------
    def _session(self, wire: _WireSession, agent_key: str) -> Session:
        agent = wire.agent_key or agent_key
        status = _STATUS.get(wire.status or "", SessionStatus.IDLE)
        if wire.enabled is False:
            status = SessionStatus.PAUSED
        extra = dict(wire.model_extra or {})
        secrets = extra.pop("secrets", None)
        usage_raw = extra.get("session_context_usage")
        usage = Usage()
        if isinstance(usage_raw, dict):
            usage = Usage(
                **{
                    name: usage_raw[name]
                    for name in ("input_tokens", "output_tokens", "total_tokens")
                    if isinstance(usage_raw.get(name), int)
                }
            )
        log_ = self._logs.get(self._session_id(agent, wire.key))
        fields: dict[str, Any] = {
            "id": self._session_id(agent, wire.key),
            "title": wire.name or "",
            "agent_id": agent,
            "status": status,
            "metadata": wire.metadata or {},
            "preview": wire.description,
            "usage": usage,
            "last_sequence": log_.last_sequence if log_ else 0,
            "description": wire.description,
            "current_step_name": wire.current_step_name,
            "enabled": wire.enabled if wire.enabled is not None else True,
            "platform_status": wire.status,
            "tti_minutes": wire.tti_minutes,
        }
        if wire.created_at is not None:
            fields["created_at"] = fields["updated_at"] = wire.created_at
        if isinstance(secrets, dict):
            fields["secret_names"] = sorted(map(str, secrets))
        for name, value in extra.items():
            fields.setdefault(name, value)
        return Session(**fields)

    async def _agent_keys(self) -> list[str]:
        if self._agents is None:
            keys: list[str] = []
            page_key: str | None = None
            seen: set[str] = set()
            for _ in range(_MAX_PAGES_PER_CALL):
                params: dict[str, Any] = {"limit": _MAX_PLATFORM_PAGE}
                if page_key:
                    params["page_key"] = page_key
                page = await self._http.json_as(_AGENTS_PAGE, "GET", _AGENTS, params=params)
                keys.extend(agent.key for agent in page.agents)
                page_key = page.metadata.page_key
                if not page_key or not page.agents or page_key in seen:
                    break
                seen.add(page_key)
            self._agents = list(dict.fromkeys(keys))
        return self._agents

    async def _sessions_page(
        self, agent_key: str, page_key: str | None, limit: int, query: SessionQuery | None
    ) -> _WireSessions:
        params: dict[str, Any] = {"limit": max(1, min(limit, _MAX_PLATFORM_PAGE))}
        if page_key:
            params["page_key"] = page_key
        if query is not None and query.text:
            # The platform filters by a regular expression over names and descriptions.
            params["filter"] = re.escape(query.text)
        return await self._http.json_as(
            _SESSIONS_PAGE, "GET", f"{_AGENTS}/{_seg(agent_key)}/sessions", params=params
        )

    @staticmethod
    def _keep(session: Session, query: SessionQuery | None) -> bool:
        # The platform filters by text only; status and agent are applied to each page.
        if query is None:
            return True
        if query.status is not None and session.status is not query.status:
            return False
        return not (query.agent_id and session.agent_id != query.agent_id)

    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        if query is not None and query.order == "oldest":
            raise self._unsupported(Capability.OLDEST_FIRST)
        limit = max(1, min(limit, _MAX_PLATFORM_PAGE))
        if self.agent_key:
            page = await self._sessions_page(self.agent_key, cursor, limit, query)
            sessions = [self._session(wire, self.agent_key) for wire in page.sessions]
            next_key = page.metadata.page_key if page.sessions else None
            return Page(
                data=[s for s in sessions if self._keep(s, query)],
                next_cursor=next_key or None,
            )
        return await self._list_merged(query, cursor, limit)

    async def _list_merged(
        self, query: SessionQuery | None, cursor: str | None, limit: int
    ) -> Page[Session]:
        """Every agent's sessions, newest first: a k-way merge whose cursor holds, per agent not
        yet exhausted, the page key of its current page and how many of that page were shown."""
        if cursor:
            state = _decode_cursor(cursor)
            if not isinstance(state, dict):
                raise ValidationFailed("The page cursor is not one this console handed out")
        else:
            keys = await self._agent_keys()
            if query is not None and query.agent_id:
                keys = [key for key in keys if key == query.agent_id]
            state = {key: [None, 0] for key in keys}
        pages: dict[str, tuple[list[Session], str | None]] = {}
        for agent_key, (page_key, _skip) in state.items():
            page = await self._sessions_page(agent_key, page_key, limit, query)
            sessions = [self._session(wire, agent_key) for wire in page.sessions]
            pages[agent_key] = (sessions, page.metadata.page_key if page.sessions else None)
        # Taking an item older than the last one on a page that has a next page could put it
        # ahead of that next page's newer items: stop at the newest such boundary.
        boundary: datetime | None = None
        for agent_key, (sessions, next_key) in pages.items():
            skip = int(state[agent_key][1])
            if next_key and sessions[skip:]:
                last = sessions[-1].created_at
                boundary = last if boundary is None or last > boundary else boundary
        candidates = [
            (session, agent_key)
            for agent_key, (sessions, _next) in pages.items()
            for session in sessions[int(state[agent_key][1]) :]
        ]
        candidates.sort(key=lambda item: item[0].created_at, reverse=True)
        taken: list[tuple[Session, str]] = []
        for session, agent_key in candidates:
            if len(taken) >= limit or (boundary is not None and session.created_at < boundary):
                break
            taken.append((session, agent_key))
        next_state: dict[str, list[Any]] = {}
        for agent_key, (sessions, next_key) in pages.items():
            page_key, skip = state[agent_key]
            shown = int(skip) + sum(1 for _s, key in taken if key == agent_key)
            if shown < len(sessions):
                next_state[agent_key] = [page_key, shown]
            elif next_key:
                next_state[agent_key] = [next_key, 0]
        return Page(
            data=[session for session, _key in taken if self._keep(session, query)],
            next_cursor=_encode_cursor(next_state) if next_state else None,
        )

    async def iter_sessions(
        self, query: SessionQuery | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Session]:
        seen_cursors: set[str] = set()
        cursor: str | None = None
        while True:
            page = await self.list_sessions(query, cursor=cursor, limit=page_size)
            for session in page.data:
                yield session
            if not page.next_cursor:
                return
            if page.next_cursor in seen_cursors:
                raise ProtocolError(
                    "The server repeated a page key; stopped paging to avoid a loop "
                    "(GET /v2/agents/…/sessions)"
                )
            seen_cursors.add(page.next_cursor)
            cursor = page.next_cursor

    async def get_session(self, session_id: str) -> Session:
        agent_key, _key = self._locate(session_id)
        wire = await self._http.json_as(_SESSION, "GET", self._session_path(session_id))
        return self._session(wire, agent_key)

    async def create_session(self, spec: SessionCreate) -> Session:
        agent_key = spec.agent_id or self.agent_key
        if not agent_key:
            agents = await self._agent_keys()
            if len(agents) != 1:
                raise ValidationFailed(
                    "Choose the agent the session is for (agent_id)",
                    errors=[
                        {
                            "field": "agent_id",
                            "message": f"required: the account has {len(agents)} agents",
                        }
                    ],
                )
            agent_key = agents[0]
        body: dict[str, Any] = {"metadata": spec.metadata}
        if spec.title:
            body["name"] = spec.title
        extra = spec.model_extra or {}
        for name in ("key", "description", "enabled", "tti_minutes"):
            if extra.get(name) is not None:
                body[name] = extra[name]
        wire = await self._http.json_as(
            _SESSION, "POST", f"{_AGENTS}/{_seg(agent_key)}/sessions", json_body=body
        )
        session = self._session(wire, agent_key)
        if spec.prompt:
            await self.send_message(session.id, spec.prompt)
        return session

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        agent_key, _key = self._locate(session_id)
        body: dict[str, Any] = {}
        if update.title is not None:
            body["name"] = update.title
        if update.metadata is not None:
            body["metadata"] = update.metadata
        extra = update.model_extra or {}
        if extra.get("description") is not None:
            body["description"] = str(extra["description"])
        if isinstance(extra.get("enabled"), bool):
            body["enabled"] = extra["enabled"]
        elif update.status is not None:
            # Pausing or closing stops the session taking input; anything else re-enables it.
            body["enabled"] = update.status not in (
                SessionStatus.PAUSED,
                SessionStatus.CLOSED,
                SessionStatus.COMPLETED,
                SessionStatus.FAILED,
            )
        wire = await self._http.json_as(
            _SESSION,
            "PATCH",
            self._session_path(session_id),
            json_body=body,
            idempotent=True,  # the same partial update twice leaves the same session
        )
        return self._session(wire, agent_key)

    async def delete_session(self, session_id: str) -> None:
        await self._http.request("DELETE", self._session_path(session_id))
        self._logs.pop(session_id, None)

    # -- events ---------------------------------------------------------------------------------
    def _log(self, session_id: str) -> _EventLog:
        found = self._logs.get(session_id)
        if found is None:
            found = self._logs[session_id] = _EventLog()
        return found

    def _event(
        self,
        session_id: str,
        raw: dict[str, Any],
        sequence: int,
        visible: set[str] | None = None,
    ) -> Event:
        wire = _EVENT.validate_python(raw)
        payload = {
            key: value
            for key, value in raw.items()
            if key not in ("id", "type", "created_at", "session_key", "hide_reason")
        }
        if wire.type == "client_tool_pending" and isinstance(payload.get("pending_calls"), list):
            payload["pending_calls"] = [self._mask_call(call) for call in payload["pending_calls"]]
        log_ = self._log(session_id)
        hide_reason: str | None
        if "hide_reason" in raw:
            reason = raw.get("hide_reason")
            hide_reason = str(reason) if reason else None
        elif visible is not None:
            # Left out of the visible listing: hidden (the reason is known only if we hid it).
            hidden = wire.id not in visible
            hide_reason = (log_.visibility.get(wire.id) or "hidden") if hidden else None
        else:
            hide_reason = log_.visibility.get(wire.id)
        fields: dict[str, Any] = {
            "id": wire.id,
            "session_id": session_id,
            "sequence": sequence,
            "type": wire.type,
            "payload": payload,
            "hidden": hide_reason is not None,
            "hide_reason": hide_reason,
        }
        if wire.created_at is not None:
            fields["created_at"] = wire.created_at
        return Event(**fields)

    def _mask_call(self, call: Any) -> Any:
        if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
            return call
        for value in _leaf_strings(call["arguments"]):
            self._http.redact.add(value)
        return {**call, "arguments": secret_arguments(call["arguments"])}

    def _events_path(self, session_id: str) -> str:
        return self._session_path(session_id) + "/events"

    async def _walk(
        self, session_id: str, *, hidden: bool, after: int, enough: Callable[[int, int], bool]
    ) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        """Read one platform listing (with or without hidden events) from the page that holds
        the event after ``after``, numbering events first seen; ``(sequence, event)`` of those
        after ``after``, and whether pages remain. ``enough(count, highest)`` stops early."""
        path = self._events_path(session_id)
        log_ = self._log(session_id)
        anchors = log_.every if hidden else log_.visible
        key = anchors.start_for(after) if after > 0 else None
        seen_keys: set[str] = set()
        found: list[tuple[int, dict[str, Any]]] = []
        highest = after
        for _ in range(_MAX_PAGES_PER_CALL):
            params: dict[str, Any] = {
                "limit": self._page_size,
                "include_hidden": "true" if hidden else "false",
            }
            if key:
                params["page_key"] = key
            page = await self._http.json_as(_EVENTS_PAGE, "GET", path, params=params)
            first: int | None = None
            for raw in page.events:
                try:
                    event_id = _EVENT.validate_python(raw).id
                except ValidationError:
                    raise ProtocolError(
                        f"The server sent an event without an id (GET {path})"
                    ) from None
                if "hide_reason" in raw:
                    log_.flags_hidden = True
                sequence = log_.number(event_id)
                first = sequence if first is None else first
                highest = max(highest, sequence)
                if sequence > after:
                    found.append((sequence, raw))
            if first is not None:
                anchors.anchor(first, key)
            next_key = page.metadata.page_key
            if not next_key or not page.events or next_key in seen_keys or next_key == key:
                return found, False
            seen_keys.add(next_key)
            key = next_key
            if enough(len(found), highest):
                return found, True
        return found, True

    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        log_ = self._log(session_id)
        limit = max(1, limit)
        found, more = await self._walk(
            session_id, hidden=True, after=after, enough=lambda count, _high: count >= limit
        )
        found.sort(key=lambda item: item[0])
        if len(found) > limit:
            found, more = found[:limit], True
        visible: set[str] | None = None
        if found and not log_.flags_hidden:
            # The platform does not say which events are hidden (its AgentEvent schema has no
            # such field): what the visible listing leaves out is hidden.
            upto = found[-1][0]
            shown, _more = await self._walk(
                session_id, hidden=False, after=after, enough=lambda _count, high: high >= upto
            )
            visible = {str(raw.get("id")) for _sequence, raw in shown}
        events = [self._event(session_id, raw, sequence, visible) for sequence, raw in found]
        data = [
            event
            for event in events
            if (include_hidden or not event.hidden) and (not types or event.type in types)
        ]
        next_cursor = str(found[-1][0]) if more and found else None
        return Page(data=data, next_cursor=next_cursor)

    async def iter_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        page_size: int = 1000,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> AsyncIterator[Event]:
        # A page may hold only events filtered out and still not be the last: page on by the
        # cursor, not by whether the page had rows.
        while True:
            page = await self.list_events(
                session_id, after=after, limit=page_size, types=types, include_hidden=include_hidden
            )
            for event in page.data:
                yield event
            if not page.next_cursor:
                return
            after = int(page.next_cursor)

    async def _sequence_of(self, session_id: str, event_id: str) -> int:
        log_ = self._log(session_id)
        if event_id not in log_.sequence_by_id:
            await self._catch_up(session_id)
        return log_.sequence_by_id.get(event_id, 0)

    async def _catch_up(self, session_id: str) -> None:
        """Read every event not numbered yet, so new ones get their numbers in platform order."""
        log_ = self._log(session_id)
        while True:
            page = await self.list_events(
                session_id, after=log_.last_sequence, limit=1000, include_hidden=True
            )
            if not page.next_cursor:
                return

    def _event_path(self, session_id: str, event_id: str) -> str:
        return f"{self._events_path(session_id)}/{_seg(event_id)}"

    async def get_event(self, session_id: str, event_id: str) -> Event:
        raw = await self._http.json_as(_ANY_DICT, "GET", self._event_path(session_id, event_id))
        return self._event(session_id, raw, await self._sequence_of(session_id, event_id))

    async def delete_event(self, session_id: str, event_id: str) -> None:
        await self._http.request("DELETE", self._event_path(session_id, event_id))

    async def _set_visibility(self, session_id: str, event_id: str, hide: bool) -> Event:
        verb = "hide" if hide else "unhide"
        raw = await self._http.json_as(
            _ANY_DICT, "POST", f"{self._event_path(session_id, event_id)}/{verb}", idempotent=True
        )
        log_ = self._log(session_id)
        log_.visibility[event_id] = (raw.get("hide_reason") or "manual") if hide else None
        if "hide_reason" not in raw:
            raw = {**raw, "hide_reason": log_.visibility[event_id]}
        return self._event(session_id, raw, await self._sequence_of(session_id, event_id))

    async def hide_event(self, session_id: str, event_id: str) -> Event:
        return await self._set_visibility(session_id, event_id, hide=True)

    async def unhide_event(self, session_id: str, event_id: str) -> Event:
        return await self._set_visibility(session_id, event_id, hide=False)

    # -- input ----------------------------------------------------------------------------------
    async def send_message(self, session_id: str, content: str) -> Event:
        body = {
            "type": "input_message",
            "messages": [{"type": "text", "content": content}],
            "stream_response": True,
        }
        raw = await self._post_input(session_id, body, wanted="input_message")
        if raw is None:
            raise ProtocolError(
                f"The server did not report the message it recorded "
                f"(POST {self._events_path(session_id)})"
            )
        event_id = str(raw.get("id", ""))
        return self._event(session_id, raw, await self._sequence_of(session_id, event_id))

    async def cancel_turn(self, session_id: str) -> str:
        """Cancel the agent's current operation: an ``interrupt`` input."""
        await self._http.request(
            "POST", self._events_path(session_id), json_body={"type": "interrupt"}
        )
        return "interrupt sent"

    async def _post_input(
        self, session_id: str, body: dict[str, Any], *, wanted: str
    ) -> dict[str, Any] | None:
        """Post an input; return the first reply event of type ``wanted`` as soon as it is in.

        A streamed reply runs as long as the agent works: the rest of it is read in the
        background (closing it early could cut the agent's turn short), and the poll shows its
        events. A JSON reply (a server that does not stream) is read whole."""
        path = self._events_path(session_id)
        found: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._read_input_reply(path, body, wanted, found))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return await found

    async def _read_input_reply(
        self,
        path: str,
        body: dict[str, Any],
        wanted: str,
        found: asyncio.Future[dict[str, Any] | None],
    ) -> None:
        where = f"POST {path}"
        timeout = httpx.Timeout(self.config.timeout, read=max(300.0, self.config.timeout))

        def settle(value: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
            if found.done():
                return
            if error is not None:
                found.set_exception(error)
            else:
                found.set_result(value)

        try:
            async with self._http.stream(
                "POST",
                path,
                json=body,
                # The platform streams by the body's stream_response, not by Accept: both
                # are acceptable, JSON first for servers (mocks) that choose by Accept.
                headers={"Accept": "application/json, text/event-stream"},
                timeout=timeout,
            ) as response:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    data = await response.aread()
                    reply = parse_json_as(
                        _AGENT_RESPONSE, data, where, response.headers.get("content-type", "")
                    )
                    settle(next((e for e in reply.events if e.get("type") == wanted), None))
                    return
                async for sse in EventSource(response).aiter_sse():
                    if found.done() or not sse.data:
                        continue
                    try:
                        frame = json.loads(sse.data)
                    except ValueError:
                        continue
                    if not isinstance(frame, dict):
                        continue
                    kind = frame.get("type") or sse.event
                    if kind == wanted and frame.get("id"):
                        settle(frame)
                    elif kind == "error":
                        detail = neutralise_detail(str(frame.get("messages") or frame))
                        settle(error=ServerError(f"The agent failed: {detail} ({where})"))
                    elif kind == "end":
                        settle(None)
                settle(None)
        except BackendError as exc:
            settle(error=exc)
        except httpx.TransportError as exc:
            settle(error=error_from_transport(exc, where, self._http.redact))
        except SSEError as exc:
            settle(error=ProtocolError(f"The server's reply stream is malformed ({exc}; {where})"))
        except asyncio.CancelledError:
            settle(error=ConnectError(f"The reply was abandoned ({where})"))
            raise

    # -- client tool calls ----------------------------------------------------------------------
    async def list_tool_calls(self, session_id: str) -> list[ToolCall]:
        reply = await self._http.json_as(
            _TOOL_CALLS, "GET", self._session_path(session_id) + "/outstanding_client_tool_calls"
        )
        calls: list[ToolCall] = []
        for call in reply.client_tool_calls:
            for value in _leaf_strings(call.arguments):
                self._http.redact.add(value)
            calls.append(
                ToolCall(
                    id=call.event_id,
                    session_id=session_id,
                    tool=call.tool_name,
                    arguments=[
                        ToolCallArgument(name=name, value=value, secret=True)
                        for name, value in call.arguments.items()
                    ],
                    tool_configuration_name=call.tool_configuration_name,
                )
            )
        return calls

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        # The platform has no idempotency key: a POST is sent once and never retried after it
        # may have reached the server (HttpClient re-sends only what never left).
        output: dict[str, Any]
        if result.error is not None:
            output = {"event_id": call_id, "type": "error", "error": result.error}
        else:
            value = result.output
            # The API takes an object; anything else is wrapped so nothing is lost.
            wrapped = value if isinstance(value, dict) else {"result": value}
            output = {"event_id": call_id, "type": "success", "output": wrapped}
        await self._http.request(
            "POST",
            self._events_path(session_id),
            json_body={"type": "tool_output", "tool_outputs": [output]},
        )
        failed = result.error is not None
        status: Literal["succeeded", "failed"] = "failed" if failed else "succeeded"
        return ToolCall(
            id=call_id,
            session_id=session_id,
            tool=await self._tool_name(session_id, call_id),
            status=status,
            result=None if failed else result.output,
            error=result.error,
        )

    async def _tool_name(self, session_id: str, call_id: str) -> str:
        try:
            event = await self.get_event(session_id, call_id)
        except BackendError:
            return "tool"
        name = event.payload.get("tool_name")
        return str(name) if name else "tool"

    # -- artifacts ------------------------------------------------------------------------------
    def _artifact(self, session_id: str, wire: _WireArtifact) -> Artifact:
        fields: dict[str, Any] = {
            "id": wire.artifact_id,
            "session_id": session_id,
            "name": wire.filename or wire.artifact_id,
            "mime_type": wire.mime_type or "application/octet-stream",
            "size_bytes": max(0, wire.size_bytes or 0),
            "checksum_sha256": wire.checksum_sha256,
            "description": wire.description,
            "metadata": wire.metadata or {},
            "ttl_days": wire.ttl_days,
            "updated_at": wire.updated_at,
        }
        if wire.created_at is not None:
            fields["created_at"] = wire.created_at
        for name, value in (wire.model_extra or {}).items():
            if name != "data":
                fields.setdefault(name, value)
        return Artifact(**fields)

    def _artifact_path(self, session_id: str, artifact_id: str) -> str:
        return f"{self._session_path(session_id)}/artifacts/{_seg(artifact_id)}"

    async def list_artifacts(
        self, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        params: dict[str, Any] = {"limit": max(1, min(limit, _MAX_PLATFORM_PAGE))}
        if cursor:
            params["page_key"] = cursor
        page = await self._http.json_as(
            _ARTIFACTS_PAGE, "GET", self._session_path(session_id) + "/artifacts", params=params
        )
        next_key = page.metadata.page_key if page.artifacts else None
        return Page(
            data=[self._artifact(session_id, wire) for wire in page.artifacts],
            next_cursor=next_key or None,
        )

    async def get_artifact(self, session_id: str, artifact_id: str) -> Artifact:
        # The one GET carries the content too: scan past it without keeping it.
        path = self._artifact_path(session_id, artifact_id)
        async with self._http.stream("GET", path) as response:
            scanner = ArtifactScanner(f"GET {path}")
            async for chunk in response.aiter_bytes():
                for _piece in scanner.feed(chunk):
                    pass
            meta = scanner.finish()
        try:
            wire = _ARTIFACT.validate_python(meta)
        except ValidationError:
            raise ProtocolError(f"The server's artifact reply is malformed (GET {path})") from None
        return self._artifact(session_id, wire)

    async def read_artifact(
        self,
        session_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        max_bytes: int | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        """Decode the reply's base64 ``data`` as it arrives; checksum checked before the last
        piece is handed over (so a consumer that stops at ``max_bytes`` has it checked too)."""
        path = self._artifact_path(session_id, artifact_id)
        where = f"GET {path}"
        offset = max(0, offset)
        end = None if max_bytes is None else offset + max(0, max_bytes)
        position = 0
        held: bytes | None = None
        hasher = hashlib.sha256()
        async with self._http.stream("GET", path) as response:
            scanner = ArtifactScanner(where)
            async for chunk in response.aiter_bytes(chunk_size):
                for piece in scanner.feed(chunk):
                    hasher.update(piece)
                    start, position = position, position + len(piece)
                    low = max(offset, start) - start
                    high = len(piece) if end is None else min(end, position) - start
                    if high <= low:
                        continue
                    if held is not None:
                        yield held
                    held = piece[low:high]
            meta = scanner.finish()
        expected = meta.get("checksum_sha256")
        if isinstance(expected, str) and expected and expected.lower() != hasher.hexdigest():
            raise ProtocolError(
                f"The artifact's content does not match its checksum_sha256 ({where})"
            )
        size = meta.get("size_bytes")
        if isinstance(size, int) and not isinstance(size, bool) and size != position:
            raise ProtocolError(
                f"The artifact's content is {position:,} bytes, not the {size:,} its size_bytes "
                f"says ({where})"
            )
        if held is not None:
            yield held

    # -- live -----------------------------------------------------------------------------------
    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        """Sessions created or changed, by polling the newest sessions (no stream exists)."""
        poller = _SessionsPoller(self)
        watch = self._live.polled(
            poll=poller.poll, position=lambda change: change.id, after=after, on_state=on_state
        )
        async with aclosing(watch):
            async for change in watch:
                yield change

    async def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        """Poll: each round reads from the last page read, and only events after the newest one
        delivered are new (the platform has no subscription to an existing session)."""

        async def poll(last: int | None) -> list[Event]:
            page = await self.list_events(
                session_id, after=last or 0, limit=POLL_PAGE, include_hidden=True
            )
            return page.data

        watch = self._live.polled(
            poll=poll, position=lambda event: event.sequence, after=after, on_state=on_state
        )
        async with aclosing(watch):
            async for event in watch:
                yield event


class _SessionsPoller:
    """Organisation changes without a stream: the newest sessions, compared between polls.
    Positions are counters, for ordering and de-duplication; the first poll only learns what is
    there (the console starts its watch from "now": the listing carries no stream position)."""

    def __init__(self, backend: VectaraBackend) -> None:
        self._backend = backend
        self._known: dict[str, dict[str, Any]] | None = None
        self._counter = 0

    async def poll(self, last: int | None) -> list[OrgChange]:
        if last is not None and self._counter < last:
            self._counter = last
        page = await self._backend.list_sessions(limit=_MAX_PLATFORM_PAGE)
        changes: list[OrgChange] = []
        current = {
            session.id: session.model_dump(mode="json", exclude={"last_sequence"})
            for session in page.data
        }
        if self._known is not None:
            for session in page.data:
                before = self._known.get(session.id)
                if before is None or before != current[session.id]:
                    self._counter += 1
                    kind = "session.created" if before is None else "session.updated"
                    changes.append(
                        OrgChange(
                            id=self._counter, kind=kind, session_id=session.id, session=session
                        )
                    )
        # Sessions that slid off the first page stay known, so they are not "created" again.
        self._known = {**(self._known or {}), **current}
        return changes


class ArtifactScanner:
    """Reads a JSON object as it arrives and decodes its top-level ``data`` member (base64)
    piece by piece; every other member is kept (bounded) and returned by ``finish``.

    Outside ``data`` it tracks strings, escapes and nesting byte by byte (those members are
    small); inside ``data`` it searches for the closing quote a chunk at a time, so a large
    content costs no per-byte Python work."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._kept = bytearray()  # the object's text with data's value replaced by null
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._key = bytearray()
        self._reading_key = False
        self._expect_key = False
        self._last_key: bytes | None = None
        self._await_value = False
        self._in_data = False
        self._data_escape = False
        self._b64 = bytearray()
        self._done = False

    def _fail(self, what: str) -> ProtocolError:
        return ProtocolError(f"The server's artifact reply is malformed ({what}; {self._where})")

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        index = 0
        size = len(chunk)
        while index < size:
            if self._in_data:
                close = chunk.find(b'"', index)
                segment = chunk[index : size if close < 0 else close]
                self._take_base64(segment, out)
                if close < 0:
                    return out
                self._in_data = False
                self._finish_base64(out)
                self._kept += b"null"
                index = close + 1
                continue
            byte = chunk[index]
            index += 1
            if self._in_string:
                self._kept.append(byte)
                if self._escape:
                    self._escape = False
                    if self._reading_key:
                        self._key.append(byte)
                elif byte == 0x5C:  # backslash
                    self._escape = True
                    if self._reading_key:
                        self._key.append(byte)
                elif byte == 0x22:  # closing quote
                    self._in_string = False
                    if self._reading_key:
                        self._reading_key = False
                        self._last_key = bytes(self._key)
                elif self._reading_key:
                    self._key.append(byte)
            elif byte in b" \t\r\n":
                self._kept.append(byte)
            elif byte == 0x22:  # opening quote
                if self._await_value and self._depth == 1 and self._last_key == b"data":
                    self._await_value = False
                    self._in_data = True
                    continue
                self._await_value = False
                self._in_string = True
                self._kept.append(byte)
                if self._depth == 1 and self._expect_key:
                    self._expect_key = False
                    self._reading_key = True
                    self._key.clear()
            else:
                self._kept.append(byte)
                self._await_value = False
                if byte in b"{[":
                    self._depth += 1
                    if byte == 0x7B and self._depth == 1:
                        self._expect_key = True
                elif byte in b"}]":
                    self._depth -= 1
                    if self._depth == 0:
                        self._done = True
                elif byte == 0x3A and self._depth == 1:  # colon after a key
                    self._await_value = True
                elif byte == 0x2C and self._depth == 1:  # comma between members
                    self._expect_key = True
            if len(self._kept) > _MAX_ARTIFACT_META_BYTES:
                raise self._fail("its members besides data are too large")
        return out

    def _take_base64(self, segment: bytes, out: list[bytes]) -> None:
        if self._data_escape or b"\\" in segment:
            segment = self._unescape(segment)
        self._b64 += segment.translate(None, b" \t\r\n")
        whole = len(self._b64) - len(self._b64) % 4
        if whole:
            self._decode(whole, out)

    def _unescape(self, segment: bytes) -> bytes:
        result = bytearray()
        for byte in segment:
            if self._data_escape:
                self._data_escape = False
                if byte == 0x2F:  # \/ is an allowed JSON escape of '/'
                    result.append(byte)
                elif byte in b"nrt":
                    continue  # an escaped line break in wrapped base64: not data
                else:
                    raise self._fail("an escape sequence inside data")
            elif byte == 0x5C:
                self._data_escape = True
            else:
                result.append(byte)
        return bytes(result)

    def _decode(self, length: int, out: list[bytes]) -> None:
        block = bytes(self._b64[:length])
        del self._b64[:length]
        try:
            decoded = base64.b64decode(block, validate=True)
        except binascii.Error:
            raise self._fail("data is not valid base64") from None
        if decoded:
            out.append(decoded)

    def _finish_base64(self, out: list[bytes]) -> None:
        if self._data_escape:
            raise self._fail("data ends in an escape")
        self._decode(len(self._b64), out)
        if self._b64:
            raise self._fail("data is not valid base64")

    def finish(self) -> dict[str, Any]:
        if not self._done or self._in_data:
            raise self._fail("the reply ended early")
        try:
            meta = json.loads(bytes(self._kept))
        except ValueError:
            raise self._fail("not valid JSON") from None
        if not isinstance(meta, dict):
            raise self._fail("not an object")
        return meta
