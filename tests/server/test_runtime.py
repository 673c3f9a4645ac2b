"""Runtime plumbing: live-stream back-pressure, subscriber cleanup, API keys, ``serve``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import frames, wait_until

from sessionscope.server.broker import Broker
from sessionscope.server.runner import ensure_key_file
from sessionscope.server.settings import api_keys_from_env, database_url, parse_api_key


async def test_a_slow_subscriber_is_dropped_without_holding_up_others() -> None:
    broker = Broker(queue_size=3)
    slow = broker.subscribe("channel")
    fast = broker.subscribe("channel")
    received: list[int] = []
    for item in range(10):
        broker.publish("channel", item)
        received.extend(await fast.get_batch(1.0))
    assert received == list(range(10))
    assert slow.closed.is_set() and not fast.closed.is_set()
    # A dropped subscriber ends its stream at once; its client resumes from its last id.
    assert await slow.get_batch(1.0) == []
    assert broker.subscriber_count("channel") == 1


async def test_get_batch_is_empty_after_the_wait_or_on_close() -> None:
    broker = Broker()
    subscription = broker.subscribe("c")
    assert await subscription.get_batch(0.01) == []
    waiter = asyncio.ensure_future(subscription.get_batch(30))
    await asyncio.sleep(0)
    broker.close_all()
    assert await asyncio.wait_for(waiter, 5) == []


@pytest.mark.timeout(30)
def test_disconnected_stream_releases_its_subscription(server, api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={"title": "leak check"}).json()["id"]
    broker: Broker = server.app.state.broker
    channel = ("session", server.org, session_id)
    with api.stream("GET", f"/v1/sessions/{session_id}/events/stream") as response:
        # Keep the frame iterator alive: dropping it would close the connection early.
        stream = frames(response)
        assert next(frame for frame in stream if frame.data).event == "session.created"
        assert broker.subscriber_count(channel) == 1
    # Noticed at the latest on the next heartbeat write.
    wait_until(lambda: broker.subscriber_count(channel) == 0, what="subscription released")


def test_api_key_specs() -> None:
    assert parse_api_key("abc") == ("default", "abc")
    assert parse_api_key("acme:abc") == ("acme", "abc")
    with pytest.raises(ValueError):
        parse_api_key("acme:")
    env = {"SESSIONSCOPE_SERVER_API_KEYS": "k1, acme:k2,,"}
    assert api_keys_from_env(env) == [("default", "k1"), ("acme", "k2")]


def test_database_urls(tmp_path: Path) -> None:
    assert database_url(tmp_path / "a.db") == f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    assert database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"


def test_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "server-api-key"
    key = ensure_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and ensure_key_file(path) == key


@pytest.mark.timeout(60)
def test_serve_generates_a_key_and_says_how_to_connect(tmp_path: Path) -> None:
    db_path = tmp_path / "served.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SESSIONSCOPE_SERVER_API_KEYS", None)
    command = [sys.executable, "-c", "from sessionscope.cli import main; main()"]
    command += ["serve", "--port", "0", "--db", str(db_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any("connect:" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"serve exited early: {lines}"
            lines.append(line)
        url = lines[0].split()[-1]
        key_file = tmp_path / "server-api-key"
        assert f"API key file: {key_file}" in "".join(lines)
        assert f"sessionscope --url {url} --api-key" in "".join(lines)
        key = key_file.read_text().strip()
        assert key not in "".join(lines)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/v1/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=30, what="server up")
        listed = httpx.get(f"{url}/v1/sessions", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.timeout(30)
def test_deleting_a_session_ends_its_stream(server, api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={"title": "to delete"}).json()["id"]
    with api.stream("GET", f"/v1/sessions/{session_id}/events/stream") as response:
        stream = frames(response)
        assert next(frame for frame in stream if frame.data).event == "session.created"
        assert api.delete(f"/v1/sessions/{session_id}").status_code == 204
        # The body ends instead of idling on heartbeats; a reconnect then gets 404.
        assert [frame for frame in stream if frame.data] == []
    assert api.get(f"/v1/sessions/{session_id}/events/stream").status_code == 404


def test_oversized_bodies_are_refused(make_server) -> None:
    server = make_server(max_body_bytes=1000)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        response = api.post("/v1/sessions", json={"title": "x" * 2000})
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        assert api.post("/v1/sessions", json={"title": "small"}).status_code == 201


def chunked(body: bytes, size: int = 100) -> Iterator[bytes]:
    """A body without Content-Length: httpx sends a generator chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_oversized_chunked_bodies_are_refused(make_server) -> None:
    server = make_server(max_body_bytes=1000)
    headers = {"X-API-Key": server.api_key, "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers) as api:
        big = json.dumps({"title": "x" * 2000}).encode()
        response = api.post("/v1/sessions", content=chunked(big))
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        small = json.dumps({"title": "small"}).encode()
        assert api.post("/v1/sessions", content=chunked(small)).status_code == 201
        assert [s["title"] for s in api.get("/v1/sessions").json()["data"]] == ["small"]
