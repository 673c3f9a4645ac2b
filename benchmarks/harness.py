"""Figures, targets and the results table shared by every benchmark.

A benchmark returns ``Metric`` objects: repeated samples of ours and, where one exists, of a
baseline measured in the same run (runs alternate, so machine drift hits both alike). Targets are
checked against the median of ours or against the ratio ours/baseline, as the issue states them.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OUT_DIR = Path(__file__).parent / "out"


class Skipped(Exception):
    """The subject of a benchmark does not exist yet (or cannot run here); not a failure."""


@dataclass(frozen=True)
class Target:
    """``median(ours) <op> value`` (on="ours") or ``median(ours)/median(baseline) <op> value``."""

    op: Literal["<=", ">="]
    value: float
    on: Literal["ours", "ratio"] = "ours"

    def describe(self, unit: str) -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.value:g}"
        return f"{self.op} {fmt(self.value)} {unit}".strip()

    def check(self, ours: float | None, ratio: float | None) -> bool | None:
        subject = ratio if self.on == "ratio" else ours
        if subject is None or math.isnan(subject):
            return None
        return subject <= self.value if self.op == "<=" else subject >= self.value


@dataclass
class Metric:
    benchmark: str
    name: str
    unit: str
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.ours) if self.ours else None

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        ours, base = self.median, self.baseline_median
        if ours is None or not base:
            return None
        return ours / base

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.check(self.median, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(median=self.median, baseline_median=self.baseline_median, ratio=self.ratio)
        data["met"] = self.met
        data["target"] = self.target.describe(self.unit) if self.target else None
        return data


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if float(value).is_integer() and magnitude < 100_000:
        return str(int(value))
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile; ``fraction`` in [0, 1]."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def alternate(repeat: int, ours: Callable[[], None], baseline: Callable[[], None]) -> None:
    """Run ours and the baseline in turns, swapping who goes first each round."""
    for index in range(repeat):
        pair = (ours, baseline) if index % 2 == 0 else (baseline, ours)
        for run in pair:
            run()


@dataclass
class Deadline:
    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    @property
    def expired(self) -> bool:
        return self.remaining <= 0


HEADERS = (
    "benchmark",
    "metric",
    "median",
    "min",
    "max",
    "baseline",
    "base median",
    "ratio",
    "target",
    "met?",
)


def table_rows(metrics: list[Metric]) -> Iterator[tuple[str, ...]]:
    for metric in metrics:
        met = {True: "yes", False: "NO", None: "-"}[metric.met]
        yield (
            metric.benchmark,
            f"{metric.name} ({metric.unit})" if metric.unit else metric.name,
            fmt(metric.median),
            fmt(min(metric.ours)) if metric.ours else "-",
            fmt(max(metric.ours)) if metric.ours else "-",
            metric.baseline_name or "-",
            fmt(metric.baseline_median),
            fmt(metric.ratio),
            metric.target.describe(metric.unit) if metric.target else "-",
            met,
        )


def render_table(metrics: list[Metric], *, markdown: bool = False) -> str:
    rows = [HEADERS, *table_rows(metrics)]
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    out = []
    for number, row in enumerate(rows):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
