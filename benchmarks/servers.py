"""The reference server in its own process, on a loopback port, with a seeded database.

Started through its public command (``sessionscope serve``) so the benchmarks measure what users
run, and in a separate process so its CPU does not share a GIL with the client under test.
Seeded databases are kept in benchmarks/out/ keyed by size and by a hash of the server's code, so
a 1M-event database is built once, not on every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.harness import OUT_DIR, Skipped

API_KEY = "bench-key-not-secret"
SERVER_SOURCES = Path(__file__).resolve().parents[1] / "src" / "sessionscope"


def require_server() -> None:
    try:
        import sessionscope.server.runner  # noqa: F401
    except ModuleNotFoundError as missing:
        raise Skipped(f"the server ({missing.name}) has not landed yet") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def code_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted([SERVER_SOURCES / "models.py", *(SERVER_SOURCES / "server").glob("*.py")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Bytecode caching on, as on a user's machine (this workplace turns it off).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("SESSIONSCOPE_SERVER_API_KEYS", None)
    return env


def sessionscope_command() -> list[str]:
    script = Path(sys.executable).parent / "sessionscope"
    if script.exists():
        return [str(script)]
    found = shutil.which("sessionscope")
    if not found:
        raise Skipped("the sessionscope command is not installed")
    return [found]


@dataclass
class RunningServer:
    url: str
    api_key: str
    process: subprocess.Popen[bytes]
    db_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    def cpu_seconds(self) -> float:
        from benchmarks.terminal import proc_cpu_seconds

        return proc_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def running_server(
    db_path: Path | str, *, extra_args: list[str] | None = None, timeout: float = 60.0
) -> Iterator[RunningServer]:
    """``db_path``: a SQLite file, or a PostgreSQL URL (its log then goes to out/db/)."""
    port = free_port()
    argv = [
        *sessionscope_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db_path),
        "--api-key",
        API_KEY,
        *(extra_args or []),
    ]
    if isinstance(db_path, Path):
        log_path = db_path.with_suffix(".log")
    else:
        (OUT_DIR / "db").mkdir(parents=True, exist_ok=True)
        log_path = OUT_DIR / "db" / f"postgres-server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"server exited ({process.returncode}): {log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {timeout}s")
            time.sleep(0.05)
        yield RunningServer(url=url, api_key=API_KEY, process=process, db_path=Path(db_path))
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            continue


def fresh_db(name: str) -> Path:
    """An empty database path for one run."""
    directory = OUT_DIR / "db"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def cached_db(name: str) -> tuple[Path, bool]:
    """A database path keyed by the server's code; True when it was already built."""
    directory = OUT_DIR / "db"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{code_fingerprint()}.sqlite"
    # A database built by older server code is never used again: drop it (a 1M-event one is
    # 300 MB).
    for stale in directory.glob(f"{name}-*"):
        if not stale.name.startswith(path.stem):
            stale.unlink(missing_ok=True)
    ready = path.with_suffix(".ready")
    return path, ready.exists()


def mark_ready(path: Path) -> None:
    path.with_suffix(".ready").write_text("ok")
