"""Sessions listing at scale: bounded text-search windows, tag pages, totals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionscope.models import Page, Session
from sessionscope.server import store
from sessionscope.server.seed import seed_sessions

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
