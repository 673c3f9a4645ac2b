"""The benchmark machinery works: tiny configurations, no timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# benchmarks/ is a top-level package beside src/, not part of the installed distribution.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_imports  # noqa: E402
from benchmarks.harness import Metric, Target, alternate, percentile, render_table  # noqa: E402
from benchmarks.terminal import PtyProgram, visible_text  # noqa: E402


def test_targets_check_the_median_or_the_ratio() -> None:
    metric = Metric("b", "m", "ms", ours=[10, 30, 20], baseline=[10, 10, 10])
    metric.target = Target("<=", 25)
    assert metric.median == 20 and metric.met is True
    metric.target = Target("<=", 1.5, on="ratio")
    assert metric.ratio == 2.0 and metric.met is False
    assert Metric("b", "m", "ms", target=Target(">=", 1)).met is None
    table = render_table([metric], markdown=True)
    assert "| b | m (ms) | 20 |" in table and "NO" in table


def test_alternate_swaps_who_goes_first() -> None:
    order: list[str] = []
    alternate(3, lambda: order.append("ours"), lambda: order.append("base"))
    assert order == ["ours", "base", "base", "ours", "ours", "base"]


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50
    assert percentile(samples, 0.99) == 99


def test_escape_sequences_are_stripped() -> None:
    assert visible_text(b"\x1b[1;1H\x1b[38;5;253mhello\x1b[0m \x1b]22;x\x07world") == b"hello world"


def test_pty_program_sees_what_a_program_paints() -> None:
    code = "import sys; sys.stdout.write('\\x1b[2J\\x1b[5;3Hmarker-text'); sys.stdout.flush()"
    with PtyProgram([sys.executable, "-c", code], size=(40, 10)) as program:
        program.wait_for_text("marker-text", timeout=20)
        assert program.screen.display[4].startswith("  marker-text")


def test_bare_baseline_app_paints_its_title() -> None:
    from benchmarks.apps.bare import TITLE

    argv = [sys.executable, "-m", "benchmarks.apps.bare"]
    with PtyProgram(argv, size=(80, 24), cwd=str(ROOT)) as program:
        program.wait_for_text(TITLE, timeout=60)
        assert program.status().get("VmHWM", 0) > 0


def test_import_profile_parses_importtime_output() -> None:
    profile = bench_imports.profile_imports(("json",))
    assert any(name == "json" for _, _, name in profile.modules)
    assert profile.total_us > 0
    assert profile.loaded(("json",)) and not profile.loaded(("fastapi",))


@pytest.mark.parametrize("name", ["imports", "startup", "sessions", "events", "ingest", "server"])
def test_every_benchmark_module_imports(name: str) -> None:
    import importlib

    from benchmarks.__main__ import BENCHMARKS

    module = importlib.import_module(BENCHMARKS[name])
    assert callable(module.run)
