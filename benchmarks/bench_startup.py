"""Startup: process start to the sessions screen painted with its first page, and RSS.

Ours: ``sessionscope --url ... --api-key ...`` in a pseudo-terminal against a local server holding
1,000 sessions; done when the newest session's title reaches the terminal. Baseline: a bare
Textual app (Header, Footer, DataTable); done when its title reaches the terminal. Both are timed
from just before the process is spawned, so the interpreter's own start counts on both sides.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

from benchmarks import servers
from benchmarks.harness import Metric, Skipped, Target, alternate
from benchmarks.terminal import PtyProgram

TITLE_PREFIX = "startup-session-"
SIZE = (120, 40)


def seed_sessions(server: servers.RunningServer, count: int) -> str:
    """Create ``count`` sessions through the API; returns the newest one's title."""
    title = ""
    with server.client() as client:
        for number in range(count):
            title = f"{TITLE_PREFIX}{number:05d}"
            response = client.post(
                "/v1/sessions", json={"title": title, "agent_id": f"agent-{number % 7}"}
            )
            response.raise_for_status()
    return title


def bare_argv() -> list[str]:
    return [sys.executable, "-m", "benchmarks.apps.bare"]


def console_argv(server: servers.RunningServer) -> list[str]:
    return [*servers.sessionscope_command(), "--url", server.url, "--api-key", server.api_key]


def demo_argv() -> list[str]:
    return [*servers.sessionscope_command(), "demo", "--seed", "1"]


#: The demo's summary line once its first page is in ("5 sessions  status: all ..."); before it
#: the same line says "starting the local server…".
DEMO_LISTED = ["sessions  status:", "session  status:"]
DEMO_FIRST_FRAME = "starting the local server"


def measure_demo(env: dict[str, str]) -> tuple[float, float]:
    """(ms from spawn to the demo's first frame, ms from spawn to its first list)."""
    with PtyProgram(demo_argv(), env=env, size=SIZE) as program:
        painted = program.wait_for_text(DEMO_FIRST_FRAME, timeout=60.0)
        listed, _ = program.wait_for_any(DEMO_LISTED, timeout=60.0)
    return (painted - program.started) * 1000, (listed - program.started) * 1000


def measure(argv: list[str], marker: str, env: dict[str, str]) -> tuple[float, float]:
    """(ms from spawn to ``marker`` painted, VmHWM MiB just after)."""
    with PtyProgram(argv, env=env, size=SIZE) as program:
        painted = program.wait_for_text(marker, timeout=30.0)
        program.settle(quiet=0.1, timeout=1.0)
        status = program.status()
    return (painted - program.started) * 1000, status.get("VmHWM", 0) / 1024


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, Any]]:
    from benchmarks.apps.bare import TITLE

    env = servers.child_env()
    config_home = tempfile.mkdtemp(prefix="sessionscope-bench-config-")
    env.update({"XDG_CONFIG_HOME": config_home, "XDG_DATA_HOME": config_home})
    env.pop("SESSIONSCOPE_URL", None)
    env.pop("SESSIONSCOPE_API_KEY", None)

    time_metric = Metric(
        "startup",
        "spawn -> sessions first page painted (1k sessions)",
        "ms",
        baseline_name="bare Textual app first frame",
        target=Target("<=", 1.5, on="ratio"),
    )
    rss_metric = Metric(
        "startup",
        "RSS peak at first page",
        "MiB",
        baseline_name="bare Textual app",
        target=Target("<=", 1.5, on="ratio"),
    )
    demo_frame_metric = Metric(
        "startup",
        "demo: spawn -> first frame",
        "ms",
        baseline_name="bare Textual app first frame",
        target=Target("<=", 1.3, on="ratio"),
    )
    demo_list_metric = Metric(
        "startup",
        "demo: spawn -> first list (server started in parallel)",
        "ms",
        baseline_name="bare Textual app first frame",
        target=Target("<=", 2.0, on="ratio"),
    )
    details: dict[str, Any] = {}

    def baseline() -> None:
        elapsed, rss = measure(bare_argv(), TITLE, env)
        for metric in (time_metric, demo_frame_metric, demo_list_metric):
            metric.baseline.append(elapsed)
        rss_metric.baseline.append(rss)

    try:
        servers.require_server()
        from sessionscope.tui.screens import sessions  # noqa: F401
    except (Skipped, ModuleNotFoundError) as missing:
        # Still worth printing the reference figure.
        baseline()  # warm bytecode
        time_metric.baseline.clear()
        rss_metric.baseline.clear()
        for _ in range(repeat):
            baseline()
        time_metric.note = f"ours not measured: {missing}"
        return [time_metric, rss_metric], details

    count = 20 if quick else 1000
    with servers.running_server(servers.fresh_db("startup")) as server:
        newest = seed_sessions(server, count)
        time_metric.name = f"spawn -> sessions first page painted ({count} sessions)"

        def ours() -> None:
            elapsed, rss = measure(console_argv(server), newest, env)
            time_metric.ours.append(elapsed)
            rss_metric.ours.append(rss)
            frame, listed = measure_demo(env)
            demo_frame_metric.ours.append(frame)
            demo_list_metric.ours.append(listed)

        metrics = [time_metric, rss_metric, demo_frame_metric, demo_list_metric]
        if not quick:
            # One discarded run each: compiles bytecode, warms the page cache.
            ours()
            baseline()
            for metric in metrics:
                metric.ours.clear()
                metric.baseline.clear()
        alternate(repeat, ours, baseline)
    return metrics, details
