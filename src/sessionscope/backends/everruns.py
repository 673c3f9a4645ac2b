"""The Everruns backend (``everruns``): sessions, events, live SSE and tool approvals of an
Everruns server, per ``everruns-openapi.json`` and ``everruns-create-session.txt`` in the vendor
folder and the platform's documents on tool approval and streaming.

Why plain httpx + httpx-sse and not the ``everruns-sdk`` package: the SDK (0.3.1) is alpha, its
management client lists sessions without paging and has no tool-approval methods (approvals sit
on a client scoped to one agent key and take untyped bodies), and its message sending warns as
deprecated. What it does well, its reconnect semantics, is copied here: a stream silent for 45 s
(the server's heartbeat is about 30 s) is dead; reconnect with ``since_id`` of the last event
(``after_sequence`` before the first one); back off from 1 s to 30 s with jitter, honouring the
server's ``retry:`` hints and its ``disconnecting{retry_ms}`` frame. The shared live machinery
(``backends/live.py``) and HTTP client (``backends/_http.py``) give the rest: pooled
connections, typed errors from problem+json with its ``detail``, 429 waits from ``Retry-After``
or the problem's ``retry_after_seconds``, credential redaction.

Options (``BackendConfig.options``; all optional):

``org_id``
    sent as ``X-Org-Id`` (a token that belongs to several organisations picks one).
``stream_read_timeout`` (45 s), ``reconnect_base`` (1 s), ``reconnect_max`` (30 s), ``poll``
    the live watch: idle watchdog, backoff, and polling instead of streaming.
``retry_attempts``, ``retry_base``, ``retry_max``, ``max_retry_after``, ``seed``
    request retries, as for every HTTP backend.
``approval_timeout`` (900 s)
    a held call's deadline when its request does not state ``expires_at``.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from sessionscope.backends._http import (
    Backoff,
    HttpClient,
    flag_option,
    neutralise_detail,
    option,
)
from sessionscope.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capability,
    Conflict,
    NotFound,
    ProtocolError,
    SessionQuery,
    ValidationFailed,
    WatchStateCallback,
)
from sessionscope.backends.live import (
    LiveWatch,
    Resume,
    RetryHint,
    StateReporter,
    sse_events,
)
from sessionscope.models import (
    ActionDecisionResult,
    ActionStatus,
    DecisionChoice,
    Event,
    OrgChange,
    Page,
    PendingAction,
    PendingKind,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    ToolCall,
    ToolCallArgument,
    ToolResult,
    Usage,
)

#: The documented id format: ``{prefix}_{32 hex}``.
ID_PATTERN = r"^{prefix}_[0-9a-f]{{32}}$"
_MAX_SESSION_PAGE = 100
#: Everruns statuses -> ours; the platform's own word stays on ``Session.platform_status``.
STATUS_MAP: dict[str, SessionStatus] = {
    "started": SessionStatus.CREATED,
    "active": SessionStatus.ACTIVE,
    "idle": SessionStatus.IDLE,
    "waiting_for_tool_results": SessionStatus.WAITING,
}
WAITING_STATUS = "waiting_for_tool_results"
#: Ephemeral streaming fragments (the completed event carries the full content); the spec's
#: catalog names these, and any other ``*.delta`` is dropped on arrival too.
DELTA_TYPES = ("output.message.delta", "reason.thinking.delta", "tool.output.delta")
TOOL_CALL_REQUESTED = "tool.call_requested"
APPROVE_TOOL_CALL = "approve_tool_call"
APPROVAL_CALL_PREFIX = "tool_approval_"
DEFAULT_APPROVAL_TIMEOUT = 900.0
#: A header value must be one line of visible ASCII; longer reasons are cut.
_MAX_REASON_CHARS = 500

#: The four answers the tool-approvals endpoint accepts, safest first.
APPROVAL_CHOICES: tuple[DecisionChoice, ...] = (
    DecisionChoice(id="reject", label="Reject", confirms=False),
    DecisionChoice(id="allow", label="Allow once", confirms=True),
    DecisionChoice(id="allow_always", label="Allow always", confirms=True, persistent=True),
    DecisionChoice(id="reject_always", label="Reject always", confirms=False, persistent=True),
)
_CHOICE_IDS = frozenset(choice.id for choice in APPROVAL_CHOICES)
UNANSWERED_NOTE = "unanswered by the deadline, the call counts as rejected"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def check_id(value: str, prefix: str) -> bool:
    return re.fullmatch(ID_PATTERN.format(prefix=prefix), value) is not None


def _is_delta(event_type: str) -> bool:
    return event_type.endswith(".delta")


# -- the platform's wire shapes, parsed leniently ------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Usage(_Wire):
    input_tokens: int = 0
    output_tokens: int = 0
    effective_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    estimated_cost_usd: float | None = None


class _Session(_Wire):
    id: str
    organization_id: str | None = None
    agent_id: str | None = None
    model_id: str | None = None
    title: str | None = None
    #: A string; the spec's schema names an object with its own ``status`` (a name clash in the
    #: generated document), so both are accepted.
    status: Any = None
    tags: list[str] | None = None
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    preview: str | None = None
    output_preview: str | None = None
    usage: _Usage | None = None

    @field_validator("usage", mode="before")
    @classmethod
    def _usage_or_none(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None


class _SessionPage(_Wire):
    data: list[_Session]
    total: int | None = None
    offset: int | None = None
    limit: int | None = None


class _Event(_Wire):
    id: str
    type: str
    ts: datetime
    session_id: str
    sequence: int | None = None
    context: Any = None
    data: Any = None
    metadata: Any = None
    tags: list[str] | None = None


class _EventList(_Wire):
    data: list[_Event]


class _Message(_Wire):
    id: str
    role: Any = None
    content: Any = None
    created_at: datetime
    sequence: int | None = None


def _parse(model: type[_Wire], body: bytes, where: str) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}"
            for err in exc.errors(include_input=False)[:3]
        )
        raise ProtocolError(
            f"The server's reply is malformed ({neutralise_detail(problems, 200)}; {where})"
        ) from None


def platform_status(raw: Any) -> str:
    if isinstance(raw, dict):
        raw = raw.get("status")
    return raw if isinstance(raw, str) else ""


def to_session(wire: _Session) -> Session:
    status_word = platform_status(wire.status)
    usage = Usage()
    if wire.usage is not None:
        cost = wire.usage.effective_cost_usd
        if cost is None:
            cost = wire.usage.actual_cost_usd or wire.usage.estimated_cost_usd or 0.0
        usage = Usage(
            input_tokens=max(0, wire.usage.input_tokens),
            output_tokens=max(0, wire.usage.output_tokens),
            total_tokens=max(0, wire.usage.input_tokens) + max(0, wire.usage.output_tokens),
            cost_usd=cost,
        )
    return Session(
        id=wire.id,
        title=wire.title or "",
        agent_id=wire.agent_id,
        model_id=wire.model_id,
        status=STATUS_MAP.get(status_word, SessionStatus.ACTIVE),
        tags=list(wire.tags or []),
        created_at=wire.created_at,
        updated_at=wire.updated_at or wire.created_at,
        started_at=wire.started_at,
        finished_at=wire.finished_at,
        preview=wire.preview,
        output_preview=wire.output_preview,
        usage=usage,
        platform_status=status_word,
        organization_id=wire.organization_id,
    )


def to_event(wire: _Event, fallback_sequence: int) -> Event:
    payload = wire.data if isinstance(wire.data, dict) else {"value": wire.data}
    return Event(
        id=wire.id,
        session_id=wire.session_id,
        sequence=wire.sequence if wire.sequence is not None else fallback_sequence,
        type=wire.type,
        created_at=wire.ts,
        payload=payload,
        context=wire.context if isinstance(wire.context, dict) else {},
        tags=list(wire.tags or []),
    )


def _events(wires: list[_Event], after: int = 0) -> list[Event]:
    """Durable events only, in sequence order. A sequence the server left out (the spec allows
    null) is numbered after the one before it, so ordering and resuming still work."""
    events: list[Event] = []
    last = after
    for wire in wires:
        if _is_delta(wire.type):
            continue
        event = to_event(wire, last + 1)
        last = max(last, event.sequence)
        events.append(event)
    events.sort(key=lambda event: event.sequence)
    return events


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def held_calls(event: Event, default_timeout: float) -> tuple[list[PendingAction], list[ToolCall]]:
    """A ``tool.call_requested`` event's calls: approval requests (``approve_tool_call``, one
    per held call, with the call's tool, arguments, why it was gated and its deadline) become
    pending items of one group, the pause; any other call is a client-side tool call."""
    approvals: list[PendingAction] = []
    client_calls: list[ToolCall] = []
    calls = event.payload.get("tool_calls")
    if not isinstance(calls, list):
        return approvals, client_calls
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            continue
        raw_name = call.get("name")
        name = raw_name if isinstance(raw_name, str) else ""
        raw_arguments = call.get("arguments")
        arguments: dict[str, Any] = raw_arguments if isinstance(raw_arguments, dict) else {}
        if name == APPROVE_TOOL_CALL:
            approvals.append(_approval(event, call["id"], arguments, default_timeout))
        else:
            client_calls.append(
                ToolCall(
                    id=call["id"],
                    session_id=event.session_id,
                    tool=name,
                    arguments=[ToolCallArgument(name=k, value=v) for k, v in arguments.items()],
                    created_at=event.created_at,
                )
            )
    return approvals, client_calls


def _approval(
    event: Event, call_id: str, request: dict[str, Any], default_timeout: float
) -> PendingAction:
    asked_at = _parse_time(request.get("asked_at")) or event.created_at
    expires_at = _parse_time(request.get("expires_at"))
    if expires_at is None:
        timeout = request.get("timeout_seconds")
        seconds = (
            float(timeout)
            if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0
            else default_timeout
        )
        expires_at = asked_at + timedelta(seconds=seconds)
    arguments = request.get("arguments")
    preview = arguments if isinstance(arguments, dict) else {"arguments": arguments}
    risk = request.get("risk") if isinstance(request.get("risk"), str) else None
    why = request.get("reason") if isinstance(request.get("reason"), str) else None
    reason = why or (f"gated as {risk}" if risk else None)
    expired = expires_at <= datetime.now(UTC)
    tool = request.get("tool") or request.get("tool_name")
    return PendingAction(
        id=call_id,
        session_id=event.session_id,
        tool=tool if isinstance(tool, str) else "",
        preview=preview,
        status=ActionStatus.EXPIRED if expired else ActionStatus.PENDING,
        created_at=asked_at,
        expires_at=expires_at,
        destructive=risk in ("destructive", "open_world"),
        kind=PendingKind.TOOL_APPROVAL,
        choices=[] if expired else list(APPROVAL_CHOICES),
        group_id=event.id,
        reason=reason,
        deadline_note=UNANSWERED_NOTE,
        display_name=request.get("display_name"),
        arguments_truncated=bool(request.get("arguments_truncated", False)),
        gated_call_id=request.get("tool_call_id"),
    )


def header_reason(reason: str) -> str:
    """The operator's reason as a header value: one line of visible ASCII (other characters
    percent-encoded, so nothing is lost and nothing can split the header)."""
    line = neutralise_detail(reason, _MAX_REASON_CHARS)
    return quote(line, safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")


class EverrunsBackend(Backend):
    name = "everruns"
    capabilities = frozenset(
        {
            Capability.LIST_SESSIONS,
            Capability.CREATE_SESSION,
            Capability.UPDATE_SESSION,
            Capability.DELETE,
            Capability.CANCEL_TURN,
            Capability.MESSAGES,
            Capability.EVENTS,
            Capability.LIVE_STREAM,
            Capability.ORG_STREAM,
            Capability.TOOL_CALLS,
            Capability.PENDING_ACTIONS,
        }
    )
    platform_label = "Everruns"
    decides_in_batches = True
    #: Deltas take sequence numbers too, and are never listed.
    dense_sequences = False
    #: everruns-create-session.txt: agent_id (required), title, tags, model_id, capabilities.
    create_fields = frozenset({"agent_id", "title", "tags", "model_id", "capabilities"})
    #: No context variables on Everruns; its own status word instead.
    header_details = frozenset({"agent", "model", "tokens", "cost", "status", "events", "pending"})

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        seed = config.options.get("seed")
        self._rng = random.Random(seed) if seed is not None else random.Random()
        self._http = HttpClient(config, rng=self._rng)
        org_id = config.options.get("org_id")
        if org_id:
            self._http.client.headers["X-Org-Id"] = str(org_id)
        url = self._http.base_url
        port = url.port or (443 if url.scheme == "https" else 80)
        default_port = port == (443 if url.scheme == "https" else 80)
        self._display_name = url.host if default_port else f"{url.host}:{port}"
        self._stream_read_timeout = option(config, "stream_read_timeout", 45.0)
        self._approval_timeout = option(config, "approval_timeout", DEFAULT_APPROVAL_TIMEOUT)
        self._live = LiveWatch(
            display_name=self._display_name,
            reconnect=Backoff(
                base=option(config, "reconnect_base", 1.0),
                cap=option(config, "reconnect_max", 30.0),
                rng=self._rng,
            ),
            poll_interval=config.poll_interval,
            redact=self._http.redact,
            force_poll=flag_option(config, "poll"),
        )
        #: Decisions already applied, by idempotency key: a repeat returns the first answer
        #: instead of answering the pause twice (the platform takes no idempotency key).
        self._decided: dict[str, list[ActionDecisionResult]] = {}

    def __repr__(self) -> str:
        return f"EverrunsBackend({self._display_name})"

    @property
    def display_name(self) -> str:
        return self._display_name

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, model: type[_Wire], method: str, path: str, **kwargs: Any) -> Any:
        _, body = await self._http.request(method, path, **kwargs)
        return _parse(model, body, f"{method} {path}")

    # -- sessions -------------------------------------------------------------------------------
    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        offset = _offset_from(cursor)
        params: dict[str, Any] = {
            "offset": offset,
            "limit": max(1, min(limit, _MAX_SESSION_PAGE)),
        }
        if query is not None:
            if query.text:
                params["search"] = query.text
            if query.agent_id:
                params["agent_id"] = query.agent_id
        page = await self._json(_SessionPage, "GET", "/v1/sessions", params=params)
        sessions = [to_session(wire) for wire in page.data]
        if query is not None and query.status is not None:
            # The list has no status filter: keep the page's matches (paging stays by offset).
            sessions = [s for s in sessions if s.status is query.status]
        next_offset = offset + len(page.data)
        more = bool(page.data) and (page.total is None or next_offset < page.total)
        return Page[Session](
            data=sessions,
            next_cursor=f"offset:{next_offset}" if more else None,
            total=page.total if cursor is None and query_is_plain(query) else None,
        )

    async def get_session(self, session_id: str) -> Session:
        wire = await self._json(_Session, "GET", f"/v1/sessions/{_seg(session_id)}")
        session = to_session(wire)
        await self._add_event_position(session)
        return session

    async def _add_event_position(self, session: Session) -> None:
        """The session's newest event and its count (the list's ``X-Total-Count``, non-delta
        events), from one event: the console starts its live stream after it. Best effort: a
        session without them still opens (from the start)."""
        path = f"/v1/sessions/{_seg(session.id)}/events"
        params = {"limit": 1, "exclude": list(DELTA_TYPES)}
        try:
            response, body = await self._http.request("GET", path, params=params)
            page = _parse(_EventList, body, f"GET {path}")
        except BackendError:
            return
        sequences = [wire.sequence for wire in page.data if wire.sequence is not None]
        if sequences:
            session.last_sequence = max(0, max(sequences))
        total = response.headers.get("x-total-count", "")
        if total.isdigit():
            session.event_count = int(total)

    async def session_stats(self) -> dict[str, int]:
        """Counts by platform status (``GET /v1/sessions/stats``): total, started, active, idle,
        waiting_for_tool_results."""
        _, body = await self._http.request("GET", "/v1/sessions/stats")
        try:
            raw = json.loads(body)
        except ValueError:
            raise ProtocolError(
                "The server's reply is not valid JSON (GET /v1/sessions/stats)"
            ) from None
        if not isinstance(raw, dict):
            raise ProtocolError("The server's reply is malformed (GET /v1/sessions/stats)")
        return {k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}

    async def create_session(self, spec: SessionCreate) -> Session:
        body = create_body(spec)
        wire = await self._json(_Session, "POST", "/v1/sessions", json_body=body)
        return to_session(wire)

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        body: dict[str, Any] = {}
        if update.title is not None:
            body["title"] = update.title
        if update.tags is not None:
            body["tags"] = list(update.tags)
        wire = await self._json(
            _Session, "PATCH", f"/v1/sessions/{_seg(session_id)}", json_body=body, idempotent=True
        )
        return to_session(wire)

    async def delete_session(self, session_id: str) -> None:
        await self._http.request("DELETE", f"/v1/sessions/{_seg(session_id)}")

    async def cancel_turn(self, session_id: str) -> str:
        _, body = await self._http.request(
            "POST", f"/v1/sessions/{_seg(session_id)}/cancel", idempotent=True
        )
        try:
            raw = json.loads(body)
        except ValueError:
            raw = {}
        message = raw.get("message") if isinstance(raw, dict) else None
        return neutralise_detail(message) if isinstance(message, str) else "turn cancelled"

    async def send_message(self, session_id: str, content: str) -> Event:
        path = f"/v1/sessions/{_seg(session_id)}/messages"
        body = {"message": {"role": "user", "content": [{"type": "text", "text": content}]}}
        message = await self._json(_Message, "POST", path, json_body=body)
        return Event(
            id=message.id,
            session_id=session_id,
            sequence=message.sequence or 0,
            type="input.message",
            created_at=message.created_at,
            payload={"message": message.model_dump(mode="json")},
        )

    # -- events ---------------------------------------------------------------------------------
    async def _fetch_events(
        self, session_id: str, *, after: int, types: list[str] | None = None
    ) -> list[Event]:
        # No ``limit``: with it the list pages backwards (the last N events), which cannot page
        # forward from ``after``; without it the server returns every event after ``after``.
        params: dict[str, Any] = {"after_sequence": after}
        if types:
            params["types"] = list(types)
        else:
            params["exclude"] = list(DELTA_TYPES)
        page = await self._json(
            _EventList, "GET", f"/v1/sessions/{_seg(session_id)}/events", params=params
        )
        return [event for event in _events(page.data, after) if event.sequence > after]

    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        events = await self._fetch_events(session_id, after=after, types=types)
        limit = max(1, limit)
        more = len(events) > limit
        events = events[:limit]
        return Page[Event](
            data=events, next_cursor=str(events[-1].sequence) if more and events else None
        )

    # -- live -----------------------------------------------------------------------------------
    async def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        path = f"/v1/sessions/{_seg(session_id)}/sse"

        async def open_stream(
            resume: Resume[Event], state: StateReporter
        ) -> AsyncGenerator[Event | RetryHint, None]:
            params: dict[str, Any] = {"exclude": list(DELTA_TYPES)}
            if resume.item is not None:
                params["since_id"] = resume.item.id
            else:
                # Before any event was seen: resume by sequence, as the platform's SDK does.
                params["after_sequence"] = resume.position or 0
            frames = sse_events(
                self._http,
                path,
                state=state,
                display_name=self._display_name,
                read_timeout=self._stream_read_timeout,
                request_timeout=self.config.timeout,
                params=params,
            )
            last = resume.position or 0
            async with aclosing(frames):
                async for sse in frames:
                    if sse.retry is not None:
                        yield RetryHint(sse.retry / 1000)
                    if sse.event == "connected":
                        continue
                    if sse.event == "disconnecting":
                        # The server cycles the connection: come back after its hint, from the
                        # last event (the loop resumes with since_id).
                        yield RetryHint(_retry_ms(sse.data) / 1000)
                        return
                    if not sse.data or _is_delta(sse.event or ""):
                        continue
                    try:
                        wire = _Event.model_validate_json(sse.data)
                    except ValidationError:
                        raise ProtocolError(
                            f"The server sent a malformed stream frame (GET {path})"
                        ) from None
                    if _is_delta(wire.type):
                        continue
                    event = to_event(wire, last + 1)
                    last = max(last, event.sequence)
                    yield event

        async def poll(last: int | None) -> list[Event]:
            return await self._fetch_events(session_id, after=last or 0)

        async def stream_missing() -> None:
            await self.get_session(session_id)

        watch = self._live.watch(
            open_stream=open_stream,
            position=lambda event: event.sequence,
            after=after,
            on_state=on_state,
            poll=poll,
            stream_missing=stream_missing,
            where=f"GET {path}",
        )
        async with aclosing(watch):
            async for event in watch:
                yield event

    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        """Everruns has no organisation stream: the newest sessions and the calls held by the
        waiting ones are compared between polls (every ``poll_interval``)."""
        poller = _OrgPoller(self)
        watch = self._live.polled(
            poll=poller.poll, position=lambda change: change.id, after=after, on_state=on_state
        )
        async with aclosing(watch):
            async for change in watch:
                yield change

    # -- held calls: tool approvals and client-side tool calls ---------------------------------
    async def _latest_pause(self, session_id: str) -> tuple[list[PendingAction], list[ToolCall]]:
        """The calls held by the session's current pause: the newest ``tool.call_requested``
        while the session waits (``waiting_for_tool_results``); nothing otherwise."""
        session = await self.get_session(session_id)
        if session.model_extra is None or session.model_extra.get("platform_status") != (
            WAITING_STATUS
        ):
            return [], []
        requested = await self._fetch_events(session_id, after=0, types=[TOOL_CALL_REQUESTED])
        requested = [event for event in requested if event.type == TOOL_CALL_REQUESTED]
        if not requested:
            return [], []
        approvals, client_calls = held_calls(requested[-1], self._approval_timeout)
        for action in approvals:
            action.session_title = session.title or None
        return approvals, client_calls

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        approvals, _ = await self._latest_pause(session_id)
        return approvals

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        for action in await self.list_session_actions(session_id):
            if action.id == action_id:
                return action
        raise NotFound(f"Not found: no held call {neutralise_detail(action_id, 80)} is waiting")

    async def list_pending_actions(self) -> list[PendingAction]:
        """Held calls across the organisation: the waiting sessions among the newest 100."""
        page = await self.list_sessions(limit=_MAX_SESSION_PAGE)
        pending: list[PendingAction] = []
        for session in page.data:
            if (session.model_extra or {}).get("platform_status") == WAITING_STATUS:
                pending += [
                    action
                    for action in await self.list_session_actions(session.id)
                    if action.status is ActionStatus.PENDING
                ]
        pending.sort(key=lambda action: action.created_at)
        return pending

    async def list_tool_calls(self, session_id: str) -> list[ToolCall]:
        _, client_calls = await self._latest_pause(session_id)
        return client_calls

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        path = f"/v1/sessions/{_seg(session_id)}/tool-results"
        item: dict[str, Any] = {"tool_call_id": call_id}
        if result.error is not None:
            item["error"] = result.error
        else:
            item["result"] = result.output
        try:
            await self._http.request("POST", path, json_body={"tool_results": [item]})
        except Conflict as exc:
            raise Conflict(
                "The session is not waiting for tool results (it moved on, or the call was "
                f"already answered); nothing was sent ({exc.message})",
                status=409,
            ) from None
        return ToolCall(
            id=call_id,
            session_id=session_id,
            tool="",
            status="failed" if result.error is not None else "succeeded",
            result=result.output,
            error=result.error,
        )

    async def decide_action(
        self,
        session_id: str,
        action_id: str,
        confirmed: bool,
        *,
        idempotency_key: str | None = None,
        choice: str | None = None,
        reason: str | None = None,
    ) -> ActionDecisionResult:
        chosen = choice or ("allow" if confirmed else "reject")
        results = await self.decide_actions(
            session_id, [(action_id, chosen)], reason=reason, idempotency_key=idempotency_key
        )
        return results[0]

    async def decide_actions(
        self,
        session_id: str,
        decisions: list[tuple[str, str]],
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[ActionDecisionResult]:
        """Answer held calls of one pause in one ``POST /v1/sessions/{id}/tool-approvals``. The
        platform counts a call left out of the answer as not approved, so a partial answer is
        refused here rather than sent: the operator decides every call of the pause at once."""
        if idempotency_key and idempotency_key in self._decided:
            return self._decided[idempotency_key]
        unknown = [choice for _, choice in decisions if choice not in _CHOICE_IDS]
        if unknown:
            raise ValidationFailed(
                f"Rejected: {neutralise_detail(unknown[0], 40)} is not an Everruns decision "
                "(allow, allow_always, reject, reject_always)",
                errors=[{"field": "decision", "message": "unknown decision"}],
            )
        held = {action.id: action for action in await self.list_session_actions(session_id)}
        missing = [action_id for action_id, _ in decisions if action_id not in held]
        if missing:
            raise NotFound(
                f"Not found: {neutralise_detail(missing[0], 80)} is not a call this session "
                "holds (it was answered, expired, or the session moved on)"
            )
        groups = {held[action_id].group_id for action_id, _ in decisions}
        answered = {action_id for action_id, _ in decisions}
        left_out = [
            action.id
            for action in held.values()
            if action.group_id in groups and action.id not in answered
        ]
        if len(groups) > 1 or left_out:
            raise ValidationFailed(
                "Rejected: every held call of one pause is answered together "
                f"({len(left_out)} call(s) of this pause have no decision)",
                errors=[{"field": "decisions", "message": "answer every call of the pause"}],
            )
        headers = {"Everruns-Change-Reason": header_reason(reason)} if reason else {}
        path = f"/v1/sessions/{_seg(session_id)}/tool-approvals"
        body = {
            "decisions": [
                {"tool_call_id": action_id, "decision": choice} for action_id, choice in decisions
            ]
        }
        await self._http.request("POST", path, json_body=body, headers=headers)
        results = [
            ActionDecisionResult(
                session_id=session_id,
                action_id=action_id,
                status=ActionStatus.PROCESSING
                if choice.startswith("allow")
                else ActionStatus.CANCELLED,
                message=choice.replace("_", " "),
            )
            for action_id, choice in decisions
        ]
        self._decided[idempotency_key or uuid.uuid4().hex] = results
        return results


class _OrgPoller:
    """Changes between two polls: sessions created or updated (status, title, updated_at), and
    held calls appearing (``action.pending``) or going (``action.resolved``). Positions are
    counters for ordering and de-duplication; the first poll only learns what is there."""

    def __init__(self, backend: EverrunsBackend) -> None:
        self._backend = backend
        self._sessions: dict[str, tuple[Any, ...]] | None = None
        self._held: dict[str, PendingAction] = {}
        self._counter = 0

    def _change(self, kind: str, session_id: str, **fields: Any) -> OrgChange:
        self._counter += 1
        return OrgChange(id=self._counter, kind=kind, session_id=session_id, **fields)

    async def poll(self, last: int | None) -> list[OrgChange]:
        if last is not None and self._counter < last:
            self._counter = last
        page = await self._backend.list_sessions(limit=_MAX_SESSION_PAGE)
        current = {
            session.id: (session.status, session.title, session.updated_at) for session in page.data
        }
        held: dict[str, PendingAction] = {}
        for session in page.data:
            if (session.model_extra or {}).get("platform_status") == WAITING_STATUS:
                try:
                    actions = await self._backend.list_session_actions(session.id)
                except NotFound:
                    continue
                held.update({a.id: a for a in actions if a.status is ActionStatus.PENDING})
        changes: list[OrgChange] = []
        if self._sessions is not None:
            for session in page.data:
                before = self._sessions.get(session.id)
                if before != current[session.id]:
                    kind = "session.created" if before is None else "session.updated"
                    changes.append(self._change(kind, session.id, session=session))
            for action_id, action in held.items():
                if action_id not in self._held:
                    changes.append(self._change("action.pending", action.session_id, action=action))
            for action_id, action in self._held.items():
                if action_id not in held:
                    gone = action.model_copy(update={"status": ActionStatus.COMPLETED})
                    changes.append(self._change("action.resolved", action.session_id, action=gone))
        self._sessions = current
        self._held = held
        return changes


def _retry_ms(data: str) -> float:
    try:
        raw = json.loads(data) if data else {}
    except ValueError:
        return 100.0
    value = raw.get("retry_ms") if isinstance(raw, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return 100.0


def _offset_from(cursor: str | None) -> int:
    if not cursor:
        return 0
    prefix, _, number = cursor.partition(":")
    if prefix != "offset" or not number.isdigit():
        raise ValidationFailed("Rejected: this page cursor did not come from an Everruns list")
    return int(number)


def query_is_plain(query: SessionQuery | None) -> bool:
    """Whether the server's ``total`` counts what the page lists (a status filter is ours)."""
    return query is None or query.status is None


def create_body(spec: SessionCreate) -> dict[str, Any]:
    """``POST /v1/sessions`` per everruns-create-session.txt: ``agent_id`` (required,
    ``agent_{32 hex}``), ``title``, ``tags``, ``model_id`` (``model_{32 hex}``), ``capabilities``
    (``[{ref, config}]``). Formats are checked before anything is sent."""
    errors: list[dict[str, Any]] = []
    if not spec.agent_id or not check_id(spec.agent_id, "agent"):
        errors.append({"field": "agent_id", "message": "must be agent_ followed by 32 hex digits"})
    if spec.model_id and not check_id(spec.model_id, "model"):
        errors.append({"field": "model_id", "message": "must be model_ followed by 32 hex digits"})
    extra = spec.model_extra or {}
    raw_capabilities = extra.get("capabilities") or []
    capabilities: list[dict[str, Any]] = []
    if not isinstance(raw_capabilities, list):
        raw_capabilities = [raw_capabilities]
    for item in raw_capabilities:
        if isinstance(item, str) and item.strip():
            capabilities.append({"ref": item.strip()})
        elif isinstance(item, dict) and isinstance(item.get("ref"), str) and item["ref"]:
            capabilities.append(
                {"ref": item["ref"], **({"config": item["config"]} if "config" in item else {})}
            )
        else:
            errors.append({"field": "capabilities", "message": "each needs a ref"})
            break
    if errors:
        named = "; ".join(f"{e['field']} {e['message']}" for e in errors)
        raise ValidationFailed(f"Rejected: {named}", errors=errors)
    body: dict[str, Any] = {"agent_id": spec.agent_id}
    if spec.title:
        body["title"] = spec.title
    if spec.tags:
        body["tags"] = list(spec.tags)
    if spec.model_id:
        body["model_id"] = spec.model_id
    if capabilities:
        body["capabilities"] = capabilities
    return body
