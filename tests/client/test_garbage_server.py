"""The native backend against a server that answers garbage: every reply becomes a typed error
an operator can read, never an unhandled exception and never a leaked credential."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from collections.abc import Awaitable, Callable

import pytest
from client_support import SECRET, fast_config
from rawserver import RawRequest, RawServer, json_response, response_bytes

from sessionscope.backends import (
    AuthError,
    BackendError,
    Conflict,
    ConnectError,
    Gone,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    ValidationFailed,
    WatchState,
)
from sessionscope.backends.native import NativeBackend
from sessionscope.models import SessionUpdate, ToolResult

StartServer = Callable[..., Awaitable[RawServer]]
Build = Callable[..., NativeBackend]

SESSION = {"id": "s1", "title": "t", "status": "active"}


def answer(raw: bytes) -> Callable[[RawRequest, asyncio.StreamWriter], Awaitable[None]]:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)

    return handler


async def error_of(call: Awaitable[object]) -> BackendError:
    with pytest.raises(BackendError) as caught:
        await call
    return caught.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            response_bytes(200, "<html><body>Welcome</body></html>", content_type="text/html"),
            ProtocolError,
        ),
        (response_bytes(200, '{"id": "s1", "title": "unterminated'), ProtocolError),
        (response_bytes(200, "not json at all", content_type="text/plain"), ProtocolError),
        (json_response(200, {"id": 5, "status": "no-such-status", "tags": "x"}), ProtocolError),
        (json_response(200, [SESSION]), ProtocolError),
        (json_response(200, None), ProtocolError),
        (response_bytes(302, "", headers={"Location": "http://elsewhere/"}), ProtocolError),
        (
            response_bytes(
                500, "<html><h1>Internal Server Error</h1></html>", content_type="text/html"
            ),
            ServerError,
        ),
        (json_response(500, {"title": "boom", "status": 500}), ServerError),
        (response_bytes(502, "<html>Bad gateway</html>", content_type="text/html"), ServerError),
        (response_bytes(401, "<html>no</html>", content_type="text/html"), AuthError),
        (json_response(404, {"title": "Not Found", "detail": "no session s1"}), NotFound),
        (json_response(409, {"title": "Conflict", "detail": "already decided"}), Conflict),
        (json_response(410, {"title": "Gone", "detail": "expired"}), Gone),
        (
            response_bytes(
                429, "slow down", content_type="text/plain", headers={"Retry-After": "3600"}
            ),
            RateLimited,
        ),
        (response_bytes(418, "teapot", content_type="text/plain"), ProtocolError),
    ],
)
async def test_garbage_becomes_a_typed_error(
    raw_server: StartServer, backends: Build, raw: bytes, expected: type[BackendError]
) -> None:
    server = await raw_server(answer(raw))
    error = await error_of(backends(server.url).get_session("s1"))
    assert type(error) is expected
    assert str(error)  # a sentence for the operator
    assert "GET /v1/sessions/s1" in str(error)
    assert SECRET not in str(error)


async def test_wrong_types_name_the_field_without_echoing_the_data(
    raw_server: StartServer, backends: Build
) -> None:
    server = await raw_server(answer(json_response(200, {"id": "s1", "message_count": "lots"})))
    error = await error_of(backends(server.url).get_session("s1"))
    assert isinstance(error, ProtocolError)
    assert "message_count" in str(error)
    assert "lots" not in str(error)


async def test_body_cut_short_by_the_connection_is_a_protocol_error(
    raw_server: StartServer, backends: Build
) -> None:
    cut = response_bytes(200, '{"id": "s1", "ti', content_length=500)
    server = await raw_server(answer(cut))
    error = await error_of(backends(server.url).get_session("s1"))
    assert isinstance(error, ProtocolError)
    # An idempotent GET was retried up to the bound, then gave up.
    assert server.count("GET", "/v1/sessions/s1") == 3


async def test_oversized_reply_is_refused(raw_server: StartServer, backends: Build) -> None:
    server = await raw_server(answer(json_response(200, {**SESSION, "title": "x" * 5000})))
    error = await error_of(backends(server.url, max_response_bytes=1000).get_session("s1"))
    assert isinstance(error, ProtocolError)
    assert "larger than" in str(error)


async def test_problem_detail_is_neutralised_and_never_carries_the_key(
    raw_server: StartServer, backends: Build
) -> None:
    async def echo_key(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        detail = f"bad key {request.headers['authorization']}\x1b[2J\x07 \u202eevil\nline"
        writer.write(json_response(401, {"title": "Unauthorized", "status": 401, "detail": detail}))

    server = await raw_server(echo_key)
    error = await error_of(backends(server.url).list_sessions())
    assert isinstance(error, AuthError)
    text = str(error)
    assert SECRET not in text
    assert "[redacted]" in text
    assert not any(ord(ch) < 0x20 or ch == "\u202e" for ch in text)


async def test_validation_errors_name_the_field(raw_server: StartServer, backends: Build) -> None:
    problem = {
        "type": "about:blank",
        "title": "Unprocessable",
        "status": 422,
        "detail": "invalid context variables",
        "errors": [{"field": "context_variables.lower_key", "message": "must be UPPERCASE"}],
    }
    server = await raw_server(answer(json_response(422, problem)))
    backend = backends(server.url)
    error = await error_of(backend.update_session("s1", SessionUpdate(title="x")))
    assert isinstance(error, ValidationFailed)
    assert error.errors == [
        {"field": "context_variables.lower_key", "message": "must be UPPERCASE"}
    ]
    assert "context_variables.lower_key" in str(error)


async def test_429_honours_retry_after_then_succeeds(
    raw_server: StartServer, backends: Build
) -> None:
    async def limited_once(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 1:
            writer.write(response_bytes(429, "", headers={"Retry-After": "0"}))
        else:
            writer.write(json_response(200, SESSION))

    server = await raw_server(limited_once)
    session = await backends(server.url).get_session("s1")
    assert session.id == "s1"
    assert server.count("GET", "/v1/sessions/s1") == 2


async def test_429_past_the_retry_budget_is_rate_limited_with_retry_after(
    raw_server: StartServer, backends: Build
) -> None:
    server = await raw_server(
        answer(json_response(429, {"title": "Too Many Requests"}, headers={"Retry-After": "3600"}))
    )
    error = await error_of(backends(server.url).get_session("s1"))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3600
    # Waiting an hour is the operator's call, not the client's: no retry.
    assert server.count("GET", "/v1/sessions/s1") == 1


async def test_non_idempotent_post_is_rate_limited_after_bounded_retries(
    raw_server: StartServer, backends: Build
) -> None:
    server = await raw_server(answer(response_bytes(429, "", headers={"Retry-After": "0"})))
    error = await error_of(backends(server.url).close_session("s1"))
    assert isinstance(error, RateLimited)
    # 429 means "not applied", so even a plain POST may be re-sent, up to the bound.
    assert server.count("POST", "/v1/sessions/s1/close") == 3


async def test_500_is_not_retried_but_503_is(raw_server: StartServer, backends: Build) -> None:
    server = await raw_server(answer(json_response(500, {"title": "boom"})))
    assert isinstance(await error_of(backends(server.url).get_session("s1")), ServerError)
    assert len(server.requests) == 1

    server = await raw_server(answer(json_response(503, {"title": "busy"})))
    assert isinstance(await error_of(backends(server.url).get_session("s1")), ServerError)
    assert len(server.requests) == 3


async def test_dropped_plain_post_is_not_resent(raw_server: StartServer, backends: Build) -> None:
    async def drop(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    server = await raw_server(drop)
    error = await error_of(backends(server.url).close_session("s1"))
    assert isinstance(error, ConnectError | ProtocolError)
    assert server.count("POST", "/v1/sessions/s1/close") == 1


async def test_decision_retries_reuse_one_idempotency_key(
    raw_server: StartServer, backends: Build
) -> None:
    async def drop_then_answer(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) < 3:
            writer.transport.abort()
        else:
            writer.write(json_response(200, {"status": "cancelled"}))

    server = await raw_server(drop_then_answer)
    result = await backends(server.url).decide_action("s1", "a1", confirmed=False)
    assert result.status == "cancelled"
    assert (result.session_id, result.action_id) == ("s1", "a1")
    keys = {r.headers.get("idempotency-key") for r in server.requests}
    assert len(server.requests) == 3
    assert len(keys) == 1 and None not in keys
    assert json.loads(server.requests[0].body) == {"confirmed": False}


async def test_tool_result_retries_reuse_one_idempotency_key(
    raw_server: StartServer, backends: Build
) -> None:
    async def busy_then_answer(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) < 3:
            writer.write(json_response(503, {"title": "busy"}))
        else:
            writer.write(
                json_response(
                    200, {"id": "c1", "session_id": "s1", "tool": "t", "status": "succeeded"}
                )
            )

    server = await raw_server(busy_then_answer)
    call = await backends(server.url).submit_tool_result("s1", "c1", ToolResult(output=1))
    assert call.status == "succeeded"
    keys = {r.headers.get("idempotency-key") for r in server.requests}
    assert len(server.requests) == 3 and len(keys) == 1 and None not in keys


async def test_unreachable_server_is_a_connect_error(backends: Build) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await error_of(backends(f"http://127.0.0.1:{port}").list_sessions())
    assert isinstance(error, ConnectError)
    assert f"127.0.0.1:{port}" not in str(error) or SECRET not in str(error)


async def test_requests_carry_user_agent_and_bearer_key(
    raw_server: StartServer, backends: Build
) -> None:
    server = await raw_server(answer(json_response(200, {"data": [], "next_cursor": None})))
    backend = backends(server.url)
    await backend.list_sessions()
    headers = server.requests[0].headers
    assert headers["user-agent"].startswith("sessionscope/")
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(backend) and SECRET not in backend.display_name
    assert backend.display_name == f"127.0.0.1:{server.port}"
    assert SECRET not in repr(backend.config)


async def test_nothing_logged_carries_the_key(
    raw_server: StartServer, backends: Build, caplog: pytest.LogCaptureFixture
) -> None:
    async def echo(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(json_response(503, {"detail": request.headers["authorization"]}))

    server = await raw_server(echo)
    with caplog.at_level(logging.DEBUG):
        await error_of(backends(server.url).get_session("s1"))
    assert caplog.records  # the retries were logged...
    assert all(SECRET not in record.getMessage() for record in caplog.records)  # ...safely


# -- live watches against garbage ----------------------------------------------------------------


def sse(*frames: str, retry_ms: int | None = None) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    body = f"retry: {retry_ms}\n\n" if retry_ms is not None else ""
    body += "".join(frames)
    return (head + body).encode()


def event_frame(sequence: int, *, data: str | None = None) -> str:
    payload = data or json.dumps(
        {"id": f"e{sequence}", "session_id": "s1", "sequence": sequence, "type": "log"}
    )
    return f"id: {sequence}\nevent: log\ndata: {payload}\n\n"


async def test_watch_survives_malformed_frames_and_resumes(
    raw_server: StartServer, backends: Build
) -> None:
    """Each connection delivers one good event then garbage; the watch reconnects from the last
    good one with Last-Event-ID and reports the trouble instead of raising."""
    connections: list[RawRequest] = []

    async def stream(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        connections.append(request)
        n = len(connections)
        # Frames the watch already saw are sent again: they must be dropped as duplicates.
        frames = [event_frame(seq) for seq in range(1, n + 1)]
        frames.append(event_frame(99, data='{"id": "broken", "sequence": "x"'))
        writer.write(sse(*frames, retry_ms=1))

    server = await raw_server(stream)
    states: list[tuple[WatchState, str | None]] = []
    got: list[int] = []
    watch = backends(server.url).watch_session("s1", on_state=lambda s, d: states.append((s, d)))
    async with asyncio.timeout(10):
        async for event in watch:
            got.append(event.sequence)
            if len(got) == 5:
                break
        await watch.aclose()  # type: ignore[attr-defined]
    assert got == [1, 2, 3, 4, 5]
    assert [r.headers.get("last-event-id") for r in connections[:3]] == ["0", "1", "2"]
    assert WatchState.RECONNECTING in {state for state, _ in states}
    assert any("malformed" in (detail or "") for _, detail in states)


async def test_watch_honours_the_servers_retry_hint(
    raw_server: StartServer, backends: Build
) -> None:
    server = await raw_server(answer(sse(event_frame(1), retry_ms=300)))
    details: list[str] = []
    reconnecting = asyncio.Event()

    def on_state(state: WatchState, detail: str | None) -> None:
        if state is WatchState.RECONNECTING and detail:
            details.append(detail)
            reconnecting.set()

    async def consume() -> None:
        async for _ in backends(server.url, reconnect_max=5.0).watch_session(
            "s1", on_state=on_state
        ):
            pass

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(10):
            await reconnecting.wait()
    finally:
        task.cancel()
    # Backoff from 1 ms would say 0.0 s; the server asked for 300 ms.
    assert "the server ended the stream; retrying in 0.3 s" in details[0]


async def test_watch_falls_back_to_polling_when_there_is_no_stream(
    raw_server: StartServer, backends: Build
) -> None:
    async def no_stream(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.path.endswith("/events/stream"):
            writer.write(json_response(404, {"title": "Not Found"}))
        elif request.path == "/v1/sessions/s1":
            writer.write(json_response(200, SESSION))
        elif request.path == "/v1/sessions/s1/events":
            after = int(request.query.split("after=")[1].split("&")[0])
            events = [
                {"id": f"e{i}", "session_id": "s1", "sequence": i, "type": "log"}
                for i in range(after + 1, min(after + 3, 7))
            ]
            writer.write(json_response(200, {"data": events, "next_cursor": None}))

    server = await raw_server(no_stream)
    states: list[WatchState] = []
    polling = NativeBackend(dataclasses.replace(fast_config(server.url), poll_interval=0.01))
    got: list[int] = []
    try:
        async with asyncio.timeout(10):
            async for event in polling.watch_session("s1", on_state=lambda s, d: states.append(s)):
                got.append(event.sequence)
                if len(got) == 6:
                    break
    finally:
        await polling.aclose()
    assert got == [1, 2, 3, 4, 5, 6]
    assert WatchState.POLLING in states


async def test_watch_of_a_missing_session_raises_not_found(
    raw_server: StartServer, backends: Build
) -> None:
    server = await raw_server(answer(json_response(404, {"title": "Not Found"})))
    states: list[WatchState] = []
    with pytest.raises(NotFound):
        async with asyncio.timeout(10):
            async for _ in backends(server.url).watch_session(
                "nope", on_state=lambda s, d: states.append(s)
            ):
                pass
    assert states[-1] is WatchState.OFFLINE


async def test_watch_reports_offline_while_the_server_is_unreachable(backends: Build) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen = asyncio.Event()
    states: list[tuple[WatchState, str | None]] = []

    def on_state(state: WatchState, detail: str | None) -> None:
        states.append((state, detail))
        if state is WatchState.OFFLINE:
            seen.set()

    async def consume() -> None:
        async for _ in backends(f"http://127.0.0.1:{port}").watch_session("s1", on_state=on_state):
            pass

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(10):
            await seen.wait()
    finally:
        task.cancel()
    assert states[0][0] is WatchState.CONNECTING
    offline_detail = next(d for s, d in states if s is WatchState.OFFLINE)
    assert offline_detail and "retrying" in offline_detail and SECRET not in offline_detail
