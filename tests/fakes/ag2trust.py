"""A fake AG2Trust, written from ``ag2trust-sessions.txt`` and the vendor notes (README.md there),
never from the backend: the pool endpoint, session variables, pending actions, close, the
``{error, error_code, details}`` errors, the 60-a-minute rate limit with ``X-RateLimit-*`` and
``Retry-After``, ``Idempotency-Key`` replay, and signed completion webhooks.

It runs on a loopback port in its own thread (``with FakeAG2Trust() as fake: fake.url``), so sync
and async tests, and Pilot tests, can all use it. What the documents leave open is chosen plainly
and marked "not documented" below.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "cust_fake_0123456789abcdef"
ENDPOINT = "support-pool"
MAX_CONTENT = 10_000
_KEY = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")


def sign(secret: str, body: bytes) -> str:
    """``X-Webhook-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the body, keyed with the
    API key."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LoopbackServer:
    """An ASGI app served by uvicorn on a free loopback port, in its own thread and loop."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="critical", lifespan="off"))
        self._server = server
        started = threading.Event()

        async def serve() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            for _ in range(3000):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            started.set()
            await task

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        self._thread.start()
        if not started.wait(30) or not server.started:
            raise RuntimeError(f"the loopback server for {self.app!r} did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


@dataclass
class Reply:
    """What the next pool reply carries beyond its content (a test scripts it)."""

    content: str | None = None
    pending_action: dict[str, Any] | None = None
    requested_variables: list[str] | None = None


@dataclass
class Action:
    action_id: str
    thread_id: str
    tool: str
    preview: dict[str, Any]
    expires_at: datetime
    status: str = "pending"
    callback_id: str | None = None
    reported: bool = False


@dataclass
class Thread:
    thread_id: str
    endpoint: str
    started: datetime
    variables: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    messages: list[str] = field(default_factory=list)


@dataclass
class FakeAG2Trust:
    api_key: str = API_KEY
    endpoints: tuple[str, ...] = (ENDPOINT,)
    agent_running: bool = True
    rate_limit: int = 60
    rate_window: float = 60.0
    #: How long a proposed action waits for a decision.
    action_ttl: float = 300.0
    #: Where completion webhooks go (the receiver's URL); none are sent without one.
    webhook_url: str | None = None
    host: str = "127.0.0.1"

    threads: dict[str, Thread] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    #: Every request received: (method, path, headers, body).
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    scripted: deque[Reply] = field(default_factory=deque)
    webhooks_sent: list[tuple[int, bytes]] = field(default_factory=list)
    _failures: deque[tuple[int, float | None]] = field(default_factory=deque)
    _idempotent: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = field(
        default_factory=dict
    )
    _window: deque[float] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _runner: LoopbackServer | None = None

    # -- control, from the test -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        """Answer the next request with ``status`` in the platform's error shape."""
        self._failures.append((status, retry_after))

    def spend(self, count: int) -> None:
        """Count ``count`` requests from other clients of the organisation in this window."""
        with self._lock:
            self._window.extend([time.time()] * count)

    def script(self, reply: Reply) -> None:
        self.scripted.append(reply)

    def posts(self, path_prefix: str) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] != "GET" and r[1].startswith(path_prefix)]

    def deliver_webhook(self, payload: dict[str, Any], *, secret: str | None = None) -> int:
        """POST one signed completion webhook to ``webhook_url`` now (``secret`` forges it)."""
        assert self.webhook_url, "no webhook_url configured"
        body = json.dumps(payload).encode()
        response = httpx.post(
            self.webhook_url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Webhook-Signature": sign(secret or self.api_key, body),
            },
            timeout=10.0,
        )
        self.webhooks_sent.append((response.status_code, body))
        return response.status_code

    def start(self) -> FakeAG2Trust:
        self._runner = LoopbackServer(self.app(), self.host).start()
        self.port = self._runner.port
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()

    def __enter__(self) -> FakeAG2Trust:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ----------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/ask/{slug}", self._guard(self._ask), methods=["POST"]),
                Route("/api/v1/sessions/{thread_id}", self._guard(self._patch), methods=["PATCH"]),
                Route(
                    "/api/v1/sessions/{thread_id}/close",
                    self._guard(self._close),
                    methods=["POST"],
                ),
                Route(
                    "/api/v1/sessions/{thread_id}/actions/{action_id}",
                    self._guard(self._decide),
                    methods=["POST"],
                ),
            ]
        )

    def _rate_headers(self) -> dict[str, str]:
        remaining = max(0, self.rate_limit - len(self._window))
        reset = (self._window[0] + self.rate_window) if self._window else time.time()
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset)),
        }

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        return JSONResponse(
            {"error": message, "error_code": code, "details": details or {}},
            status_code=status,
            headers={**self._rate_headers(), **(headers or {})},
        )

    def _guard(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append((request.method, request.url.path, headers, body))
            if self._failures:
                status, retry_after = self._failures.popleft()
                return self._injected(status, retry_after)
            if headers.get("x-api-key") != self.api_key:
                return self._error(401, "INVALID_API_KEY", "Invalid or missing API key")
            now = time.time()
            with self._lock:
                while self._window and self._window[0] <= now - self.rate_window:
                    self._window.popleft()
                if len(self._window) >= self.rate_limit:
                    wait = max(1, int(self._window[0] + self.rate_window - now + 0.999))
                    return self._error(
                        429,
                        "RATE_LIMIT_EXCEEDED",
                        "Rate limit exceeded",
                        {"retry_after": wait},
                        {"Retry-After": str(wait)},
                    )
                self._window.append(now)
            key = headers.get("idempotency-key")
            if key is not None and len(key) > 256:
                return self._error(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key too long")
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                return self._error(400, "INVALID_REQUEST", "Body is not JSON")
            if not isinstance(payload, dict):
                return self._error(400, "INVALID_REQUEST", "Body must be an object")
            cache_key = (key or "", request.method, request.url.path)
            if key is not None and cache_key in self._idempotent:
                status, content = self._idempotent[cache_key]
                return JSONResponse(content, status_code=status, headers=self._rate_headers())
            result = handler(request, payload)
            if isinstance(result, Response):
                return result
            status, content = result
            if key is not None:
                self._idempotent[cache_key] = (status, content)
            return JSONResponse(content, status_code=status, headers=self._rate_headers())

        return endpoint

    def _injected(self, status: int, retry_after: float | None) -> JSONResponse:
        codes = {
            401: ("INVALID_API_KEY", "Invalid API key"),
            403: ("AGENT_NOT_FOUND", "Agent not found"),
            404: ("ENDPOINT_NOT_FOUND", "Endpoint not found"),
            400: ("AGENT_NOT_RUNNING", "Agent is not running"),
            429: ("RATE_LIMIT_EXCEEDED", "Rate limit exceeded"),
        }
        code, message = codes.get(status, ("INTERNAL_ERROR", "Internal error"))
        details: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if retry_after is not None:
            details["retry_after"] = retry_after
            headers["Retry-After"] = f"{retry_after:g}"
        return self._error(status, code, message, details, headers)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def _variables_error(self, variables: Any, existing: dict[str, str]) -> JSONResponse | None:
        if not isinstance(variables, dict):
            return self._error(400, "INVALID_VARIABLES", "context_variables must be an object")
        merged = {**existing, **variables}
        for key in variables:
            if not _KEY.match(str(key)):
                return self._error(400, "INVALID_VARIABLES", f"{key} is not UPPERCASE_SNAKE_CASE")
        if len(merged) > 20:
            return self._error(400, "INVALID_VARIABLES", "at most 20 variables")
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in merged.items())
        if size > 4096:
            return self._error(400, "INVALID_VARIABLES", "variables exceed 4KB")
        return None

    def _ask(self, request: Request, body: dict[str, Any]) -> Any:
        slug = request.path_params["slug"]
        if slug not in self.endpoints:
            return self._error(404, "ENDPOINT_NOT_FOUND", f"Endpoint {slug} not found")
        if not self.agent_running:
            return self._error(400, "AGENT_NOT_RUNNING", "No agent in the pool is running")
        content = body.get("content")
        if not isinstance(content, str) or not content:
            return self._error(400, "INVALID_REQUEST", "content is required")
        if len(content) > MAX_CONTENT:
            return self._error(400, "MESSAGE_TOO_LONG", "Message exceeds 10000 characters")
        thread_id = body.get("thread_id")
        if thread_id is None:
            thread = Thread(self._new_id("thread"), slug, _now())
            self.threads[thread.thread_id] = thread
        else:
            thread = self.threads.get(str(thread_id))  # type: ignore[assignment]
            if thread is None:
                # Not documented: an unknown thread_id.
                return self._error(404, "THREAD_NOT_FOUND", "Thread not found")
            if thread.closed:
                return self._error(400, "SESSION_CLOSED", "Session is closed")
        if "context_variables" in body:
            problem = self._variables_error(body["context_variables"], thread.variables)
            if problem is not None:
                return problem
            thread.variables.update(body["context_variables"])
        thread.messages.append(content)
        return 200, self._reply(thread, content)

    def _reply(self, thread: Thread, content: str) -> dict[str, Any]:
        scripted = self.scripted.popleft() if self.scripted else Reply()
        reply: dict[str, Any] = {
            "thread_id": thread.thread_id,
            "response_id": self._new_id("resp"),
            "agent_id": "agent_fake_1",
            "content": scripted.content or f"Reply to: {content[:80]}",
            "timestamp": _iso(_now()),
            "citations": [],
            "files": [],
            "requested_variables": scripted.requested_variables,
            "draft": False,
            "pending_action": None,
            "suggested_actions": [],
        }
        # Documented: a confirmed action's result comes with the next reply on its thread.
        for action in self.actions.values():
            if action.thread_id == thread.thread_id and action.status == "completed":
                if not action.reported:
                    action.reported = True
                    reply["content"] = f"Done: {action.tool} completed. " + reply["content"]
                    # Not documented: the field the result travels in.
                    reply["action_result"] = {
                        "action_id": action.action_id,
                        "status": "completed",
                        "result": {"tool": action.tool, "delivered": True},
                    }
        pending = scripted.pending_action
        if pending is None and "email" in content.lower():
            pending = {
                "tool": "send_email",
                "preview": {
                    "to": "user@example.com",
                    "subject": "Order Confirmation",
                    "body": "Your order #123 has been confirmed...",
                },
            }
        if pending is not None:
            action = Action(
                action_id=pending.get("action_id") or self._new_id("act"),
                thread_id=thread.thread_id,
                tool=pending.get("tool", "send_email"),
                preview=pending.get("preview", {}),
                expires_at=pending.get("expires_at") or _now() + timedelta(seconds=self.action_ttl),
            )
            self.actions[action.action_id] = action
            reply["pending_action"] = {
                "action_id": action.action_id,
                "tool": action.tool,
                "preview": action.preview,
                "expires_at": _iso(action.expires_at),
            }
        return reply

    def _patch(self, request: Request, body: dict[str, Any]) -> Any:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return self._error(404, "THREAD_NOT_FOUND", "Thread not found")
        if "context_variables" not in body:
            return self._error(400, "INVALID_REQUEST", "context_variables is required")
        problem = self._variables_error(body["context_variables"], thread.variables)
        if problem is not None:
            return problem
        thread.variables.update(body["context_variables"])
        return 200, {
            "thread_id": thread.thread_id,
            "variables_updated": len(body["context_variables"]),
            "total_variables": len(thread.variables),
        }

    def _close(self, request: Request, body: dict[str, Any]) -> Any:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return self._error(404, "THREAD_NOT_FOUND", "Thread not found")
        thread.closed = True
        now = _now()
        return 200, {
            "thread_id": thread.thread_id,
            "closed_at": _iso(now),
            "duration_seconds": int((now - thread.started).total_seconds()),
            "billable": True,
        }

    def _decide(self, request: Request, body: dict[str, Any]) -> Any:
        thread_id = request.path_params["thread_id"]
        action = self.actions.get(request.path_params["action_id"])
        if action is None or action.thread_id != thread_id:
            return self._error(404, "ACTION_NOT_FOUND", "Action not found")
        confirmed = body.get("confirmed")
        if not isinstance(confirmed, bool):
            return self._error(400, "INVALID_REQUEST", "confirmed must be a boolean")
        if action.status == "pending" and action.expires_at <= _now():
            action.status = "expired"  # documented: cancelled automatically at expiry
        if action.status == "expired":
            # Not documented: the status and code for deciding an expired action.
            return self._error(410, "ACTION_EXPIRED", "Action expired")
        if action.status != "pending":
            return self._error(409, "ACTION_ALREADY_DECIDED", "Action already decided")
        if not confirmed:
            action.status = "cancelled"
            return 200, {
                "thread_id": thread_id,
                "action_id": action.action_id,
                "status": "cancelled",
                "message": "Action cancelled",
            }
        action.status = "completed"  # executes at once here; the result waits for a reply
        action.callback_id = self._new_id("cb")
        if self.webhook_url:
            threading.Thread(target=self._completion_webhook, args=(action,), daemon=True).start()
        return 202, {
            "thread_id": thread_id,
            "action_id": action.action_id,
            "callback_id": action.callback_id,
            "status": "processing",
            "message": "Action confirmed, executing...",
        }

    def _completion_webhook(self, action: Action) -> None:
        # Not documented: the completion webhook's body.
        self.deliver_webhook(
            {
                "event": "action.completed",
                "thread_id": action.thread_id,
                "action_id": action.action_id,
                "callback_id": action.callback_id,
                "status": "completed",
                "result": {"tool": action.tool, "delivered": True},
            }
        )
