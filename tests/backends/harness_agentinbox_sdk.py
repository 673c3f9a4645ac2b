"""AgentInbox as its SDKs read it: the fake AgentInbox serving cursor pages ``{object: "list",
data, next_cursor, has_more}``, snake_case fields and ``{error: {code, message, docs_url}}``
errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from harness_agentinbox import AgentInboxHarness, open_fake_harness


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[AgentInboxHarness]:
    async with open_fake_harness("cursor", "snake", "sdk") as harness:
        yield harness
