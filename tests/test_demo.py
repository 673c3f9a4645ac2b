"""``sessionscope demo`` as a person runs it: in a terminal, the console painting before its
server is up, and the server never outliving the console."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.terminal import PtyProgram  # noqa: E402

DEADLINE_SECONDS = 60.0
SCRIPT = Path(sys.executable).parent / "sessionscope"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def demo_program(tmp_path: Path) -> PtyProgram:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSCOPE_")}
    env.update({"XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)})
    return PtyProgram([str(SCRIPT), "demo", "--seed", "3"], env=env, size=(120, 30))


def server_of(program: PtyProgram) -> int:
    servers: list[int] = []

    def started() -> bool:
        servers[:] = children_of(program.pid)
        return bool(servers)

    wait_until(started, "the demo's server process")
    return servers[0]


def test_demo_paints_before_its_server_answers_then_lists_and_stops_with_q(
    tmp_path: Path,
) -> None:
    with demo_program(tmp_path) as program:
        program.wait_for_text("starting the local server", timeout=DEADLINE_SECONDS)
        server = server_of(program)
        program.wait_for_text("sessions", timeout=DEADLINE_SECONDS)
        program.wait_for_text("● live", timeout=DEADLINE_SECONDS)
        program.send("?")
        program.wait_for_text("API key: demo-", timeout=DEADLINE_SECONDS)
        program.send("escape")
        # Apart, or the terminal reads escape and q as one alt+q.
        program.settle(quiet=0.3, timeout=5.0)
        program.send("q")
        wait_until(lambda: program.process.poll() is not None, "the console to quit")
        assert program.process.returncode == 0, program.tail()
        wait_until(lambda: not alive(server), "the server to stop with the console")


def test_the_server_does_not_outlive_a_killed_console(tmp_path: Path) -> None:
    with demo_program(tmp_path) as program:
        program.wait_for_text("starting the local server", timeout=DEADLINE_SECONDS)
        server = server_of(program)
        os.kill(program.pid, signal.SIGKILL)
        wait_until(lambda: not alive(server), "the orphaned server to exit")
