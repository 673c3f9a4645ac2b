"""Server throughput: event inserts, listing 100k sessions, 200 live subscribers, client streams.

- Event insert rate through the server's own storage layer (``Store.append_event``, one
  transaction per event, as the API does it), against raw ``sqlite3`` doing the same row work
  (insert the event, update the session's counters, commit) with the same pragmas.
- Event insert rate through the HTTP API (concurrent POSTs), against ``GET /v1/health`` at the
  same concurrency (the framework's floor).
- Listing sessions, any page, with 100,000 sessions: per-request latency p50/p99 over the first
  page, deep pages reached by cursor, and filtered queries; baseline ``GET /v1/health``.
- 200 subscribers on one session's stream while 100 events/s are appended (through
  ``events:batch``, one request per 50 ms tick): none lost.
- The native client's ``watch_session`` consuming a stream against raw httpx-sse on the same one.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from benchmarks import servers
from benchmarks.harness import Deadline, Metric, Target, alternate, percentile

ORG = "default"


def profile_summary(profile: cProfile.Profile, limit: int = 18) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Storage-level inserts
# ---------------------------------------------------------------------------------------------


def sample_payload(number: int) -> dict[str, Any]:
    return {"role": "agent", "content": f"event {number}: the agent reports progress " * 3}


async def store_insert(
    db_path: Path, count: int, *, profile: bool = False, concurrency: int = 1
) -> tuple[float, str]:
    """Append ``count`` events to a new session through ``Store``, ``concurrency`` appends in
    flight (as concurrent agents would); (events/s, session id)."""
    from sessionscope.models import SessionCreate
    from sessionscope.server.broker import Broker
    from sessionscope.server.db import make_engine, prepare_schema
    from sessionscope.server.settings import database_url
    from sessionscope.server.store import Store

    engine = make_engine(database_url(db_path))
    await prepare_schema(engine)
    store = Store(engine, Broker())
    try:
        session = await store.create_session(ORG, SessionCreate(title="insert benchmark"))
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        for start in range(0, count, concurrency):
            await asyncio.gather(
                *(
                    store.append_event(ORG, session.id, "message.agent", sample_payload(number))
                    for number in range(start, min(count, start + concurrency))
                )
            )
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
    finally:
        await store.aclose()
        await engine.dispose()
    if profiler:
        store_insert.last_profile = profile_summary(profiler)  # type: ignore[attr-defined]
    return count / elapsed, session.id


def raw_sqlite_insert(db_path: Path, count: int) -> float:
    """The same row work with the stdlib driver: the floor SQLite itself sets on this disk."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, last_sequence INTEGER, "
            "event_count INTEGER, last_active_at INTEGER, updated_at INTEGER)"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, session_id TEXT, org TEXT, "
            "sequence INTEGER, type TEXT, created_at INTEGER, payload TEXT, hidden INTEGER, "
            "hide_reason TEXT, UNIQUE (session_id, sequence))"
        )
        session_id = f"ses-{time.monotonic_ns()}"
        connection.execute("INSERT INTO sessions VALUES (?, 0, 0, 0, 0)", (session_id,))
        started = time.perf_counter()
        for number in range(count):
            now = time.time_ns() // 1000
            connection.execute("BEGIN")
            (sequence,) = connection.execute(
                "SELECT last_sequence FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            connection.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                (
                    f"evt-{session_id}-{number}",
                    session_id,
                    ORG,
                    sequence + 1,
                    "message.agent",
                    now,
                    json.dumps(sample_payload(number)),
                ),
            )
            connection.execute(
                "UPDATE sessions SET last_sequence = ?, event_count = event_count + 1, "
                "last_active_at = ?, updated_at = ? WHERE id = ?",
                (sequence + 1, now, now, session_id),
            )
            connection.execute("COMMIT")
        return count / (time.perf_counter() - started)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


async def http_rate(
    server: servers.RunningServer,
    count: int,
    concurrency: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> float:
    async with httpx.AsyncClient(
        base_url=server.url,
        headers=server.headers,
        timeout=30.0,
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.request(method, path, json=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def list_latencies(
    server: servers.RunningServer, pages: int, by_kind: dict[str, list[float]]
) -> tuple[list[float], list[float]]:
    """(listing latencies ms, health latencies ms), interleaved request by request; each listing
    latency also goes to ``by_kind`` under the kind of query it was."""
    listing: list[float] = []
    health: list[float] = []
    with server.client() as client:
        client.get("/v1/health")

        def timed(
            path: str, params: dict[str, Any], into: list[float], kind: str = ""
        ) -> dict[str, Any]:
            started = time.perf_counter()
            response = client.get(path, params=params)
            elapsed = (time.perf_counter() - started) * 1000
            into.append(elapsed)
            if kind:
                by_kind.setdefault(kind, []).append(elapsed)
            response.raise_for_status()
            return dict(response.json())

        cursor: str | None = None
        for _ in range(pages):  # walk deep, newest first, by cursor
            params: dict[str, Any] = {"limit": 50}
            if cursor:
                params["cursor"] = cursor
            kind = "first page" if not cursor else "deeper page by cursor"
            reply = timed("/v1/sessions", params, listing, kind)
            timed("/v1/health", {}, health)
            cursor = reply.get("next_cursor")
            if not cursor:
                break
        for params in (
            {"limit": 50},
            {"limit": 200},
            {"limit": 50, "status": "active"},
            {"limit": 50, "agent_id": "agent-3"},
            {"limit": 50, "q": "invoice"},
        ):
            for _ in range(max(3, pages // 10)):
                kind = ", ".join(f"{key}={value}" for key, value in params.items())
                timed("/v1/sessions", params, listing, kind)
                timed("/v1/health", {}, health)
    return listing, health


# ---------------------------------------------------------------------------------------------
# Live streams
# ---------------------------------------------------------------------------------------------


def subscribers_run(
    server: servers.RunningServer, session_id: str, subscribers: int, rate: float, seconds: float
) -> dict[str, Any]:
    with server.client() as client:
        after = int(client.get(f"/v1/sessions/{session_id}").json().get("last_sequence", 0))
    total = int(rate * seconds)
    # Hard cap only; the real end is the drain period after the emitter is done.
    timeout = seconds * 20 + 120
    drain = 30.0
    spec: dict[str, Any] = {
        "url": server.url,
        "api_key": server.api_key,
        "session_id": session_id,
        "after": after,
        "last": after + total,
        "count": subscribers,
        "timeout": timeout,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.subscribers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=servers.child_env(),
    )
    try:
        assert child.stdin and child.stdout
        child.stdin.write(json.dumps(spec) + "\n")
        child.stdin.flush()
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("subscribers did not connect")
        server_cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        # One events:batch request per tick carrying every event due by then, so the emitter
        # holds the asked rate however long one request takes while the streams are busy (with
        # one POST per event it, not the server's fan-out, set the rate).
        tick = 0.05
        batch_path = f"/v1/sessions/{session_id}/events:batch"
        with server.client() as client:
            emitted = 0
            while emitted < total:
                due = min(total, int((time.perf_counter() - started) * rate) + 1)
                if due > emitted:
                    events = [
                        {"type": "log", "payload": {"message": f"fan-out {number}"}}
                        for number in range(emitted, due)
                    ]
                    client.post(batch_path, json={"events": events}).raise_for_status()
                    emitted = due
                delay = started + (emitted / rate) - time.perf_counter()
                if emitted < total and delay > 0:
                    time.sleep(max(delay, tick))
        emitted_in = time.perf_counter() - started
        server_cpu = server.cpu_seconds() - server_cpu_before
        child.stdin.write(f"drain {drain}\n")
        child.stdin.flush()
        output, _ = child.communicate(timeout=drain + 60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    results = json.loads(output.strip().splitlines()[-1])
    lags = [lag * 1000 for result in results for lag in result["lags"]]
    return {
        "expected_per_subscriber": total,
        "lost": sum(max(0, total - result["received"]) for result in results),
        "duplicates": sum(result["duplicates"] for result in results),
        "gaps": sum(result["gaps"] for result in results),
        "reconnects": sum(result["reconnects"] for result in results),
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p99_ms": percentile(lags, 0.99),
        "emit_rate": total / emitted_in,
        "server_cpu_percent": 100 * server_cpu / emitted_in,
    }


async def native_consume(server: servers.RunningServer, session_id: str, last: int) -> float:
    from sessionscope.backends import BackendConfig
    from sessionscope.backends.native import NativeBackend

    backend = NativeBackend(BackendConfig(url=server.url, api_key=server.api_key))
    async with backend:
        started = time.perf_counter()
        count = 0
        watch = backend.watch_session(session_id, after=0)
        async for event in watch:
            count += 1
            if event.sequence >= last:
                break
        await watch.aclose()  # type: ignore[attr-defined]
        return count / (time.perf_counter() - started)


async def raw_consume(server: servers.RunningServer, session_id: str, last: int) -> float:
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=httpx.Timeout(30.0, read=60.0)
    ) as client:
        started = time.perf_counter()
        count = 0
        path = f"/v1/sessions/{session_id}/events/stream"
        async with aconnect_sse(client, "GET", path, params={"after": 0}) as source:
            async for sse in source.aiter_sse():
                if not sse.id or not sse.data:  # e.g. the "retry:" frame
                    continue
                json.loads(sse.data)
                count += 1
                if int(sse.id) >= last:
                    break
        return count / (time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------


#: Events in the stream the consumption benchmark reads (about half a second per pass).
STREAM_BACKLOG = 10_000


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    servers.require_server()
    details: dict[str, Any] = {}
    inserts = 30 if quick else 1000
    store_metric = Metric(
        "server",
        "event insert rate, storage layer (SQLite)",
        "events/s",
        baseline_name="raw sqlite3, same row work",
        target=Target(">=", 5000),
    )
    db_path = servers.fresh_db("server")
    raw_path = servers.fresh_db("server-raw")
    stream_session = ""

    def ours() -> None:
        nonlocal stream_session
        rate, session_id = asyncio.run(store_insert(db_path, inserts))
        stream_session = stream_session or session_id
        store_metric.ours.append(rate)

    def baseline() -> None:
        store_metric.baseline.append(raw_sqlite_insert(raw_path, inserts))

    alternate(repeat, ours, baseline)
    concurrent_metric = Metric(
        "server",
        "event insert rate, storage layer, 32 appends in flight",
        "events/s",
        baseline_name="raw sqlite3, same row work",
        target=Target(">=", 5000),
        baseline=list(store_metric.baseline),
        note="what concurrent agents see: the store may group-commit appends that overlap",
    )
    for _ in range(repeat):
        concurrent_metric.ours.append(
            asyncio.run(store_insert(db_path, inserts, concurrency=32))[0]
        )
    store_metric.target = None
    store_metric.name = "event insert rate, storage layer, one append at a time"
    if not quick:
        asyncio.run(store_insert(db_path, min(inserts, 1000), profile=True))
        details["store_insert_profile"] = getattr(store_insert, "last_profile", "")
    metrics = [store_metric, concurrent_metric]

    with servers.running_server(db_path) as server:
        http_metric = Metric(
            "server",
            "event insert rate, HTTP API (8 concurrent)",
            "events/s",
            baseline_name="GET /v1/health, same concurrency",
            note="end to end: the client shares the 2 CPUs with the server",
        )
        path = f"/v1/sessions/{stream_session}/events"
        body = {"type": "log", "payload": {"message": "http insert"}}
        alternate(
            repeat,
            lambda: http_metric.ours.append(
                asyncio.run(http_rate(server, inserts // 2, 8, "POST", path, body))
            ),
            lambda: http_metric.baseline.append(
                asyncio.run(http_rate(server, inserts // 2, 8, "GET", "/v1/health"))
            ),
        )
        metrics.append(http_metric)

        batch_metric = Metric(
            "server",
            "event insert rate, HTTP API, batches of 100 (events:batch)",
            "events/s",
            baseline_name="single POSTs, 8 concurrent",
            target=Target(">=", 5000),
        )
        batch_path = f"/v1/sessions/{stream_session}/events:batch"
        batch_body = {"events": [body] * 100}
        with server.client() as client:
            if client.post(batch_path, json=batch_body).status_code == 404:
                batch_path = ""
        if batch_path:
            for _ in range(repeat):
                # 10,000 events a pass (1,000 took ~0.1 s: too short to time stably).
                requests = max(2, inserts // 10)
                rate = asyncio.run(http_rate(server, requests, 2, "POST", batch_path, batch_body))
                batch_metric.ours.append(rate * 100)
            batch_metric.baseline = list(http_metric.ours)
            metrics.append(batch_metric)

        # Streams: consumption first (a quiet session with a known backlog), then fan-out.
        with server.client() as client:
            last = int(client.get(f"/v1/sessions/{stream_session}").json()["last_sequence"])
            # The same backlog whatever --repeat left behind (2,601 events after one repeat,
            # 5,601 after three): one pass over 2,601 took ~0.13 s, too short to time stably.
            backlog = 30 if quick else STREAM_BACKLOG
            while batch_path and last < backlog:
                count = min(1000, backlog - last)
                events = [{"type": "log", "payload": {"message": "backlog"}}] * count
                client.post(batch_path, json={"events": events}).raise_for_status()
                last += count
        consume_metric = Metric(
            "server",
            f"native watch_session consuming {last} events",
            "events/s",
            baseline_name="raw httpx-sse + json.loads",
            target=Target(">=", 0.8, on="ratio"),
        )
        alternate(
            repeat,
            lambda: consume_metric.ours.append(
                asyncio.run(native_consume(server, stream_session, last))
            ),
            lambda: consume_metric.baseline.append(
                asyncio.run(raw_consume(server, stream_session, last))
            ),
        )
        metrics.append(consume_metric)

        subscribers = 3 if quick else 200
        seconds = 1.0 if quick else 10.0
        fan_out = subscribers_run(server, stream_session, subscribers, 100.0, seconds)
        details["fan_out"] = fan_out
        metrics.append(
            Metric(
                "server",
                f"{subscribers} subscribers x 100 events/s: events lost",
                "events",
                ours=[fan_out["lost"]],
                target=Target("<=", 0),
                note=(
                    f"{fan_out['duplicates']} duplicates, {fan_out['gaps']} gaps, "
                    f"{fan_out['reconnects']} reconnects, emitted at {fan_out['emit_rate']:.0f}/s, "
                    f"server CPU {fan_out['server_cpu_percent']:.0f}%"
                ),
            )
        )
        metrics.append(
            Metric(
                "server",
                f"{subscribers} subscribers: delivery lag p99",
                "ms",
                ours=[fan_out["lag_p99_ms"]],
                note=f"p50 {fan_out['lag_p50_ms']:.1f} ms",
            )
        )

    metrics.extend(listing_metrics(quick, details))
    return metrics, details


def listing_metrics(quick: bool, details: dict[str, Any]) -> list[Metric]:
    from benchmarks.seeding import seeded_sessions_db

    count = 500 if quick else 100_000
    db_path = seeded_sessions_db(count)
    p99 = Metric(
        "server",
        f"list sessions p99, {count:,} sessions",
        "ms",
        baseline_name="GET /v1/health p99",
        target=Target("<=", 20),
    )
    p50 = Metric(
        "server",
        f"list sessions p50, {count:,} sessions",
        "ms",
        baseline_name="GET /v1/health p50",
    )
    deadline = Deadline(120)
    by_kind: dict[str, list[float]] = {}
    with servers.running_server(db_path) as server:
        for _ in range(1 if quick else 3):
            listing, health = list_latencies(server, 5 if quick else 200, by_kind)
            p99.ours.append(percentile(listing, 0.99))
            p99.baseline.append(percentile(health, 0.99))
            p50.ours.append(percentile(listing, 0.5))
            p50.baseline.append(percentile(health, 0.5))
            if deadline.expired:
                break
    breakdown = {
        kind: {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99), "n": len(samples)}
        for kind, samples in by_kind.items()
    }
    details["listing_by_kind"] = breakdown
    slowest = sorted(breakdown.items(), key=lambda item: item[1]["p99"], reverse=True)[:2]
    p99.note = "slowest: " + "; ".join(
        f"{kind} p99 {figures['p99']:.0f} ms" for kind, figures in slowest
    )
    return [p50, p99]
