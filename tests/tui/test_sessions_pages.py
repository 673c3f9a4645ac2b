"""SessionPages, the table's page cache, against a keyset pager with the server's semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sessionscope.models import Page, Session
from sessionscope.tui.state.session_pages import SessionPages, SortOrder

BASE = datetime(2026, 1, 1, tzinfo=UTC)


class KeysetPager:
    """Newest first; a cursor names the last row seen, so inserts at the top never shift it."""

    def __init__(self, count: int) -> None:
        self.rows = [
            Session(id=f"s{n:05d}", title=f"t{n}", created_at=BASE + timedelta(seconds=n))
            for n in range(count)
        ]
        self.calls = 0
        self.position: dict[str, tuple[datetime, str]] = {}

    def page(self, cursor: str | None, limit: int, *, oldest: bool = False) -> Page[Session]:
        self.calls += 1
        ordered = sorted(self.rows, key=lambda s: (s.created_at, s.id), reverse=not oldest)
        start = 0
        if cursor is not None and oldest:
            # A keyset cursor names a position, which outlives the row it came from.
            start = sum(1 for s in ordered if (s.created_at, s.id) <= self.position[cursor])
        elif cursor is not None:
            start = sum(1 for s in ordered if (s.created_at, s.id) >= self.position[cursor])
        data = ordered[start : start + limit]
        for row in data:
            self.position[row.id] = (row.created_at, row.id)
        more = start + limit < len(ordered)
        return Page(data=data, next_cursor=data[-1].id if more else None, total=len(ordered))


def drain(pages: SessionPages, pager: KeysetPager, first: int, last: int) -> None:
    for _ in range(10_000):
        request = pages.needed(first, last)
        if request is None:
            return
        pages.apply(request, pager.page(request.cursor, request.limit, oldest=request.tail))
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


def walk_up_and_down(pages: SessionPages, pager: KeysetPager, window: int = 40) -> list[str]:
    """Every row in list order, read window by window from the bottom up, then top down."""
    count = pages.row_count
    for top in range(count - window, -window, -window):
        drain(pages, pager, max(0, top), top + window - 1)
    rows: list[str] = []
    top = 0
    while top < pages.row_count:
        drain(pages, pager, top, top + window - 1)
        for index in range(top, min(top + window, pages.row_count)):
            session = pages.get(index)
            assert session is not None, f"row {index} not loaded"
            rows.append(session.id)
        top += window
    return rows


def expected_ids(pager: KeysetPager) -> list[str]:
    ordered = sorted(pager.rows, key=lambda s: (s.created_at, s.id), reverse=True)
    return [s.id for s in ordered]


def test_end_is_one_request_and_the_walks_meet_exactly() -> None:
    pager = KeysetPager(1234)
    pages = SessionPages(page_size=50, max_loaded=3, oldest_first=True)
    drain(pages, pager, 0, 40)
    drain(pages, pager, 1193, 1233)
    assert pager.calls == 2 and len(pages.segments) == 1 and len(pages.tail) == 1
    assert [pages.get(i).id for i in (1233, 1232, 1184)] == ["s00000", "s00001", "s00049"]  # type: ignore[union-attr]
    assert pages.get(1183) is None and not pages.complete
    # From the middle, whichever walk is nearer extends: the tail here.
    drain(pages, pager, 1000, 1040)
    assert len(pages.segments) == 1 and pages.get(1000).id == "s00233"  # type: ignore[union-attr]
    tails = len(pages.tail)
    drain(pages, pager, 100, 140)
    assert len(pages.tail) == tails and pages.get(100).id == "s01133"  # type: ignore[union-attr]
    rows = walk_up_and_down(pages, pager)
    assert pages.complete and pages.met and pages.row_count == 1234
    assert rows == expected_ids(pager)
    held = sum(s.items is not None for s in [*pages.segments, *pages.tail])
    assert held <= 5  # the LRU, the pinned first segment and what the last window pinned


def test_rows_deleted_in_the_gap_close_it_without_repeats() -> None:
    pager = KeysetPager(600)
    pages = SessionPages(page_size=50, max_loaded=3, oldest_first=True)
    drain(pages, pager, 0, 40)
    drain(pages, pager, 560, 599)
    # Deleted where neither walk has been: the first page's total now counts 20 rows too many.
    pager.rows = [s for s in pager.rows if not 250 <= int(s.id[1:]) < 270]
    assert pages.row_count == 600
    rows = walk_up_and_down(pages, pager)
    assert pages.complete and pages.row_count == 580
    assert rows == expected_ids(pager)


def test_rows_entering_the_gap_are_reached_and_placed() -> None:
    pager = KeysetPager(600)
    pages = SessionPages(page_size=50, max_loaded=3, oldest_first=True)
    drain(pages, pager, 0, 40)
    drain(pages, pager, 560, 599)
    # Rows that join the list in the middle (a filter's status changed) and that the total
    # does not count: the gap stays open until the walks meet, then the count is exact.
    middle = BASE + timedelta(seconds=300, microseconds=1)
    pager.rows += [Session(id=f"m{n}", title="m", created_at=middle) for n in range(30)]
    rows = walk_up_and_down(pages, pager)
    assert pages.complete and pages.row_count == 630
    assert rows == expected_ids(pager)


def test_live_insert_and_removal_with_a_tail() -> None:
    pager = KeysetPager(500)
    pages = SessionPages(page_size=50, max_loaded=4, oldest_first=True)
    drain(pages, pager, 0, 40)
    drain(pages, pager, 460, 499)
    new = Session(id="s99999", title="new", created_at=BASE + timedelta(days=1))
    pager.rows.append(new)
    assert pages.insert_top(new) and pages.row_count == 501
    # The tail is anchored to the bottom: the oldest row is still the last one.
    assert pages.get(500).id == "s00000" and pages.index_of("s00000") == 500  # type: ignore[union-attr]
    assert pages.remove("s00003") and pages.row_count == 500
    pager.rows = [s for s in pager.rows if s.id != "s00003"]
    assert pages.get(499).id == "s00000" and pages.get(496).id == "s00004"  # type: ignore[union-attr]
    renamed = pager.rows[10].model_copy(update={"title": "renamed"})
    assert pages.update(renamed) and pages.get(pages.index_of(renamed.id)).title == "renamed"  # type: ignore[arg-type,union-attr]
    assert walk_up_and_down(pages, pager) == expected_ids(pager)


def test_evicted_tail_segment_refetch_skips_rows_of_its_neighbour() -> None:
    pager = KeysetPager(400)
    pages = SessionPages(page_size=50, max_loaded=2, oldest_first=True)
    drain(pages, pager, 0, 40)
    for top in (360, 310, 260, 210):
        drain(pages, pager, top, top + 39)
    assert len(pages.tail) >= 3 and pages.tail[0].items is None
    # A row of the evicted oldest segment is deleted: its refetch (same limit) reaches one row
    # into the next segment, which must not show twice.
    pager.rows = [s for s in pager.rows if s.id != "s00010"]
    pages.total = 399  # what the live removal would have done had the row been loaded
    assert walk_up_and_down(pages, pager) == expected_ids(pager)


def test_without_oldest_first_the_end_is_walked() -> None:
    pager = KeysetPager(500)
    pages = SessionPages(page_size=50, max_loaded=3)
    drain(pages, pager, 0, 40)
    drain(pages, pager, 460, 499)
    assert not pages.tail and pages.complete and pages.get(499).id == "s00000"  # type: ignore[union-attr]


def test_a_gap_the_total_says_is_closed_is_confirmed_by_one_fetch() -> None:
    pager = KeysetPager(300)
    pages = SessionPages(page_size=100, max_loaded=10, oldest_first=True)
    drain(pages, pager, 0, 40)
    drain(pages, pager, 260, 299)
    drain(pages, pager, 160, 199)  # the tail's second page reaches the head's last row
    assert pages.complete and pages.row_count == 300 and pager.calls == 4
    assert [pages.get(i).id for i in (99, 100, 150)] == ["s00200", "s00199", "s00149"]  # type: ignore[union-attr]
