"""``python -m benchmarks.report``: the last run's figures (benchmarks/out/*.json) as Markdown."""

from __future__ import annotations

import json
import sys

from benchmarks.harness import OUT_DIR, Metric, Target, render_table

ORDER = ["imports", "startup", "sessions", "events", "ingest", "server"]


def load(name: str) -> tuple[dict[str, object], list[Metric]]:
    data = json.loads((OUT_DIR / f"{name}.json").read_text())
    metrics = []
    for raw in data["metrics"]:
        target = None
        if raw["target"]:
            text = raw["target"]
            if text.startswith("ratio"):
                _, op, value = text.split()
                target = Target(op, float(value), on="ratio")  # type: ignore[arg-type]
            else:
                op, value = text.split()[:2]
                target = Target(op, float(value.replace(",", "")))  # type: ignore[arg-type]
        metrics.append(
            Metric(
                benchmark=raw["benchmark"],
                name=raw["name"],
                unit=raw["unit"],
                ours=raw["ours"],
                baseline=raw["baseline"],
                baseline_name=raw["baseline_name"],
                target=target,
                note=raw["note"],
            )
        )
    return data, metrics


def main() -> int:
    metrics: list[Metric] = []
    for name in ORDER:
        if (OUT_DIR / f"{name}.json").exists():
            metrics.extend(load(name)[1])
    print(render_table(metrics, markdown=True))
    notes = [m for m in metrics if m.note]
    if notes:
        print()
        for metric in notes:
            print(f"- {metric.benchmark} / {metric.name}: {metric.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
