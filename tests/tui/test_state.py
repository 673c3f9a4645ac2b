"""The console's pure state (``sessionscope.tui.state``): no Textual, no Pilot."""

from __future__ import annotations

from datetime import UTC, datetime

from sessionscope.models import Event
from sessionscope.tui.state.live_batch import classify
from sessionscope.tui.state.lru import LRU

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_lru_drops_the_least_recently_used_and_peek_is_not_a_use() -> None:
    cache: LRU[int, str] = LRU(2)
    cache[1] = "one"
    cache[2] = "two"
    assert cache.get(1) == "one"  # 2 is now the least recently used
    cache[3] = "three"
    assert 2 not in cache and 1 in cache and len(cache) == 2
    assert cache.peek(1) == "one"  # not a use: 1 stays the least recently used
    cache[4] = "four"
    assert 1 not in cache and cache.get(3) == "three" and cache.get(4) == "four"
    assert cache.get(99, "missing") == "missing"
    cache.maxsize = 1
    cache[5] = "five"
    assert len(cache) == 1 and cache.get(5) == "five"


def _event(sequence: int, kind: str, payload: dict[str, object] | None = None) -> Event:
    return Event(
        id=f"evt_{sequence}",
        session_id="ses_1",
        sequence=sequence,
        type=kind,
        created_at=T0,
        payload=payload or {},
    )


def test_a_live_batch_is_classified_by_what_it_makes_stale() -> None:
    batch = [
        _event(7, "message.agent"),
        _event(9, "tool_call.requested"),
        _event(8, "session.updated"),
        _event(10, "event.hidden", {"sequence": 7, "event_id": "evt_7"}),
    ]
    live = classify(batch, last_sequence=6)
    assert live.last_sequence == 10
    assert live.types == {"message.agent", "tool_call.requested", "session.updated", "event.hidden"}
    assert live.meta_stale and live.tool_calls_changed
    assert [event.sequence for event in live.visibility_notices] == [10]
    quiet = classify([_event(3, "message.user")], last_sequence=12)
    assert quiet.last_sequence == 12
    assert not quiet.meta_stale and not quiet.tool_calls_changed and not quiet.visibility_notices
