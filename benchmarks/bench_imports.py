"""Cold-start import cost of the console, from ``python -X importtime``.

Reports the cumulative import time of ``sessionscope.tui.app`` (ours) against ``textual.app`` +
``textual.widgets`` (what any Textual app pays), the top offenders, and whether modules the first
screen does not need (the server, FastAPI, SQLAlchemy, uvicorn) were loaded at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from benchmarks.harness import Metric, Target, alternate

CONSOLE_MODULES = (
    "sessionscope.cli",
    "sessionscope.backends.native",
    "sessionscope.tui.app",
    "sessionscope.tui.screens.sessions",
    # Imported by the HTTP client when it is created and at its first connection, before the
    # first page can paint.
    "httpcore",
    "anyio._backends._asyncio",
)
#: What ``sessionscope`` runs before importing the rest: the collector paused for the start
#: (``sessionscope.tui.collector``), and httpx without its command-line module (rich.syntax,
#: pygments: ~16 modules the console never loads).
CONSOLE_PRELUDE = (
    "from sessionscope.tui import collector; collector.pause_for_startup(); "
    "from sessionscope.cli import _import_httpx_without_its_command_line as _httpx; _httpx()"
)
BASELINE_MODULES = ("textual.app", "textual.widgets")
FORBIDDEN_PREFIXES = ("sessionscope.server", "fastapi", "sqlalchemy", "uvicorn", "starlette")


@dataclass
class ImportProfile:
    total_us: int
    #: (cumulative µs, self µs, module) for every module imported.
    modules: list[tuple[int, int, str]]

    def top(self, count: int = 10) -> list[tuple[int, int, str]]:
        return sorted(self.modules, key=lambda row: row[1], reverse=True)[:count]

    def loaded(self, prefixes: tuple[str, ...]) -> list[str]:
        return sorted(
            name
            for _, _, name in self.modules
            if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
        )


def child_env() -> dict[str, str]:
    """Bytecode caching on, as on a user's machine (this workplace sets DONTWRITEBYTECODE)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def profile_imports(modules: tuple[str, ...], prelude: str = "") -> ImportProfile:
    code = "; ".join([*([prelude] if prelude else []), *(f"import {module}" for module in modules)])
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=True,
    )
    rows: list[tuple[int, int, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative_us), int(self_us), name.strip()))
    # Top-level entries (no leading indentation in the original) add up to the whole import.
    total = sum(row[1] for row in rows)
    return ImportProfile(total_us=total, modules=rows)


def run(*, quick: bool, repeat: int) -> tuple[list[Metric], dict[str, object]]:
    ours = Metric(
        "imports",
        "import the console's first screen (cli, native backend and HTTP client, app, sessions)",
        "ms",
        baseline_name="import textual.app+widgets",
        note="sum of self times from -X importtime, warm bytecode cache; no target of its own "
        "(it is part of the startup target)",
    )
    forbidden = Metric(
        "imports",
        "server/FastAPI/SQLAlchemy modules loaded by the console",
        "modules",
        target=Target("<=", 0),
    )
    profiles: dict[str, ImportProfile] = {}

    if not quick:
        # Warm the bytecode cache once so both sides are measured as a user's second start.
        profile_imports(CONSOLE_MODULES, CONSOLE_PRELUDE)
        profile_imports(BASELINE_MODULES)

    def measure_ours() -> None:
        profile = profile_imports(CONSOLE_MODULES, CONSOLE_PRELUDE)
        profiles["ours"] = profile
        ours.ours.append(profile.total_us / 1000)

    def measure_baseline() -> None:
        profile = profile_imports(BASELINE_MODULES)
        profiles["baseline"] = profile
        ours.baseline.append(profile.total_us / 1000)

    alternate(1 if quick else repeat, measure_ours, measure_baseline)
    heavy = profiles["ours"].loaded(FORBIDDEN_PREFIXES)
    forbidden.ours.append(len(heavy))
    baseline_names = {name for _, _, name in profiles["baseline"].modules}
    extra = [row for row in profiles["ours"].modules if row[2] not in baseline_names]
    details = {
        # What the console's first page imports beyond what any Textual app does.
        "self_ms_not_in_textual": round(sum(row[1] for row in extra) / 1000, 1),
        "top_self_time_ours": profiles["ours"].top(15),
        "top_self_time_not_in_textual": sorted(extra, key=lambda row: row[1], reverse=True)[:15],
        "heavy_modules_loaded": heavy,
        "module_count_ours": len(profiles["ours"].modules),
        "module_count_baseline": len(profiles["baseline"].modules),
    }
    return [ours, forbidden], details
