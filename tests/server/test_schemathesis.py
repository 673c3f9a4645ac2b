"""schemathesis against the reference server, from its own OpenAPI document: every operation,
every check, every phase (stateful included), within a bounded budget. No server error, no reply
outside its schema, no status the document does not declare.

The counts of the run are printed (``pytest -s``) and kept in the failure message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Test cases per operation and phase: three to five minutes on two loaded cores.
MAX_EXAMPLES = int(os.environ.get("SESSIONSCOPE_SCHEMATHESIS_EXAMPLES", "10"))


def _schemathesis() -> list[str]:
    script = Path(sys.executable).with_name("schemathesis")
    assert script.exists(), "schemathesis is a dev dependency: uv sync"
    return [str(script)]


@pytest.mark.timeout(900)
def test_the_api_holds_to_its_document(make_server: Any, tmp_path: Path) -> None:
    # A short heartbeat: a stream's first event then comes quickly even on a quiet session.
    server = make_server(heartbeat_interval=0.5)
    command = [
        *_schemathesis(),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"X-API-Key: {server.api_key}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--output-truncate",
        "true",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=840, check=False
    )
    output = done.stdout + done.stderr
    summary = output[output.find("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    print(summary)
    assert done.returncode == 0, output[-12000:]
    cases = re.search(r"(\d+) generated", output)
    assert cases is not None and int(cases[1]) > 0, summary
    selected = re.search(r"Selected:\s+(\d+)/(\d+)", output)
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert selected is not None and tested is not None, summary
    assert selected[1] == selected[2] == tested[1], summary
