"""The change notifications' payloads: positions only, one per transaction, split below
PostgreSQL's 8000-byte limit without losing a position."""

from __future__ import annotations

import json

from sessionscope.server.pg_fanout import newest_positions, notify_payloads


def test_one_small_payload_names_each_channels_newest_position() -> None:
    positions = newest_positions(
        [
            (("session", "acme", "ses_1"), 3),
            (("session", "acme", "ses_1"), 7),
            (("org", "acme"), 41),
        ]
    )
    (payload,) = notify_payloads(positions, [("session", "acme", "ses_2")])
    assert json.loads(payload) == {
        "s": [["acme", "ses_1", 7]],
        "o": [["acme", 41]],
        "d": [["acme", "ses_2"]],
    }


def test_a_large_transaction_is_split_below_the_limit_with_every_position() -> None:
    positions = {("session", "acme", f"ses_{n:016x}"): n for n in range(1, 2001)}
    payloads = notify_payloads(positions)
    assert len(payloads) > 1
    assert all(len(payload.encode()) < 8000 for payload in payloads)
    found = {entry[1]: entry[2] for p in payloads for entry in json.loads(p)["s"]}
    assert found == {session_id: n for (_, _, session_id), n in positions.items()}
