"""Several replicas writing one PostgreSQL database: sequences, decisions and expiry sweeps
stay exactly-once when the writes race through different servers."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from server_helpers import db_rows, frames, wait_until

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


# ---------------------------------------------------------------------------------------------
# Live streams across replicas.
# ---------------------------------------------------------------------------------------------


class ServeProcess:
    """``sessionscope serve`` in its own process on one database: a replica that can be
    killed (SIGKILL, no goodbye) and started again on the same port."""

    def __init__(self, database: str, api_key: str, port: int) -> None:
        self.database = database
        self.api_key = api_key
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "sessionscope", "serve"),
                *("--port", str(self.port), "--db", self.database),
                *("--api-key", f"{ORG}:{self.api_key}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, "serve exited"
            try:
                return httpx.get(f"{self.url}/v1/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=60, interval=0.1, what="the replica to be ready")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self.process = None


ORG = "acme"


class Watcher(threading.Thread):
    """A client following a session's live stream through one replica, reconnecting with
    Last-Event-ID whenever the connection drops (as the console does)."""

    def __init__(self, url: str, api_key: str, session_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.api_key, self.session_id = url, api_key, session_id
        self.sequences: list[int] = []
        self.reconnects = 0
        self.stopping = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        last = 0
        while not self.stopping.is_set():
            try:
                with httpx.Client(
                    base_url=self.url,
                    headers={"X-API-Key": self.api_key, "Last-Event-ID": str(last)},
                    # No read timeout: heartbeats keep a live stream busy, and a reconnect
                    # on silence would paper over a replica that never delivers.
                    timeout=httpx.Timeout(10.0, read=None),
                ) as client:
                    path = f"/v1/sessions/{self.session_id}/events/stream"
                    with client.stream("GET", path) as response:
                        if response.status_code != 200:
                            raise httpx.HTTPError(f"status {response.status_code}")
                        self.connected.set()
                        for frame in frames(response):
                            if self.stopping.is_set():
                                return
                            if frame.data:
                                sequence = frame.json()["sequence"]
                                assert int(frame.id or 0) == sequence
                                self.sequences.append(sequence)
                                last = sequence
            except (httpx.HTTPError, OSError):
                pass
            self.reconnects += 1
            self.stopping.wait(0.1)


@pytest.mark.timeout(300)
def test_a_watcher_on_one_replica_gets_every_event_appended_through_another(
    make_server, database: str, unused_port: int
) -> None:
    """10,000 events through replica A by eight concurrent writers; the watcher follows through
    replica B, which is killed and restarted in the middle: it ends with every sequence exactly
    once, in order."""
    replica_a = make_server()
    api_key = replica_a.api_key
    replica_b = ServeProcess(database, api_key, unused_port).start()
    writer_clients: list[httpx.Client] = []
    watcher: Watcher | None = None
    try:
        with _client(replica_a) as api:
            session_id = api.post("/v1/sessions", json={"title": "fan-out"}).json()["id"]
        watcher = Watcher(replica_b.url, api_key, session_id)
        watcher.start()
        assert watcher.connected.wait(30), "the watcher did not connect"
        writers, per_request = 8, 25
        requests_per_writer = 10_000 // (writers * per_request)
        killed = threading.Event()

        def write(writer: int) -> None:
            with _client(replica_a) as api:
                for turn in range(requests_per_writer):
                    if writer == 0 and turn == requests_per_writer // 2:
                        # Mid-stream: replica B dies without a goodbye and comes back.
                        replica_b.kill()
                        killed.set()
                        replica_b.start()
                    reply = api.post(
                        f"/v1/sessions/{session_id}/events:batch",
                        json={
                            "events": [
                                {"type": "log", "payload": {"writer": writer, "n": n}}
                                for n in range(per_request)
                            ]
                        },
                    )
                    assert reply.status_code == 201, reply.text

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))
        assert killed.is_set()
        expected = list(range(1, 10_000 + 2))  # session.created, then the 10,000
        wait_until(
            lambda: len(watcher.sequences) >= len(expected),
            timeout=120,
            what="the watcher to receive every event",
        )
        assert watcher.sequences == expected
        assert watcher.reconnects >= 1
    finally:
        if watcher is not None:
            watcher.stopping.set()
        replica_b.kill()
        for client in writer_clients:
            client.close()


def test_the_organisation_stream_and_a_dropped_listener_across_replicas(
    make_server, database: str
) -> None:
    """An organisation watch on replica B sees a session created through replica A; after B's
    listener connection is cut, a change made through A still reaches B (catch-up, then a new
    listener)."""
    replica_a, replica_b = make_server(), make_server(fanout_catch_up_interval=0.2)
    with _client(replica_a) as api_a, _client(replica_b) as api_b:
        start = api_b.get("/v1/sessions").json()["stream_position"]
        with api_b.stream("GET", "/v1/stream", params={"after": start}) as response:
            stream = frames(response)
            opening = next(stream)
            assert opening.id == str(start) and not opening.data
            # Created once B's stream is live: it can only arrive through the fan-out.
            created = api_a.post("/v1/sessions", json={"title": "seen elsewhere"}).json()["id"]
            seen = next(f for f in stream if f.data)
        assert (seen.event, seen.json()["session_id"]) == ("session.created", created)

        watcher = Watcher(replica_b.url, replica_b.api_key, created)
        watcher.start()
        try:
            assert watcher.connected.wait(30)
            wait_until(lambda: watcher.sequences == [1], what="the first event")
            fanout = replica_b.app.state.fanout
            old_pid = fanout._conn.get_server_pid()
            rows = db_rows(database, "SELECT pg_terminate_backend(?)", old_pid)
            assert rows == [(True,)]
            api_a.post(f"/v1/sessions/{created}/events", json={"type": "log", "payload": {}})
            wait_until(lambda: watcher.sequences == [1, 2], timeout=30, what="the event")
            wait_until(
                lambda: fanout.listening and fanout._conn.get_server_pid() != old_pid,
                what="a new listener connection",
            )
            api_a.post(f"/v1/sessions/{created}/events", json={"type": "log", "payload": {}})
            wait_until(lambda: watcher.sequences == [1, 2, 3], timeout=30, what="the next event")
        finally:
            watcher.stopping.set()
