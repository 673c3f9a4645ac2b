"""A Viben gateway, written from ``../shared/vendor/viben-sessions.txt`` and the Viben notes of
``../shared/vendor/README.md`` only (it never imports ``sessionscope.backends``).

Documented, and done as documented: ``GET/POST /api/sessions`` (list ``{sessions: [...]}``, not
paginated, filters ``task_id``, ``agent_id``, ``status``; create ``{agent_id, task_id?, prompt?}``
replying ``{id, agent_id, task_id, status: "created", created_at}``), ``GET/PATCH/DELETE
/api/sessions/:id`` (the detail adds ``data``; PATCH takes ``status``, ``data``, ``prompt``),
``POST /api/sessions/:id/message`` (``{content}`` -> ``{message_id, status: "sent",
timestamp}``), ``GET /api/sessions/:id/messages``, ``GET /api/events`` (SSE), ``/ws`` (takes
``{"type": "subscribe", "channels": ["sessions", ...]}``, sends ``{channel, type, data,
timestamp}``), no authentication.

Not documented, so chosen here (the backend must not depend on more than the documents say):
the messages reply is ``{messages: [{id, role, content, timestamp}]}``; SSE frames carry the
``/ws`` message shape ``{channel, type, data, timestamp}`` as JSON with ``event: <type>`` and no
``id:`` (nothing to resume from); messages are announced on a ``messages`` channel; errors are
``{"error": "..."}``; PATCH replies with the session; DELETE with ``{"success": true}``; ``data``
in a PATCH is merged into the session's.

The server runs in its own thread (so it also serves Textual snapshot runs, which bring their own
event loop); every control method may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

STATUSES = ("created", "active", "paused", "completed", "failed")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    #: (channel, type, the frame's JSON), or None: cut the connection.
    queue: asyncio.Queue[tuple[str, str, str] | None]
    #: ``/ws`` subscribers: the channels subscribed to; None for the SSE stream (every frame).
    channels: set[str] | None = None


class _Dropped(Exception):
    """Raised in a stream's body to cut its connection mid-way."""


@dataclass
class FakeViben:
    """State of one gateway plus the server that serves it."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)
    #: Answer ``GET /api/events`` with 404 (a gateway without the stream).
    refuse_stream: bool = False
    #: Refuse the ``/ws`` handshake (403) as well.
    refuse_websocket: bool = False
    #: What ``/ws`` clients sent (their subscriptions).
    websocket_messages: list[Any] = field(default_factory=list)
    #: Times are ``clock_start`` plus one second per created thing: deterministic output.
    clock_start: datetime = field(default_factory=lambda: datetime(2026, 1, 16, 10, 0, tzinfo=UTC))
    port: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ticks: itertools.count[int] = field(default_factory=itertools.count)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _failures: deque[tuple[int, float | None]] = field(default_factory=deque)
    _subscribers: list[_Subscriber] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeViben:
        app = Starlette(
            routes=[
                Route("/api/sessions", self._list_or_create, methods=["GET", "POST"]),
                Route(
                    "/api/sessions/{session_id}",
                    self._one_session,
                    methods=["GET", "PATCH", "DELETE"],
                ),
                Route("/api/sessions/{session_id}/message", self._send, methods=["POST"]),
                Route("/api/sessions/{session_id}/messages", self._messages, methods=["GET"]),
                Route("/api/events", self._events, methods=["GET"]),
                WebSocketRoute("/ws", self._websocket),
            ]
        )
        config = uvicorn.Config(
            self._recording(app), host="127.0.0.1", port=0, log_level="critical", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-viben", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Viben gateway did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.drop_streams()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeViben:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _recording(self, app: Any) -> Any:
        async def recorded(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query = scope.get("query_string", b"").decode("latin-1")
            with self._lock:
                self.requests.append(
                    SeenRequest(scope["method"], scope["path"], query, headers, body)
                )
                failure = self._failures.popleft() if self._failures else None
            if failure is not None:
                status, retry_after = failure
                response = self._error(status, "injected failure")
                if retry_after is not None:
                    response.headers["Retry-After"] = f"{retry_after:g}"
                return await response(scope, receive, send)
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            return await app(scope, replay, send)

        return recorded

    # -- controls: the agent's side and the test's ------------------------------------------------
    def _now(self) -> datetime:
        return self.clock_start + timedelta(seconds=next(self._ticks))

    def add_session(
        self,
        agent_id: str = "CLAUDE_CODE",
        *,
        task_id: str | None = "task-xyz",
        status: str = "active",
        data: dict[str, Any] | None = None,
        prompt: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            now = _iso(self._now())
            session = {
                "id": session_id or f"session-{next(self._ids):06x}",
                "agent_id": agent_id,
                "task_id": task_id,
                "status": status,
                "created_at": now,
                "last_active": now,
                "message_count": 0,
                "data": dict(data or {}),
                "prompt": prompt,
            }
            self.sessions[session["id"]] = session
            self.messages[session["id"]] = []
        self._announce("sessions", "session.created", self._detail(session))
        return dict(session)

    def add_message(
        self, session_id: str, content: Any, *, role: str = "assistant"
    ) -> dict[str, Any]:
        with self._lock:
            session = self.sessions[session_id]
            moment = _iso(self._now())
            message = {
                "id": f"msg-{next(self._ids):06x}",
                "role": role,
                "content": content,
                "timestamp": moment,
            }
            self.messages[session_id].append(message)
            session["message_count"] = len(self.messages[session_id])
            session["last_active"] = moment
        self._announce(
            "messages", "message.created", {"session_id": session_id, "message": message}
        )
        return dict(message)

    def set_status(self, session_id: str, status: str) -> None:
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = status
            session["last_active"] = _iso(self._now())
        self._announce("sessions", "session.updated", self._detail(session))

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures.append((status, retry_after))

    def drop_streams(self) -> None:
        """Cut every open ``/api/events`` connection (later ones are served again)."""
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for subscriber in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                subscriber.loop.call_soon_threadsafe(subscriber.queue.put_nowait, None)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def seen(self, method: str, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # -- the API --------------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @staticmethod
    def _listed(session: dict[str, Any]) -> dict[str, Any]:
        return {
            key: session[key]
            for key in (
                "id",
                "agent_id",
                "task_id",
                "status",
                "created_at",
                "last_active",
                "message_count",
            )
        }

    def _detail(self, session: dict[str, Any]) -> dict[str, Any]:
        return {**self._listed(session), "data": dict(session["data"])}

    def _announce(self, channel: str, kind: str, data: dict[str, Any]) -> None:
        body = json.dumps(
            {"channel": channel, "type": kind, "data": data, "timestamp": _iso(datetime.now(UTC))}
        )
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            if subscriber.channels is not None and channel not in subscriber.channels:
                continue
            with contextlib.suppress(RuntimeError):
                subscriber.loop.call_soon_threadsafe(
                    subscriber.queue.put_nowait, (channel, kind, body)
                )

    async def _json_body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "Invalid JSON body")
        if not isinstance(body, dict):
            return self._error(400, "Body must be an object")
        return body

    async def _list_or_create(self, request: Request) -> Response:
        if request.method == "GET":
            filters = {
                name: request.query_params[name]
                for name in ("task_id", "agent_id", "status")
                if name in request.query_params
            }
            with self._lock:
                listed = [
                    self._listed(session)
                    for session in self.sessions.values()
                    if all(session.get(name) == value for name, value in filters.items())
                ]
            return JSONResponse({"sessions": listed})
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        agent_id = body.get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            return self._error(400, "agent_id is required")
        session = self.add_session(
            agent_id, task_id=body.get("task_id"), status="created", prompt=body.get("prompt")
        )
        reply = {k: session[k] for k in ("id", "agent_id", "task_id", "status", "created_at")}
        return JSONResponse(reply, status_code=201)

    async def _one_session(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        with self._lock:
            session = self.sessions.get(session_id)
        if session is None:
            return self._error(404, "Session not found")
        if request.method == "GET":
            with self._lock:
                return JSONResponse(self._detail(session))
        if request.method == "DELETE":
            with self._lock:
                self.sessions.pop(session_id, None)
                self.messages.pop(session_id, None)
            self._announce("sessions", "session.deleted", {"id": session_id})
            return JSONResponse({"success": True})
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        status = body.get("status")
        if status is not None and status not in STATUSES:
            return self._error(400, f"Invalid status: {status}")
        data = body.get("data")
        if data is not None and not isinstance(data, dict):
            return self._error(400, "data must be an object")
        with self._lock:
            if status is not None:
                session["status"] = status
            if data is not None:
                session["data"].update(data)
            if isinstance(body.get("prompt"), str):
                session["prompt"] = body["prompt"]
            session["last_active"] = _iso(self._now())
            detail = self._detail(session)
        self._announce("sessions", "session.updated", detail)
        return JSONResponse(detail)

    async def _send(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        content = body.get("content")
        if not isinstance(content, str) or not content:
            return self._error(400, "content is required")
        with self._lock:
            if session_id not in self.sessions:
                return self._error(404, "Session not found")
        message = self.add_message(session_id, content, role="user")
        return JSONResponse(
            {"message_id": message["id"], "status": "sent", "timestamp": message["timestamp"]}
        )

    async def _messages(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        with self._lock:
            if session_id not in self.sessions:
                return self._error(404, "Session not found")
            return JSONResponse({"messages": [dict(m) for m in self.messages[session_id]]})

    async def _events(self, request: Request) -> Response:
        if self.refuse_stream:
            return self._error(404, "Not found")
        subscriber = _Subscriber(asyncio.get_running_loop(), asyncio.Queue())
        with self._lock:
            self._subscribers.append(subscriber)

        async def frames() -> Any:
            try:
                yield b": connected\n\n"
                while True:
                    frame = await subscriber.queue.get()
                    if frame is None:
                        raise _Dropped
                    _channel, kind, body = frame
                    yield f"event: {kind}\ndata: {body}\n\n".encode()
            finally:
                with self._lock:
                    if subscriber in self._subscribers:
                        self._subscribers.remove(subscriber)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
        )

    async def _websocket(self, websocket: WebSocket) -> None:
        if self.refuse_websocket:
            await websocket.close(code=1008)  # before accepting: the handshake gets a 403
            return
        await websocket.accept()
        subscriber = _Subscriber(asyncio.get_running_loop(), asyncio.Queue(), channels=set())

        async def read() -> None:
            # {"type": "subscribe", "channels": [...]} adds channels.
            while True:
                message = await websocket.receive_json()
                with self._lock:
                    self.websocket_messages.append(message)
                if isinstance(message, dict) and message.get("type") == "subscribe":
                    channels = message.get("channels")
                    if isinstance(channels, list) and subscriber.channels is not None:
                        subscriber.channels.update(str(channel) for channel in channels)
                        with self._lock:
                            if subscriber not in self._subscribers:
                                self._subscribers.append(subscriber)

        reader = asyncio.create_task(read())
        try:
            while True:
                getter = asyncio.ensure_future(subscriber.queue.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():  # the client left
                    getter.cancel()
                    return
                frame = getter.result()
                if frame is None:
                    await websocket.close(code=1011)  # going away mid-stream
                    return
                await websocket.send_text(frame[2])
        except WebSocketDisconnect:
            return
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await reader
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)
