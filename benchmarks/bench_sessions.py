"""100,000 sessions: first page, cursor and page moves, jump to the end, RSS.

Ours: the console in a pseudo-terminal against a server holding the seeded sessions. Baseline: the
built-in DataTable loading the same rows (fetched once from the same server, outside the timing)
in one ``add_rows`` call. Key latency is from writing the key to the terminal to the first byte of
the frame that answers it, so Textual's frame pacing (60 fps) is part of both sides' figure. A
first frame may show ``loading…`` placeholders for rows still on their way, or only part of the
new view, so paging is also measured to the chunk after which the screen shows the new rows,
complete and in order ("rows painted"), near the top and from the end.
"""

from __future__ import annotations

import json
import re
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from benchmarks import console, seeding, servers
from benchmarks.harness import Metric, Target, alternate, percentile
from benchmarks.terminal import PtyProgram

COLUMNS = ["STATUS", "TITLE", "AGENT", "AGE", "LAST ACTIVITY", "EVENTS", "PENDING"]
#: What the sessions table shows in a row it has not received yet.
PLACEHOLDER = "loading…"
#: Seeded titles carry their creation rank: rows on screen, newest first, count down by one.
SEEDED = re.compile(rf"{re.escape(seeding.SESSION_TITLE_PREFIX)} (\d+)\b")


def seeded_on_screen(program: PtyProgram) -> list[int]:
    return [int(m.group(1)) for line in program.screen.display if (m := SEEDED.search(line))]


def rows_painted(program: PtyProgram, before: list[int]) -> bool:
    """The screen shows a new run of rows, each one in place: no placeholder, no row left over
    from the previous view (a view that moved without repainting fails this), none missing."""
    if program.on_screen(PLACEHOLDER):
        return False
    shown = seeded_on_screen(program)
    return (
        len(shown) > 1
        and shown != before
        and all(upper - lower == 1 for upper, lower in pairwise(shown))
    )


def paging_latencies(
    program: PtyProgram, key: str, count: int, *, timeout: float = 2.0
) -> tuple[list[float], list[float], int, int]:
    """Press ``key`` ``count`` times. Per press: ms to the first byte of the answering frame and
    ms to the chunk after which the emulated screen shows the new rows (``rows_painted``: the
    frame may come in several chunks, rows may follow in later frames). Returns (frame
    latencies, rows latencies, presses that painted nothing, presses whose rows were not
    painted within ``timeout``, counted as ``timeout``)."""
    frames: list[float] = []
    rows: list[float] = []
    silent = unfilled = 0
    for _ in range(count):
        program.settle(quiet=0.04, timeout=1.0)
        before = seeded_on_screen(program)
        index = len(program.chunks)
        pressed = program.send(key)
        first = program.wait_for_output(timeout, since=index)
        if first is None:
            silent += 1
            continue
        frames.append((first - pressed) * 1000)
        painted = first if rows_painted(program, before) else None
        while time.monotonic() < pressed + timeout:
            read = len(program.chunks)
            alive = program.pump(0.04)
            if len(program.chunks) == read:
                if painted is not None or not alive:
                    break
                continue
            if not rows_painted(program, before):
                painted = None
            elif painted is None:
                painted = program.chunks[-1].at
        if painted is None:
            unfilled += 1
            rows.append(timeout * 1000)
        else:
            rows.append((painted - pressed) * 1000)
    return frames, rows, silent, unfilled


def export_rows(server: servers.RunningServer, path: Path) -> None:
    """Every session as a DataTable row, newest first, as the console shows them."""
    rows: list[list[Any]] = []
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            reply = client.get("/v1/sessions", params=params).raise_for_status().json()
            for session in reply["data"]:
                rows.append(
                    [
                        session["status"],
                        session["title"],
                        session.get("agent_id") or "",
                        session["created_at"][11:19],
                        (session.get("last_active_at") or "")[11:19],
                        session.get("event_count", 0),
                        session.get("pending_action_count", 0),
                    ]
                )
            cursor = reply.get("next_cursor")
            if not cursor:
                break
    path.write_text(json.dumps({"columns": COLUMNS, "rows": rows}))


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    console.require_console()
    count = 500 if quick else 100_000
    moves = 3 if quick else 100
    pages = 2 if quick else 40
    repeat = 1 if quick else min(repeat, 3)
    db_path = seeding.seeded_sessions_db(count)
    newest = seeding.newest_session_title(count)
    oldest = f"{seeding.SESSION_TITLE_PREFIX} 0 "
    env = console.console_env()

    spawn = Metric(
        "sessions",
        f"spawn -> first page painted ({count:,} sessions)",
        "ms",
        baseline_name=f"DataTable loading {count:,} rows",
    )
    connect = Metric(
        "sessions",
        "first frame (connecting) -> first page painted",
        "ms",
        target=Target("<=", 200),
    )
    down_p50 = Metric(
        "sessions",
        "cursor down: key -> frame, median",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 16),
    )
    down_p99 = Metric(
        "sessions",
        "cursor down: key -> frame, p99",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 50),
    )
    page_p50 = Metric(
        "sessions",
        "page down: key -> frame, median",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 16),
    )
    page_p99 = Metric(
        "sessions",
        "page down: key -> frame, p99",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 50),
    )
    page_rows_p99 = Metric(
        "sessions",
        "page down: key -> rows painted, p99",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 50),
    )
    up_p50 = Metric(
        "sessions",
        "page up from the end: key -> frame, median",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 16),
    )
    up_p99 = Metric(
        "sessions",
        "page up from the end: key -> frame, p99",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 50),
    )
    up_rows_p99 = Metric(
        "sessions",
        "page up from the end: key -> rows painted, p99",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 50),
    )
    end_frame = Metric(
        "sessions",
        "end: key -> first frame",
        "ms",
        baseline_name="DataTable",
        target=Target("<=", 50),
    )
    end_rows = Metric(
        "sessions",
        "end: key -> oldest session painted",
        "ms",
        baseline_name="DataTable",
    )
    rss = Metric(
        "sessions",
        "RSS peak",
        "MiB",
        baseline_name="DataTable",
        target=Target("<=", 100),
    )
    details: dict[str, Any] = {"silent_presses": {}, "unfilled_presses": {}}

    def session(argv: list[str], side: str, end_key: str) -> None:
        with PtyProgram(argv, env=env, size=console.SIZE) as program:
            frame = console.first_frame(program, timeout=120)
            painted = program.wait_for_text(newest, timeout=120)
            getattr(spawn, side).append((painted - program.started) * 1000)
            if side == "ours":
                connect.ours.append((painted - frame) * 1000)
            downs, silent_down = console.key_latencies(program, "down", moves)
            pagings, paged_rows, silent_page, unfilled_page = paging_latencies(
                program, "pagedown", pages
            )
            program.settle(quiet=0.2, timeout=5)
            index = len(program.chunks)
            pressed = program.send(end_key)
            first = program.wait_for_output(5.0, since=index)
            try:
                last = program.wait_for_text(oldest, timeout=120, since=index)
                getattr(end_rows, side).append((last - pressed) * 1000)
            except Exception as error:
                details.setdefault("end_errors", []).append(f"{side}: {error}")
            if first is not None:
                getattr(end_frame, side).append((first - pressed) * 1000)
            program.settle(quiet=0.2, timeout=5)
            ups, up_rows, silent_up, unfilled_up = paging_latencies(program, "pageup", pages)
            program.settle(quiet=0.2, timeout=5)
            getattr(rss, side).append(program.status().get("VmHWM", 0) / 1024)
            details["silent_presses"][side] = silent_down + silent_page + silent_up
            details["unfilled_presses"][side] = unfilled_page + unfilled_up
            for metric, samples in (
                (down_p50, percentile(downs, 0.5)),
                (down_p99, percentile(downs, 0.99)),
                (page_p50, percentile(pagings, 0.5)),
                (page_p99, percentile(pagings, 0.99)),
                (page_rows_p99, percentile(paged_rows, 0.99)),
                (up_p50, percentile(ups, 0.5)),
                (up_p99, percentile(ups, 0.99)),
                (up_rows_p99, percentile(up_rows, 0.99)),
            ):
                getattr(metric, side).append(samples)

    with servers.running_server(db_path) as server:
        rows_path = db_path.with_suffix(".rows.json")
        if not rows_path.exists():
            export_rows(server, rows_path)
        ours_argv = console.console_argv(server)
        base_argv = console.app_argv("benchmarks.apps.table_rows", str(rows_path))
        alternate(
            repeat,
            lambda: session(ours_argv, "ours", "end"),
            # DataTable's "end" scrolls columns; its jump to the last row is ctrl+end.
            lambda: session(base_argv, "baseline", "ctrl+end"),
        )
    metrics = [
        spawn,
        connect,
        down_p50,
        down_p99,
        page_p50,
        page_p99,
        page_rows_p99,
        end_frame,
        end_rows,
        up_p50,
        up_p99,
        up_rows_p99,
        rss,
    ]
    return metrics, details
