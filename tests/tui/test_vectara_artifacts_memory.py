"""A 5 MB artifact on Vectara is previewed from its first bytes: the platform sends the content
base64 inside one JSON reply, and the console decodes it as it streams, so its peak memory grows
by about the preview, not by the reply (6.7 MB of base64) or the content (5 MB).

The fake runs in a child process so its own copy of the artifact is not counted. The peak
(``VmHWM``, reset through ``/proc/self/clear_refs``) is measured, not the resident size after:
a reply read whole and freed again would leave no trace in the latter.
"""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from artifacts_support import wait_for
from fakes.vectara import API_KEY
from session_support import SIZE
from textual.widgets import Static

from sessionscope.backends import BackendConfig, create_backend
from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.preview.sniff import TEXT_PREVIEW_BYTES
from sessionscope.tui.screens.artifacts import ArtifactsScreen
from sessionscope.tui.widgets.artifacts import ArtifactsPane

BIG_SIZE = 5 * 1024 * 1024
#: The preview keeps 256 KiB of bytes plus its decoded lines and a screen of Text; reading the
#: reply whole would add at least the 6.7 MB of base64 on top.
PEAK_BUDGET_BYTES = 5 * 1024 * 1024
TESTS = Path(__file__).resolve().parent.parent


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert found, f"no {field} in /proc/self/status"
    return int(found.group(1)) * 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")  # resets VmHWM to the current resident size


@pytest.fixture
def child_fake() -> Iterator[str]:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak memory is read from /proc")
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes.vectara", str(BIG_SIZE)],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on " in first, first
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield first.rsplit("listening on ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_a_5_mb_vectara_artifact_previews_within_about_the_preview(
    child_fake: str,
) -> None:
    backend = create_backend(
        BackendConfig(
            name="vectara",
            url=child_fake,
            api_key=API_KEY,
            timeout=30.0,
            options={"agent_key": "support", "retry_attempts": 1},
        )
    )
    listed = (await backend.list_artifacts("ses_big")).data
    small_id, big_id = (a.id for a in listed)
    app = SessionScopeApp(backend, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(ArtifactsScreen("ses_big"))
        pane = app.screen.query_one(ArtifactsPane)
        await wait_for(pilot, lambda: pane.shown_id == small_id, within=30)

        gc.collect()
        before = _status("VmRSS")
        reset_peak()
        pane.table.move_cursor(row=1)
        await wait_for(pilot, lambda: pane.shown_id == big_id, within=60)
        await pilot.pause()
        peak = _status("VmHWM") - before

        preview: Any = pane.preview
        assert preview is not None and preview.truncated
        assert preview.shown_bytes == TEXT_PREVIEW_BYTES
        header = str(pane.query_one("#artifacts-preview-header", Static).render())
        assert f"showing {TEXT_PREVIEW_BYTES:,} of {BIG_SIZE:,} bytes" in header
        print(f"peak growth while previewing: {peak / 2**20:.2f} MiB")
        assert peak < PEAK_BUDGET_BYTES, f"the console's peak grew by {peak / 2**20:.1f} MiB"
