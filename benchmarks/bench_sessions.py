"""100,000 sessions: first page, cursor and page moves, jump to the end, RSS.

Ours: the console in a pseudo-terminal against a server holding the seeded sessions. Baseline: the
built-in DataTable loading the same rows (fetched once from the same server, outside the timing)
in one ``add_rows`` call. Key latency is from writing the key to the terminal to the first byte of
the frame that answers it, so Textual's frame pacing (60 fps) is part of both sides' figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from benchmarks import console, seeding, servers
from benchmarks.harness import Metric, Target, alternate, percentile
from benchmarks.terminal import PtyProgram

COLUMNS = ["STATUS", "TITLE", "AGENT", "AGE", "LAST ACTIVITY", "EVENTS", "PENDING"]


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
    details: dict[str, Any] = {"silent_presses": {}}

    def session(argv: list[str], side: str, end_key: str) -> None:
        with PtyProgram(argv, env=env, size=console.SIZE) as program:
            frame = console.first_frame(program, timeout=120)
            painted = program.wait_for_text(newest, timeout=120)
            getattr(spawn, side).append((painted - program.started) * 1000)
            if side == "ours":
                connect.ours.append((painted - frame) * 1000)
            downs, silent_down = console.key_latencies(program, "down", moves)
            pagings, silent_page = console.key_latencies(program, "pagedown", pages)
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
            getattr(rss, side).append(program.status().get("VmHWM", 0) / 1024)
            details["silent_presses"][side] = silent_down + silent_page
            for metric, samples in (
                (down_p50, percentile(downs, 0.5)),
                (down_p99, percentile(downs, 0.99)),
                (page_p50, percentile(pagings, 0.5)),
                (page_p99, percentile(pagings, 0.99)),
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
        end_frame,
        end_rows,
        rss,
    ]
    return metrics, details
