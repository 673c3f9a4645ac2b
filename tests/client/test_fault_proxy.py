"""Live watches through a proxy that cuts the connection at random points: every event arrives
exactly once, in order, however often the stream breaks."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from client_support import fast_config
from faultproxy import FaultProxy

from sessionscope.backends import WatchState
from sessionscope.backends.native import NativeBackend
from sessionscope.models import SessionCreate

FORCED_DROPS = 50
DEADLINE = 60.0


@pytest.fixture
async def proxy(server: Any) -> AsyncIterator[FaultProxy]:
    upstream = urlsplit(server.url)
    assert upstream.hostname and upstream.port
    fault = await FaultProxy(upstream.hostname, upstream.port, seed=20240611).start()
    yield fault
    await fault.stop()


async def test_watch_delivers_every_event_once_in_order_through_50_drops(
    server: Any, proxy: FaultProxy
) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers) as agent,
        NativeBackend(fast_config(server.url, server.api_key)) as direct,
        NativeBackend(fast_config(proxy.url, server.api_key)) as through_proxy,
    ):
        session = await direct.create_session(SessionCreate(title="flaky network"))
        start = (await direct.get_session(session.id)).last_sequence

        delivered: list[int] = []
        progress = asyncio.Condition()
        states: list[WatchState] = []

        async def watch() -> None:
            async for event in through_proxy.watch_session(
                session.id, after=start, on_state=lambda s, d: states.append(s)
            ):
                async with progress:
                    delivered.append(event.sequence)
                    progress.notify_all()

        watcher = asyncio.create_task(watch())
        appended: list[int] = []
        try:
            async with asyncio.timeout(DEADLINE):
                # Append in small batches and let the watch catch up between them, so that the
                # proxy's cuts fall both on live frames and on the backlog a resume replays.
                batch = 0
                while proxy.cuts < FORCED_DROPS:
                    batch += 1
                    for n in range(3):
                        response = await agent.post(
                            f"/v1/sessions/{session.id}/events",
                            json={"type": "log", "payload": {"batch": batch, "n": n}},
                        )
                        assert response.status_code == 201, response.text
                        appended.append(response.json()["sequence"])
                    target = appended[-1]
                    async with progress:
                        await progress.wait_for(
                            lambda t=target: bool(delivered) and delivered[-1] >= t
                        )
        finally:
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                pass

        truth = [e.sequence async for e in direct.iter_events(session.id, after=start)]
    print(f"{len(truth)} events, {proxy.connections} connections, {proxy.cuts} cuts")
    assert proxy.cuts >= FORCED_DROPS
    assert truth == appended
    assert delivered == truth  # every event, once, in order
    assert WatchState.RECONNECTING in states or WatchState.OFFLINE in states


async def test_artifact_read_resumes_with_ranges_across_cuts(server: Any) -> None:
    upstream = urlsplit(server.url)
    assert upstream.hostname and upstream.port
    fault = await FaultProxy(
        upstream.hostname, upstream.port, seed=5, cut_after=(1, 40_000)
    ).start()
    content = bytes((i * 7919) % 251 for i in range(300_000))
    headers = {"Authorization": f"Bearer {server.api_key}"}
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, headers=headers) as agent,
            NativeBackend(fast_config(fault.url, server.api_key, retry_attempts=25)) as backend,
        ):
            session = (await agent.post("/v1/sessions", json={"title": "big file"})).json()
            response = await agent.post(
                f"/v1/sessions/{session['id']}/artifacts",
                json={"name": "blob.bin", "data": base64.b64encode(content).decode()},
            )
            assert response.status_code == 201, response.text
            artifact_id = response.json()["id"]
            async with asyncio.timeout(DEADLINE):
                chunks = [
                    chunk
                    async for chunk in backend.read_artifact(
                        session["id"], artifact_id, offset=10, max_bytes=250_000, chunk_size=8192
                    )
                ]
    finally:
        await fault.stop()
    assert fault.cuts >= 3
    assert b"".join(chunks) == content[10:250_010]
    assert max(len(chunk) for chunk in chunks) <= 8192
