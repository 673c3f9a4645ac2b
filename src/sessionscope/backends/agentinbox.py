"""The backend for AgentInbox sessions (``agentinbox-sessions.txt``, notes in the vendor README).

The URL is the platform's documented base, ``/api/v1`` included (default
``https://agentinbox.in/api/v1``); every path is below it. The key goes in
``Authorization: Bearer at_live_...`` (or ``at_test_...``).

Where the platform's documents and its SDKs disagree, both are accepted, decided per reply:

* lists: the documents' offset pages ``{data, pagination{limit, offset, total}}`` and the SDKs'
  cursor pages ``{object: "list", data, nextCursor, hasMore}``, behind one opaque cursor of ours;
* field names: camelCase (documents) and snake_case (the Python SDK);
* errors: ``{error, message}`` and ``{error: {code, message, docs_url}}`` (read by
  ``_http.error_from_response``).

The platform has no event ids, no sequence numbers and no stream: the session's timeline
(``GET /sessions/{id}/timeline``) is numbered locally, in the platform's order, and polled every
``poll_interval`` seconds (the whole timeline each time: the platform does not page it). The
organisation watch polls the newest sessions the same way. A session's waits (email, otp,
magic_link, password_reset) are shown as pending items the operator can watch but not decide
(``PendingKind.WAIT``, no choices); a wait listed by id only is read from ``GET /waits/{id}``
(the platform's Waits reference).

Options (all optional): the request retries of ``_http`` (``retry_attempts``, ``retry_base``,
``retry_max``, ``max_retry_after``); ``reconnect_base`` (0.5 s) and ``reconnect_max`` (15 s), the
backoff of a failing poll; ``inbox_sessions`` (100), how many active sessions the actions inbox
looks through for pending waits; ``poll_interval`` (the config's, 2 s), seconds between reads of
a watched timeline or of the sessions list; ``seed``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeGuard, TypeVar
from urllib.parse import quote

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from sessionscope.backends._http import Backoff, HttpClient, neutralise_detail, option
from sessionscope.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    Capability,
    NotFound,
    ProtocolError,
    SessionQuery,
    Unsupported,
    ValidationFailed,
    WatchStateCallback,
)
from sessionscope.backends.live import LiveWatch
from sessionscope.backends.registry import DEFAULT_URLS
from sessionscope.models import (
    ActionDecisionResult,
    ActionStatus,
    Event,
    OrgChange,
    Page,
    PendingAction,
    PendingKind,
    Replay,
    ReplayStep,
    Session,
    SessionCreate,
    SessionStatus,
    TimelineEntry,
    utcnow,
)

log = logging.getLogger("sessionscope.backends.agentinbox")

T = TypeVar("T")

DEFAULT_URL = DEFAULT_URLS["agentinbox"]
#: The documents give the default page (20), not a maximum; larger asks are cut to this.
MAX_PAGE = 100
#: Waits read at once (``GET /waits/{id}``) for one session's list.
_WAIT_READS_AT_ONCE = 8
#: Sessions whose waits the inbox reads at once.
_SESSION_READS_AT_ONCE = 4

_SESSION_STATUSES = {
    "active": SessionStatus.ACTIVE,
    "completed": SessionStatus.COMPLETED,
    "failed": SessionStatus.FAILED,
}
_WAIT_STATUSES = {
    "pending": ActionStatus.PENDING,
    "waiting": ActionStatus.PENDING,
    "active": ActionStatus.PENDING,
    "completed": ActionStatus.COMPLETED,
    "timed_out": ActionStatus.EXPIRED,
    "timeout": ActionStatus.EXPIRED,
    "expired": ActionStatus.EXPIRED,
    "canceled": ActionStatus.CANCELLED,
    "cancelled": ActionStatus.CANCELLED,
    "failed": ActionStatus.FAILED,
}
NOT_DECIDABLE = (
    "AgentInbox waits cannot be decided: a wait ends when its email arrives or when its time "
    "runs out"
)


def _either(camel: str, snake: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(camel, snake))


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _WireSession(_Wire):
    id: str
    name: str | None = None
    status: str | None = None
    created_at: datetime | None = _either("createdAt", "created_at")
    updated_at: datetime | None = _either("updatedAt", "updated_at")
    completed_at: datetime | None = _either("completedAt", "completed_at")
    metadata: dict[str, Any] | None = None
    inboxes: list[str | dict[str, Any]] | None = None
    waits: list[str | dict[str, Any]] | None = None


class _WireWait(_Wire):
    id: str
    type: str | None = None
    status: str | None = None
    timeout_seconds: float | None = _either("timeoutSeconds", "timeout_seconds")
    created_at: datetime | None = _either("createdAt", "created_at")
    expires_at: datetime | None = _either("expiresAt", "expires_at")
    completed_at: datetime | None = _either("completedAt", "completed_at")
    result: Any = None
    inbox_id: str | None = _either("inboxId", "inbox_id")
    session_id: str | None = _either("sessionId", "session_id")


class _WireEntry(_Wire):
    timestamp: datetime | None = None
    type: str = "unknown"


class _WireStep(_Wire):
    index: int
    timestamp: datetime | None = None
    action: str = ""
    input: Any = None
    output: Any = None
    duration_ms: float | None = _either("durationMs", "duration_ms")


_ANY: TypeAdapter[Any] = TypeAdapter(Any)
_SESSION = TypeAdapter(_WireSession)
_WAIT = TypeAdapter(_WireWait)
_ENTRY = TypeAdapter(_WireEntry)
_STEP = TypeAdapter(_WireStep)


def _seg(value: str) -> str:
    """An id as one path segment: ids come from the platform, so ``../`` stays literal."""
    return quote(str(value), safe="")


def _validated(adapter: TypeAdapter[T], value: Any, where: str) -> T:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        # The pydantic text would quote the platform's data; name the place and problem only.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}"
            for err in exc.errors(include_input=False)[:3]
        )
        raise ProtocolError(
            f"The server's reply is malformed ({neutralise_detail(problems, 200)}; {where})"
        ) from None


def _first_of(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# Our cursor hides which of the platform's two paging schemes a reply used: an offset for the
# documents' pages, the platform's own cursor for the SDKs' pages.
def _encode_cursor(kind: str, value: int | str) -> str:
    raw = json.dumps({"k": kind, "v": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int | str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        kind, value = decoded["k"], decoded["v"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValidationFailed("This page cursor is not one this console made") from None
    if (kind == "offset" and _is_int(value) and value >= 0) or (
        kind == "cursor" and isinstance(value, str)
    ):
        return kind, value
    raise ValidationFailed("This page cursor is not one this console made")


def wait_status(raw: str | None) -> ActionStatus:
    return _WAIT_STATUSES.get((raw or "pending").lower(), ActionStatus.PENDING)


class _TimelineLedger:
    """Stable local sequences for one session's timeline, whose entries carry neither id nor
    sequence. An entry is known by its content (timestamp, type, payload); identical entries
    by their occurrence. An entry seen before keeps its number; a new one gets the next, so the
    first reading numbers in the platform's order and an entry that appears later (even if the
    platform places it among older ones) is numbered after everything already delivered."""

    def __init__(self) -> None:
        self._numbers: dict[str, list[int]] = {}
        self.last = 0

    def number(self, entries: Iterable[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
        occurrences: Counter[str] = Counter()
        numbered: list[tuple[int, dict[str, Any]]] = []
        for entry in entries:
            key = json.dumps(entry, sort_keys=True, default=str, separators=(",", ":"))
            occurrence = occurrences[key]
            occurrences[key] += 1
            known = self._numbers.setdefault(key, [])
            if occurrence >= len(known):
                self.last += 1
                known.append(self.last)
            numbered.append((known[occurrence], entry))
        numbered.sort(key=lambda item: item[0])
        return numbered


class AgentInboxBackend(Backend):
    name = "agentinbox"
    #: No live stream (the timeline is polled), no decisions (waits are watched, not decided),
    #: no oldest-first listing, no artifacts, tool calls, messages or variables.
    capabilities = frozenset(
        {
            Capability.LIST_SESSIONS,
            Capability.CREATE_SESSION,
            Capability.COMPLETE,
            Capability.EVENTS,
            Capability.TIMELINE,
            Capability.REPLAY,
            Capability.PENDING_ACTIONS,
        }
    )

    platform_label = "AgentInbox"
    #: ``POST /sessions`` takes a name and metadata, nothing else.
    create_fields = frozenset({"title", "metadata"})
    #: Its sessions have no agent, model, usage or variables.
    header_details = frozenset({"events", "pending"})

    def __init__(self, config: BackendConfig) -> None:
        if not config.url:
            config = replace(config, url=DEFAULT_URL)
        self.config = config
        seed = config.options.get("seed")
        self._rng = random.Random(seed) if seed is not None else random.Random()
        self._http = HttpClient(config, rng=self._rng)
        url = self._http.base_url
        default_port = 443 if url.scheme == "https" else 80
        explicit_port = url.port not in (None, default_port)
        self._display_name = f"{url.host}:{url.port}" if explicit_port else url.host
        # The platform has no stream: every watch polls (``force_poll``).
        self._live = LiveWatch(
            display_name=self._display_name,
            reconnect=Backoff(
                base=option(config, "reconnect_base", 0.5),
                cap=option(config, "reconnect_max", 15.0),
                rng=self._rng,
            ),
            # An operator's ``--option poll_interval=5`` (or profile option) wins.
            poll_interval=option(config, "poll_interval", config.poll_interval),
            redact=self._http.redact,
            force_poll=True,
        )
        self._inbox_sessions = max(1, int(option(config, "inbox_sessions", 100)))
        self._ledgers: dict[str, _TimelineLedger] = {}
        #: Session names seen in any reply, so a wait read on its own can say where it belongs.
        self._titles: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"AgentInboxBackend({self._display_name})"

    @property
    def display_name(self) -> str:
        return self._display_name

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self._http.json_as(_ANY, method, path, **kwargs)

    # -- sessions -------------------------------------------------------------------------------
    def _session(self, raw: Any, where: str) -> Session:
        wire = _validated(_SESSION, raw, where)
        created = wire.created_at or utcnow()
        waits = wire.waits or []
        pending = sum(
            1
            for wait in waits
            if isinstance(wait, dict)
            and "status" in wait
            and wait_status(wait["status"]) is ActionStatus.PENDING
        )
        status = _SESSION_STATUSES.get((wire.status or "active").lower(), SessionStatus.ACTIVE)
        title = wire.name or ""
        self._titles[wire.id] = title
        return Session(
            id=wire.id,
            title=title,
            status=status,
            metadata=wire.metadata or {},
            created_at=created,
            updated_at=wire.updated_at or created,
            started_at=created,
            finished_at=wire.completed_at,
            pending_action_count=pending,
            inboxes=[_item_id(item) for item in wire.inboxes or []],
            waits=[_item_id(item) for item in waits],
            platform_status=wire.status,
        )

    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        query = query or SessionQuery()
        if query.order != "newest":
            raise self._unsupported(Capability.OLDEST_FIRST)
        if query.status is not None and query.status.value not in _SESSION_STATUSES:
            return Page(data=[], total=0)  # the platform has no session in any other status
        if query.agent_id or query.task_id or query.tag:
            return Page(data=[], total=0)  # its sessions have no agent, task or tags
        params: dict[str, Any] = {"limit": max(1, min(limit, MAX_PAGE))}
        if query.status is not None:
            params["status"] = query.status.value
        if cursor:
            kind, value = _decode_cursor(cursor)
            params["offset" if kind == "offset" else "cursor"] = value
        where = "GET /sessions"
        reply = await self._json("GET", "/sessions", params=params)
        page = self._session_page(reply, params, where)
        if query.text:
            # The platform has no text search: this page is filtered here, so pages may be short.
            needle = query.text.casefold()
            page.data = [s for s in page.data if needle in f"{s.title}\n{s.id}".casefold()]
            page.total = None
        return page

    def _session_page(self, reply: Any, params: dict[str, Any], where: str) -> Page[Session]:
        if not isinstance(reply, dict) or not isinstance(reply.get("data"), list):
            raise ProtocolError(f"The server's reply is not a list of sessions ({where})")
        data: list[Any] = reply["data"]
        sessions = [self._session(item, where) for item in data]
        pagination = reply.get("pagination")
        next_cursor: str | None = None
        total: int | None = None
        if isinstance(pagination, dict):
            # The documents' offset page.
            offset = pagination.get("offset", params.get("offset", 0))
            offset = offset if _is_int(offset) else int(params.get("offset", 0))
            raw_limit = pagination.get("limit")
            asked: int = raw_limit if _is_int(raw_limit) else params["limit"]
            raw_total = pagination.get("total")
            total = raw_total if _is_int(raw_total) else None
            following = offset + len(data)
            more = following < total if total is not None else len(data) >= asked
            if more and data:
                next_cursor = _encode_cursor("offset", following)
        else:
            # The SDKs' cursor page (``object: "list"``), or a page that says nothing of more.
            token = _first_of(reply, "nextCursor", "next_cursor")
            has_more = _first_of(reply, "hasMore", "has_more")
            if has_more is None:
                has_more = bool(token)
            if has_more:
                if not isinstance(token, str) or not token:
                    raise ProtocolError(
                        f"The server said more sessions follow but gave no cursor ({where})"
                    )
                if token == params.get("cursor"):
                    raise ProtocolError(
                        f"The server repeated a page cursor; stopped paging to avoid a loop "
                        f"({where})"
                    )
                next_cursor = _encode_cursor("cursor", token)
            raw_total = _first_of(reply, "total", "totalCount", "total_count")
            total = raw_total if _is_int(raw_total) else None
        return Page(data=sessions, next_cursor=next_cursor, total=total)

    async def get_session(self, session_id: str) -> Session:
        path = f"/sessions/{_seg(session_id)}"
        return self._session(await self._json("GET", path), f"GET {path}")

    async def create_session(self, spec: SessionCreate) -> Session:
        body: dict[str, Any] = {"name": spec.title}
        if spec.metadata:
            body["metadata"] = spec.metadata
        return self._session(
            await self._json("POST", "/sessions", json_body=body), "POST /sessions"
        )

    async def complete_session(self, session_id: str) -> Session:
        path = f"/sessions/{_seg(session_id)}/complete"
        # Completing a completed session leaves it completed: safe to send again.
        reply = await self._json("POST", path, idempotent=True)
        try:
            return await self.get_session(session_id)
        except BackendError:
            # The reply names only id, status and completedAt; the rest is what we knew.
            if not isinstance(reply, dict):
                raise
            reply = {"name": self._titles.get(session_id, ""), **reply}
            reply.setdefault("id", session_id)
            return self._session(reply, f"POST {path}")

    # -- events ---------------------------------------------------------------------------------
    async def _timeline_events(self, session_id: str) -> list[Event]:
        path = f"/sessions/{_seg(session_id)}/timeline"
        where = f"GET {path}"
        reply = await self._json("GET", path)
        entries: Any = reply
        if isinstance(reply, dict):
            entries = _first_of(reply, "events", "data")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ProtocolError(f"The server's reply is not a timeline ({where})")
        ledger = self._ledgers.setdefault(session_id, _TimelineLedger())
        events: list[Event] = []
        for sequence, raw in ledger.number(entries):
            entry = _validated(_ENTRY, raw, where)
            payload = raw.get("payload", raw.get("data"))
            if payload is None:
                payload = {k: v for k, v in raw.items() if k not in ("timestamp", "type")}
            elif not isinstance(payload, dict):
                payload = {"value": payload}
            events.append(
                Event(
                    id=f"tl-{sequence}",
                    session_id=session_id,
                    sequence=sequence,
                    type=entry.type,
                    created_at=entry.timestamp or utcnow(),
                    payload=payload,
                )
            )
        return events

    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        # The platform returns the whole timeline at once; paging is ours.
        matching = [
            event
            for event in await self._timeline_events(session_id)
            if event.sequence > after and (not types or event.type in types)
        ]
        shown = matching[: max(1, limit)]
        more = len(matching) > len(shown)
        return Page(
            data=shown,
            next_cursor=str(shown[-1].sequence) if more else None,
            total=len(matching),
        )

    async def get_event(self, session_id: str, event_id: str) -> Event:
        for event in await self._timeline_events(session_id):
            if event.id == event_id:
                return event
        raise NotFound(f"Not found: no event {neutralise_detail(event_id, 60)} in this session")

    async def timeline(self, session_id: str) -> list[TimelineEntry]:
        return [
            TimelineEntry(
                sequence=event.sequence,
                timestamp=event.created_at,
                kind=event.type,
                event_id=event.id,
            )
            for event in await self._timeline_events(session_id)
        ]

    async def replay(self, session_id: str) -> Replay:
        path = f"/sessions/{_seg(session_id)}/replay"
        where = f"POST {path}"
        # Not retried on a failure: the documents say a replay may re-run the workflow.
        reply = await self._json("POST", path)
        raw_steps = reply.get("steps") if isinstance(reply, dict) else reply
        if not isinstance(raw_steps, list):
            raise ProtocolError(f"The server's reply has no replay steps ({where})")
        steps: list[ReplayStep] = []
        previous_end: datetime | None = None
        for raw in raw_steps:
            step = _validated(_STEP, raw, where)
            duration = max(0, int(step.duration_ms or 0))
            # A step without a time starts where the one before it ended.
            started = step.timestamp or previous_end or utcnow()
            previous_end = started + timedelta(milliseconds=duration)
            steps.append(
                ReplayStep(
                    index=step.index,
                    timestamp=started,
                    action=step.action,
                    input=step.input,
                    output=step.output,
                    duration_ms=duration,
                )
            )
        return Replay(session_id=session_id, steps=steps)

    # -- waits, as pending items that cannot be decided -----------------------------------------
    def _wait_item(self, wait: _WireWait, session_id: str) -> PendingAction:
        kind = wait.type or "wait"
        created = wait.created_at or utcnow()
        expires = wait.expires_at
        if expires is None and wait.timeout_seconds is not None and wait.created_at is not None:
            expires = wait.created_at + timedelta(seconds=wait.timeout_seconds)
        status = wait_status(wait.status)
        preview: dict[str, Any] = {"wait": kind, "status": wait.status or "pending"}
        if wait.inbox_id:
            preview["inbox"] = wait.inbox_id
        if wait.timeout_seconds is not None:
            preview["timeout"] = f"{wait.timeout_seconds:g} s"
        if wait.result is not None:
            preview["result"] = wait.result
        outcome: dict[str, Any] | None = None
        if wait.result is not None:
            outcome = wait.result if isinstance(wait.result, dict) else {"value": wait.result}
        inbox = f" in inbox {wait.inbox_id}" if wait.inbox_id else ""
        return PendingAction(
            id=wait.id,
            session_id=session_id,
            tool=f"wait: {kind}",
            preview=preview,
            status=status,
            created_at=created,
            expires_at=expires,
            decided_at=wait.completed_at,
            outcome=outcome,
            session_title=self._titles.get(session_id) or None,
            kind=PendingKind.WAIT,
            choices=[],
            reason=f"the agent waits for {kind.replace('_', ' ')} email{inbox}",
        )

    async def _read_wait(self, wait_id: str) -> _WireWait:
        path = f"/waits/{_seg(wait_id)}"
        return _validated(_WAIT, await self._json("GET", path), f"GET {path}")

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        path = f"/sessions/{_seg(session_id)}"
        where = f"GET {path}"
        raw = await self._json("GET", path)
        self._session(raw, where)  # validates, and learns the session's name
        listed = raw.get("waits") or []
        slots = asyncio.Semaphore(_WAIT_READS_AT_ONCE)

        async def read(item: str | dict[str, Any]) -> _WireWait | None:
            if isinstance(item, dict) and ("status" in item or "type" in item):
                return _validated(_WAIT, item, where)  # the wait itself, embedded
            wait_id = _item_id(item)
            async with slots:
                try:
                    return await self._read_wait(wait_id)
                except NotFound:
                    return None  # gone since the session was read

        waits = await asyncio.gather(*(read(item) for item in listed))
        return [self._wait_item(wait, session_id) for wait in waits if wait is not None]

    async def list_pending_actions(self) -> list[PendingAction]:
        """Pending waits of the active sessions, oldest first. The platform has no list of
        waits, so this reads each active session (up to ``inbox_sessions`` of them)."""
        sessions: list[Session] = []
        async for session in self.iter_sessions(
            SessionQuery(status=SessionStatus.ACTIVE), page_size=MAX_PAGE
        ):
            sessions.append(session)
            if len(sessions) >= self._inbox_sessions:
                break
        slots = asyncio.Semaphore(_SESSION_READS_AT_ONCE)

        async def read(session: Session) -> list[PendingAction]:
            async with slots:
                try:
                    return await self.list_session_actions(session.id)
                except NotFound:
                    return []

        pending = [
            item
            for items in await asyncio.gather(*(read(session) for session in sessions))
            for item in items
            if item.status is ActionStatus.PENDING
        ]
        return sorted(pending, key=lambda item: item.created_at)

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        wait = await self._read_wait(action_id)
        if wait.session_id and wait.session_id != session_id:
            raise NotFound("Not found: this wait belongs to another session")
        if session_id not in self._titles:
            try:
                await self.get_session(session_id)
            except BackendError:
                pass  # the wait shows without its session's name
        return self._wait_item(wait, session_id)

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
        raise Unsupported(Capability.PENDING_ACTIONS, self.name, NOT_DECIDABLE)

    # -- live: polling ---------------------------------------------------------------------------
    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
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
        async def poll(last: int | None) -> list[Event]:
            events = await self._timeline_events(session_id)
            return [event for event in events if event.sequence > (last or 0)]

        watch = self._live.polled(
            poll=poll, position=lambda event: event.sequence, after=after, on_state=on_state
        )
        async with aclosing(watch):
            async for event in watch:
                yield event


class _SessionsPoller:
    """Organisation changes without a stream: the newest sessions, compared between polls.
    Positions are counters, for ordering and de-duplication. The first poll only learns what is
    there (the console's list was read moments before)."""

    def __init__(self, backend: AgentInboxBackend) -> None:
        self._backend = backend
        self._known: dict[str, tuple[Any, ...]] | None = None
        self._counter = 0

    async def poll(self, last: int | None) -> list[OrgChange]:
        if last is not None and self._counter < last:
            self._counter = last
        page = await self._backend.list_sessions(limit=MAX_PAGE)
        current = {
            session.id: (session.status, session.title, session.updated_at, session.finished_at)
            for session in page.data
        }
        changes: list[OrgChange] = []
        if self._known is not None:
            for session in page.data:
                before = self._known.get(session.id)
                if before == current[session.id]:
                    continue
                self._counter += 1
                kind = "session.created" if before is None else "session.updated"
                changes.append(
                    OrgChange(id=self._counter, kind=kind, session_id=session.id, session=session)
                )
        self._known = current
        return changes


def _item_id(item: str | dict[str, Any]) -> str:
    if isinstance(item, dict):
        return str(item.get("id", ""))
    return str(item)
