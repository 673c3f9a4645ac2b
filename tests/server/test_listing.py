"""Sessions listing at scale: bounded text-search windows, tag pages, totals."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionscope.models import Page, Session, SessionStatus
from sessionscope.server.db import SCHEMA_VERSION
from sessionscope.server.seed import seed_sessions
from sessionscope.server.store import sessions as store

SEEDED = 120
ORG = "acme"  # the first test key's organisation (tests/conftest.py)
MakeServer = Callable[..., Any]


@pytest.fixture
def seeded(make_server: MakeServer, tmp_path: Path) -> Any:
    """A server over SEEDED bulk-seeded sessions titled "Seeded session N" (N = 0 oldest)."""
    path = tmp_path / "listing.db"
    asyncio.run(seed_sessions(str(path), ORG, SEEDED))
    return make_server(db_path=path)


def _client(server: Any) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=10.0
    )


def _page(client: httpx.Client, **params: Any) -> Page[Session]:
    response = client.get("/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    return Page[Session].model_validate(response.json())


def _walk(client: httpx.Client, **params: Any) -> tuple[list[Page[Session]], list[str]]:
    pages: list[Page[Session]] = []
    cursor: str | None = None
    while True:
        page = _page(client, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(page)
        cursor = page.next_cursor
        if not cursor:
            return pages, [s.title for p in pages for s in p.data]
        assert len(pages) < 1000, "the walk does not end"


def _titles(numbers: list[int]) -> list[str]:
    return [f"Seeded session {n}" for n in sorted(numbers, reverse=True)]


def test_text_search_scans_bounded_windows_yet_reaches_every_match(
    seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "TEXT_SCAN_ROWS", 10)
    expected = _titles([n for n in range(SEEDED) if "session 1" in f"Seeded session {n}"])
    with _client(seeded) as client:
        pages, titles = _walk(client, q="SESSION 1", limit=5)
    assert titles == expected
    # Each request looked at 10 sessions at most, so pages come back short or empty while the
    # window moves on, and the first page cannot know the total without scanning everything.
    assert len(pages) >= SEEDED // 10
    assert any(not page.data and page.next_cursor for page in pages)
    assert all(len(page.data) <= 5 for page in pages)
    assert pages[0].total is None


def test_text_search_pages_within_one_window_by_the_last_row(
    seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "TEXT_SCAN_ROWS", 50)
    with _client(seeded) as client:
        first = _page(client, q="session", limit=3)
        second = _page(client, q="session", limit=3, cursor=first.next_cursor)
    assert [s.title for s in first.data] == _titles([119, 118, 117])
    assert [s.title for s in second.data] == _titles([116, 115, 114])


def test_text_search_total_is_exact_when_the_window_covers_every_candidate(
    seeded: Any,
) -> None:
    with _client(seeded) as client:
        page = _page(client, q="session 11", limit=5)
        none = _page(client, q="no-such-text", limit=5)
    assert page.total == len(_titles([11, *range(110, 120)]))
    assert [s.title for s in page.data] == _titles([119, 118, 117, 116, 115])
    assert none.total == 0 and none.data == [] and none.next_cursor is None


def test_text_search_treats_wildcards_literally_in_windows(
    seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "TEXT_SCAN_ROWS", 10)
    with _client(seeded) as client:
        _, titles = _walk(client, q="session_1%", limit=50)
    assert titles == []


def _tag_titles(client: httpx.Client, tag: str, limit: int) -> list[str]:
    _, titles = _walk(client, tag=tag, limit=limit)
    return titles


def test_tag_pages_walk_newest_first_and_follow_tag_changes(seeded: Any) -> None:
    # Seeded session n carries the tag batch-(n % 10).
    with _client(seeded) as client:
        assert _tag_titles(client, "batch-3", 4) == _titles(list(range(3, SEEDED, 10)))
        first = _page(client, tag="batch-3", limit=4)
        assert first.total == SEEDED // 10
        newest_other = _page(client, tag="batch-4", limit=1).data[0]
        retagged = client.patch(
            f"/v1/sessions/{newest_other.id}", json={"tags": ["batch-3", "extra"]}
        )
        assert retagged.status_code == 200, retagged.text
        # The retagged session keeps its place in time among the tag's sessions.
        assert _tag_titles(client, "batch-3", 4) == _titles([*range(3, SEEDED, 10), 114])
        assert _tag_titles(client, "extra", 50) == _titles([114])
        assert 114 not in [int(t.rsplit(" ", 1)[1]) for t in _tag_titles(client, "batch-4", 50)]
        created = client.post("/v1/sessions", json={"title": "fresh", "tags": ["batch-3"]})
        assert created.status_code == 201
        assert _page(client, tag="batch-3", limit=1).data[0].title == "fresh"
        both = _page(client, tag="batch-3", q="fresh", limit=5)
        assert [s.title for s in both.data] == ["fresh"] and both.total == 1


def test_schema_4_migration_fills_tag_order_of_older_databases(
    make_server: MakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "v3.db"
    asyncio.run(seed_sessions(str(path), ORG, 30))
    # Turn the file back into schema 3: no created_at on tags, the old tag index.
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "DROP INDEX ix_session_tags_org_tag_created;"
            "ALTER TABLE session_tags DROP COLUMN created_at;"
            "CREATE INDEX ix_session_tags_org_tag ON session_tags (org, tag, session_id);"
            "UPDATE schema_version SET version = 3;"
        )
    server = make_server(db_path=path)
    with _client(server) as client:
        assert _tag_titles(client, "batch-7", 2) == _titles([27, 17, 7])
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(session_tags)")}
    assert max(versions) == SCHEMA_VERSION
    assert "ix_session_tags_org_tag_created" in indexes and "ix_session_tags_org_tag" not in indexes


def test_listing_json_is_byte_identical_to_the_models(api: httpx.Client) -> None:
    tag = "wire-form"
    plain = api.post("/v1/sessions", json={"title": "plain", "tags": [tag]}).json()
    rich = api.post(
        "/v1/sessions",
        json={
            "title": "rich ünïcode",
            "agent_id": "agent-w",
            "task_id": "task-w",
            "model_id": "model-w",
            "tags": [tag, "second"],
            "metadata": {"nested": {"list": [1, 2.5, None, True]}},
            "context_variables": {"CUSTOMER_ID": "42"},
            "prompt": "hello there",
        },
    ).json()
    api.post(
        f"/v1/sessions/{rich['id']}/events",
        json={
            "type": "message.agent",
            "payload": {
                "content": "answer",
                "usage": {"input_tokens": 7, "output_tokens": 3, "cost_usd": 0.25},
            },
        },
    ).raise_for_status()
    api.post(f"/v1/sessions/{rich['id']}/close").raise_for_status()
    listing = api.get("/v1/sessions", params={"tag": tag, "limit": 1})
    assert listing.headers["content-type"] == "application/json"
    text = listing.text
    assert text == Page[Session].model_validate_json(text).model_dump_json()
    rest = api.get("/v1/sessions", params={"tag": tag, "cursor": listing.json()["next_cursor"]})
    listed = [*listing.json()["data"], *rest.json()["data"]]
    assert [s["id"] for s in listed] == [rich["id"], plain["id"]]
    for item in listed:
        single = Session.model_validate(api.get(f"/v1/sessions/{item['id']}").json())
        assert item == single.model_dump(mode="json")
    assert listed[0]["billable"] is True and listed[0]["usage"]["cost_usd"] == 0.25


def test_oldest_first_pages_visit_every_session_once_while_sessions_are_created(
    seeded: Any,
) -> None:
    with _client(seeded) as client:
        seen: list[str] = []
        created: list[str] = []
        cursor: str | None = None
        first_total: int | None = None
        while True:
            params: dict[str, Any] = {"order": "oldest", "limit": 7}
            page = _page(client, **params, **({"cursor": cursor} if cursor else {}))
            if first_total is None:
                first_total = page.total
            seen.extend(s.title for s in page.data)
            # Newcomers are newer than any cursor, so an oldest-first walk meets them at its end.
            response = client.post("/v1/sessions", json={"title": f"newcomer {len(created)}"})
            assert response.status_code == 201, response.text
            created.append(response.json()["title"])
            cursor = page.next_cursor
            if cursor is None:
                break
            assert len(created) < 1000, "the walk does not end"
    assert first_total == SEEDED
    assert len(seen) == len(set(seen)), "a session was listed twice"
    assert seen[:SEEDED] == list(reversed(_titles(list(range(SEEDED)))))
    assert seen[SEEDED:] == created[: len(seen) - SEEDED]
    # The walk stops only once it has caught up with all but the last creation.
    assert len(seen) - SEEDED >= len(created) - 1


def test_oldest_first_filters_text_windows_and_tags(
    seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "TEXT_SCAN_ROWS", 10)
    with _client(seeded) as client:
        first = _page(client, order="oldest", limit=3)
        assert [s.title for s in first.data] == _titles([0, 1, 2])[::-1]
        _, tagged = _walk(client, order="oldest", tag="batch-3", limit=4)
        assert tagged == _titles(list(range(3, SEEDED, 10)))[::-1]
        pages, found = _walk(client, order="oldest", q="SESSION 1", limit=5)
        assert found == _titles([n for n in range(SEEDED) if "session 1" in f"session {n}"])[::-1]
        assert any(not page.data and page.next_cursor for page in pages)
        newest = _page(client, limit=3)
        assert newest.data[0].title == "Seeded session 119"


def test_a_cursor_pages_on_only_in_its_own_order(seeded: Any) -> None:
    with _client(seeded) as client:
        newest = _page(client, limit=3)
        oldest = _page(client, order="oldest", limit=3)
        assert newest.next_cursor and oldest.next_cursor
        for cursor, order in ((newest.next_cursor, "oldest"), (oldest.next_cursor, "newest")):
            response = client.get(
                "/v1/sessions", params={"order": order, "cursor": cursor, "limit": 3}
            )
            assert response.status_code == 400, response.text
            assert "order" in response.text
        unknown = client.get("/v1/sessions", params={"order": "sideways"})
        assert unknown.status_code in (400, 422) and "order" in unknown.text
        # A cursor of either order pages on in its own order.
        on = _page(client, order="oldest", limit=3, cursor=oldest.next_cursor)
        assert [s.title for s in on.data] == _titles([3, 4, 5])[::-1]


def _assert_totals_match_listings(client: httpx.Client) -> dict[str, int]:
    """Every first-page total (unfiltered, each status, a pair of statuses) equals the number
    of sessions the walk through that listing finds; returns the per-status counts."""
    by_status: dict[str, int] = {}
    for status in SessionStatus:
        pages, titles = _walk(client, status=status.value, limit=200)
        assert pages[0].total == len(titles), status
        by_status[status.value] = len(titles)
    pages, titles = _walk(client, limit=200)
    assert pages[0].total == len(titles) == sum(by_status.values())
    pair = _page(client, status="active,closed", limit=1)
    assert pair.total == by_status["active"] + by_status["closed"]
    return by_status


def test_totals_by_status_are_exact_at_once_after_every_kind_of_write(
    make_server: MakeServer,
) -> None:
    with _client(make_server()) as client:
        assert _page(client, limit=1).total == 0
        ids = [
            client.post("/v1/sessions", json={"title": f"counted {n}"}).json()["id"]
            for n in range(5)
        ]
        assert sum(_assert_totals_match_listings(client).values()) == 5
        # Status changes by every route: an agent's event, the status event, close,
        # complete, a PATCH; then a delete.
        writes = [
            ("post", f"/v1/sessions/{ids[0]}/events", {"type": "message.agent", "payload": {}}),
            (
                "post",
                f"/v1/sessions/{ids[1]}/events:batch",
                {"events": [{"type": "session.status", "payload": {"status": "paused"}}]},
            ),
            ("post", f"/v1/sessions/{ids[2]}/close", None),
            ("post", f"/v1/sessions/{ids[3]}/complete", None),
            ("patch", f"/v1/sessions/{ids[4]}", {"status": "failed"}),
            ("delete", f"/v1/sessions/{ids[2]}", None),
        ]
        seen: list[dict[str, int]] = []
        for method, path, body in writes:
            response = client.request(method.upper(), path, json=body)
            assert response.status_code < 300, (path, response.text)
            seen.append(_assert_totals_match_listings(client))
        assert seen[0]["active"] == 1 and seen[1]["paused"] == 1
        assert seen[2]["closed"] == 1 and seen[3]["completed"] == 1
        assert seen[4]["failed"] == 1 and seen[5]["closed"] == 0
        assert sum(seen[5].values()) == 4


def test_totals_of_bulk_seeded_and_migrated_databases(
    make_server: MakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "v4.db"
    asyncio.run(seed_sessions(str(path), ORG, 40))
    # Turn the file back into schema 4: no kept counts.
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "DROP TRIGGER tr_sessions_counted_insert; DROP TRIGGER tr_sessions_counted_delete;"
            "DROP TRIGGER tr_sessions_counted_update; DROP TABLE session_counts;"
            "UPDATE schema_version SET version = 4;"
        )
        conn.execute("UPDATE sessions SET status = 'paused' WHERE title LIKE '%1'")
    with _client(make_server(db_path=path)) as client:
        by_status = _assert_totals_match_listings(client)
        assert sum(by_status.values()) == 40 and by_status["paused"] == 4
        client.post("/v1/sessions", json={"title": "after the migration"}).raise_for_status()
        assert sum(_assert_totals_match_listings(client).values()) == 41
