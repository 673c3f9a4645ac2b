"""A stateful Everruns server for what a stateless mock cannot show: SSE resume with ``since_id``
across dropped connections, the ``connected`` and ``disconnecting{retry_ms}`` frames, too many
streams (429), and the tool-approval flow (documented by the platform, absent from its spec file).

Written from ``everruns-openapi.json`` (paths, parameters, the Session / Event / ErrorResponse
schemas), ``everruns-create-session.txt`` and the vendor notes in ``../shared/vendor/README.md``.
It never imports ``sessionscope.backends``. Run it in the test's event loop with ``start()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

ID = r"^{prefix}_[0-9a-f]{{32}}$"
KNOWN_TYPES = {
    "input.message",
    "output.message.started",
    "output.message.delta",
    "output.message.completed",
    "reason.thinking.delta",
    "tool.output.delta",
    "turn.started",
    "turn.completed",
    "turn.cancelled",
    "tool.started",
    "tool.completed",
    "tool.call_requested",
    "session.started",
    "session.activated",
    "session.idled",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@dataclass
class ApprovalRequest:
    """One ``POST .../tool-approvals`` as the server received it."""

    session_id: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeEverruns:
    token: str = "evr_pat_fake"
    org_id: str = field(default_factory=lambda: new_id("org"))
    #: ``retry_ms`` in the ``disconnecting`` frame; ``cycle_after`` frames per connection
    #: before the server cycles it (None: never).
    cycle_after: int | None = None
    disconnect_retry_ms: int = 100
    heartbeat_seconds: float = 30.0
    max_streams: int = 50
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    approvals: list[ApprovalRequest] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    #: Every SSE connection's query, in order (to check since_id resumes).
    stream_queries: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    #: Fixed time and counted ids, for snapshots; random ids and the wall clock otherwise.
    clock: datetime | None = None
    deterministic_ids: bool = False
    _counter: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _open_streams: int = 0
    #: (status, retry_after_seconds) for the next requests, answered as problem+json.
    _failures: list[tuple[int, int | None]] = field(default_factory=list)
    _signals: dict[str, asyncio.Event] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def _id(self, prefix: str) -> str:
        if not self.deterministic_ids:
            return new_id(prefix)
        self._counter += 1
        return f"{prefix}_{self._counter:032x}"

    def _now(self) -> str:
        if self.clock is None:
            return now()
        return self.clock.isoformat().replace("+00:00", "Z")

    # -- the agent's side (what the platform does on its own) ----------------------------------
    def add_session(self, title: str | None = None, *, agent_id: str | None = None) -> str:
        session_id = self._id("session")
        stamp = self._now()
        self.sessions[session_id] = {
            "id": session_id,
            "organization_id": self.org_id,
            "workspace_id": self._id("wsp"),
            "harness_id": self._id("harness"),
            "owner_principal_id": self._id("principal"),
            "agent_id": agent_id or self._id("agent"),
            "title": title,
            "status": "started",
            "tags": [],
            "created_at": stamp,
            "updated_at": stamp,
            "started_at": None,
            "finished_at": None,
            "preview": None,
            "output_preview": None,
            "usage": None,
            "capabilities": [],
        }
        self.events[session_id] = []
        self.emit(session_id, "session.started", {})
        return session_id

    def emit(self, session_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        log = self.events[session_id]
        event = {
            "id": self._id("event"),
            "type": event_type,
            "ts": self._now(),
            "session_id": session_id,
            "sequence": len(log) + 1,
            "context": {"turn_id": None},
            "data": data,
            "metadata": None,
            "tags": None,
        }
        log.append(event)
        self.sessions[session_id]["updated_at"] = event["ts"]
        signal = self._signals.pop(session_id, None)
        if signal is not None:
            if self._thread is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(signal.set)  # served from another thread
            else:
                signal.set()
        return event

    def agent_says(self, session_id: str, count: int) -> None:
        """``count`` agent messages, each streamed as a delta then completed: one durable event
        each (the deltas are ephemeral)."""
        for index in range(count):
            text = f"reply {index}"
            message = {
                "id": self._id("message"),
                "role": "agent",
                "content": [],
                "created_at": self._now(),
            }
            self.emit(session_id, "output.message.delta", {"delta": text})
            message["content"] = [{"type": "text", "text": text}]
            self.emit(session_id, "output.message.completed", {"message": message})
            self.sessions[session_id]["output_preview"] = text

    def hold_calls(
        self, session_id: str, calls: list[tuple[str, dict[str, Any]]], *, timeout: float = 900
    ) -> list[str]:
        """The approval gate holds one call per (tool, arguments): one ``tool.call_requested``
        with an ``approve_tool_call`` entry each; the session waits. Returns the entries' ids."""
        asked = self.clock or datetime.now(UTC)
        entries = []
        for tool, arguments in calls:
            gated = self._id("toolu")
            entries.append(
                {
                    "id": f"tool_approval_{gated}",
                    "name": "approve_tool_call",
                    "arguments": {
                        "code": "tool_approval_required",
                        "error": "Waiting for a person to approve this call",
                        "tool_call_id": gated,
                        "tool": tool,
                        "arguments": arguments,
                        "arguments_truncated": False,
                        "fingerprint": "sha256:" + uuid.uuid4().hex,
                        "risk": "open_world",
                        "mode": "normal",
                        "asked_at": asked.isoformat().replace("+00:00", "Z"),
                        "expires_at": (asked + timedelta(seconds=timeout))
                        .isoformat()
                        .replace("+00:00", "Z"),
                    },
                }
            )
        self.sessions[session_id]["status"] = "waiting_for_tool_results"
        self.emit(session_id, "tool.call_requested", {"tool_calls": entries})
        return [entry["id"] for entry in entries]

    def fail_next(self, status: int, *, retry_after_seconds: int | None = None) -> None:
        """Answer the next request with ``status`` (problem+json, the platform's retry hint in
        ``retry_after_seconds`` as its ErrorResponse schema has it)."""
        self._failures.append((status, retry_after_seconds))

    def held(self, session_id: str) -> list[str]:
        if self.sessions[session_id]["status"] != "waiting_for_tool_results":
            return []
        for event in reversed(self.events[session_id]):
            if event["type"] == "tool.call_requested":
                return [call["id"] for call in event["data"]["tool_calls"]]
        return []

    # -- serving ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeEverruns:
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=0, log_level="critical", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(1000):
            if self._server.started:
                break
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("the Everruns fake did not start")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __enter__(self) -> FakeEverruns:
        """Serve from a thread of its own (for tests whose app runs its own event loop)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            assert self._task is not None
            loop.run_until_complete(self._task)
            loop.close()

        self._thread = threading.Thread(target=serve, name="everruns-fake", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None and self._loop is not None:
            self._server.should_exit = True
            for signal in self._signals.values():
                self._loop.call_soon_threadsafe(signal.set)
        if self._thread is not None:
            self._thread.join(15)

    async def stop(self) -> None:
        for signal in self._signals.values():
            signal.set()
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)

    def _session_or_problem(self, session_id: str) -> dict[str, Any] | JSONResponse:
        if not re.fullmatch(ID.format(prefix="session"), session_id):
            return problem(400, "Bad Request", "Invalid session ID", code="invalid_session_id")
        session = self.sessions.get(session_id)
        if session is None:
            return problem(
                404,
                "Not Found",
                f"Session {session_id} not found in org {self.org_id}.",
                code="session_not_found",
            )
        return session

    def _types(self, values: list[str]) -> JSONResponse | None:
        unknown = [value for value in values if value not in KNOWN_TYPES]
        if unknown or len(values) > 25:
            return problem(400, "Bad Request", f"Unknown event type: {unknown[:1]}")
        return None

    def _after(
        self, session_id: str, since_id: str | None, after_sequence: int | None
    ) -> int | JSONResponse:
        if since_id is not None:
            for event in self.events[session_id]:
                if event["id"] == since_id:
                    return int(event["sequence"])
            return problem(400, "Bad Request", "since_id names no event of this session")
        return after_sequence or 0

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.middleware("http")
        async def auth(request: Request, call_next: Any) -> Response:
            if self._failures:
                status, retry_after = self._failures.pop(0)
                extra = {} if retry_after is None else {"retry_after_seconds": retry_after}
                return problem(status, "Injected", "injected failure", **extra)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return problem(401, "Unauthorized", "Invalid or missing token")
            org = request.headers.get("x-org-id")
            if org is not None and org != self.org_id:
                return problem(403, "Forbidden", "Not a member of that organization")
            response: Response = await call_next(request)
            return response

        @api.get("/v1/sessions/stats")
        async def stats() -> Any:
            counts = {"total": len(self.sessions), "started": 0, "active": 0, "idle": 0}
            counts["waiting_for_tool_results"] = 0
            for session in self.sessions.values():
                counts[session["status"]] += 1
            return counts

        @api.get("/v1/sessions")
        async def list_sessions(
            offset: int = 0,
            limit: int = 20,
            search: str | None = None,
            agent_id: str | None = None,
        ) -> Any:
            if offset < 0 or not 1 <= limit <= 100:
                return problem(400, "Bad Request", "limit must be 1..100, offset >= 0")
            rows = sorted(self.sessions.values(), key=lambda s: s["created_at"], reverse=True)
            if search:
                rows = [s for s in rows if search.lower() in (s["title"] or "").lower()]
            if agent_id:
                rows = [s for s in rows if s["agent_id"] == agent_id]
            return {
                "data": rows[offset : offset + limit],
                "total": len(rows),
                "offset": offset,
                "limit": limit,
            }

        @api.post("/v1/sessions", status_code=201)
        async def create_session(request: Request) -> Any:
            body = await request.json()
            agent_id = body.get("agent_id")
            agent_pattern = ID.format(prefix="agent")
            if not isinstance(agent_id, str) or not re.fullmatch(agent_pattern, agent_id):
                return problem(400, "Bad Request", "Invalid agent ID", code="invalid_agent_id")
            session_id = self.add_session(body.get("title"), agent_id=agent_id)
            session = self.sessions[session_id]
            session["tags"] = list(body.get("tags") or [])
            session["model_id"] = body.get("model_id")
            session["capabilities"] = list(body.get("capabilities") or [])
            return JSONResponse(session, status_code=201)

        @api.get("/v1/sessions/{session_id}")
        async def get_session(session_id: str) -> Any:
            return self._session_or_problem(session_id)

        @api.patch("/v1/sessions/{session_id}")
        async def update_session(session_id: str, request: Request) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            body = await request.json()
            for key in ("title", "tags"):
                if body.get(key) is not None:
                    session[key] = body[key]
            session["updated_at"] = self._now()
            return session

        @api.delete("/v1/sessions/{session_id}")
        async def delete_session(session_id: str) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            del self.sessions[session_id]
            return Response(status_code=204)

        @api.post("/v1/sessions/{session_id}/cancel")
        async def cancel(session_id: str) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            if session["status"] != "active":
                return {"status": "no_op", "message": "No turn was running"}
            self.emit(session_id, "turn.cancelled", {})
            session["status"] = "idle"
            return {"status": "cancelled", "message": "Turn cancelled successfully"}

        @api.post("/v1/sessions/{session_id}/messages", status_code=201)
        async def post_message(session_id: str, request: Request) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            body = await request.json()
            content = (body.get("message") or {}).get("content")
            if not isinstance(content, list) or not content:
                return problem(400, "Bad Request", "message.content is required")
            message = {
                "id": new_id("message"),
                "role": "user",
                "content": content,
                "created_at": self._now(),
            }
            self.emit(session_id, "input.message", {"message": message})
            session["preview"] = session["preview"] or content[0].get("text")
            return JSONResponse(message, status_code=201)

        @api.get("/v1/sessions/{session_id}/events")
        async def list_events(
            session_id: str,
            since_id: str | None = None,
            after_sequence: int | None = None,
            before_sequence: int | None = None,
            limit: int | None = None,
            types: list[str] = Query(default=[]),
            exclude: list[str] = Query(default=[]),
        ) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            bad = self._types(types) or self._types(exclude)
            if bad is not None:
                return bad
            after = self._after(session_id, since_id, after_sequence)
            if isinstance(after, JSONResponse):
                return after
            rows = [e for e in self.events[session_id] if e["sequence"] > after]
            if before_sequence is not None:
                rows = [e for e in rows if e["sequence"] < before_sequence]
            if types:
                rows = [e for e in rows if e["type"] in types]
            rows = [e for e in rows if e["type"] not in exclude]
            headers = {}
            if limit is not None:
                # Backward pagination, as documented: the last ``limit`` events.
                if not 1 <= limit <= 1000:
                    return problem(400, "Bad Request", "limit must be 1..1000")
                rows = rows[-limit:]
                headers["X-Total-Count"] = str(
                    sum(1 for e in self.events[session_id] if not e["type"].endswith(".delta"))
                )
            return JSONResponse({"data": rows}, headers=headers)

        @api.get("/v1/sessions/{session_id}/sse")
        async def stream(
            session_id: str,
            request: Request,
            since_id: str | None = None,
            after_sequence: int | None = None,
            exclude: list[str] = Query(default=[]),
        ) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            if self._open_streams >= self.max_streams:
                return problem(
                    429,
                    "Too Many Requests",
                    "Too many SSE connections",
                    retry_after_seconds=1,
                )
            after = self._after(session_id, since_id, after_sequence)
            if isinstance(after, JSONResponse):
                return after
            self.stream_queries.append(dict(request.query_params))
            self._open_streams += 1
            return StreamingResponse(
                self._frames(session_id, after, set(exclude)),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store"},
            )

        @api.post("/v1/sessions/{session_id}/tool-approvals")
        async def tool_approvals(session_id: str, request: Request) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            body = await request.json()
            decisions = body.get("decisions")
            valid = isinstance(decisions, list) and all(
                isinstance(d, dict)
                and isinstance(d.get("tool_call_id"), str)
                and d.get("decision") in ("allow", "allow_always", "reject", "reject_always")
                for d in decisions
            )
            if not valid or not decisions:
                return problem(400, "Bad Request", "decisions[{tool_call_id, decision}] needed")
            held = self.held(session_id)
            if not held:
                return problem(409, "Conflict", "The session has no held calls to answer")
            unknown = [d["tool_call_id"] for d in decisions if d["tool_call_id"] not in held]
            if unknown:
                return problem(400, "Bad Request", f"Not a held call: {unknown[0]}")
            self.approvals.append(
                ApprovalRequest(
                    session_id, body, {k.lower(): v for k, v in request.headers.items()}
                )
            )
            answered = {d["tool_call_id"]: d["decision"] for d in decisions}
            for call_id in held:
                decision = answered.get(call_id, "reject")  # left out: not approved
                self.emit(
                    session_id,
                    "tool.completed",
                    {
                        "tool_call_id": call_id,
                        "tool_name": "approve_tool_call",
                        "success": True,
                        "status": "success",
                        "result": [{"type": "text", "text": decision}],
                    },
                )
            session["status"] = "active"
            return {"accepted": len(decisions), "status": "active"}

        @api.post("/v1/sessions/{session_id}/tool-results")
        async def tool_results(session_id: str, request: Request) -> Any:
            session = self._session_or_problem(session_id)
            if isinstance(session, JSONResponse):
                return session
            if session["status"] != "waiting_for_tool_results":
                return problem(409, "Conflict", "Session not in waiting_for_tool_results state")
            body = await request.json()
            results = body.get("tool_results")
            if not isinstance(results, list):
                return problem(400, "Bad Request", "tool_results is required")
            self.tool_results += results
            session["status"] = "active"
            return {"accepted": len(results), "status": "active"}

        return api

    async def _frames(self, session_id: str, after: int, exclude: set[str]) -> AsyncIterator[bytes]:
        sent = 0
        try:
            yield b'event: connected\ndata: {"status":"connected"}\nretry: 100\n\n'
            last = after
            while True:
                signal = self._signals.setdefault(session_id, asyncio.Event())
                fresh = [e for e in self.events.get(session_id, []) if e["sequence"] > last]
                for event in fresh:
                    last = event["sequence"]
                    if event["type"] in exclude:
                        continue
                    if self.cycle_after is not None and sent >= self.cycle_after:
                        retry = self.disconnect_retry_ms
                        data = json.dumps({"reason": "connection_cycle", "retry_ms": retry})
                        yield f"event: disconnecting\ndata: {data}\nretry: {retry}\n\n".encode()
                        return
                    frame = json.dumps(event)
                    head = f"event: {event['type']}\nid: {event['id']}\n"
                    yield f"{head}data: {frame}\nretry: 100\n\n".encode()
                    sent += 1
                if self._server is not None and self._server.should_exit:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), self.heartbeat_seconds)
                    continue
                yield b": heartbeat\n\n"
        finally:
            self._open_streams -= 1
