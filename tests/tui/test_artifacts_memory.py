"""A 50 MB artifact is previewed from its first bytes: the console process grows by a few MB,
not by the artifact's size.

The server runs in a child process here (not the in-process test server) so its own memory,
which holds the artifact while serving it, is not counted against the console.
"""

from __future__ import annotations

import base64
import gc
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from artifacts_support import wait_for
from session_support import SIZE, make_app
from textual.widgets import Static

from sessionscope.tui.preview.sniff import TEXT_PREVIEW_BYTES
from sessionscope.tui.preview.source import SourceView
from sessionscope.tui.screens.artifacts import ArtifactsScreen
from sessionscope.tui.widgets.artifacts import ArtifactsPane

BIG_SIZE = 50 * 1024 * 1024
#: "A few MB": the preview keeps 256 KiB of bytes plus its decoded lines and a screen of Text.
RSS_BUDGET_BYTES = 8 * 1024 * 1024
API_KEY = "memory-test-key-0123456789"


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture
def child_server(tmp_path: Path) -> Iterator[SimpleNamespace]:
    if not Path("/proc/self/status").exists():
        pytest.skip("RSS is read from /proc")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sessionscope.cli import main; main()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(tmp_path / "memory.db"),
            "--api-key",
            f"acme:{API_KEY}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on " in first, first
        url = first.rsplit("listening on ", 1)[1].strip()
        # Keep reading so the child never blocks on a full pipe.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        # The socket is bound before uvicorn listens: the transport retries refused connects.
        with httpx.Client(transport=httpx.HTTPTransport(retries=8), timeout=10) as client:
            client.get(f"{url}/v1/health").raise_for_status()
        yield SimpleNamespace(url=url, api_key=API_KEY)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _log_body(name: str, size: int) -> Iterator[bytes]:
    """The JSON upload body, base64 streamed a block at a time (this process never holds the
    artifact either)."""
    line = b"2025-01-01T00:00:00Z INFO worker processed an item of the batch in 12 ms\n"
    block = (line * (3 * 1024 * 1024 // len(line) + 1))[: 3 * 1024 * 1024]  # 3 MiB: whole b64
    head = {"name": name, "mime_type": "text/plain", "data": ""}
    prefix, suffix = json.dumps(head).encode().split(b'""')
    yield prefix + b'"'
    remaining = size
    while remaining:
        piece = block[: min(len(block), remaining)]
        remaining -= len(piece)
        yield base64.b64encode(piece)
    yield b'"' + suffix


def _upload(running: SimpleNamespace) -> tuple[str, str, str]:
    headers = {"Authorization": f"Bearer {running.api_key}"}
    with httpx.Client(base_url=f"{running.url}/v1", headers=headers, timeout=120) as client:
        session_id = client.post("/sessions", json={"title": "big"}).json()["id"]
        small = client.post(
            f"/sessions/{session_id}/artifacts",
            json={"name": "small.txt", "mime_type": "text/plain", "data": "aGkK"},
        )
        small.raise_for_status()
        big = client.post(
            f"/sessions/{session_id}/artifacts",
            content=_log_body("big.log", BIG_SIZE),
            headers={"Content-Type": "application/json"},
        )
        big.raise_for_status()
        assert big.json()["size_bytes"] == BIG_SIZE
    return session_id, small.json()["id"], big.json()["id"]


async def test_a_50_mb_artifact_is_previewed_in_part_within_a_few_mb(
    child_server: SimpleNamespace,
) -> None:
    session_id, small_id, big_id = _upload(child_server)
    app = make_app(child_server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(ArtifactsScreen(session_id))
        pane = app.screen.query_one(ArtifactsPane)
        await wait_for(pilot, lambda: pane.shown_id == small_id, within=30)

        gc.collect()
        before = rss_bytes()
        pane.table.move_cursor(row=1)
        await wait_for(pilot, lambda: pane.shown_id == big_id, within=60)
        view = pane.query_one(SourceView)
        view.focus()
        await pilot.press("end")  # draw the last lines too
        await pilot.pause()
        gc.collect()
        grown = rss_bytes() - before

        preview: Any = pane.preview
        assert preview is not None and preview.truncated
        assert preview.shown_bytes == TEXT_PREVIEW_BYTES
        header = str(pane.query_one("#artifacts-preview-header", Static).render())
        assert f"showing {TEXT_PREVIEW_BYTES:,} of {BIG_SIZE:,} bytes" in header
        assert grown < RSS_BUDGET_BYTES, f"the console grew by {grown / 2**20:.1f} MiB"
