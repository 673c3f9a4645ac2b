"""1,000,000 events in one session: open the timeline, jump to start and end, RSS.

Ours: the console in a pseudo-terminal; the session (the only one on the server) is opened with
``enter`` from the sessions screen. Baseline: the built-in ``Log`` holding the same number of
timeline-like lines written in one batch (generated in process, so it does not pay for fetching).
"""

from __future__ import annotations

from typing import Any

from benchmarks import console, seeding, servers
from benchmarks.harness import Metric, Target, alternate
from benchmarks.terminal import PtyProgram, TerminalTimeout


def content_marker(index: int) -> str:
    """Text of the ``index``-th seeded event (0-based) as the timeline and the Log show it."""
    return f"message {index} xxxx"


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    console.require_console()
    count = 2_000 if quick else 1_000_000
    repeat = 1 if quick else min(repeat, 3)
    seeded = seeding.seeded_events_db(count)
    env = console.console_env()
    first_event, last_event = content_marker(0), content_marker(count - 1)
    # Seen at 1,000,000 events: the timeline opened (and jumped to the end) one row short of the
    # newest event. The paint is timed on either of the two newest rows and the miss is recorded.
    newest = [last_event, content_marker(count - 2)]

    open_metric = Metric(
        "events",
        f"open timeline ({count:,} events): enter -> events painted",
        "ms",
        target=Target("<=", 300),
    )
    spawn = Metric(
        "events",
        "spawn -> newest events painted",
        "ms",
        baseline_name=f"Log with {count:,} lines",
        note="ours includes the sessions screen and the open; the Log gets its lines for free",
    )
    start_metric = Metric(
        "events",
        "jump to start: key -> first event painted",
        "ms",
        baseline_name="Log",
        target=Target("<=", 50),
    )
    end_metric = Metric(
        "events",
        "jump to end: key -> newest event painted",
        "ms",
        baseline_name="Log",
        target=Target("<=", 50),
    )
    rss = Metric("events", "RSS peak", "MiB", baseline_name="Log", target=Target("<=", 150))
    details: dict[str, Any] = {"errors": []}

    def newest_missing(program: PtyProgram, side: str, when: str) -> None:
        if not program.on_screen(last_event):
            details["errors"].append(
                f"{side} {when}: the newest event ({last_event!r}) is not on screen; the last "
                f"row shown is the one before it"
            )

    def jumps(program: PtyProgram, side: str) -> None:
        for key, markers, metric in (
            ("home", [first_event], start_metric),
            ("end", newest, end_metric),
        ):
            program.settle(quiet=0.2, timeout=5)
            index = len(program.chunks)
            pressed = program.send(key)
            try:
                painted, _ = program.wait_for_any(markers, timeout=30, since=index)
                getattr(metric, side).append((painted - pressed) * 1000)
            except TerminalTimeout as error:
                details["errors"].append(f"{side} {key}: {error}")
        program.settle(quiet=0.2, timeout=5)
        newest_missing(program, side, "after end")
        program.settle(quiet=0.3, timeout=5)
        getattr(rss, side).append(program.status().get("VmHWM", 0) / 1024)

    def ours(server: servers.RunningServer) -> None:
        with PtyProgram(console.console_argv(server), env=env, size=console.SIZE) as program:
            program.wait_for_text(seeded.title, timeout=120)
            program.settle(quiet=0.2, timeout=5)
            index = len(program.chunks)
            pressed = program.send("enter")
            painted, _ = program.wait_for_any(newest, timeout=120, since=index)
            open_metric.ours.append((painted - pressed) * 1000)
            program.settle(quiet=0.2, timeout=5)
            newest_missing(program, "ours", "on open")
            spawn.ours.append((painted - program.started) * 1000)
            jumps(program, "ours")

    def baseline() -> None:
        argv = console.app_argv("benchmarks.apps.log_lines", str(count))
        with PtyProgram(argv, env=env, size=console.SIZE) as program:
            painted, _ = program.wait_for_any(newest, timeout=300)
            spawn.baseline.append((painted - program.started) * 1000)
            jumps(program, "baseline")

    with servers.running_server(seeded.path) as server:
        alternate(repeat, lambda: ours(server), baseline)
    return [open_metric, spawn, start_metric, end_metric, rss], details
