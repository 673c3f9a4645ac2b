"""Several profiles at once: four reference servers of 25,000 sessions each (100,000 in all)
opened with ``--all-profiles``, against the 100k-session paging targets of ``bench_sessions``.

The console runs in a pseudo-terminal. Each server holds its own seeded sessions, created one
second apart and offset per profile, so the merged list interleaves all four. Key latency is from
writing the key to the first byte of the frame that answers it; "rows painted" is to the chunk
after which the screen shows a changed view with no ``loading…`` row left. The inbox is timed
from ``a`` to its status line (every profile's pending items fetched and listed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import console, seeding, servers
from benchmarks.harness import Metric, Target, percentile
from benchmarks.terminal import PtyProgram

PROFILES = 4
PLACEHOLDER = "loading…"
#: The inbox's status line once every profile's items are listed (some waiting, or none).
INBOX_READY = ("across the fleet", "Nothing waits in any profile")


def seeded_profile_db(index: int, count: int) -> Path:
    from sessionscope.server.seed import seed_sessions

    path, ready = servers.cached_db(f"fleet-{index}-of-{PROFILES}-{count}")
    if not ready:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        # One fixed clock for the four: profile i's sessions sit i seconds after profile 0's.
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=index)
        asyncio.run(
            seed_sessions(
                str(path),
                seeding.ORG,
                count,
                start=start,
                spacing=timedelta(seconds=PROFILES),
                title_prefix=f"Fleet p{index} session",
            )
        )
        servers.mark_ready(path)
    return path


def write_profiles(home: str, running: list[servers.RunningServer]) -> None:
    directory = Path(home) / "sessionscope"
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, server in enumerate(running):
        lines += [f"[profiles.p{index}]", f'url = "{server.url}"', f'api_key = "{server.api_key}"']
    (directory / "config.toml").write_text("\n".join(lines) + "\n")


def painted_latencies(
    program: PtyProgram, key: str, count: int, *, timeout: float = 2.0
) -> tuple[list[float], list[float], int]:
    """Per press: ms to the first answering byte, and ms to a changed view with no placeholder.
    Returns (frames, rows painted, presses that painted nothing)."""
    frames: list[float] = []
    rows: list[float] = []
    silent = 0
    for _ in range(count):
        program.settle(quiet=0.04, timeout=1.0)
        before = list(program.screen.display)
        index = len(program.chunks)
        pressed = program.send(key)
        first = program.wait_for_output(timeout, since=index)
        if first is None:
            silent += 1
            continue
        frames.append((first - pressed) * 1000)
        painted: float | None = None
        while time.monotonic() < pressed + timeout:
            if list(program.screen.display) != before and not program.on_screen(PLACEHOLDER):
                painted = program.chunks[-1].at
                break
            if not program.pump(0.02):
                break
        rows.append(((painted or pressed + timeout) - pressed) * 1000)
    return frames, rows, silent


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    console.require_console()
    per_profile = 200 if quick else 25_000
    total = per_profile * PROFILES
    moves = 3 if quick else 100
    pages = 2 if quick else 40
    repeat = 1 if quick else min(repeat, 3)
    paths = [seeded_profile_db(index, per_profile) for index in range(PROFILES)]
    label = f"{PROFILES} profiles x {per_profile:,}"

    spawn = Metric("fleet", f"spawn -> first page painted ({label})", "ms")
    down_p50 = Metric("fleet", "cursor down: key -> frame, median", "ms", target=Target("<=", 16))
    down_p99 = Metric("fleet", "cursor down: key -> frame, p99", "ms", target=Target("<=", 50))
    page_p50 = Metric("fleet", "page down: key -> frame, median", "ms", target=Target("<=", 16))
    page_p99 = Metric("fleet", "page down: key -> frame, p99", "ms", target=Target("<=", 50))
    rows_p99 = Metric("fleet", "page down: key -> rows painted, p99", "ms", target=Target("<=", 50))
    inbox = Metric("fleet", "a: key -> merged inbox listed", "ms")
    rss = Metric("fleet", "RSS peak", "MiB", target=Target("<=", 100))
    details: dict[str, Any] = {"silent_presses": 0}

    with contextlib.ExitStack() as stack:
        running = [stack.enter_context(servers.running_server(path)) for path in paths]
        env = console.console_env()
        write_profiles(env["XDG_CONFIG_HOME"], running)
        argv = [*servers.sessionscope_command(), "--all-profiles"]
        for _ in range(repeat):
            with PtyProgram(argv, env=env, size=console.SIZE) as program:
                painted = program.wait_for_text(f"{total:,} sessions", timeout=120)
                spawn.ours.append((painted - program.started) * 1000)
                downs, silent_down = console.key_latencies(program, "down", moves)
                frames, rows, silent_page = painted_latencies(program, "pagedown", pages)
                details["silent_presses"] += silent_down + silent_page
                program.settle(quiet=0.2, timeout=5)
                index = len(program.chunks)
                pressed = program.send("a")
                listed = program.wait_for_any(list(INBOX_READY), timeout=30, since=index)[0]
                inbox.ours.append((listed - pressed) * 1000)
                program.settle(quiet=0.2, timeout=5)
                rss.ours.append(program.status().get("VmHWM", 0) / 1024)
                for metric, value in (
                    (down_p50, percentile(downs, 0.5)),
                    (down_p99, percentile(downs, 0.99)),
                    (page_p50, percentile(frames, 0.5)),
                    (page_p99, percentile(frames, 0.99)),
                    (rows_p99, percentile(rows, 0.99)),
                ):
                    metric.ours.append(value)
    return [spawn, down_p50, down_p99, page_p50, page_p99, rows_p99, inbox, rss], details
