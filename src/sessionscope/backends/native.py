"""The backend for sessionscope's own Sessions API (``/v1``), over httpx and httpx-sse.

Options read from ``BackendConfig.options`` (all optional):

``retry_attempts`` (4), ``retry_base`` (0.25 s), ``retry_max`` (5 s), ``max_retry_after`` (30 s)
    request retries: exponential backoff with full jitter, bounded attempts.
``reconnect_base`` (0.5 s), ``reconnect_max`` (15 s)
    live-watch reconnect backoff; ``reconnect_max`` also bounds the server's ``retry:`` hint.
``stream_read_timeout`` (45 s)
    a stream silent for longer (the server sends a heartbeat at least every 15 s) is re-opened.
``poll`` (false)
    watch by polling every ``poll_interval`` seconds instead of streaming.
``max_connections`` (20), ``max_keepalive`` (10), ``max_response_bytes`` (64 MiB), ``seed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from functools import cache
from itertools import pairwise
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from sessionscope.backends._http import (
    Backoff,
    HttpClient,
    error_from_transport,
    flag_option,
    neutralise_detail,
    option,
    parse_json_as,
)
from sessionscope.backends.base import (
    Backend,
    BackendConfig,
    Capability,
    NotFound,
    ProtocolError,
    SessionQuery,
    WatchStateCallback,
)
from sessionscope.backends.live import (
    LiveWatch,
    OpenStream,
    Resume,
    RetryHint,
    StateReporter,
    sse_events,
)
from sessionscope.models import (
    ActionDecisionResult,
    Artifact,
    CloseResult,
    Event,
    EventType,
    KeyIdentity,
    OrgChange,
    Page,
    PendingAction,
    Replay,
    Session,
    SessionCreate,
    SessionUpdate,
    TimelineEntry,
    ToolCall,
    ToolResult,
)

log = logging.getLogger("sessionscope.backends.native")

T = TypeVar("T")

_SESSION = TypeAdapter(Session)
_SESSION_PAGE = TypeAdapter(Page[Session])
_CLOSE = TypeAdapter(CloseResult)
_EVENT = TypeAdapter(Event)
_ARTIFACT = TypeAdapter(Artifact)
_REPLAY = TypeAdapter(Replay)
_TOOL_CALL = TypeAdapter(ToolCall)
_ACTION = TypeAdapter(PendingAction)
_DECISION = TypeAdapter(ActionDecisionResult)
_IDENTITY = TypeAdapter(KeyIdentity)
_ORG_CHANGE = TypeAdapter(OrgChange)
_ANY_DICT = TypeAdapter(dict[str, Any])


# Each Page[...] parametrisation creates a model class (5-10 ms for these at import, before the
# console's first frame); built on first use instead.
@cache
def _event_page() -> TypeAdapter[Page[Event]]:
    return TypeAdapter(Page[Event])


@cache
def _artifact_page() -> TypeAdapter[Page[Artifact]]:
    return TypeAdapter(Page[Artifact])


@cache
def _timeline() -> TypeAdapter[list[TimelineEntry] | Page[TimelineEntry]]:
    return TypeAdapter(list[TimelineEntry] | Page[TimelineEntry])


@cache
def _tool_calls() -> TypeAdapter[list[ToolCall] | Page[ToolCall]]:
    return TypeAdapter(list[ToolCall] | Page[ToolCall])


@cache
def _actions() -> TypeAdapter[list[PendingAction] | Page[PendingAction]]:
    return TypeAdapter(list[PendingAction] | Page[PendingAction])


_MAX_SESSION_PAGE = 200
_MAX_EVENT_PAGE = 1000
_MAX_TIMELINE_EVENTS = 5000


def _seg(value: str) -> str:
    """An id as one path segment: ids come from servers and agents, so ``../`` stays literal."""
    return quote(str(value), safe="")


def _descends(sessions: list[Session]) -> bool:
    """Some session was created before the one listed ahead of it: a newest-first list. (Equal
    times say nothing: servers may break ties by id either way.)"""
    return any(later.created_at < earlier.created_at for earlier, later in pairwise(sessions))


def _items(value: list[T] | Page[T]) -> list[T]:
    return value if isinstance(value, list) else value.data


class NativeBackend(Backend):
    name = "native"
    #: Everything, ``OLDEST_FIRST`` included until a server shows it ignores ``order=oldest``
    #: (then ``list_sessions`` drops it from the instance's set and raises ``Unsupported``).
    capabilities = frozenset(Capability) - {Capability.CANCEL_TURN}

    def __init__(self, config: BackendConfig) -> None:
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
        self._stream_read_timeout = option(config, "stream_read_timeout", 45.0)
        self._live = LiveWatch(
            display_name=self._display_name,
            reconnect=self._reconnect,
            poll_interval=config.poll_interval,
            redact=self._http.redact,
            force_poll=flag_option(config, "poll"),
            poll_page=_MAX_EVENT_PAGE,
        )

    def __repr__(self) -> str:
        return f"NativeBackend({self._display_name})"

    @property
    def display_name(self) -> str:
        return self._display_name

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- server ---------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return await self._http.json_as(_ANY_DICT, "GET", "/v1/health")

    async def identity(self) -> KeyIdentity | None:
        try:
            return await self._http.json_as(_IDENTITY, "GET", "/v1/whoami")
        except NotFound:
            return None  # a server from before roles: every key has every right

    # -- sessions -------------------------------------------------------------------------------
    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        params: dict[str, Any] = {"limit": max(1, min(limit, _MAX_SESSION_PAGE))}
        if query is not None:
            if query.status is not None:
                params["status"] = query.status.value
            for name in ("agent_id", "task_id", "tag"):
                value = getattr(query, name)
                if value:
                    params[name] = value
            if query.text:
                params["q"] = query.text
            if query.order != "newest":
                params["order"] = query.order
        if cursor:
            params["cursor"] = cursor
        try:
            page = await self._http.json_as(_SESSION_PAGE, "GET", "/v1/sessions", params=params)
        except NotFound as error:
            # The list itself missing means the URL is wrong, not that something was deleted.
            raise NotFound(
                f"{error.message} — is the URL right? {self._http.base_url} should be the "
                "server's base, with the API's /v1 below it",
                status=404,
            ) from None
        if params.get("order") == "oldest" and _descends(page.data):
            # A server older than ``order`` ignores it and lists newest first: the capability
            # was claimed on trust (checking first would cost a request at startup), and is
            # dropped now, before any caller takes these rows for the oldest.
            self.capabilities = self.capabilities - {Capability.OLDEST_FIRST}
            raise self._unsupported(Capability.OLDEST_FIRST)
        return page

    async def iter_sessions(
        self, query: SessionQuery | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Session]:
        # A server that hands back a cursor it already gave would otherwise loop forever.
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
                    "The server repeated a page cursor; stopped paging to avoid a loop "
                    "(GET /v1/sessions)"
                )
            seen_cursors.add(page.next_cursor)
            cursor = page.next_cursor

    async def get_session(self, session_id: str) -> Session:
        return await self._http.json_as(_SESSION, "GET", f"/v1/sessions/{_seg(session_id)}")

    async def create_session(self, spec: SessionCreate) -> Session:
        return await self._http.json_as(
            _SESSION,
            "POST",
            "/v1/sessions",
            json_body=spec.model_dump(mode="json", exclude_none=True),
        )

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        return await self._http.json_as(
            _SESSION,
            "PATCH",
            f"/v1/sessions/{_seg(session_id)}",
            json_body=update.model_dump(mode="json", exclude_none=True),
            # The same partial update applied twice leaves the same session.
            idempotent=True,
        )

    async def delete_session(self, session_id: str) -> None:
        await self._http.request("DELETE", f"/v1/sessions/{_seg(session_id)}")

    async def close_session(self, session_id: str) -> CloseResult:
        return await self._http.json_as(_CLOSE, "POST", f"/v1/sessions/{_seg(session_id)}/close")

    async def complete_session(self, session_id: str) -> Session:
        return await self._http.json_as(
            _SESSION, "POST", f"/v1/sessions/{_seg(session_id)}/complete"
        )

    async def send_message(self, session_id: str, content: str) -> Event:
        return await self._http.json_as(
            _EVENT,
            "POST",
            f"/v1/sessions/{_seg(session_id)}/messages",
            json_body={"content": content},
        )

    # -- events ---------------------------------------------------------------------------------
    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        params: dict[str, Any] = {"after": after, "limit": max(1, min(limit, _MAX_EVENT_PAGE))}
        if types:
            params["types"] = ",".join(types)
        if include_hidden:
            params["include_hidden"] = "true"
        return await self._http.json_as(
            _event_page(), "GET", f"/v1/sessions/{_seg(session_id)}/events", params=params
        )

    def _event_path(self, session_id: str, event_id: str) -> str:
        return f"/v1/sessions/{_seg(session_id)}/events/{_seg(event_id)}"

    async def get_event(self, session_id: str, event_id: str) -> Event:
        return await self._http.json_as(_EVENT, "GET", self._event_path(session_id, event_id))

    async def delete_event(self, session_id: str, event_id: str) -> None:
        await self._http.request("DELETE", self._event_path(session_id, event_id))

    async def hide_event(self, session_id: str, event_id: str) -> Event:
        return await self._http.json_as(
            _EVENT, "POST", self._event_path(session_id, event_id) + "/hide", idempotent=True
        )

    async def unhide_event(self, session_id: str, event_id: str) -> Event:
        return await self._http.json_as(
            _EVENT, "POST", self._event_path(session_id, event_id) + "/unhide", idempotent=True
        )

    async def timeline(self, session_id: str) -> list[TimelineEntry]:
        # The server condenses events into entries, so entry counts cannot drive paging: ask for
        # the largest window it allows.
        return _items(
            await self._http.json_as(
                _timeline(),
                "GET",
                f"/v1/sessions/{_seg(session_id)}/timeline",
                params={"limit": _MAX_TIMELINE_EVENTS},
            )
        )

    async def replay(self, session_id: str) -> Replay:
        # Replay only reads the session, so it may be retried like a GET.
        return await self._http.json_as(
            _REPLAY, "POST", f"/v1/sessions/{_seg(session_id)}/replay", idempotent=True
        )

    # -- artifacts ------------------------------------------------------------------------------
    async def list_artifacts(
        self, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        params: dict[str, Any] = {"limit": max(1, min(limit, _MAX_SESSION_PAGE))}
        if cursor:
            params["cursor"] = cursor
        return await self._http.json_as(
            _artifact_page(), "GET", f"/v1/sessions/{_seg(session_id)}/artifacts", params=params
        )

    async def get_artifact(self, session_id: str, artifact_id: str) -> Artifact:
        artifact = await self._http.json_as(
            _ARTIFACT,
            "GET",
            f"/v1/sessions/{_seg(session_id)}/artifacts/{_seg(artifact_id)}",
            params={"content": "false"},
        )
        # Older servers ignore ``content=false`` and send the base64 content: drop it.
        if artifact.model_extra and "data" in artifact.model_extra:
            del artifact.model_extra["data"]
        return artifact

    async def read_artifact(
        self,
        session_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        max_bytes: int | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        """Stream the bytes with Range requests; a dropped connection resumes where it broke."""
        path = f"/v1/sessions/{_seg(session_id)}/artifacts/{_seg(artifact_id)}/content"
        offset = max(0, offset)
        delivered = 0
        attempt = 0
        retry = self._http.retry
        while True:
            start = offset + delivered
            if max_bytes is not None:
                if delivered >= max_bytes:
                    return
                byte_range: str | None = f"bytes={start}-{offset + max_bytes - 1}"
            else:
                byte_range = f"bytes={start}-" if start > 0 else None
            headers = {"Range": byte_range} if byte_range else {}
            try:
                async with self._http.stream("GET", path, headers=headers) as response:
                    if response.status_code == 416:  # offset past the end: nothing to read
                        return
                    skip = 0
                    if response.status_code == 206:
                        self._check_content_range(response, start, path)
                    elif start > 0:
                        skip = start  # the server ignored Range: discard what we already have
                    async for chunk in response.aiter_bytes(chunk_size):
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        if max_bytes is not None:
                            chunk = chunk[: max_bytes - delivered]
                        if not chunk:
                            continue
                        delivered += len(chunk)
                        attempt = 0
                        yield chunk
                        if max_bytes is not None and delivered >= max_bytes:
                            return
                    return
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= retry.attempts:
                    raise error_from_transport(exc, f"GET {path}", self._http.redact) from None
                await asyncio.sleep(retry.backoff.delay(attempt - 1))

    @staticmethod
    def _check_content_range(response: httpx.Response, start: int, path: str) -> None:
        content_range = response.headers.get("content-range", "")
        unit, _, spec = content_range.partition(" ")
        first = spec.partition("-")[0]
        if unit != "bytes" or not first.isdigit() or int(first) != start:
            raise ProtocolError(
                f"The server sent a different byte range than asked for "
                f"({neutralise_detail(content_range, 60)!r}; GET {path})"
            )

    # -- client tool calls ----------------------------------------------------------------------
    async def list_tool_calls(self, session_id: str) -> list[ToolCall]:
        return _items(
            await self._http.json_as(
                _tool_calls(), "GET", f"/v1/sessions/{_seg(session_id)}/tool-calls"
            )
        )

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        return await self._http.json_as(
            _TOOL_CALL,
            "POST",
            f"/v1/sessions/{_seg(session_id)}/tool-calls/{_seg(call_id)}/result",
            json_body=result.model_dump(mode="json"),
            headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
            # The key makes every retry of this call the same request to the server.
            idempotent=True,
        )

    # -- pending actions ------------------------------------------------------------------------
    async def list_pending_actions(self) -> list[PendingAction]:
        return _items(
            await self._http.json_as(_actions(), "GET", "/v1/actions", params={"status": "pending"})
        )

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        return _items(
            await self._http.json_as(_actions(), "GET", f"/v1/sessions/{_seg(session_id)}/actions")
        )

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        return await self._http.json_as(
            _ACTION, "GET", f"/v1/sessions/{_seg(session_id)}/actions/{_seg(action_id)}"
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
        # The reference API takes confirm/cancel only and has no place for a reason.
        if choice is not None:
            confirmed = choice == "confirm"
        path = f"/v1/sessions/{_seg(session_id)}/actions/{_seg(action_id)}"
        reply = await self._http.json_as(
            _ANY_DICT,
            "POST",
            path,
            json_body={"confirmed": confirmed},
            headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
            idempotent=True,
        )
        # The API's reply names only the outcome; the ids are the ones we asked about.
        reply.setdefault("session_id", session_id)
        reply.setdefault("action_id", action_id)
        return parse_json_as(_DECISION, json.dumps(reply).encode(), f"POST {path}", "json")

    # -- live -----------------------------------------------------------------------------------
    async def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        path = f"/v1/sessions/{_seg(session_id)}/events/stream"

        async def stream_missing() -> None:
            await self.get_session(session_id)  # NotFound here means the session is gone

        async def poll(last: int | None) -> list[Event]:
            page = await self.list_events(session_id, after=last or 0, limit=_MAX_EVENT_PAGE)
            return page.data

        watch = self._live.watch(
            open_stream=self._open_stream(path, lambda data: _EVENT.validate_json(data)),
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
        poller = _OrgPoller(self)

        async def stream_missing() -> None:
            return None

        watch = self._live.watch(
            open_stream=self._open_stream(
                "/v1/stream", lambda data: _ORG_CHANGE.validate_json(data)
            ),
            position=lambda change: change.id,
            after=after,
            on_state=on_state,
            poll=poller.poll,
            stream_missing=stream_missing,
            where="GET /v1/stream",
        )
        async with aclosing(watch):
            async for change in watch:
                yield change

    def _open_stream(self, path: str, parse: Callable[[str], T]) -> OpenStream[T]:
        async def open_stream(
            resume: Resume[T], state: StateReporter
        ) -> AsyncGenerator[T | RetryHint, None]:
            headers: dict[str, str] = {}
            params: dict[str, Any] = {}
            if resume.position is not None:
                headers["Last-Event-ID"] = str(resume.position)
                params["after"] = resume.position
            frames = sse_events(
                self._http,
                path,
                state=state,
                display_name=self.display_name,
                read_timeout=self._stream_read_timeout,
                request_timeout=self.config.timeout,
                params=params,
                headers=headers,
            )
            async with aclosing(frames):
                async for sse in frames:
                    if sse.retry is not None:
                        yield RetryHint(sse.retry / 1000)
                    if not sse.data:
                        continue
                    try:
                        yield parse(sse.data)
                    except ValueError as exc:  # pydantic ValidationError is a ValueError
                        raise ProtocolError(
                            f"The server sent a malformed stream frame ({type(exc).__name__}; "
                            f"GET {path})"
                        ) from None

        return open_stream


class _OrgPoller:
    """Organisation changes without a stream: diff the newest sessions and the action inbox
    between polls. Positions are counters, good for ordering and de-duplication; when the
    server's listing says its stream position they are kept above it, so that a change found
    by a poll is numbered above the position of the listing it was seen in: a listing whose
    position is at or above the change's number already includes it (``Page.stream_position``
    keeps its meaning for a console that lists while it polls)."""

    def __init__(self, backend: NativeBackend) -> None:
        self._backend = backend
        self._sessions: dict[str, Session] | None = None
        self._actions: dict[str, PendingAction] = {}
        self._counter = 0

    def _change(self, kind: str, session_id: str, **fields: Any) -> OrgChange:
        self._counter += 1
        return OrgChange(id=self._counter, kind=kind, session_id=session_id, **fields)

    async def poll(self, last: int | None) -> list[OrgChange]:
        if last is not None and self._counter < last:
            self._counter = last
        page = await self._backend.list_sessions(limit=_MAX_SESSION_PAGE)
        actions = await self._backend.list_pending_actions()
        if page.stream_position is not None and self._counter < page.stream_position:
            self._counter = page.stream_position
        changes: list[OrgChange] = []
        if self._sessions is None and last is not None:
            # The first poll only learns what is there now, so changes made since ``last`` (the
            # listing the watch follows from, or the last change a stream delivered before it
            # fell back to polling) cannot be told apart: say they were missed, as the stream
            # says when it pruned changes, and the console reloads. Unless the listing's
            # position shows nothing changed since.
            if page.stream_position is None or page.stream_position > last:
                changes.append(self._change(EventType.STREAM_RESET, ""))
        current = {session.id: session for session in page.data}
        if self._sessions is not None:
            for session_id, session in current.items():
                before = self._sessions.get(session_id)
                if before is None:
                    changes.append(self._change("session.created", session_id, session=session))
                elif before.updated_at != session.updated_at:
                    changes.append(self._change("session.updated", session_id, session=session))
        self._sessions = current
        pending = {action.id: action for action in actions}
        for action_id, action in pending.items():
            if action_id not in self._actions:
                changes.append(self._change("action.pending", action.session_id, action=action))
        for action_id, action in self._actions.items():
            if action_id not in pending:
                changes.append(self._change("action.resolved", action.session_id, action=action))
        self._actions = pending
        return changes
