"""A stateful Vectara Agents API v2 fake, written from ``vectara-agent-sessions.txt`` and the agent
paths of ``vectara-openapi.yaml`` (the shapes of ``AgentSession``, ``AgentEvent`` and its types,
``ListMetadata``, ``ClientToolPendingCall``, ``SessionArtifact``, ``Error``/``BadRequestError``/
``NotFoundError``), for what a stateless mock cannot show: paging across pages, hidden events,
the client tool-output round trip, new events appearing between polls, a large artifact.

Auth is the ``x-api-key`` header. Lists page with ``limit`` (1-100) and ``page_key``; the next key
is in ``metadata.page_key`` (an opaque offset, as the spec's example ``eyJvZmZzZXQiOjF9`` is).
Sessions list newest first; events list in the order they happened. ``include_hidden`` shows
hidden events, and every event carries ``hide_reason`` (``null`` unless hidden).

The test (the agent's side) drives it through the methods of ``FakeVectara`` in process, and the
backend under test only through HTTP. ``python -m fakes.vectara`` runs it in its own process
(for memory measurements) and prints ``listening on URL``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "vectara-fake-key-0123456789"
_BASE_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _page_key(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(page_key: str | None) -> int | None:
    if not page_key:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(page_key.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value >= 0 else None


@dataclass
class FakeSession:
    key: str
    agent_key: str
    name: str
    created_at: datetime
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    status: str = "unstarted"
    tti_minutes: int = 0
    current_step_name: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    #: tool_input event id -> the outstanding call (fully materialized arguments).
    outstanding: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "agent_key": self.agent_key,
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "current_step_name": self.current_step_name,
            "enabled": self.enabled,
            "status": self.status,
            "tti_minutes": self.tti_minutes,
            "created_at": _iso(self.created_at),
            "session_context_usage": {
                "input_tokens": 120,
                "output_tokens": 30,
                "total_tokens": 150,
                "model_context_window": 200000,
            },
            "secrets": {"slack_user_token": "****"},
        }


class FakeVectara:
    """The platform's state, shared between the HTTP app and the test."""

    def __init__(self, agents: tuple[str, ...] = ("support",), *, flag_hidden: bool = True) -> None:
        """``flag_hidden=False`` sends events exactly as the spec's ``AgentEvent`` has them,
        without ``hide_reason``: only what ``include_hidden`` adds tells hidden ones apart."""
        self.flag_hidden = flag_hidden
        self.lock = threading.RLock()
        self.agents: dict[str, dict[str, FakeSession]] = {agent: {} for agent in agents}
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        self.failures: list[tuple[int, float | None, str | None]] = []
        #: (method, path, query, body) of every request, for tests that check what was sent.
        self.requests: list[tuple[str, str, str, Any]] = []
        self.app = self._build_app()

    # -- the agent's side (called by tests) ------------------------------------------------------
    def _now(self) -> datetime:
        return _BASE_TIME + timedelta(seconds=next(self._clock))

    def create_session(self, agent_key: str, name: str, **fields: Any) -> FakeSession:
        with self.lock:
            key = fields.pop("key", None) or f"ses_{next(self._ids):05d}"
            session = FakeSession(
                key=key, agent_key=agent_key, name=name, created_at=self._now(), **fields
            )
            self.agents.setdefault(agent_key, {})[key] = session
            return session

    def session(self, agent_key: str, key: str) -> FakeSession:
        return self.agents[agent_key][key]

    def add_event(self, session: FakeSession, event_type: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            event = {
                "id": f"aev_{next(self._ids):06d}",
                "session_key": session.key,
                "created_at": _iso(self._now()),
                "type": event_type,
                "hide_reason": None,
                **fields,
            }
            session.events.append(event)
            session.status = "stopped"
            return event

    def add_outputs(self, session: FakeSession, count: int, prefix: str = "output") -> None:
        for index in range(count):
            self.add_event(session, "agent_output", content=f"{prefix} {index}")

    def request_client_tool(
        self,
        session: FakeSession,
        tool: str,
        agent_args: dict[str, Any],
        secret_args: dict[str, Any],
    ) -> str:
        """The agent calls a client tool: a ``tool_input`` event (the agent's own arguments,
        the override paths only) and a ``client_tool_pending`` event whose call carries the
        materialized arguments, secret-derived values unmasked."""
        with self.lock:
            tool_input = self.add_event(
                session,
                "tool_input",
                tool_call_id=f"call_{next(self._ids)}",
                tool_configuration_name=tool,
                tool_name=tool,
                tool_input=agent_args,
                argument_override_paths=sorted(secret_args),
            )
            call = {
                "event_id": tool_input["id"],
                "tool_configuration_name": tool,
                "tool_name": tool,
                "arguments": {**agent_args, **secret_args},
            }
            session.outstanding[tool_input["id"]] = call
            self.add_event(session, "client_tool_pending", pending_calls=[call])
            return str(tool_input["id"])

    def add_artifact(
        self, session: FakeSession, filename: str, mime_type: str, content: bytes, **fields: Any
    ) -> dict[str, Any]:
        with self.lock:
            artifact = {
                "artifact_id": f"art_{next(self._ids):05d}",
                "filename": filename,
                "mime_type": mime_type,
                "size_bytes": len(content),
                "checksum_sha256": hashlib.sha256(content).hexdigest(),
                "metadata": {"source": "agent"},
                "description": f"{filename} made by the agent",
                "ttl_days": 30,
                "created_at": _iso(self._now()),
                "updated_at": _iso(self._now()),
                **fields,
                "_content": content,
            }
            session.artifacts.append(artifact)
            return artifact

    def fail_next(
        self, status: int, *, retry_after: float | None = None, message: str | None = None
    ) -> None:
        with self.lock:
            self.failures.append((status, retry_after, message))

    # -- HTTP ------------------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        base = "/v2/agents"
        session = base + "/{agent_key}/sessions/{session_key}"
        routes = [
            Route(base, self._list_agents, methods=["GET"]),
            Route(base + "/{agent_key}/sessions", self._sessions, methods=["GET", "POST"]),
            Route(session, self._one_session, methods=["GET", "PATCH", "DELETE"]),
            Route(session + "/events", self._events, methods=["GET", "POST"]),
            Route(session + "/events/{event_id}", self._one_event, methods=["GET", "DELETE"]),
            Route(session + "/events/{event_id}/hide", self._hide, methods=["POST"]),
            Route(session + "/events/{event_id}/unhide", self._unhide, methods=["POST"]),
            Route(session + "/outstanding_client_tool_calls", self._outstanding, methods=["GET"]),
            Route(session + "/artifacts", self._artifacts, methods=["GET"]),
            Route(session + "/artifacts/{artifact_id}", self._one_artifact, methods=["GET"]),
        ]
        app = Starlette(routes=routes)
        app.add_middleware(_Gate, fake=self)  # type: ignore[arg-type]
        return app

    def shown(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.flag_hidden:
            return dict(event)
        return {key: value for key, value in event.items() if key != "hide_reason"}

    @staticmethod
    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        body = {"messages": [message], "request_id": f"req-{status}-fake", **extra}
        return JSONResponse(body, status_code=status)

    def _find(self, request: Request) -> FakeSession | JSONResponse:
        agent_key = request.path_params["agent_key"]
        if agent_key not in self.agents:
            return self.error(404, f"Agent {agent_key} not found", id=agent_key)
        found = self.agents[agent_key].get(request.path_params["session_key"])
        if found is None:
            key = request.path_params["session_key"]
            return self.error(404, f"Session {key} not found", id=key)
        return found

    def _limit(self, request: Request) -> int | JSONResponse:
        raw = request.query_params.get("limit", "10")
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            return self.error(400, "Invalid limit", field_errors={"limit": "must be 1 to 100"})
        return int(raw)

    def _page(self, request: Request, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
        limit = self._limit(request)
        assert isinstance(limit, int)
        start = _offset(request.query_params.get("page_key")) or 0
        chunk = items[start : start + limit]
        metadata: dict[str, Any] = {}
        if start + limit < len(items):
            metadata["page_key"] = _page_key(start + limit)
        return chunk, metadata

    def _bad_paging(self, request: Request) -> JSONResponse | None:
        limit = self._limit(request)
        if isinstance(limit, JSONResponse):
            return limit
        if _offset(request.query_params.get("page_key")) is None:
            return self.error(400, "Invalid page_key", field_errors={"page_key": "unknown key"})
        return None

    async def _list_agents(self, request: Request) -> Response:
        if (bad := self._bad_paging(request)) is not None:
            return bad
        with self.lock:
            agents = [
                {"key": key, "name": key.title(), "enabled": True} for key in sorted(self.agents)
            ]
            chunk, metadata = self._page(request, agents)
        return JSONResponse({"agents": chunk, "metadata": metadata})

    async def _sessions(self, request: Request) -> Response:
        agent_key = request.path_params["agent_key"]
        if agent_key not in self.agents:
            return self.error(404, f"Agent {agent_key} not found", id=agent_key)
        if request.method == "POST":
            body = await request.json()
            if not isinstance(body, dict):
                return self.error(400, "Body must be an object")
            fields = {
                name: body[name]
                for name in ("key", "description", "metadata", "enabled", "tti_minutes")
                if name in body
            }
            created = self.create_session(agent_key, str(body.get("name", "")), **fields)
            return JSONResponse(created.wire(), status_code=201)
        if (bad := self._bad_paging(request)) is not None:
            return bad
        with self.lock:
            sessions = sorted(
                self.agents[agent_key].values(), key=lambda s: s.created_at, reverse=True
            )
            chunk, metadata = self._page(request, sessions)
            return JSONResponse({"sessions": [s.wire() for s in chunk], "metadata": metadata})

    async def _one_session(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, JSONResponse):
            return found
        if request.method == "DELETE":
            with self.lock:
                del self.agents[found.agent_key][found.key]
            return Response(status_code=204)
        if request.method == "PATCH":
            body = await request.json()
            allowed = {"name", "description", "metadata", "enabled", "tti_minutes", "secrets"}
            unknown = set(body) - allowed
            if unknown:
                return self.error(
                    400, "Unknown fields", field_errors={name: "unknown" for name in unknown}
                )
            with self.lock:
                for name in ("name", "description", "metadata", "enabled", "tti_minutes"):
                    if name in body:
                        setattr(found, name, body[name])
        return JSONResponse(found.wire())

    async def _events(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, JSONResponse):
            return found
        if request.method == "POST":
            return await self._input(request, found)
        if (bad := self._bad_paging(request)) is not None:
            return bad
        include_hidden = request.query_params.get("include_hidden", "false") == "true"
        with self.lock:
            events = [e for e in found.events if include_hidden or e["hide_reason"] is None]
            chunk, metadata = self._page(request, events)
            return JSONResponse({"events": [self.shown(e) for e in chunk], "metadata": metadata})

    async def _input(self, request: Request, found: FakeSession) -> Response:
        body = await request.json()
        kind = body.get("type", "input_message")
        produced: list[dict[str, Any]] = []
        if kind == "input_message":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self.error(400, "messages required", field_errors={"messages": "required"})
            produced.append(self.add_event(found, "input_message", messages=messages))
            text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
            produced.append(self.add_event(found, "agent_output", content=f"echo: {text}"))
        elif kind == "interrupt":
            produced.append(self.add_event(found, "session_interrupted"))
        elif kind == "tool_output":
            outputs = body.get("tool_outputs")
            if not isinstance(outputs, list) or not outputs:
                return self.error(
                    400, "tool_outputs required", field_errors={"tool_outputs": "required"}
                )
            with self.lock:
                for output in outputs:
                    call = found.outstanding.get(output.get("event_id"))
                    if call is None:
                        return self.error(
                            400,
                            "No outstanding client tool call for that event",
                            field_errors={"tool_outputs.event_id": "not outstanding"},
                        )
                    if output.get("type") not in ("success", "error"):
                        return self.error(400, "type must be success or error")
                    if output["type"] == "success" and not isinstance(output.get("output"), dict):
                        return self.error(400, "output must be an object")
                for output in outputs:
                    call = found.outstanding.pop(output["event_id"])
                    failed = output["type"] == "error"
                    produced.append(
                        self.add_event(
                            found,
                            "tool_output",
                            tool_call_id=output["event_id"],
                            tool_configuration_name=call["tool_configuration_name"],
                            tool_name=call["tool_name"],
                            tool_output=(
                                {"error": output["error"]} if failed else output["output"]
                            ),
                            error=failed,
                        )
                    )
        else:
            return self.error(400, f"Unknown input type {kind}")
        if body.get("stream_response"):
            return StreamingResponse(_sse(produced), media_type="text/event-stream")
        return JSONResponse({"events": produced, "session_key": found.key}, status_code=201)

    def _event_of(self, request: Request) -> tuple[FakeSession, dict[str, Any]] | JSONResponse:
        found = self._find(request)
        if isinstance(found, JSONResponse):
            return found
        event_id = request.path_params["event_id"]
        for event in found.events:
            if event["id"] == event_id:
                return found, event
        return self.error(404, f"Event {event_id} not found", id=event_id)

    async def _one_event(self, request: Request) -> Response:
        located = self._event_of(request)
        if isinstance(located, JSONResponse):
            return located
        found, event = located
        if request.method == "DELETE":
            with self.lock:
                found.events.remove(event)
            return Response(status_code=204)
        return JSONResponse(self.shown(event))

    async def _hide(self, request: Request) -> Response:
        located = self._event_of(request)
        if isinstance(located, JSONResponse):
            return located
        with self.lock:
            located[1]["hide_reason"] = "manual"
        return JSONResponse(self.shown(located[1]))

    async def _unhide(self, request: Request) -> Response:
        located = self._event_of(request)
        if isinstance(located, JSONResponse):
            return located
        with self.lock:
            located[1]["hide_reason"] = None
        return JSONResponse(self.shown(located[1]))

    async def _outstanding(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, JSONResponse):
            return found
        with self.lock:
            calls = list(found.outstanding.values())
        return JSONResponse({"client_tool_calls": calls})

    async def _artifacts(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, JSONResponse):
            return found
        if (bad := self._bad_paging(request)) is not None:
            return bad
        with self.lock:
            chunk, metadata = self._page(request, list(found.artifacts))
        listed = [{k: v for k, v in a.items() if k != "_content"} for a in chunk]
        return JSONResponse({"artifacts": listed, "metadata": metadata})

    async def _one_artifact(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, JSONResponse):
            return found
        artifact_id = request.path_params["artifact_id"]
        artifact = next((a for a in found.artifacts if a["artifact_id"] == artifact_id), None)
        if artifact is None:
            return self.error(404, f"Artifact {artifact_id} not found", id=artifact_id)
        return StreamingResponse(_artifact_body(artifact), media_type="application/json")


def _artifact_body(artifact: dict[str, Any]) -> Iterator[bytes]:
    """The artifact with its base64 ``data`` in the middle of the object, sent in pieces (so a
    large one is never one buffer here either)."""
    meta = {k: v for k, v in artifact.items() if k != "_content"}
    content: bytes = artifact["_content"]
    head = json.dumps({"artifact_id": meta.pop("artifact_id"), "filename": meta.pop("filename")})
    yield head[:-1].encode() + b', "data": "'
    step = 3 * 64 * 1024
    for start in range(0, len(content), step):
        yield base64.b64encode(content[start : start + step])
    yield b'", ' + json.dumps(meta).encode()[1:]


async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
        await asyncio.sleep(0)
    yield b'event: end\ndata: {"type": "end"}\n\n'


class _Gate:
    """Every request: record it, answer an injected failure, check ``x-api-key``."""

    def __init__(self, app: Any, fake: FakeVectara) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        body = await request.body()

        delivered = False

        async def replay() -> dict[str, Any]:
            # The body once, then the server's own messages (a streaming reply waits on them
            # for the disconnect).
            nonlocal delivered
            if delivered:
                message: dict[str, Any] = await receive()
                return message
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body
        with self.fake.lock:
            self.fake.requests.append(
                (scope["method"], scope["path"], scope.get("query_string", b"").decode(), parsed)
            )
            failure = self.fake.failures.pop(0) if self.fake.failures else None
        if failure is not None:
            status, retry_after, message = failure
            response = FakeVectara.error(status, message or f"injected failure {status}")
            if retry_after is not None:
                response.headers["Retry-After"] = f"{retry_after:g}"
            await response(scope, replay, send)
            return
        if request.headers.get("x-api-key") != API_KEY:
            response = FakeVectara.error(401, "Invalid API key")
            await response(scope, replay, send)
            return
        await self.app(scope, replay, send)


@contextmanager
def serve(fake: FakeVectara, *, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run the fake on a loopback port in a daemon thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(fake.app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Vectara fake did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _main() -> None:
    """``python -m fakes.vectara SIZE``: one session ``ses_big`` of agent ``support`` holding a
    text artifact of SIZE bytes and a small one, served until killed."""
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 5 * 1024 * 1024
    fake = FakeVectara()
    session = fake.create_session("support", "big", key="ses_big")
    fake.add_artifact(session, "small.txt", "text/plain", b"hi\n")
    line = b"2026-01-01T00:00:00Z INFO worker processed an item of the batch in 12 ms\n"
    fake.add_artifact(session, "big.log", "text/plain", (line * (size // len(line) + 1))[:size])
    with serve(fake) as url:
        print(f"listening on {url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    _main()
