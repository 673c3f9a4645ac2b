"""Run a console program in a pseudo-terminal and watch what it paints, from the outside.

Black-box on purpose: the time that counts is when bytes reach the terminal, measured the same way
for sessionscope and for every baseline, with no hooks inside the program under test. Process
figures (RSS, CPU) are read from /proc/<pid> by this side.
"""

from __future__ import annotations

import fcntl
import os
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyte

# CSI/OSC/other escape sequences; what is left is the text a person would see (minus layout).
_ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    rb"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS, SOS, PM, APC
    rb"|\x1b[@-Z\\-_]"  # two-byte sequences
)

KEYS = {
    "down": b"\x1b[B",
    "up": b"\x1b[A",
    "pagedown": b"\x1b[6~",
    "pageup": b"\x1b[5~",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "ctrl+home": b"\x1b[1;5H",
    "ctrl+end": b"\x1b[1;5F",
    "enter": b"\r",
    "escape": b"\x1b",
    "ctrl+q": b"\x11",
}


def visible_text(data: bytes) -> bytes:
    return _ESCAPES.sub(b"", data)


@dataclass
class Chunk:
    at: float  # time.monotonic() when read
    data: bytes
    text: bytes  # data without escape sequences


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a live process; empty if it is gone."""
    figures: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    figures[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return figures


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class TerminalTimeout(Exception):
    pass


class PtyProgram:
    """A program attached to a pseudo-terminal of a fixed size. Always ``close()`` it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        size: tuple[int, int] = (120, 40),
        cwd: str | None = None,
    ) -> None:
        master, slave = os.openpty()
        columns, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        # ``env`` is the whole environment (callers build it from os.environ and remove what
        # must not leak, e.g. PYTHONDONTWRITEBYTECODE): merging it over os.environ again would
        # bring the removed variables back.
        full_env = dict(os.environ if env is None else env)
        full_env.update({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)})
        full_env.pop("TEXTUAL_DRIVER", None)
        self.chunks: list[Chunk] = []
        self._master = master
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self._text = bytearray()
        self._closed = False
        # Bytes are read and timestamped by a thread of their own, so a time is when the bytes
        # were there to read, however long this side takes to emulate the chunks before them
        # (pyte needs 20-40 ms for a 4 KiB chunk: reading between feeds put every frame that
        # followed another one tens of milliseconds late, up to 150 ms on a busy open).
        self._arrived: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        self._eof = False
        self._stop_reading = threading.Event()
        # The reader wakes from select() at once, but it needs the interpreter lock to take
        # its timestamp: hand the lock over more often than the default 5 ms.
        if sys.getswitchinterval() > 0.001:
            sys.setswitchinterval(0.001)
        self._reader = threading.Thread(target=self._read_loop, name="pty-reader", daemon=True)
        self._reader.start()
        # What a real terminal would show: Textual sends partial line updates, so the byte
        # stream alone does not say what is on screen.
        self.screen = pyte.Screen(columns, rows)
        self._stream = pyte.ByteStream(self.screen)
        #: Feed output to the emulated screen. Emulation costs far more CPU than the programs
        #: under test spend drawing; turn it off where only timestamps and raw text matter
        #: (live ingest), or this side falls behind and inflates every latency.
        self.emulate = True

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_loop(self) -> None:
        master = self._master
        while not self._stop_reading.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            self._arrived.put((time.monotonic(), data))
        self._arrived.put(None)

    def pump(self, timeout: float) -> bool:
        """Take the next chunk that arrives within ``timeout`` seconds (one chunk, so callers
        can tell which one put a text on screen); False once the program has exited."""
        if self._eof:
            return False
        try:
            item = self._arrived.get(timeout=timeout) if timeout > 0 else self._arrived.get_nowait()
        except queue.Empty:
            return self.process.poll() is None
        if item is None:
            self._eof = True
            return False
        at, data = item
        text = visible_text(data)
        if self.emulate:
            self._stream.feed(data)
        self.chunks.append(Chunk(at, data, text))
        self._text += text
        if len(self._text) > 1 << 20:
            del self._text[: len(self._text) - (1 << 19)]
        return True

    def on_screen(self, needle: str) -> bool:
        return any(needle in line for line in self.screen.display)

    def wait_for_text(self, needle: str, timeout: float, *, since: int = 0) -> float:
        """Time (monotonic) of the first chunk, from index ``since`` on, after which ``needle``
        is on the emulated screen. Chunks before ``since`` must already have been read."""
        return self.wait_for_any([needle], timeout, since=since)[0]

    def wait_for_any(
        self, needles: list[str], timeout: float, *, since: int = 0
    ) -> tuple[float, str]:
        """Like ``wait_for_text`` for the first of several needles; returns (time, needle)."""
        deadline = time.monotonic() + timeout

        def found() -> str | None:
            return next((needle for needle in needles if self.on_screen(needle)), None)

        if since < len(self.chunks) and (hit := found()):
            return self.chunks[max(since, len(self.chunks) - 1)].at, hit
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TerminalTimeout(
                    f"{needles!r} not on screen within {timeout:.1f}s; screen:\n" + self.dump()
                )
            before = len(self.chunks)
            alive = self.pump(min(remaining, 0.05))
            if len(self.chunks) > before and (hit := found()):
                return self.chunks[-1].at, hit
            if not alive:
                raise TerminalTimeout(
                    f"program exited ({self.process.poll()}) before painting {needles!r}; "
                    f"last output: {self.tail()!r}"
                )

    def dump(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for_output(self, timeout: float, *, since: int) -> float | None:
        """Time of the first chunk with index >= ``since``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.chunks) <= since:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.pump(min(remaining, 0.05)):
                if len(self.chunks) > since:
                    break
                if remaining <= 0:
                    return None
        return self.chunks[since].at

    def settle(self, quiet: float = 0.15, timeout: float = 5.0) -> None:
        """Read until nothing arrives for ``quiet`` seconds (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = len(self.chunks)
            if not self.pump(quiet) or len(self.chunks) == before:
                return

    def send(self, key: str) -> float:
        """Write one key (a name from KEYS or literal text); returns the time it was written."""
        data = KEYS.get(key, key.encode())
        at = time.monotonic()
        os.write(self._master, data)
        return at

    def text(self) -> str:
        return self._text.decode(errors="replace")

    def tail(self, size: int = 400) -> str:
        return self._text[-size:].decode(errors="replace")

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def close(self, timeout: float = 3.0) -> None:
        """Ask politely (ctrl+q), then SIGTERM, then SIGKILL — this one process group only."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.process.poll() is None:
                try:
                    os.write(self._master, KEYS["ctrl+q"])
                except OSError:
                    pass
                deadline = time.monotonic() + timeout
                while self.process.poll() is None and time.monotonic() < deadline:
                    self.pump(0.05)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if self.process.poll() is not None:
                    break
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    continue
        finally:
            self._stop_reading.set()
            self._reader.join(timeout=1.0)
            os.close(self._master)

    def __enter__(self) -> PtyProgram:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
