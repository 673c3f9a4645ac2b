"""The artifacts flows end to end: the reference server on loopback, artifacts uploaded through
the agent-facing API, the console (SessionScopeApp + NativeBackend) previewing, saving, opening."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from artifacts_support import (
    SAMPLE_CSV,
    SAMPLE_JSON,
    SAMPLE_MARKDOWN,
    SAMPLE_SOURCE,
    binary_blob,
    gradient_png,
    wait_for,
)
from session_support import SIZE, agent_client, create_session, make_app
from textual.pilot import Pilot
from textual.widgets import Input, Markdown, Static

from sessionscope.tui.preview.files import ChecksumStatus
from sessionscope.tui.preview.hexdump import HexView
from sessionscope.tui.preview.image import ImageView
from sessionscope.tui.preview.json_tree import JsonTree
from sessionscope.tui.preview.source import SourceView
from sessionscope.tui.preview.table import CsvTable
from sessionscope.tui.screens.artifact_save import SaveArtifactScreen
from sessionscope.tui.screens.artifacts import ArtifactsScreen
from sessionscope.tui.screens.confirm import ConfirmationModal
from sessionscope.tui.widgets.artifacts import ArtifactsPane

UPLOADS: list[tuple[str, str, bytes]] = [
    ("gradient.png", "image/png", gradient_png()),
    ("blob.bin", "application/octet-stream", binary_blob(5000)),
    ("result.json", "application/json", SAMPLE_JSON),
    ("report.md", "text/markdown", SAMPLE_MARKDOWN),
    ("towns.csv", "text/csv", SAMPLE_CSV),
    ("greet.py", "text/x-python", SAMPLE_SOURCE),
    ("../../escape\x1b[2J.txt", "text/plain", b"saved outside?\n"),
]
VIEWS = [ImageView, HexView, JsonTree, Markdown, CsvTable, SourceView, SourceView]


async def upload(running: Any, items: list[tuple[str, str, bytes]]) -> tuple[str, list[str]]:
    async with agent_client(running) as client:
        session_id = await create_session(client, "artifacts flow")
        ids = []
        for name, mime, data in items:
            response = await client.post(
                f"/sessions/{session_id}/artifacts",
                json={"name": name, "mime_type": mime, "data": base64.b64encode(data).decode()},
            )
            response.raise_for_status()
            ids.append(response.json()["id"])
    return session_id, ids


def pane(pilot: Pilot[Any]) -> ArtifactsPane:
    return pilot.app.screen.query_one(ArtifactsPane)


async def open_artifacts(pilot: Pilot[Any], session_id: str) -> ArtifactsPane:
    await pilot.app.push_screen(ArtifactsScreen(session_id))
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ArtifactsScreen))
    found = pane(pilot)
    await wait_for(pilot, lambda: found.exhausted and found.shown_id is not None, within=30)
    return found


async def select(pilot: Pilot[Any], found: ArtifactsPane, artifact_id: str) -> None:
    row = [artifact.id for artifact in found.artifacts].index(artifact_id)
    found.table.move_cursor(row=row)
    await wait_for(pilot, lambda: found.shown_id == artifact_id, within=30)


@pytest.fixture
def uploaded(server: Any) -> tuple[str, list[str]]:
    return asyncio.run(upload(server, UPLOADS))


async def test_each_uploaded_artifact_is_previewed_by_kind(
    server: Any, uploaded: tuple[str, list[str]]
) -> None:
    session_id, ids = uploaded
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        found = await open_artifacts(pilot, session_id)
        assert [a.id for a in found.artifacts] == ids
        for artifact_id, view, (name, _, data) in zip(ids, VIEWS, UPLOADS, strict=True):
            await select(pilot, found, artifact_id)
            body = found.query_one("#artifact-preview-body")
            assert isinstance(body, view) or body.query(view), (name, body)
            header = str(found.query_one("#artifacts-preview-header", Static).render())
            assert f"{len(data):,} bytes" in header
        # The name is shown literally, control characters made visible.
        assert "../../escape␛[2J.txt" in header


async def _save_via_modal(pilot: Pilot[Any], path: Path | None = None) -> None:
    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SaveArtifactScreen))
    if path is not None:
        pilot.app.screen.query_one(Input).value = str(path)
    await pilot.press("enter")


async def test_save_streams_to_the_default_path_and_verifies_the_checksum(
    server: Any, uploaded: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    session_id, ids = uploaded
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        found = await open_artifacts(pilot, session_id)
        await select(pilot, found, ids[1])
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SaveArtifactScreen))
        assert app.screen.query_one(Input).value == str(tmp_path / "blob.bin")
        await pilot.press("enter")
        await wait_for(pilot, lambda: found.last_save is not None, within=30)
        assert found.last_save is not None
        assert (tmp_path / "blob.bin").read_bytes() == UPLOADS[1][2]
        assert found.last_save.checksum is ChecksumStatus.VERIFIED
        assert "checksum verified" in str(found.query_one("#artifacts-list-status").render())

        # A hostile name is saved inside the chosen directory, under a clean name.
        found.last_save = None
        await select(pilot, found, ids[6])
        await _save_via_modal(pilot)
        await wait_for(pilot, lambda: found.last_save is not None, within=30)
        assert sorted(os.listdir(tmp_path)) == ["blob.bin", "escape[2J.txt"]
        assert (tmp_path / "escape[2J.txt").read_bytes() == UPLOADS[6][2]


async def test_save_never_overwrites_without_asking(
    server: Any, uploaded: tuple[str, list[str]], tmp_path: Path
) -> None:
    session_id, ids = uploaded
    target = tmp_path / "existing.json"
    target.write_bytes(b"precious")
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        found = await open_artifacts(pilot, session_id)
        await select(pilot, found, ids[2])

        await _save_via_modal(pilot, target)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmationModal))
        await pilot.press("enter")  # the focused answer is Keep
        await wait_for(pilot, lambda: isinstance(app.screen, ArtifactsScreen))
        await wait_for(
            pilot, lambda: "not saved" in str(found.query_one("#artifacts-list-status").render())
        )
        assert target.read_bytes() == b"precious"
        assert found.last_save is None

        await _save_via_modal(pilot, target)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmationModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: found.last_save is not None, within=30)
        assert target.read_bytes() == SAMPLE_JSON
        assert sorted(os.listdir(tmp_path)) == ["existing.json"]


async def test_open_hands_a_binary_to_the_system_opener(
    server: Any,
    uploaded: tuple[str, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stand-in xdg-open on PATH records what it was asked to open.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    received = tmp_path / "received"
    handed_record = tmp_path / "received.from"
    opener = bin_dir / "xdg-open"
    opener.write_text(
        f'#!/bin/sh\necho "$1" > "{handed_record}"\n'
        f'cp "$1" "{received}.part" && mv "{received}.part" "{received}"\n'
    )
    opener.chmod(opener.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    session_id, ids = uploaded
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        found = await open_artifacts(pilot, session_id)
        await select(pilot, found, ids[0])
        await pilot.press("o")
        await wait_for(pilot, received.exists, within=30)
    assert hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(UPLOADS[0][2]).digest()
    # The temporary copy handed to the opener does not outlive the app.
    handed = Path(handed_record.read_text().strip())
    assert handed.name and not handed.parent.exists()


async def test_open_sends_text_to_the_pager_and_says_where_the_file_is_when_it_cannot(
    server: Any, uploaded: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGER", "less -R")
    session_id, ids = uploaded
    app = make_app(server, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        found = await open_artifacts(pilot, session_id)
        await select(pilot, found, ids[5])
        await pilot.press("o")

        def pager_notice() -> str | None:
            for notification in app._notifications:
                if "cannot run a pager here" in notification.message:
                    return notification.message
            return None

        # The headless test driver cannot hand the terminal over, so the console says so.
        await wait_for(pilot, pager_notice, within=30)
        notice = pager_notice()
        assert notice is not None
        path = Path(notice.rsplit("the file is at ", 1)[1])
        assert path.name == "greet.py"
        assert await asyncio.to_thread(path.read_bytes) == SAMPLE_SOURCE
