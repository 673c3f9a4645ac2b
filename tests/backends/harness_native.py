"""The reference server as a platform: our own ``sessionscope serve`` on loopback, behind the
fault front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from backend_harness import FAST_OPTIONS
from front import FaultFront

from sessionscope.backends import BackendConfig
from sessionscope.server.runner import ServerThread
from sessionscope.server.settings import ServerSettings, database_url

API_KEY = "suite-key-0123456789"


@dataclass
class NativeHarness:
    front: FaultFront
    agent: httpx.AsyncClient
    backend_name: str = "native"
    unknown_session_id: str = "ses_does_not_exist"

    def config(self, **options: Any) -> BackendConfig:
        return BackendConfig(
            name="native",
            url=self.front.url,
            api_key=API_KEY,
            timeout=5.0,
            poll_interval=0.05,
            options={**FAST_OPTIONS, **options},
        )

    async def create_session(self, title: str) -> str:
        response = await self.agent.post("/sessions", json={"title": title})
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id

    async def append_events(self, session_id: str, count: int) -> None:
        events = [{"type": "log", "payload": {"n": index}} for index in range(count)]
        response = await self.agent.post(
            f"/sessions/{session_id}/events:batch", json={"events": events}
        )
        response.raise_for_status()

    async def create_pending_action(self, session_id: str) -> str | None:
        response = await self.agent.post(
            f"/sessions/{session_id}/actions",
            json={"tool": "send_email", "preview": {"to": "ops@example.com"}},
        )
        response.raise_for_status()
        action_id: str = response.json()["id"]
        return action_id

    async def drop_live_connections(self) -> None:
        # The reference server streams: a drop with no stream open would test nothing.
        assert self.front.streaming > 0, "no live stream was open to drop"
        await self.front.drop_live_connections()

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self.front.fail_next(status, retry_after=retry_after)


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[NativeHarness]:
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        db_url=database_url(tmp_path / "native.db"),
        api_keys=[("suite", API_KEY)],
        heartbeat_interval=1.0,
        sweep_interval=0.05,
        action_completion_delay=0.05,
        sse_retry_ms=50,
    )
    with ServerThread(settings) as server:
        front = await FaultFront(server.url).start()
        async with httpx.AsyncClient(
            base_url=f"{server.url}/v1",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10.0,
        ) as agent:
            try:
                yield NativeHarness(front=front, agent=agent)
            finally:
                await front.stop()
