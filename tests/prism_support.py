"""Prism mock servers generated from a platform's published OpenAPI document, on loopback.

Prism (``@stoplight/prism-cli`` from the npm registry) is installed into ``.tools/`` at the top of
the checkout on first use (``.ci/run`` installs it up front), so ``uv run pytest`` works on a
fresh machine that has node and npm. Request validation is on: a request that breaks the spec is
answered with an error (422 or 400, with the violations in the ``sl-violations`` header and the
body), so a backend that sends what the spec does not allow fails its test. A Prism that cannot
be installed or started fails the test; it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: ``../shared/vendor/`` beside the checkout (CI lays it there); a git worktree one level deeper
#: finds it one level up.
VENDOR_CANDIDATES = (ROOT.parent / "shared" / "vendor", ROOT.parent.parent / "shared" / "vendor")
TOOLS = ROOT / ".tools"
PRISM_PACKAGE = "@stoplight/prism-cli@5.14.2"
PRISM_BIN = TOOLS / "node_modules" / ".bin" / "prism"
START_DEADLINE_SECONDS = 90.0


def vendor_file(name: str) -> Path:
    """A vendor document beside the checkout (``../shared/vendor/``); CI lays it there too."""
    for folder in VENDOR_CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"vendor document {name} is missing from {VENDOR_CANDIDATES[0]}")


def install_prism() -> Path:
    if PRISM_BIN.exists():
        return PRISM_BIN
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install Prism (the mock server for vendor specs)")
    TOOLS.mkdir(exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(TOOLS), "--no-audit", "--no-fund", PRISM_PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not PRISM_BIN.exists():
        pytest.fail(f"could not install {PRISM_PACKAGE}: {result.stderr[-2000:]}")
    return PRISM_BIN


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def start_prism(spec: Path, *, dynamic: bool = False, seed: str | None = None) -> Iterator[str]:
    """Run ``prism mock`` for ``spec`` and yield its base URL (no trailing slash)."""
    binary = install_prism()
    port = _free_port()
    log_path = TOOLS / f"prism-{port}.log"
    command = [
        str(binary),
        "mock",
        str(spec),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--errors",
        "--cors",
        "false",
    ]
    if dynamic:
        command.append("--dynamic")
        if seed is not None:
            command += ["--seed", seed]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"Prism exited with {process.returncode}: {_tail(log_path)}")
            if "Prism is listening" in log_path.read_text(errors="replace"):
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Prism did not start within {START_DEADLINE_SECONDS} s: {_tail(log_path)}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_path.unlink(missing_ok=True)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def violations(response: httpx.Response) -> list[dict[str, Any]]:
    """The request/response violations Prism reports for one exchange (empty when none)."""
    header = response.headers.get("sl-violations")
    if not header:
        return []
    try:
        parsed = json.loads(header)
    except ValueError:
        return [{"message": header}]
    return parsed if isinstance(parsed, list) else [parsed]
