"""SessionPages, the table's page cache, against a keyset pager with the server's semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sessionscope.models import Page, Session
from sessionscope.tui.widgets.session_table import SessionPages, SortOrder

BASE = datetime(2026, 1, 1, tzinfo=UTC)


class KeysetPager:
    """Newest first; a cursor names the last row seen, so inserts at the top never shift it."""

    def __init__(self, count: int) -> None:
        self.rows = [
            Session(id=f"s{n:05d}", title=f"t{n}", created_at=BASE + timedelta(seconds=n))
            for n in range(count)
        ]
        self.calls = 0

    def page(self, cursor: str | None, limit: int) -> Page[Session]:
        self.calls += 1
        ordered = sorted(self.rows, key=lambda s: (s.created_at, s.id), reverse=True)
        start = 0
        if cursor is not None:
            start = next(i for i, s in enumerate(ordered) if s.id == cursor) + 1
        data = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return Page(data=data, next_cursor=data[-1].id if more else None, total=len(ordered))


def drain(pages: SessionPages, pager: KeysetPager, first: int, last: int) -> None:
    for _ in range(10_000):
        request = pages.needed(first, last)
        if request is None:
            return
        pages.apply(request, pager.page(request.cursor, request.limit))
    raise AssertionError("the cache never settled")


def test_walk_to_the_end_with_a_tiny_cache_settles_and_is_exact() -> None:
    pager = KeysetPager(1234)
    pages = SessionPages(page_size=50, max_loaded=2)
    drain(pages, pager, 0, 40)
    assert pages.total == 1234 and pages.row_count == 1234
    drain(pages, pager, 1190, 1233)
    assert pages.complete and pages.known_rows == 1234
    assert pages.get(1233).id == "s00000"  # type: ignore[union-attr]
    assert sum(segment.items is not None for segment in pages.segments) <= 4
    drain(pages, pager, 600, 640)
    assert [pages.get(i).id for i in (600, 640)] == ["s00633", "s00593"]  # type: ignore[union-attr]


def test_live_insert_at_the_top_keeps_every_row_reachable() -> None:
    pager = KeysetPager(300)
    pages = SessionPages(page_size=100, max_loaded=2)
    drain(pages, pager, 0, 299)
    new = Session(id="s99999", title="new", created_at=BASE + timedelta(days=1))
    pager.rows.append(new)
    assert pages.insert_top(new)
    assert pages.index_of("s00299") == 1 and pages.row_count == 301
    # Evicted segments come back from their own cursors with their own sizes: nothing lost.
    drain(pages, pager, 0, 300)
    ids = [pages.get(i).id for i in range(301)]  # type: ignore[union-attr]
    assert len(set(ids)) == 301 and ids[-1] == "s00000"


def test_remove_and_update() -> None:
    pager = KeysetPager(10)
    pages = SessionPages(page_size=5)
    drain(pages, pager, 0, 9)
    assert pages.remove("s00008") and pages.row_count == 9
    assert not pages.remove("nope")
    renamed = pager.rows[3].model_copy(update={"title": "renamed"})
    assert pages.update(renamed) and pages.get(pages.index_of("s00003")).title == "renamed"  # type: ignore[arg-type,union-attr]


def test_local_sort_loads_everything_then_sorts() -> None:
    pager = KeysetPager(30)
    for n, session in enumerate(pager.rows):
        session.pending_action_count = n % 4
    pages = SessionPages(page_size=7)
    pages.reset(SortOrder.PENDING)
    drain(pages, pager, 0, 5)
    assert pages.complete
    counts = [pages.get(i).pending_action_count for i in range(30)]  # type: ignore[union-attr]
    assert counts == sorted(counts, reverse=True)


def test_stale_pages_are_ignored_after_a_reset() -> None:
    pager = KeysetPager(10)
    pages = SessionPages(page_size=5)
    request = pages.needed(0, 4)
    assert request is not None
    pages.reset()
    assert not pages.apply(request, pager.page(None, 5))
    assert not pages.started
