"""Seeded databases: built once with the bulk seeder, reused while the server code is unchanged."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks import servers

ORG = "default"
SESSION_TITLE_PREFIX = "Seeded session"


def newest_session_title(count: int) -> str:
    return f"{SESSION_TITLE_PREFIX} {count - 1}"


def seeded_sessions_db(count: int) -> Path:
    """A database holding ``count`` sessions of the organisation the bench key belongs to."""
    from sessionscope.server.seed import seed_sessions

    path, ready = servers.cached_db(f"sessions-{count}")
    if not ready:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        asyncio.run(seed_sessions(str(path), ORG, count, title_prefix=SESSION_TITLE_PREFIX))
        servers.mark_ready(path)
    return path


@dataclass
class EventsDb:
    path: Path
    session_id: str
    title: str
    last_sequence: int


def seeded_events_db(count: int) -> EventsDb:
    """A database with one session holding ``count`` events."""
    from sessionscope.server.seed import seed_events, seed_sessions

    path, ready = servers.cached_db(f"events-{count}")
    meta = path.with_suffix(".json")
    if not ready or not meta.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

        async def build() -> EventsDb:
            (session_id,) = await seed_sessions(str(path), ORG, 1, title_prefix="million-events")
            last = await seed_events(str(path), ORG, session_id, count)
            return EventsDb(path, session_id, "million-events 0", last)

        built = asyncio.run(build())
        meta.write_text(
            json.dumps(
                {"session_id": built.session_id, "title": built.title, "last": built.last_sequence}
            )
        )
        servers.mark_ready(path)
    data = json.loads(meta.read_text())
    return EventsDb(path, data["session_id"], data["title"], data["last"])
