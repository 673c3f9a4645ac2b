"""Storage: keyset pagination under inserts, persistence across restarts, bulk seeding."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from sessionscope.models import Page, Session
from sessionscope.server import db
from sessionscope.server.db import SCHEMA_VERSION
from sessionscope.server.seed import seed_events, seed_sessions
from sessionscope.server.settings import database_url

# Every test here runs on SQLite and on PostgreSQL (see conftest.py).
pytestmark = pytest.mark.usefixtures("database")


async def schema_versions(location: str) -> list[int]:
    engine = db.make_engine(database_url(location))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(db.schema_version.c.version).order_by(db.schema_version.c.version)
            )
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


def test_pagination_visits_every_session_once_while_rows_are_inserted(make_server) -> None:
    server = make_server()
    seeded = asyncio.run(seed_sessions(str(server.db_path), server.org, count=10_000))
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        inserted: list[str] = []
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, object] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            response = api.get("/v1/sessions", params=params)
            assert response.status_code == 200, response.text
            page = Page[Session].model_validate(response.json())
            seen.extend(session.id for session in page.data)
            pages += 1
            # New sessions arrive while the client pages through the old ones.
            created = api.post("/v1/sessions", json={"title": "newcomer"})
            inserted.append(created.json()["id"])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        final_total = api.get("/v1/sessions", params={"limit": 1}).json()["total"]

    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert set(seeded) <= set(seen), "a session was skipped"
    # Every newcomer was created after the first page was read, so it is newer than any cursor
    # and never shows up in later pages.
    assert len(seen) == len(seeded)
    assert seen[: len(seeded)] == list(reversed(seeded))
    assert pages == 50
    assert final_total == len(seeded) + len(inserted)


def test_data_and_schema_survive_a_restart(make_server, database) -> None:
    first = make_server()
    with httpx.Client(base_url=first.url, headers={"X-API-Key": first.api_key}) as api:
        session = api.post("/v1/sessions", json={"title": "keep me", "prompt": "hi"}).json()
        api.post(f"/v1/sessions/{session['id']}/actions", json={"tool": "deploy", "preview": {}})
    first.thread.stop()

    second = make_server()
    with httpx.Client(base_url=second.url, headers={"X-API-Key": second.api_key}) as api:
        restored = api.get(f"/v1/sessions/{session['id']}").json()
        assert restored["title"] == "keep me" and restored["last_sequence"] == 3
        assert [a["tool"] for a in api.get("/v1/actions").json()["data"]] == ["deploy"]
        event = api.post(
            f"/v1/sessions/{session['id']}/events", json={"type": "log", "payload": {}}
        ).json()
        assert event["sequence"] == 4
    second.thread.stop()

    assert asyncio.run(schema_versions(database)) == [SCHEMA_VERSION]


def test_seeded_events_page_and_stream_like_live_ones(make_server) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        session_id = api.post("/v1/sessions", json={"title": "bulk"}).json()["id"]
        last = asyncio.run(seed_events(str(server.db_path), server.org, session_id, count=2_500))
        assert last == 2_501
        page = api.get(
            f"/v1/sessions/{session_id}/events", params={"after": 2_400, "limit": 1000}
        ).json()
        assert [e["sequence"] for e in page["data"]] == list(range(2_401, 2_502))
        session = api.get(f"/v1/sessions/{session_id}").json()
        assert session["event_count"] == 2_501 and session["message_count"] == 2_500
        live = api.post(
            f"/v1/sessions/{session_id}/events", json={"type": "log", "payload": {}}
        ).json()
        assert live["sequence"] == 2_502
