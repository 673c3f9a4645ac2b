"""The local record on its own: two writers on one file (the console and the webhook receiver)."""

from __future__ import annotations

import threading
from pathlib import Path

from sessionscope.backends.ag2trust_record import Record


def test_two_writers_never_share_a_sequence(tmp_path: Path) -> None:
    path = tmp_path / "record.sqlite3"
    first, second = Record(path), Record(path)
    first.record_reply(
        {"thread_id": "thread_1", "response_id": "resp_1", "content": "hi"},
        endpoint="pool",
        first_message=("hello", "key-0"),
    )

    def deliver(record: Record, prefix: str) -> None:
        for index in range(40):
            record.record_webhook(
                {"thread_id": "thread_1", "content": f"{prefix} {index}"}, f"{prefix}-{index}"
            )

    writers = [
        threading.Thread(target=deliver, args=(record, name))
        for record, name in ((first, "a"), (second, "b"))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    events, more = first.events("thread_1", after=0, limit=1000)
    assert not more
    assert [event.sequence for event in events] == list(range(1, 83))
    # Each writer's deliveries in the order it made them.
    for prefix in ("a", "b"):
        mine = [
            e.payload["content"] for e in events if e.payload.get("content", "").startswith(prefix)
        ]
        assert mine == [f"{prefix} {index}" for index in range(40)]
    # A redelivery is recorded once.
    assert second.record_webhook({"thread_id": "thread_1", "content": "a 0"}, "a-0") is None
    assert first.last_sequence("thread_1") == 82
    first.close()
    second.close()
