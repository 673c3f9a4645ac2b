"""A reverse proxy on loopback in front of a platform's server, for the shared backend suite.

It forwards every request unchanged and streams every reply back as it arrives, so live streams
work through it; on demand it answers the next request with an error in the platform's shape, and
cuts every reply still streaming (the backend sees its connection drop mid-stream and has to
resume). It records each request, so a test can check what a backend sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

#: Builds the platform's error reply: (status, retry hint) -> (body, headers).
ErrorShape = Callable[[int, float | None], tuple[bytes, dict[str, str]]]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "host",
        "content-length",
    }
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def problem_json(status: int, retry_after: float | None) -> tuple[bytes, dict[str, str]]:
    """RFC 9457 problem details: the reference server's and Everruns' error shape."""
    body = (
        b'{"type":"about:blank","title":"injected","status":%d,"detail":"injected failure"}'
        % status
    )
    headers = {"content-type": "application/problem+json"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return body, headers


@dataclass
class FaultFront:
    upstream: str
    error_shape: ErrorShape = problem_json
    requests: list[SeenRequest] = field(default_factory=list)
    port: int = 0
    _failures: deque[tuple[int, float | None]] = field(default_factory=deque)
    _cut: asyncio.Event = field(default_factory=asyncio.Event)
    _streaming: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self._failures.append((status, retry_after))

    async def drop_live_connections(self) -> None:
        """Cut every reply still streaming; later requests go through again."""
        self._cut.set()
        await asyncio.sleep(0)
        self._cut = asyncio.Event()

    @property
    def streaming(self) -> int:
        return self._streaming

    async def start(self) -> FaultFront:
        self._client = httpx.AsyncClient(
            base_url=self.upstream, timeout=httpx.Timeout(30.0, read=None)
        )
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            log_level="critical",
            lifespan="off",
            interface="asgi3",
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
            raise RuntimeError("the fault front did not start")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._cut.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        if self._client is not None:
            await self._client.aclose()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        self.requests.append(SeenRequest(scope["method"], scope["path"], query, headers, body))
        if self._failures:
            status, retry_after = self._failures.popleft()
            content, error_headers = self.error_shape(status, retry_after)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in {**error_headers, "content-length": str(len(content))}.items()
                    ],
                }
            )
            await send({"type": "http.response.body", "body": content})
            return
        assert self._client is not None
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        raw_path = scope.get("raw_path") or scope["path"].encode()
        target = raw_path.decode("latin-1") + (f"?{query}" if query else "")
        request = self._client.build_request(
            scope["method"], target, headers=forwarded, content=body
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError:
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        cut = self._cut
        self._streaming += 1
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.multi_items()
                        if k.lower() not in _HOP_BY_HOP
                    ],
                }
            )
            chunks = response.aiter_raw().__aiter__()
            while True:
                next_chunk = asyncio.ensure_future(chunks.__anext__())
                cut_wait = asyncio.ensure_future(cut.wait())
                done, _ = await asyncio.wait(
                    {next_chunk, cut_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                if cut_wait in done:
                    next_chunk.cancel()
                    # Leaving without finishing the reply makes the server drop the connection.
                    raise _Cut
                cut_wait.cancel()
                try:
                    chunk = next_chunk.result()
                except StopAsyncIteration:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self._streaming -= 1
            await response.aclose()


class _Cut(Exception):
    """Raised inside the proxy to abort a streaming reply mid-way."""
