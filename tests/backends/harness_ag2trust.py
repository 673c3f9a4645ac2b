"""AG2Trust as a platform for the shared suite: the fake built from the vendor documents, and the
webhook receiver (``sessionscope.webhook``) on loopback appending to the record.

AG2Trust has no list of sessions and no event log: a session exists through the pool endpoint and
lives in the console's local record. So the harness starts threads through the platform's own API
with a backend of its own on the same record (not the one under test), the agent's activity
arrives as signed completion webhooks the fake posts to the receiver, and the failure tests reach
the platform by messaging a thread (``platform_request``): listing reads the record only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend_harness import FAST_OPTIONS
from fakes.ag2trust import API_KEY, ENDPOINT, FakeAG2Trust, LoopbackServer, Reply

from sessionscope.backends import Backend, BackendConfig, create_backend
from sessionscope.backends.ag2trust_record import Record
from sessionscope.models import SessionCreate
from sessionscope.webhook import create_app


@dataclass
class AG2TrustHarness:
    fake: FakeAG2Trust
    record: Path
    agent_side: Backend
    backend_name: str = "ag2trust"
    unknown_session_id: str = "thread_does_not_exist"
    threads: list[str] = field(default_factory=list)

    def config(self, **options: Any) -> BackendConfig:
        return BackendConfig(
            name="ag2trust",
            url=self.fake.url,
            api_key=API_KEY,
            timeout=5.0,
            poll_interval=0.05,
            options={
                **FAST_OPTIONS,
                "endpoint": ENDPOINT,
                "record": str(self.record),
                "record_poll": 0.02,
                **options,
            },
        )

    async def create_session(self, title: str) -> str:
        session = await self.agent_side.create_session(
            SessionCreate(title=title, prompt=f"Start: {title}")
        )
        self.threads.append(session.id)
        return session.id

    async def append_events(self, session_id: str, count: int) -> None:
        for index in range(count):
            status = await asyncio.to_thread(
                self.fake.deliver_webhook,
                {
                    "event": "message.completed",
                    "thread_id": session_id,
                    "content": f"step {index}",
                    "delivery": uuid.uuid4().hex,
                },
            )
            assert status == 200, f"the receiver refused a signed delivery ({status})"

    async def create_pending_action(self, session_id: str) -> str | None:
        self.fake.script(
            Reply(pending_action={"tool": "send_email", "preview": {"to": "ops@example.com"}})
        )
        await self.agent_side.send_message(session_id, "Send the report to ops")
        actions = await self.agent_side.list_session_actions(session_id)
        return actions[-1].id

    async def drop_live_connections(self) -> None:
        # Nothing to cut: the watch follows the local record, not a connection.
        return None

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after)

    async def platform_request(self, backend: Backend) -> None:
        """A request that reaches the platform: a message on the newest thread."""
        await backend.send_message(self.threads[-1], "Are you there?")


@asynccontextmanager
async def open_harness(tmp_path: Path) -> AsyncIterator[AG2TrustHarness]:
    record_path = tmp_path / "ag2trust-record.sqlite3"
    receiver_record = Record(record_path)
    receiver = LoopbackServer(create_app(receiver_record, API_KEY)).start()
    try:
        with FakeAG2Trust(webhook_url=receiver.url + "/webhook") as fake:
            agent_side = create_backend(
                BackendConfig(
                    name="ag2trust",
                    url=fake.url,
                    api_key=API_KEY,
                    options={"endpoint": ENDPOINT, "record": str(record_path)},
                )
            )
            try:
                yield AG2TrustHarness(fake=fake, record=record_path, agent_side=agent_side)
            finally:
                await agent_side.aclose()
    finally:
        receiver.stop()
        receiver_record.close()
