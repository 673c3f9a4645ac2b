"""The shared backend suite runs once per platform: each platform's harness module
(``harness_<name>.py``) starts a server that behaves as that platform's documents say."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backend_harness import Harness

#: One entry per platform backend; each names a module ``harness_<name>.py`` beside this file.
HARNESS_NAMES: list[str] = [
    "native",
    "agentinbox",
    "agentinbox_sdk",
    "vectara",
    "everruns",
    "viben",
    "ag2trust",
]


@pytest.fixture(params=HARNESS_NAMES)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    module = importlib.import_module(f"harness_{request.param}")
    async with module.open_harness(tmp_path) as opened:
        yield opened
