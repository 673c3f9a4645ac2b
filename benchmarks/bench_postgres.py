"""The reference server on PostgreSQL, side by side with SQLite (the baseline column).

- list sessions p99 with 100,000 sessions;
- event insert rate over HTTP with 32 single appends in flight, and through ``events:batch``;
- live delivery lag p50/p99 with 500 subscribers at 1,000 events/s: on PostgreSQL spread over two
  replicas with every event appended through the first (so half the subscribers are fed across
  replicas, through NOTIFY/LISTEN); on SQLite all on its one server. Goal: p99 <= 100 ms.

PostgreSQL runs from the machine's binaries (``pg_local``) with fsync on and
``synchronous_commit=off``: like SQLite's ``synchronous=NORMAL`` in WAL mode, a crash may lose
the last commits but never corrupts. Both servers are real ``sessionscope serve`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.bench_server import http_rate, list_latencies
from benchmarks.harness import Metric, Skipped, Target, percentile
from benchmarks.seeding import ORG, SESSION_TITLE_PREFIX, seeded_sessions_db


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    from sessionscope.server.pg_local import LocalPostgres, PostgresUnavailable

    cluster = LocalPostgres(durable=True, settings={"synchronous_commit": "off"})
    try:
        cluster.start()
    except PostgresUnavailable as error:
        raise Skipped(f"PostgreSQL cannot run here: {error}") from None
    try:
        yield cluster
    finally:
        cluster.stop()


async def _vacuum(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def listing(db: Path | str, pages: int) -> tuple[float, float]:
    """(p99, p50) of listing latencies in ms."""
    by_kind: dict[str, list[float]] = {}
    with servers.running_server(db) as server:
        samples, _health = list_latencies(server, pages, by_kind)
    return percentile(samples, 0.99), percentile(samples, 0.5)


def insert_rates(db: Path | str, events: int) -> tuple[float, float]:
    """(single appends with 32 in flight, events:batch of 100 with 2 in flight), events/s."""
    with servers.running_server(db) as server:
        with server.client() as client:
            session_id = client.post("/v1/sessions", json={"title": "inserts"}).json()["id"]
        body = {"type": "log", "payload": {"message": "insert"}}
        path = f"/v1/sessions/{session_id}/events"
        single = asyncio.run(http_rate(server, events, 32, "POST", path, body))
        batch = asyncio.run(
            http_rate(
                server,
                max(2, events // 100),
                2,
                "POST",
                f"/v1/sessions/{session_id}/events:batch",
                {"events": [body] * 100},
            )
        )
    return single, batch * 100


def _subscribers(url: str, session_id: str, after: int, total: int, count: int) -> Any:
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.subscribers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=servers.child_env(),
    )
    assert child.stdin and child.stdout
    spec = {
        "url": url,
        "api_key": servers.API_KEY,
        "session_id": session_id,
        "after": after,
        "last": after + total,
        "count": count,
        "timeout": 600,
    }
    child.stdin.write(json.dumps(spec) + "\n")
    child.stdin.flush()
    return child


def delivery(urls: list[str], subscribers: int, rate: float, seconds: float) -> dict[str, Any]:
    """Subscribers spread over ``urls`` follow one session; events go in through ``urls[0]``
    at ``rate``. Lag: the event's created_at to its arrival at a subscriber."""
    import httpx

    headers = {"Authorization": f"Bearer {servers.API_KEY}"}
    with httpx.Client(base_url=urls[0], headers=headers, timeout=30) as client:
        session_id = client.post("/v1/sessions", json={"title": "fan-out"}).json()["id"]
        after = int(client.get(f"/v1/sessions/{session_id}").json()["last_sequence"])
        total = int(rate * seconds)
        share = subscribers // len(urls)
        children = [_subscribers(url, session_id, after, total, share) for url in urls]
        try:
            for child in children:
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError("subscribers did not connect")
            started = time.perf_counter()
            emitted = 0
            batch_path = f"/v1/sessions/{session_id}/events:batch"
            while emitted < total:
                # At most 500 a request (the API's batch limit is 1,000) when behind.
                due = min(total, int((time.perf_counter() - started) * rate) + 1, emitted + 500)
                if due > emitted:
                    events = [
                        {"type": "log", "payload": {"n": number}} for number in range(emitted, due)
                    ]
                    client.post(batch_path, json={"events": events}).raise_for_status()
                    emitted = due
                delay = started + emitted / rate - time.perf_counter()
                if emitted < total and delay > 0:
                    time.sleep(max(delay, 0.01))
            emit_rate = total / (time.perf_counter() - started)
            results: list[dict[str, Any]] = []
            for child in children:
                # A child whose subscribers all got everything has ended already.
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.write("drain 30\n")
                    child.stdin.flush()
                output = child.stdout.read()
                child.wait(120)
                results.extend(json.loads(output.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    lags = [lag * 1000 for result in results for lag in result["lags"]]
    return {
        "lost": sum(max(0, total - result["received"]) for result in results),
        "duplicates": sum(result["duplicates"] for result in results),
        "gaps": sum(result["gaps"] for result in results),
        "p50": percentile(lags, 0.5),
        "p99": percentile(lags, 0.99),
        "emit_rate": emit_rate,
    }


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    from sessionscope.server.seed import seed_sessions

    servers.require_server()
    details: dict[str, Any] = {}
    sessions = 500 if quick else 100_000
    pages = 5 if quick else 100
    events = 64 if quick else 4_000
    subscribers = 4 if quick else 500
    rate, seconds = (100.0, 1.0) if quick else (1000.0, 10.0)
    sqlite_sessions = seeded_sessions_db(sessions)
    metrics = {
        "list": Metric(
            "postgres",
            f"list sessions p99, {sessions:,} sessions (PostgreSQL)",
            "ms",
            baseline_name="the same on SQLite",
            target=Target("<=", 20),
        ),
        "single": Metric(
            "postgres",
            "event insert rate, HTTP, 32 appends in flight (PostgreSQL)",
            "events/s",
            baseline_name="the same on SQLite",
        ),
        "batch": Metric(
            "postgres",
            "event insert rate, HTTP events:batch of 100 (PostgreSQL)",
            "events/s",
            baseline_name="the same on SQLite",
            target=Target(">=", 5000),
        ),
        "p50": Metric(
            "postgres",
            f"delivery lag p50, {subscribers} subscribers over 2 replicas x {rate:g} events/s",
            "ms",
            baseline_name="SQLite, all on one server",
        ),
        "p99": Metric(
            "postgres",
            f"delivery lag p99, {subscribers} subscribers over 2 replicas x {rate:g} events/s",
            "ms",
            baseline_name="SQLite, all on one server",
            target=Target("<=", 100),
        ),
    }
    with postgres() as cluster:
        listing_db = cluster.create_database("listing")
        asyncio.run(seed_sessions(listing_db, ORG, sessions, title_prefix=SESSION_TITLE_PREFIX))
        # What autovacuum does to a live database soon after a bulk load (statistics, and the
        # visibility map that lets a COUNT read the index only).
        asyncio.run(_vacuum(listing_db))
        for attempt in range(repeat):
            p99, _ = listing(listing_db, pages)
            metrics["list"].ours.append(p99)
            metrics["list"].baseline.append(listing(sqlite_sessions, pages)[0])
            pg_db = cluster.create_database(f"inserts{attempt}")
            single, batch = insert_rates(pg_db, events)
            metrics["single"].ours.append(single)
            metrics["batch"].ours.append(batch)
            single, batch = insert_rates(servers.fresh_db(f"postgres-inserts{attempt}"), events)
            metrics["single"].baseline.append(single)
            metrics["batch"].baseline.append(batch)
        for attempt in range(1):
            fan_db = cluster.create_database(f"fanout{attempt}")
            with (
                servers.running_server(fan_db) as replica_a,
                servers.running_server(fan_db) as replica_b,
            ):
                ours = delivery([replica_a.url, replica_b.url], subscribers, rate, seconds)
            with servers.running_server(servers.fresh_db(f"postgres-fanout{attempt}")) as single:
                base = delivery([single.url], subscribers, rate, seconds)
            details[f"delivery_postgres_{attempt}"] = ours
            details[f"delivery_sqlite_{attempt}"] = base
            for name in ("p50", "p99"):
                metrics[name].ours.append(ours[name])
                metrics[name].baseline.append(base[name])
            metrics["p99"].note = (
                f"PostgreSQL: {ours['lost']} lost, {ours['duplicates']} duplicates, "
                f"{ours['gaps']} gaps, emitted at {ours['emit_rate']:.0f}/s; "
                f"SQLite: {base['lost']} lost"
            )
    return list(metrics.values()), details
