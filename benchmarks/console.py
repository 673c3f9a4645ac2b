"""Helpers for driving the console (and the baseline apps) in a pseudo-terminal."""

from __future__ import annotations

import sys
import tempfile
import time

from benchmarks import servers
from benchmarks.harness import Skipped
from benchmarks.terminal import PtyProgram

SIZE = (120, 40)


def require_console() -> None:
    servers.require_server()
    try:
        from sessionscope.tui.screens import session, sessions  # noqa: F401
    except ModuleNotFoundError as missing:
        raise Skipped(f"the console ({missing.name}) has not landed yet") from None


def console_env() -> dict[str, str]:
    env = servers.child_env()
    home = tempfile.mkdtemp(prefix="sessionscope-bench-home-")
    env.update({"XDG_CONFIG_HOME": home, "XDG_DATA_HOME": home, "XDG_STATE_HOME": home})
    for name in ("SESSIONSCOPE_URL", "SESSIONSCOPE_API_KEY", "SESSIONSCOPE_PROFILE"):
        env.pop(name, None)
    return env


def console_argv(server: servers.RunningServer) -> list[str]:
    return [*servers.sessionscope_command(), "--url", server.url, "--api-key", server.api_key]


def app_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def first_frame(program: PtyProgram, timeout: float = 30.0) -> float:
    """Time of the first chunk that carries visible text (the first painted frame)."""
    deadline = time.monotonic() + timeout
    index = 0
    while True:
        while index < len(program.chunks):
            chunk = program.chunks[index]
            if chunk.text.strip():
                return chunk.at
            index += 1
        if time.monotonic() > deadline or not program.pump(0.05):
            if index >= len(program.chunks):
                raise TimeoutError(f"nothing painted; last output {program.tail()!r}")


def key_latencies(
    program: PtyProgram, key: str, count: int, *, timeout: float = 2.0
) -> tuple[list[float], int]:
    """Press ``key`` ``count`` times; per press, ms until the next frame starts arriving.
    Returns (latencies, presses that painted nothing within ``timeout``)."""
    latencies: list[float] = []
    silent = 0
    for _ in range(count):
        program.settle(quiet=0.04, timeout=1.0)
        index = len(program.chunks)
        pressed = program.send(key)
        painted = program.wait_for_output(timeout, since=index)
        if painted is None:
            silent += 1
        else:
            latencies.append((painted - pressed) * 1000)
    return latencies, silent
