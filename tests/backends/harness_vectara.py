"""Vectara as its documents show it: the stateful fake (``fakes.vectara``) serving the Agents API
v2 shapes, with the backend scoped to one agent (``agent_key``) and small platform pages so the
suite's paging crosses page keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend_harness import FAST_OPTIONS
from fakes.vectara import API_KEY, FakeVectara, serve

from sessionscope.backends import BackendConfig

AGENT = "support"


@dataclass
class VectaraHarness:
    fake: FakeVectara
    url: str
    backend_name: str = "vectara"
    unknown_session_id: str = "ses_does_not_exist"

    def config(self, **options: Any) -> BackendConfig:
        return BackendConfig(
            name="vectara",
            url=self.url,
            api_key=API_KEY,
            timeout=5.0,
            poll_interval=0.05,
            options={**FAST_OPTIONS, "agent_key": AGENT, "page_size": 2, **options},
        )

    async def create_session(self, title: str) -> str:
        return self.fake.create_session(AGENT, title).key

    async def append_events(self, session_id: str, count: int) -> None:
        self.fake.add_outputs(self.fake.session(AGENT, session_id), count)

    async def create_pending_action(self, session_id: str) -> str | None:
        return None  # client tool calls are answered with a result, not decided

    async def drop_live_connections(self) -> None:
        return None  # the platform has no stream: the backend polls

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after)


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[VectaraHarness]:
    fake = FakeVectara()
    with serve(fake) as url:
        yield VectaraHarness(fake, url)
