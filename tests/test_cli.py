"""The command line: console options, profiles, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sessionscope.cli import main


def test_config_path_prints_the_profile_file(tmp_path: Path) -> None:
    target = tmp_path / "profiles.toml"
    result = CliRunner().invoke(main, ["config", "path"], env={"SESSIONSCOPE_CONFIG": str(target)})
    assert result.exit_code == 0
    assert result.output.strip() == str(target)


def test_config_list_never_prints_keys(tmp_path: Path) -> None:
    target = tmp_path / "profiles.toml"
    target.write_text(
        'current = "a"\n[profiles.a]\nurl = "http://x:1"\napi_key = "sk-very-secret"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["config", "list"], env={"SESSIONSCOPE_CONFIG": str(target)})
    assert result.exit_code == 0
    assert "* a  http://x:1  (key set)" in result.output
    assert "sk-very-secret" not in result.output


def test_unknown_profile_is_a_plain_error(tmp_path: Path) -> None:
    target = tmp_path / "profiles.toml"
    result = CliRunner().invoke(
        main, ["--profile", "nope"], env={"SESSIONSCOPE_CONFIG": str(target)}
    )
    assert result.exit_code == 1
    assert "no profile named 'nope'" in result.output
    assert "Traceback" not in result.output


def test_unknown_backend_is_a_plain_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["--backend", "mystery"],
        env={"SESSIONSCOPE_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 1
    assert "unknown backend 'mystery'" in result.output


def test_help_lists_console_options_and_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for word in ("--url", "--api-key", "--profile", "--read-only", "demo", "serve", "config"):
        assert word in result.output


LAZY_PROBE = """
import asyncio, sys
from sessionscope.backends import BackendConfig, create_backend
from sessionscope.tui.app import SessionScopeApp

async def main():
    backend = create_backend(BackendConfig(url="http://127.0.0.1:9", api_key="k"))
    app = SessionScopeApp(backend, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
    import sessionscope.cli  # noqa: F401

asyncio.run(main())
heavy = [m for m in ("fastapi", "sqlalchemy", "uvicorn", "starlette", "sessionscope.server")
         if m in sys.modules]
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.timeout(60)
def test_console_path_does_not_import_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY:\n" in result.stdout, result.stdout


HTTPX_PROBE = """
import sys
from sessionscope.cli import _import_httpx_without_its_command_line
_import_httpx_without_its_command_line()
print("SKIPPED:" + str("httpx" in sys.modules and "httpx._main" not in sys.modules))
import httpx._main  # still importable on demand
print("LATER:" + str(callable(httpx._main.main)))
"""


def test_console_imports_httpx_without_its_command_line_tool() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HTTPX_PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SKIPPED:True" in result.stdout
    assert "LATER:True" in result.stdout


COLLECTOR_PROBE = """
import gc
from sessionscope import cli
from sessionscope.tui.app import SessionScopeApp
seen = []
SessionScopeApp.run = lambda self: seen.append(gc.isenabled())
cli.run_console("http://127.0.0.1:9", "k")
print("COLLECTING_AT_START:" + str(seen))
"""


def test_console_pauses_the_collector_for_its_start() -> None:
    # The app ends the pause (tests/tui/test_sessions_startup.py); here only that the command
    # starts it, in a process of its own so that this suite's collector is untouched.
    result = subprocess.run(
        [sys.executable, "-c", COLLECTOR_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "COLLECTING_AT_START:[False]" in result.stdout
