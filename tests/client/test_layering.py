"""The layers stay one-directional: models <- backends <- tui, and the server apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_backends_pulls_in_no_ui_and_no_server() -> None:
    probe = (
        "import json, sys\n"
        "import sessionscope.backends, sessionscope.backends.native, sessionscope.models\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(result.stdout))
    forbidden = ("textual", "fastapi", "sqlalchemy", "starlette", "uvicorn", "sessionscope.tui")
    offenders = sorted(
        name for name in loaded if any(name == f or name.startswith(f + ".") for f in forbidden)
    )
    assert offenders == []
    assert "sessionscope.server" not in loaded
