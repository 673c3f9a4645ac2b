"""SVG snapshots of the artifacts pane, one per preview kind, from deterministic in-memory data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from artifacts_support import (
    SAMPLE_CSV,
    SAMPLE_JSON,
    SAMPLE_MARKDOWN,
    SAMPLE_SOURCE,
    ArtifactsHost,
    MemoryArtifacts,
    binary_blob,
    gradient_png,
    pane_of,
    preview_ready,
    wait_for,
)
from textual.pilot import Pilot

SIZE = (120, 36)


def _backend() -> MemoryArtifacts:
    backend = MemoryArtifacts()
    backend.add("gradient.png", gradient_png(), "image/png")
    backend.add("blob.bin", binary_blob(2048), "application/octet-stream")
    backend.add("result.json", SAMPLE_JSON, "application/json")
    backend.add("report.md", SAMPLE_MARKDOWN, "text/markdown")
    backend.add("towns.csv", SAMPLE_CSV, "text/csv")
    backend.add("greet.py", SAMPLE_SOURCE, "text/x-python", checksum=None)
    return backend


def _select(row: int) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, preview_ready(pilot, "art_0000"))
        pane_of(pilot).table.move_cursor(row=row)
        await wait_for(pilot, preview_ready(pilot, f"art_{row:04d}"))
        await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    ("row", "kind"),
    [(0, "image"), (1, "hex"), (2, "json"), (3, "markdown"), (4, "csv"), (5, "source")],
)
def test_preview_snapshot(snap_compare: Any, row: int, kind: str) -> None:
    assert snap_compare(ArtifactsHost(_backend()), terminal_size=SIZE, run_before=_select(row))
