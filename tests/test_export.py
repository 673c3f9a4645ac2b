"""Session export against the real reference server on loopback, through NativeBackend."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sessionscope import export as export_module
from sessionscope.backends import BackendConfig, create_backend
from sessionscope.backends.base import Backend
from sessionscope.cli import main
from sessionscope.export import (
    STATE_FILE,
    ExportCancelled,
    ExportError,
    ExportProgress,
    export_session,
    safe_file_name,
)
from sessionscope.models import SessionCreate

EVENT_COUNT = 60
BIG_ARTIFACT = bytes(range(256)) * 1200  # 300 KB: several read chunks


@dataclass
class Seeded:
    session_id: str
    #: artifact name -> bytes, as uploaded
    artifacts: list[tuple[str, bytes]]


def _post(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    reply: dict[str, Any] = response.json()
    return reply


@pytest.fixture(scope="module")
def seeded(server: Any) -> Seeded:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=10
    ) as api:
        session = _post(api, "/v1/sessions", {"title": "export me", "tags": ["export"]})
        session_id = session["id"]
        for number in range(EVENT_COUNT):
            _post(
                api,
                f"/v1/sessions/{session_id}/events",
                {"type": "log", "payload": {"n": number, "text": f"line {number} ünïcode [bold]"}},
            )
        artifacts = [
            ("../../etc/passwd", b"root:x:0:0\n"),
            ("report.txt", b"first report\n"),
            ("report.txt", b"second report, same name\n"),
            ("big.bin", BIG_ARTIFACT),
        ]
        for name, data in artifacts:
            _post(
                api,
                f"/v1/sessions/{session_id}/artifacts",
                {"name": name, "data": base64.b64encode(data).decode()},
            )
    return Seeded(session_id, artifacts)


@pytest.fixture
async def backend(server: Any) -> AsyncIterator[Backend]:
    native = create_backend(BackendConfig(url=server.url, api_key=server.api_key, timeout=10))
    async with native:
        yield native


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != STATE_FILE
    }


async def test_full_export_writes_session_events_and_artifacts(
    backend: Backend, seeded: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = await export_session(backend, seeded.session_id, out, page_size=7)

    session = json.loads((out / "session.json").read_text())
    assert session["id"] == seeded.session_id and session["title"] == "export me"

    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    sequences = [event["sequence"] for event in events]
    assert sequences == sorted(set(sequences)), "each event once, in order"
    logs = [event["payload"]["n"] for event in events if event["type"] == "log"]
    assert logs == list(range(EVENT_COUNT))
    assert result.events_written == len(events) and result.last_sequence == sequences[-1]

    index = [json.loads(line) for line in (out / "artifacts.jsonl").read_text().splitlines()]
    assert len(index) == len(seeded.artifacts)
    files = {record["file"] for record in index}
    assert len(files) == len(index), "two artifacts with one name get two files"
    artifacts_dir = (out / "artifacts").resolve()
    for record, (name, data) in zip(index, seeded.artifacts, strict=True):
        assert record["name"] == name
        path = (out / record["file"]).resolve()
        assert path.parent == artifacts_dir, "no path traversal"
        assert path.read_bytes() == data
        assert hashlib.sha256(data).hexdigest() == record["checksum_sha256"]
    assert not (tmp_path / "etc").exists()
    assert not list(out.rglob("*.part"))


async def test_interrupted_export_resumes_to_an_identical_result(
    backend: Backend, seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    await export_session(backend, seeded.session_id, reference, page_size=7)

    resumed = tmp_path / "resumed"
    cancel = asyncio.Event()
    seen: list[ExportProgress] = []

    def stop_after_some_events(update: ExportProgress) -> None:
        seen.append(update)
        if update.events_done >= 25:
            cancel.set()

    with pytest.raises(ExportCancelled):
        await export_session(
            backend,
            seeded.session_id,
            resumed,
            page_size=7,
            on_progress=stop_after_some_events,
            cancel=cancel,
        )
    state = json.loads((resumed / STATE_FILE).read_text())
    written = (resumed / "events.jsonl").read_bytes().count(b"\n")
    assert 25 <= written < EVENT_COUNT
    assert state["events_written"] == written and not state["complete"]

    # A run killed between writing a line and checkpointing leaves a torn tail.
    with (resumed / "events.jsonl").open("ab") as handle:
        handle.write(b'{"id":"torn-wri')

    # Second interruption, in the middle of the big artifact.
    cancel = asyncio.Event()

    def stop_inside_big_artifact(update: ExportProgress) -> None:
        if update.phase == "artifacts" and update.current == "big.bin":
            cancel.set()

    monkeypatch.setattr(export_module, "CHECKPOINT_EVERY_EVENTS", 5)
    with pytest.raises(ExportCancelled):
        await export_session(
            backend,
            seeded.session_id,
            resumed,
            page_size=7,
            on_progress=stop_inside_big_artifact,
            cancel=cancel,
        )
    partial = list((resumed / "artifacts").glob("*.part"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < len(BIG_ARTIFACT)

    result = await export_session(backend, seeded.session_id, resumed, page_size=7)
    assert result.artifacts_skipped == 3 and result.artifacts_written == 1
    assert _tree(resumed) == _tree(reference)
    assert json.loads((resumed / STATE_FILE).read_text())["complete"] is True


async def test_rerun_skips_verified_artifacts_and_replaces_altered_ones(
    backend: Backend, seeded: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    await export_session(backend, seeded.session_id, out)
    reference = _tree(out)
    index = [json.loads(line) for line in (out / "artifacts.jsonl").read_text().splitlines()]
    tampered = out / index[1]["file"]
    tampered.write_bytes(b"altered on disk")

    result = await export_session(backend, seeded.session_id, out)
    assert result.events_added == 0
    assert result.artifacts_written == 1 and result.artifacts_skipped == 3
    assert _tree(out) == reference


async def test_refuses_a_folder_holding_another_sessions_export(
    backend: Backend, seeded: Seeded, server: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    await export_session(backend, seeded.session_id, out)
    other = await backend.create_session(SessionCreate(title="other"))
    with pytest.raises(ExportError, match="another session"):
        await export_session(backend, other.id, out)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("..", "artifact"),
        ("", "artifact"),
        (".bashrc", "bashrc"),
        ("-rf", "rf"),
        ("CON.txt", "_CON.txt"),
        ("a\x1b[2Jb.txt", "a_2Jb.txt"),
        ("résumé final.pdf", "r_sum_ final.pdf"),
        ("x.part", "x.part_"),
    ],
)
def test_safe_file_name(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected


def test_safe_file_name_keeps_the_extension_of_long_names() -> None:
    name = safe_file_name("a" * 500 + ".json")
    assert name.endswith(".json") and len(name) == export_module.MAX_FILE_NAME_CHARS
    assert os.sep not in name


def test_cli_export(server: Any, seeded: Seeded, tmp_path: Path) -> None:
    out = tmp_path / "cli-out"
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["export", seeded.session_id, "--out", str(out), "--url", server.url],
        env={"SESSIONSCOPE_API_KEY": server.api_key},
    )
    assert result.exit_code == 0, result.output
    assert (out / "session.json").exists()
    assert (out / "events.jsonl").read_bytes().count(b"\n") >= EVENT_COUNT
    assert server.api_key not in result.output

    missing = runner.invoke(
        main,
        ["export", "no-such-session", "--out", str(tmp_path / "x"), "--url", server.url],
        env={"SESSIONSCOPE_API_KEY": server.api_key},
    )
    assert missing.exit_code == 1
    assert "Traceback" not in missing.output and "Error:" in missing.output


def test_cli_export_resolves_the_profile_and_explains_a_failure(
    server: Any, seeded: Seeded, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[profiles.demo]\nurl = "{server.url}"\napi_key_env = "EXPORT_TEST_KEY"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    base_env = {
        "SESSIONSCOPE_CONFIG": str(config),
        "SESSIONSCOPE_URL": "",
        "SESSIONSCOPE_API_KEY": "",
    }
    out = tmp_path / "by-profile"
    ok = runner.invoke(
        main,
        ["export", seeded.session_id, "--out", str(out), "--profile", "demo"],
        env={**base_env, "EXPORT_TEST_KEY": server.api_key},
    )
    assert ok.exit_code == 0, ok.output
    assert (out / "session.json").exists()

    failed_out = tmp_path / "never-written"
    failed = runner.invoke(
        main,
        ["export", seeded.session_id, "--out", str(failed_out), "--profile", "demo"],
        env=base_env,
    )
    assert failed.exit_code == 1
    assert "$EXPORT_TEST_KEY" in failed.output and "which is not set" in failed.output
    assert server.url in failed.output, "the failure names where it tried"
    assert not failed_out.exists(), "a failed first export leaves no empty folder"
