"""Viben as its documents show it: the fake gateway (``fakes.viben``), no authentication, an
unpaginated sessions list, messages without sequences and an SSE stream without resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend_harness import FAST_OPTIONS
from fakes.viben import FakeViben

from sessionscope.backends import BackendConfig


@dataclass
class VibenHarness:
    fake: FakeViben
    backend_name: str = "viben"
    unknown_session_id: str = "session-000000"

    def config(self, **options: Any) -> BackendConfig:
        return BackendConfig(
            name="viben",
            url=self.fake.url,
            timeout=5.0,
            poll_interval=0.05,
            options={**FAST_OPTIONS, **options},
        )

    async def create_session(self, title: str) -> str:
        # The gateway's sessions have no title: the title is the agent's first prompt.
        session_id: str = self.fake.add_session(prompt=title)["id"]
        return session_id

    async def append_events(self, session_id: str, count: int) -> None:
        for index in range(count):
            self.fake.add_message(session_id, f"agent step {index}")

    async def create_pending_action(self, session_id: str) -> str | None:
        return None  # the gateway has nothing to decide

    async def drop_live_connections(self) -> None:
        self.fake.drop_streams()

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after)


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[VibenHarness]:
    with FakeViben() as fake:
        yield VibenHarness(fake)
