"""AgentInbox as the documents show it: the fake AgentInbox (``fakes.agentinbox``) serving offset
pages ``{data, pagination}``, camelCase fields and ``{error, message}`` errors.
``harness_agentinbox_sdk`` runs the same suite against the SDKs' shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend_harness import FAST_OPTIONS
from fakes.agentinbox import AgentInboxFake, ErrorShape, KeyCase, ListShape

from sessionscope.backends import BackendConfig


@dataclass
class AgentInboxHarness:
    fake: AgentInboxFake
    backend_name: str = "agentinbox"
    unknown_session_id: str = "sess_000000000000"

    def config(self, **options: Any) -> BackendConfig:
        return BackendConfig(
            name="agentinbox",
            url=self.fake.url,
            api_key=self.fake.api_key,
            timeout=5.0,
            poll_interval=0.05,
            options={**FAST_OPTIONS, **options},
        )

    async def create_session(self, title: str) -> str:
        return self.fake.add_session(title)

    async def append_events(self, session_id: str, count: int) -> None:
        for _ in range(count):
            self.fake.receive_message(session_id)

    async def create_pending_action(self, session_id: str) -> str | None:
        return None  # waits are watched, not decided

    async def drop_live_connections(self) -> None:
        return None  # the platform has no stream: the backend polls

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after)


@asynccontextmanager
async def open_fake_harness(
    list_shape: ListShape, key_case: KeyCase, error_shape: ErrorShape
) -> AsyncIterator[AgentInboxHarness]:
    with AgentInboxFake(list_shape=list_shape, key_case=key_case, error_shape=error_shape) as fake:
        yield AgentInboxHarness(fake)


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[AgentInboxHarness]:
    async with open_fake_harness("offset", "camel", "docs") as harness:
        yield harness
