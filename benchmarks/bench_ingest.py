"""Live ingest: events fed into an open timeline; event-to-screen latency, CPU, RSS, max rate.

A feeder process (the simulator's ``SessionFeeder`` mix, through the HTTP API) appends events to
one session at a fixed rate; every 10th event is a ``log`` probe ``probe-NNNNNNN`` whose server
timestamp the feeder records from the reply. The console (in a pseudo-terminal, timeline open,
following) is watched from outside: a probe's latency is from its server timestamp to the first
frame after which it is on the emulated screen. CPU and RSS are read from /proc.

Baseline: a naive app calling ``Log.write_line`` once per event straight from httpx-sse.
The ramp then raises the rate until the console (or the server feeding it) stops keeping up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from benchmarks import console, servers
from benchmarks.harness import Metric, Target, alternate, percentile
from benchmarks.terminal import PtyProgram, proc_cpu_seconds

PROBE = re.compile(r"probe-\d{7}")
PROBE_EVERY = 10
#: A ramp step keeps up only if the screen went on showing new probes at least this often.
MIN_PROBES_SHOWN_PER_SECOND = 10


def create_session(server: servers.RunningServer, title: str) -> str:
    with server.client() as client:
        reply = client.post("/v1/sessions", json={"title": title})
        reply.raise_for_status()
        return str(reply.json()["id"])


class Feeder:
    """The feeder process and the file its report goes to.

    The report holds every probe's timestamp (~37 bytes each: 110 KB for a 2,000/s step of
    15 s). Through a pipe read only at the end it filled the pipe's 64 KiB, the feeder blocked
    in its last write, and ``watch`` ran on to its deadline, 30 s past the feed, averaging the
    console's CPU over that idle time too (a 20 s run at 1,000/s read 20% for ~50% while fed).
    """

    def __init__(self, process: subprocess.Popen[str], report: IO[str]) -> None:
        self.process = process
        self.report = report

    def poll(self) -> int | None:
        return self.process.poll()

    def result(self) -> dict[str, Any]:
        self.process.wait(timeout=60)
        self.report.seek(0)
        output = self.report.read()
        self.report.close()
        result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return result


def start_feeder(
    server: servers.RunningServer, session_id: str, rate: float, seconds: float
) -> Feeder:
    report = tempfile.TemporaryFile("w+")
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.feeder"],
        stdin=subprocess.PIPE,
        stdout=report,
        text=True,
        env=servers.child_env(),
    )
    assert child.stdin is not None
    spec = {
        "url": server.url,
        "api_key": server.api_key,
        "session_id": session_id,
        "rate": rate,
        "seconds": seconds,
        "probe_every": PROBE_EVERY,
    }
    child.stdin.write(json.dumps(spec) + "\n")
    child.stdin.close()
    return Feeder(child, report)


def watch(program: PtyProgram, feeder: Feeder, seconds: float) -> dict[str, Any]:
    """Pump the terminal while the feeder runs; returns what was seen and the process figures."""
    wall_offset = time.time() - time.monotonic()
    seen: dict[str, float] = {}
    rss: list[float] = []
    cpu_before = proc_cpu_seconds(program.pid)
    started = time.monotonic()
    next_sample = started
    deadline = started + seconds + 30
    program.emulate = False
    tail = ""
    while time.monotonic() < deadline:
        before = len(program.chunks)
        program.pump(0.02)
        for chunk in program.chunks[before:]:
            # A probe's text arrives whole when its row is (re)drawn; keep a short tail in case
            # a read splits it.
            text = tail + chunk.text.decode(errors="replace")
            for probe in PROBE.findall(text):
                seen.setdefault(probe, chunk.at + wall_offset)
            tail = text[-16:]
        # Keep memory flat on long runs.
        del program.chunks[:-1]
        now = time.monotonic()
        if now >= next_sample:
            rss.append(program.status().get("VmRSS", 0) / 1024)
            next_sample = now + 1.0
        if feeder.poll() is not None and now - started > seconds:
            break
    elapsed = time.monotonic() - started
    cpu = proc_cpu_seconds(program.pid) - cpu_before
    peak = program.status().get("VmHWM", 0) / 1024
    fed = feeder.result()
    latencies = [
        (seen[probe] - created) * 1000 for probe, created in fed["probes"].items() if probe in seen
    ]
    return {
        "sent": fed["sent"],
        "batches": fed.get("batches", False),
        "achieved_rate": fed["sent"] / fed["elapsed"],
        "probes": len(fed["probes"]),
        "probes_seen": len(latencies),
        "latency_p50": percentile(latencies, 0.5),
        "latency_p99": percentile(latencies, 0.99),
        # Lag trend: median latency of the last third of probes minus the first third.
        "lag_growth": _growth(fed["probes"], seen),
        "cpu_percent": 100 * cpu / elapsed,
        "rss_start": rss[0] if rss else 0.0,
        "rss_end": rss[-1] if rss else 0.0,
        # Quartiles of the run, to tell a plateau (bounded caches filling) from steady growth.
        "rss_quarters": [rss[len(rss) * q // 4] for q in (1, 2, 3)] if len(rss) >= 4 else [],
        # The whole series: an anomaly seen once (a step whose RSS went 61 -> 203 MiB in its
        # first 4 s, then stayed) shows its shape if it recurs.
        "rss_per_second": [round(value, 1) for value in rss],
        "rss_peak": peak,
    }


def _growth(probes: dict[str, float], seen: dict[str, float]) -> float:
    ordered = [(seen[p] - c) * 1000 for p, c in sorted(probes.items()) if p in seen]
    if len(ordered) < 6:
        return float("nan")
    third = len(ordered) // 3
    return percentile(ordered[-third:], 0.5) - percentile(ordered[:third], 0.5)


def open_console_timeline(
    server: servers.RunningServer, title: str, env: dict[str, str]
) -> PtyProgram:
    program = PtyProgram(console.console_argv(server), env=env, size=console.SIZE)
    try:
        program.wait_for_text(title, timeout=120)
        program.settle(quiet=0.2, timeout=5)
        since = len(program.chunks)
        program.send("enter")
        # The feeder starts only once the session screen is up (its tab bar is on screen): a
        # quiet half second alone could pass while the screen was still opening, and events
        # would then flow into a session that was not empty when its timeline opened.
        program.wait_for_text("1 Timeline", timeout=30, since=since)
        program.settle(quiet=0.5, timeout=10)
    except BaseException:
        program.close()
        raise
    return program


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    console.require_console()
    rate = 200.0 if quick else 1000.0
    seconds = 2.0 if quick else 60.0
    repeat = 1 if quick else min(repeat, 2)
    env = console.console_env()
    details: dict[str, Any] = {"runs": []}

    p50 = Metric(
        "ingest",
        f"{rate:g} events/s: event -> screen p50",
        "ms",
        baseline_name="Log.write_line per event",
        target=Target("<=", 50),
    )
    p99 = Metric(
        "ingest",
        f"{rate:g} events/s: event -> screen p99",
        "ms",
        baseline_name="Log.write_line per event",
        target=Target("<=", 150),
    )
    cpu = Metric(
        "ingest",
        f"{rate:g} events/s: console CPU",
        "% of a core",
        baseline_name="Log.write_line per event",
        target=Target("<=", 50),
    )
    rss_growth = Metric(
        "ingest",
        f"{rate:g} events/s: RSS growth over {seconds:g} s",
        "MiB",
        baseline_name="Log.write_line per event",
    )
    achieved = Metric(
        "ingest",
        "rate the server accepted",
        "events/s",
        baseline_name="(same server)",
        note="the feeder posts through the HTTP API (events:batch when the server has it, one "
        "request per 1/4 s tick); below the asked rate the server is the limit",
    )

    def record(side: str, result: dict[str, Any]) -> None:
        details["runs"].append({"side": side, **result})
        getattr(p50, side).append(result["latency_p50"])
        getattr(p99, side).append(result["latency_p99"])
        getattr(cpu, side).append(result["cpu_percent"])
        getattr(rss_growth, side).append(result["rss_end"] - result["rss_start"])
        getattr(achieved, side).append(result["achieved_rate"])

    with servers.running_server(servers.fresh_db("ingest")) as server:

        def ours() -> None:
            title = f"live-ingest-{time.monotonic_ns()}"
            session_id = create_session(server, title)
            program = open_console_timeline(server, title, env)
            with program:
                feeder = start_feeder(server, session_id, rate, seconds)
                record("ours", watch(program, feeder, seconds))

        def baseline() -> None:
            session_id = create_session(server, f"live-baseline-{time.monotonic_ns()}")
            argv = console.app_argv(
                "benchmarks.apps.log_stream", server.url, server.api_key, session_id
            )
            with PtyProgram(argv, env=env, size=console.SIZE) as program:
                program.wait_for_text("log-stream-baseline", timeout=60)
                program.settle(quiet=0.3, timeout=5)
                feeder = start_feeder(server, session_id, rate, seconds)
                record("baseline", watch(program, feeder, seconds))

        alternate(repeat, ours, baseline)

        # Ramp: the highest rate at which every probe shows up and the lag does not grow.
        sustained = 0.0
        # Past the 10,000/s target, so the figure is the console's ceiling, not the ramp's top
        # step (a top step delivered at 9,993/s read as a miss although the console kept up).
        ramp = [] if quick else [1000.0, 2000.0, 5000.0, 10000.0, 15000.0, 20000.0]
        step_seconds = 3.0 if quick else 15.0
        for target_rate in ramp:
            title = f"ramp-{target_rate:g}-{time.monotonic_ns()}"
            session_id = create_session(server, title)
            with open_console_timeline(server, title, env) as program:
                feeder = start_feeder(server, session_id, target_rate, step_seconds)
                result = watch(program, feeder, step_seconds)
            details.setdefault("ramp", []).append({"asked": target_rate, **result})
            # Events arrive in bursts (one events:batch per 1/4 s tick) and the timeline
            # coalesces, so not every probe is ever on screen; keeping up means the lag stays flat,
            # the server really delivered the asked rate, and the screen kept showing new probes.
            # A healthy step shows 60-80 probes a second; one run's step that showed 2 a second
            # (the screen had nearly stopped) passed a "more than none" rule.
            keeps_up = (
                result["achieved_rate"] >= 0.9 * target_rate
                and result["probes_seen"] >= MIN_PROBES_SHOWN_PER_SECOND * step_seconds
                and not result["lag_growth"] > 250
            )
            if not keeps_up:
                break
            # The step's rate, not the rate delivered: the feeder's elapsed time includes its
            # last request, so a 10,000/s step delivers ~9,990/s, and keeping up already
            # requires 90% of the asked rate delivered. The delivered rate is in the details.
            sustained = max(sustained, target_rate)
    ramp_metric = Metric(
        "ingest",
        "highest ramp step the console kept up with",
        "events/s",
        ours=[sustained],
        target=Target(">=", 10000),
        note="bounded by the rate the server accepts (see 'rate the server accepted')",
    )
    return [p50, p99, cpu, rss_growth, achieved, ramp_metric], details
