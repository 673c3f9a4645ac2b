"""Several replicas writing one PostgreSQL database: sequences, decisions and expiry sweeps
stay exactly-once when the writes race through different servers."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from server_helpers import wait_until

pytestmark = [
    pytest.mark.usefixtures("database"),
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),
    pytest.mark.timeout(180),
]


def _client(server: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}, timeout=60)


def _all_events(api: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(
            f"/v1/sessions/{session_id}/events", params={"after": after, "limit": 1000}
        ).json()
        events.extend(page["data"])
        if not page["next_cursor"]:
            return events
        after = int(page["next_cursor"])


def test_appends_racing_through_two_replicas_get_every_sequence_once(make_server) -> None:
    replicas = [make_server(), make_server()]
    clients = [_client(replica) for replica in replicas]
    try:
        sessions = [
            clients[0].post("/v1/sessions", json={"title": f"race {n}"}).json()["id"]
            for n in range(2)
        ]
        writers, rounds = 8, 25

        def write(writer: int) -> list[int]:
            got: list[int] = []
            for turn in range(rounds):
                api = clients[(writer + turn) % 2]
                session_id = sessions[turn % 2]
                if turn % 3 == 0:
                    reply = api.post(
                        f"/v1/sessions/{session_id}/events:batch",
                        json={"events": [{"type": "log", "payload": {"w": writer}}] * 4},
                    )
                    assert reply.status_code == 201, reply.text
                    got.extend(event["sequence"] for event in reply.json()["data"])
                else:
                    reply = api.post(
                        f"/v1/sessions/{session_id}/events",
                        json={"type": "log", "payload": {"w": writer}},
                    )
                    assert reply.status_code == 201, reply.text
                    got.append(reply.json()["sequence"])
            return got

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))
        for session_id in sessions:
            for api in clients:
                events = _all_events(api, session_id)
                sequences = [event["sequence"] for event in events]
                assert sequences == list(range(1, len(sequences) + 1))
                session = api.get(f"/v1/sessions/{session_id}").json()
                assert session["last_sequence"] == session["event_count"] == len(sequences)
        total = sum(
            len(_all_events(clients[0], session_id)) - 1 for session_id in sessions
        )  # less each session.created
        assert total == writers * sum(4 if turn % 3 == 0 else 1 for turn in range(rounds))
    finally:
        for api in clients:
            api.close()


def test_one_decision_sent_through_both_replicas_is_applied_once(make_server) -> None:
    # Outcomes follow after a second: both decisions of a pair land while the action is
    # processing, where the repeat's reply is the first one's, byte for byte.
    replicas = [make_server(action_completion_delay=1.0) for _ in range(2)]
    clients = [_client(replica) for replica in replicas]
    try:
        session_id = clients[0].post("/v1/sessions", json={"title": "decide"}).json()["id"]
        actions = [
            clients[0]
            .post(f"/v1/sessions/{session_id}/actions", json={"tool": f"deploy-{n}"})
            .json()["id"]
            for n in range(12)
        ]
        for action_id in actions:
            barrier = threading.Barrier(2)

            def decide(
                api: httpx.Client, action_id: str = action_id, barrier: Any = barrier
            ) -> tuple[int, Any]:
                barrier.wait()
                reply = api.post(
                    f"/v1/sessions/{session_id}/actions/{action_id}",
                    json={"confirmed": True},
                    headers={"Idempotency-Key": f"key-{action_id}"},
                )
                return reply.status_code, reply.json()

            with ThreadPoolExecutor(2) as pool:
                first, second = pool.map(decide, clients)
            assert first == second and first[0] == 202, (first, second)

        def completed() -> bool:
            types = Counter(event["type"] for event in _all_events(clients[1], session_id))
            return types["action.completed"] == len(actions)

        wait_until(completed, timeout=60, what="every action's outcome")
        events = _all_events(clients[1], session_id)
        confirmed = Counter(
            event["payload"]["action_id"] for event in events if event["type"] == "action.confirmed"
        )
        assert confirmed == Counter(actions)
        completed_ones = Counter(
            event["payload"]["action_id"] for event in events if event["type"] == "action.completed"
        )
        assert completed_ones == Counter(actions)
    finally:
        for api in clients:
            api.close()


def test_expiry_sweeps_of_two_replicas_expire_each_action_once(make_server) -> None:
    replicas = [make_server(), make_server()]
    clients = [_client(replica) for replica in replicas]
    try:
        session_id = clients[0].post("/v1/sessions", json={"title": "expire"}).json()["id"]
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        actions = [
            clients[n % 2]
            .post(
                f"/v1/sessions/{session_id}/actions",
                json={"tool": f"wait-{n}", "expires_at": soon},
            )
            .json()["id"]
            for n in range(30)
        ]

        def all_expired() -> bool:
            listed = clients[0].get(f"/v1/sessions/{session_id}/actions").json()["data"]
            return all(action["status"] == "expired" for action in listed)

        wait_until(all_expired, timeout=60, what="every action to expire")
        # Both sweepers go on running: give them a few more rounds to expire anything twice.
        marker = clients[1].post(
            f"/v1/sessions/{session_id}/events", json={"type": "log", "payload": {}}
        )
        wait_until(
            lambda: (
                clients[0].get(f"/v1/sessions/{session_id}").json()["last_sequence"]
                >= marker.json()["sequence"]
            ),
            what="a later write",
        )
        expired = Counter(
            event["payload"]["action_id"]
            for event in _all_events(clients[0], session_id)
            if event["type"] == "action.expired"
        )
        assert expired == Counter(actions)
        session = clients[0].get(f"/v1/sessions/{session_id}").json()
        assert session["pending_action_count"] == 0
    finally:
        for api in clients:
            api.close()
