"""A fake AgentInbox, written from the platform's documents only (``agentinbox-sessions.txt`` and
the AgentInbox notes in ``../shared/vendor/README.md``; the wait object as the platform's Waits
reference gives it). It never imports the console's backends.

Served on loopback below ``/api/v1``, with ``Authorization: Bearer at_test_...``:

* ``POST /sessions`` (name, metadata), ``GET /sessions`` (limit, offset, status), ``GET
  /sessions/{id}`` (inboxes and waits as ids), ``POST /sessions/{id}/complete``, ``GET
  /sessions/{id}/timeline``, ``POST /sessions/{id}/replay``; ``GET /waits/{id}``.
* Lists in either documented shape (``list_shape``): the documents' offset pages ``{data,
  pagination{limit, offset, total}}`` or the SDKs' cursor pages ``{object: "list", data,
  nextCursor, hasMore}`` (paged on with ``cursor``).
* Field names in either case (``key_case``): camelCase as the documents show, or snake_case as
  the Python SDK reads them.
* Errors in either shape (``error_shape``): ``{error, message}`` (documents) or ``{error: {code,
  message, docs_url}}`` (SDKs).

The agent's side (inboxes, messages, waits) is driven by methods on the fake, under a lock, from
the test's thread; every request is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "at_test_0123456789abcdef"
ListShape = Literal["offset", "cursor"]
ErrorShape = Literal["docs", "sdk"]
KeyCase = Literal["camel", "snake"]

_ERROR_TITLES = {
    400: ("Invalid request", "invalid_request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not found", "not_found"),
    409: ("Conflict", "conflict"),
    429: ("Too many requests", "rate_limited"),
    500: ("Internal server error", "internal_error"),
    502: ("Bad gateway", "bad_gateway"),
    503: ("Service unavailable", "unavailable"),
}
_SESSION_STATUSES = ("active", "completed", "failed")
_WAIT_TYPES = ("email", "otp", "magic_link", "password_reset", "check")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeWait:
    id: str
    session_id: str
    inbox_id: str
    type: str
    timeout_seconds: int
    created_at: datetime
    status: str = "pending"
    result: Any = None
    completed_at: datetime | None = None

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.timeout_seconds)


@dataclass
class FakeSession:
    id: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    completed_at: datetime | None = None
    inboxes: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


class _NotifyingServer(uvicorn.Server):
    """Sets ``ready`` once the socket listens (or start-up failed)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready_event = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._ready_event.set()


class AgentInboxFake:
    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        list_shape: ListShape = "offset",
        error_shape: ErrorShape = "docs",
        key_case: KeyCase = "camel",
        clock: datetime | None = None,
    ) -> None:
        self.api_key = api_key
        self.list_shape: ListShape = list_shape
        self.error_shape: ErrorShape = error_shape
        self.key_case: KeyCase = key_case
        #: A fixed time for everything created (snapshots); the real time when None.
        self.clock = clock
        self.sessions: dict[str, FakeSession] = {}
        self.waits: dict[str, FakeWait] = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._fail_next: list[tuple[int, float | None]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/api/v1/sessions", self._sessions, methods=["GET", "POST"]),
                Route("/api/v1/sessions/{id}", self._session, methods=["GET"]),
                Route("/api/v1/sessions/{id}/complete", self._complete, methods=["POST"]),
                Route("/api/v1/sessions/{id}/timeline", self._timeline, methods=["GET"]),
                Route("/api/v1/sessions/{id}/replay", self._replay, methods=["POST"]),
                Route("/api/v1/waits/{id}", self._wait, methods=["GET"]),
            ]
        )
        self.app.add_exception_handler(404, self._unknown_path)
        self.app.add_exception_handler(405, self._unknown_path)

    # -- running --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The documented base, ``/api/v1`` included."""
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> AgentInboxFake:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            self._guarded,
            interface="asgi3",
            log_config=None,
            log_level="warning",
            lifespan="off",
        )
        ready = threading.Event()
        server = self._server = _NotifyingServer(config, ready)
        sockets = [self._socket]

        async def serve() -> None:
            await server.serve(sockets=sockets)

        self._thread = threading.Thread(
            target=lambda: asyncio.run(serve()), name="agentinbox-fake", daemon=True
        )
        self._thread.start()
        ready.wait(30)
        if not server.started:
            self.stop()
            raise RuntimeError("the AgentInbox fake did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> AgentInboxFake:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the agent's side -----------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock or datetime.now(UTC)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06x}"

    def add_session(
        self,
        name: str,
        metadata: dict[str, Any] | None = None,
        *,
        created_at: datetime | None = None,
        status: str = "active",
        session_id: str | None = None,
    ) -> str:
        with self._lock:
            return self._add_session(name, metadata or {}, created_at, status, session_id)

    def _add_session(
        self,
        name: str,
        metadata: dict[str, Any],
        created_at: datetime | None,
        status: str,
        session_id: str | None = None,
    ) -> str:
        created = created_at or self.now()
        session = FakeSession(
            id=session_id or self._new_id("sess"),
            name=name,
            metadata=metadata,
            created_at=created,
            updated_at=created,
            status=status,
            completed_at=created if status == "completed" else None,
        )
        self.sessions[session.id] = session
        self._event(session, "session.created", {"sessionId": session.id}, created)
        return session.id

    def _event(
        self, session: FakeSession, kind: str, payload: dict[str, Any], at: datetime | None = None
    ) -> None:
        session.timeline.append(
            {"timestamp": _iso(at or self.now()), "type": kind, "payload": payload}
        )
        session.updated_at = at or self.now()

    def add_event(
        self,
        session_id: str,
        kind: str,
        payload: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> None:
        with self._lock:
            self._event(self.sessions[session_id], kind, payload, at)

    def receive_message(self, session_id: str, *, at: datetime | None = None) -> str:
        with self._lock:
            message_id = self._new_id("msg")
            self._event(
                self.sessions[session_id], "message.received", {"messageId": message_id}, at
            )
            return message_id

    def add_inbox(self, session_id: str, *, at: datetime | None = None) -> str:
        with self._lock:
            session = self.sessions[session_id]
            inbox_id = self._new_id("inb")
            session.inboxes.append(inbox_id)
            self._event(session, "inbox.created", {"inboxId": inbox_id}, at)
            self._step(session, "create_inbox", {"ttlSeconds": 3600}, {"id": inbox_id}, 120, at)
            return inbox_id

    def add_wait(
        self,
        session_id: str,
        wait_type: str,
        timeout_seconds: int = 120,
        *,
        inbox_id: str | None = None,
        at: datetime | None = None,
        wait_id: str | None = None,
    ) -> str:
        with self._lock:
            session = self.sessions[session_id]
            inbox = inbox_id or (session.inboxes[-1] if session.inboxes else self._new_id("inb"))
            wait = FakeWait(
                id=wait_id or self._new_id("wait"),
                session_id=session_id,
                inbox_id=inbox,
                type=wait_type,
                timeout_seconds=timeout_seconds,
                created_at=at or self.now(),
            )
            self.waits[wait.id] = wait
            session.waits.append(wait.id)
            self._step(
                session,
                "create_wait",
                {"type": wait_type, "timeoutSeconds": timeout_seconds},
                {"id": wait.id},
                45,
                at,
            )
            return wait.id

    def complete_wait(self, wait_id: str, result: Any, *, at: datetime | None = None) -> None:
        with self._lock:
            wait = self.waits[wait_id]
            wait.status = "completed"
            wait.result = result
            wait.completed_at = at or self.now()
            self._event(self.sessions[wait.session_id], "wait.completed", {"waitId": wait_id}, at)

    def _step(
        self,
        session: FakeSession,
        action: str,
        given: dict[str, Any],
        output: dict[str, Any],
        duration_ms: int,
        at: datetime | None,
    ) -> None:
        session.steps.append(
            {
                "index": len(session.steps),
                "timestamp": _iso(at or self.now()),
                "action": action,
                "input": given,
                "output": output,
                "durationMs": duration_ms,
            }
        )

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        """The next request is answered with ``status`` in the current error shape (with
        ``Retry-After`` for a 429)."""
        with self._lock:
            self._fail_next.append((status, retry_after))

    # -- shapes ---------------------------------------------------------------------------------
    def _keys(self, value: dict[str, Any]) -> dict[str, Any]:
        """The platform's own field names in the chosen case (user data left alone)."""
        if self.key_case == "camel":
            return value
        return {_snake(key): item for key, item in value.items()}

    def _wait_status(self, wait: FakeWait) -> str:
        if wait.status == "pending" and self.now() >= wait.expires_at:
            return "timed_out"
        return wait.status

    def _session_json(self, session: FakeSession, *, full: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": session.id,
            "name": session.name,
            "status": session.status,
            "createdAt": _iso(session.created_at),
        }
        if full:
            body |= {
                "updatedAt": _iso(session.updated_at),
                "completedAt": _iso(session.completed_at),
                "metadata": session.metadata,
                "inboxes": list(session.inboxes),
                "waits": list(session.waits),
            }
        return self._keys(body)

    def _wait_json(self, wait: FakeWait) -> dict[str, Any]:
        return self._keys(
            {
                "id": wait.id,
                "inboxId": wait.inbox_id,
                "type": wait.type,
                "status": self._wait_status(wait),
                "timeoutSeconds": wait.timeout_seconds,
                "createdAt": _iso(wait.created_at),
                "expiresAt": _iso(wait.expires_at),
                "completedAt": _iso(wait.completed_at),
                "result": wait.result,
                "sessionId": wait.session_id,
            }
        )

    def _error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        title, code = _ERROR_TITLES.get(status, ("Error", "error"))
        body: dict[str, Any]
        if self.error_shape == "docs":
            body = {"error": title, "message": message}
        else:
            body = {
                "error": {
                    "code": code,
                    "message": message,
                    "docs_url": f"https://agentinbox.in/docs/errors#{code}",
                }
            }
        return JSONResponse(body, status_code=status, headers=headers)

    # -- the API --------------------------------------------------------------------------------
    async def _guarded(self, scope: Any, receive: Any, send: Any) -> None:
        """Records, injects a failure when asked, checks the key, then serves."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )

        async def replay_body() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        response: Response | None = None
        with self._lock:
            injected = self._fail_next.pop(0) if self._fail_next else None
        if injected is not None:
            status, retry_after = injected
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            response = self._error(status, "Injected failure", headers)
        elif request.headers.get("authorization") != f"Bearer {self.api_key}":
            response = self._error(401, "Invalid or missing API key")
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, replay_body, send)

    async def _unknown_path(self, request: Request, exc: Exception) -> Response:
        return self._error(404, "Not found")

    async def _sessions(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._create(request)
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return self._error(400, "limit and offset must be integers")
        if limit < 1 or limit > 100 or offset < 0:
            return self._error(400, "limit must be between 1 and 100")
        status = query.get("status")
        if status is not None and status not in _SESSION_STATUSES:
            return self._error(400, "status must be one of active, completed, failed")
        cursor = query.get("cursor")
        if cursor is not None:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("o"))
            except ValueError:
                return self._error(400, "invalid cursor")
        with self._lock:
            rows = [s for s in self.sessions.values() if status is None or s.status == status]
            # Newest first; ties in creation order, newest last created first.
            rows = list(reversed(rows))
            rows.sort(key=lambda s: s.created_at, reverse=True)
            page = [self._session_json(s, full=False) for s in rows[offset : offset + limit]]
            total = len(rows)
        following = offset + len(page)
        if self.list_shape == "offset":
            return JSONResponse(
                {"data": page, "pagination": {"limit": limit, "offset": offset, "total": total}}
            )
        more = following < total
        token = base64.urlsafe_b64encode(f"o{following}".encode()).decode() if more else None
        return JSONResponse(
            {"object": "list", "data": page} | self._keys({"nextCursor": token, "hasMore": more})
        )

    async def _create(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return self._error(400, "the body must be an object")
        name = body.get("name")
        metadata = body.get("metadata", {})
        if not isinstance(name, str) or not name:
            return self._error(400, "name is required")
        if not isinstance(metadata, dict):
            return self._error(400, "metadata must be an object")
        with self._lock:
            session_id = self._add_session(name, metadata, None, "active")
            reply = self._session_json(self.sessions[session_id])
        return JSONResponse(reply, status_code=201)

    def _find(self, request: Request) -> FakeSession | None:
        return self.sessions.get(request.path_params["id"])

    async def _session(self, request: Request) -> Response:
        with self._lock:
            session = self._find(request)
            if session is None:
                return self._error(404, "Session not found")
            return JSONResponse(self._session_json(session))

    async def _complete(self, request: Request) -> Response:
        with self._lock:
            session = self._find(request)
            if session is None:
                return self._error(404, "Session not found")
            session.status = "completed"
            session.completed_at = session.updated_at = self.now()
            return JSONResponse(
                self._keys(
                    {
                        "id": session.id,
                        "status": "completed",
                        "completedAt": _iso(session.completed_at),
                    }
                )
            )

    async def _timeline(self, request: Request) -> Response:
        with self._lock:
            session = self._find(request)
            if session is None:
                return self._error(404, "Session not found")
            return JSONResponse({"events": [dict(entry) for entry in session.timeline]})

    async def _replay(self, request: Request) -> Response:
        with self._lock:
            session = self._find(request)
            if session is None:
                return self._error(404, "Session not found")
            return JSONResponse({"steps": [self._keys(dict(step)) for step in session.steps]})

    async def _wait(self, request: Request) -> Response:
        with self._lock:
            wait = self.waits.get(request.path_params["id"])
            if wait is None:
                return self._error(404, "Wait not found")
            return JSONResponse(self._wait_json(wait))
