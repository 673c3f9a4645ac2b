"""``python -m benchmarks [--quick] [--only NAME ...] [--repeat N]``: run, print, record.

``--quick`` is CI's smoke run: tiny sizes, one repeat, and figures that are printed but never fail
the run. The exit code is non-zero only when a benchmark crashes (the code under test is broken);
a benchmark whose subject does not exist yet is reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness import Metric, Skipped, render_table, write_json

#: name -> module; each module has ``run(*, quick: bool, repeat: int) -> (metrics, details)``.
BENCHMARKS = {
    "imports": "benchmarks.bench_imports",
    "startup": "benchmarks.bench_startup",
    "sessions": "benchmarks.bench_sessions",
    "fleet": "benchmarks.bench_fleet",
    "events": "benchmarks.bench_events",
    "ingest": "benchmarks.bench_ingest",
    "server": "benchmarks.bench_server",
    "postgres": "benchmarks.bench_postgres",
}

RunFunction = Callable[..., tuple[list[Metric], dict[str, Any]]]


def machine() -> dict[str, Any]:
    import os

    import textual

    memory_kib = 0
    try:
        with open("/proc/meminfo") as meminfo:
            memory_kib = int(meminfo.readline().split()[1])
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except OSError:
            return ""

    return {
        # The working tree is what runs; uncommitted changes count too.
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": len(git("status", "--porcelain", "--untracked-files=no").splitlines()),
        "nproc": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "textual": textual.__version__,
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, not timed")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side (default 5)")
    args = parser.parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every spawned server and console is
    # stopped by the context managers that own them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    repeat = 1 if args.quick else max(1, args.repeat)
    names = args.only or list(BENCHMARKS)

    info = machine()
    print(
        f"sessionscope benchmarks: {info['nproc']} CPUs, {info['memory_gib']} GiB, "
        f"Python {info['python']}, Textual {info['textual']}, "
        f"{'quick' if args.quick else f'repeat {repeat}'}",
        flush=True,
    )
    metrics: list[Metric] = []
    outcomes: dict[str, str] = {}
    crashed = False
    for name in names:
        started = time.monotonic()
        print(f"-- {name} ...", flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
            run: RunFunction = module.run
            found, details = run(quick=args.quick, repeat=repeat)
        except Skipped as why:
            outcomes[name] = f"skipped: {why}"
            print(f"   skipped: {why}", flush=True)
            continue
        except ModuleNotFoundError as missing:
            if missing.name and missing.name.startswith("sessionscope"):
                outcomes[name] = f"skipped: {missing.name} does not exist yet"
                print(f"   {outcomes[name]}", flush=True)
                continue
            raise
        except Exception:
            crashed = True
            outcomes[name] = "crashed"
            traceback.print_exc()
            continue
        elapsed = time.monotonic() - started
        outcomes[name] = f"ok in {elapsed:.1f}s"
        print(f"   {outcomes[name]}", flush=True)
        metrics.extend(found)
        write_json(
            name,
            {
                "machine": info,
                "quick": args.quick,
                "repeat": repeat,
                "metrics": [metric.as_dict() for metric in found],
                "details": details,
            },
        )

    print()
    print(render_table(metrics))
    notes = [metric for metric in metrics if metric.note]
    if notes:
        print()
        for metric in notes:
            print(f"note: {metric.benchmark} / {metric.name}: {metric.note}")
    print()
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")
    if args.quick:
        print("(quick mode: a smoke run; the figures are not meaningful)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
