"""Backoff, Retry-After and the text rules that every backend message follows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sessionscope.backends._http import Backoff, neutralise_detail, parse_retry_after


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(1))
    for attempt in range(10):
        ceiling = min(4.0, 0.5 * 2**attempt)
        waits = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # jitter spreads over the whole range


def test_server_hint_is_a_floor_bounded_by_the_cap() -> None:
    backoff = Backoff(base=0.001, cap=2.0, rng=random.Random(2))
    assert all(backoff.delay(0, floor=0.3) >= 0.3 for _ in range(50))
    assert all(backoff.delay(0, floor=60) <= 2.0 for _ in range(50))


def test_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 0 ") == 0
    later = datetime.now(UTC) + timedelta(seconds=120)
    parsed = parse_retry_after(format_datetime(later, usegmt=True))
    assert parsed is not None and 100 < parsed <= 120
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_details_become_one_safe_line() -> None:
    text = neutralise_detail("a\x1b[31mred\x1b[0m\nnext\u202eline\x00" + "x" * 1000, limit=40)
    assert len(text) == 40 and text.endswith("…")
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch == "\u202e" for ch in text)
