"""Everruns as a platform for the shared suite: the stateful Everruns fake (tests/fakes) behind
the fault front (errors as problem+json, cut streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend_harness import FAST_OPTIONS
from fakes.everruns import FakeEverruns, new_id
from front import FaultFront

from sessionscope.backends import BackendConfig

TOKEN = "evr_pat_suite0123456789"


@dataclass
class EverrunsHarness:
    fake: FakeEverruns
    front: FaultFront
    backend_name: str = "everruns"
    unknown_session_id: str = new_id("session")

    def config(self, **options: Any) -> BackendConfig:
        return BackendConfig(
            name="everruns",
            url=self.front.url,
            api_key=TOKEN,
            timeout=5.0,
            poll_interval=0.05,
            options={**FAST_OPTIONS, "org_id": self.fake.org_id, **options},
        )

    async def create_session(self, title: str) -> str:
        return self.fake.add_session(title)

    async def append_events(self, session_id: str, count: int) -> None:
        self.fake.agent_says(session_id, count)

    async def create_pending_action(self, session_id: str) -> str | None:
        held = self.fake.hold_calls(session_id, [("send_email", {"to": "ops@example.com"})])
        return held[0]

    async def drop_live_connections(self) -> None:
        assert self.front.streaming > 0, "no live stream was open to drop"
        await self.front.drop_live_connections()

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self.front.fail_next(status, retry_after=retry_after)


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[EverrunsHarness]:
    fake = await FakeEverruns(token=TOKEN).start()
    front = await FaultFront(fake.url).start()
    try:
        yield EverrunsHarness(fake=fake, front=front)
    finally:
        await front.stop()
        await fake.stop()
