"""``sessionscope webhook`` as a real process on loopback: signed deliveries are recorded (once),
forged or unsigned ones refused with 401 and nothing recorded; the console's watch follows."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fakes.ag2trust import API_KEY, FakeAG2Trust, sign

from sessionscope.backends.ag2trust import AG2TrustBackend
from sessionscope.models import ActionStatus, SessionCreate

DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    record = tmp_path / "record.sqlite3"
    port = free_port()
    script = Path(sys.executable).with_name("sessionscope")
    env = {**os.environ, "SESSIONSCOPE_CONFIG": str(tmp_path / "none.toml")}
    process = subprocess.Popen(
        [
            str(script),
            "--api-key",
            API_KEY,
            "webhook",
            "--listen",
            f"127.0.0.1:{port}",
            "--record",
            str(record),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the receiver exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the webhook receiver did not start")
            time.sleep(0.05)
        yield url, record
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def post(url: str, payload: dict[str, object], signature: str | None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Webhook-Signature"] = signature
    return httpx.post(url, content=body, headers=headers, timeout=10.0)


async def test_a_signed_delivery_is_recorded_once_and_a_forged_one_refused(
    receiver: tuple[str, Path], fake: FakeAG2Trust, ag2trust: Callable[..., AG2TrustBackend]
) -> None:
    url, record = receiver
    backend = ag2trust(record)
    thread_id = (await backend.create_session(SessionCreate(prompt="hello"))).id
    before = (await backend.list_events(thread_id)).data

    payload = {"thread_id": thread_id, "event": "message.completed", "content": "all done"}
    body = json.dumps(payload).encode()
    for forged in (None, "sha256=" + "0" * 64, sign("cust_someone_else", body), "sha1=abc"):
        refused = await asyncio.to_thread(post, url, payload, forged)
        assert refused.status_code == 401, forged
    assert (await backend.list_events(thread_id)).data == before

    accepted = await asyncio.to_thread(post, url, payload, sign(API_KEY, body))
    assert accepted.status_code == 200 and accepted.json()["recorded"] is True
    again = await asyncio.to_thread(post, url, payload, sign(API_KEY, body))
    assert again.status_code == 200 and again.json()["recorded"] is False  # a redelivery
    events = (await backend.list_events(thread_id)).data
    assert len(events) == len(before) + 1
    assert events[-1].type == "message.agent" and events[-1].payload["content"] == "all done"


async def test_the_console_follows_a_completion_webhook_from_the_platform(
    receiver: tuple[str, Path], fake: FakeAG2Trust, ag2trust: Callable[..., AG2TrustBackend]
) -> None:
    url, record = receiver
    fake.webhook_url = url + "/webhook"
    backend = ag2trust(record)
    thread_id = (await backend.create_session(SessionCreate(prompt="email me a receipt"))).id
    [action] = await backend.list_pending_actions()
    after = (await backend.get_session(thread_id)).last_sequence
    arrived: list[str] = []

    async def follow() -> None:
        async for event in backend.watch_session(thread_id, after=after):
            arrived.append(event.type)

    task = asyncio.create_task(follow())
    await backend.decide_action(thread_id, action.id, True)
    requests = len(fake.requests)
    deadline = time.monotonic() + DEADLINE
    while "action.completed" not in arrived:
        assert time.monotonic() < deadline, f"only {arrived} arrived"
        await asyncio.sleep(0.02)
    task.cancel()
    assert arrived == ["action.confirmed", "action.completed"]
    assert fake.webhooks_sent and fake.webhooks_sent[0][0] == 200
    assert len(fake.requests) == requests  # nothing polled the platform
    done = await backend.get_action(thread_id, action.id)
    assert done.status is ActionStatus.COMPLETED
    assert done.outcome is not None and done.outcome["callback_id"] == done.callback_id


def test_signature_and_listen_parsing() -> None:
    from sessionscope.webhook import is_loopback, parse_listen, verify_signature

    body = b'{"thread_id": "thread_1"}'
    good = sign(API_KEY, body)
    assert verify_signature(API_KEY, body, good)
    assert verify_signature(API_KEY, body, good.upper().replace("SHA256=", "sha256="))
    assert not verify_signature(API_KEY, body + b" ", good)
    assert not verify_signature(API_KEY, body, good[:-1])
    assert not verify_signature("", body, sign("", body))  # no key: nothing is trusted
    assert parse_listen("8787") == ("127.0.0.1", 8787)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(ValueError):
        parse_listen("localhost")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
