"""A throwaway PostgreSQL server from the machine's own binaries, for tests and benchmarks.

``LocalPostgres`` runs ``initdb`` in a temporary folder and starts ``postgres`` on a free
loopback port (no Unix socket outside that folder), trusting local connections. PostgreSQL
refuses to run as root, so as root the binaries run as the ``postgres`` system user that
Debian's package creates. ``stop()`` ends the server it started (by its process id) and removes
the folder.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

#: Where Debian and Ubuntu put the binaries (``postgres`` is not on PATH there).
_DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The machine has no usable PostgreSQL binaries, or the server did not start."""


def find_binaries() -> Path:
    """The folder holding ``initdb`` and ``postgres``: Debian's newest, else the PATH's."""
    candidates = sorted(glob.glob(_DEBIAN_BIN_GLOB), key=_version_key, reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("postgres") is not None:
        return Path(initdb).resolve().parent
    raise PostgresUnavailable(
        "no PostgreSQL binaries (initdb, postgres) found; install them, e.g."
        " `apt-get install postgresql`"
    )


def _version_key(folder: str) -> float:
    try:
        return float(Path(folder).parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url`` -> ``postgresql://postgres@127.0.0.1:PORT/postgres``.

    ``durable=False`` (tests) turns off fsync and synchronous commit: the data is thrown away
    anyway and the tests are about behaviour, not crash safety."""

    def __init__(
        self,
        *,
        durable: bool = False,
        max_connections: int = 200,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.durable = durable
        self.max_connections = max_connections
        #: Further ``postgres -c`` settings, e.g. {"synchronous_commit": "off"}.
        self.extra_settings = dict(settings or {})
        self.port = 0
        self.folder: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _as_user(self) -> dict[str, Any]:
        """subprocess arguments dropping root for the PostgreSQL binaries."""
        user = self._run_as
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        binaries = find_binaries()
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root needs the `postgres` system user (Debian's postgresql"
                    " package creates it) to run PostgreSQL as"
                ) from None
        self.folder = Path(tempfile.mkdtemp(prefix="sessionscope-pg-"))
        data = self.folder / "data"
        if self._run_as is not None:
            os.chown(self.folder, self._run_as.pw_uid, self._run_as.pw_gid)
        initdb = subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            **self._as_user(),
            check=False,
        )
        if initdb.returncode != 0:
            self._cleanup()
            raise PostgresUnavailable(f"initdb failed: {initdb.stderr.decode(errors='replace')}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.folder),
            "max_connections": str(self.max_connections),
            "shared_buffers": "128MB",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        settings.update(self.extra_settings)
        for _attempt in range(5):
            self.port = _free_port()
            options = [f"-c{name}={value}" for name, value in settings.items()]
            # The child keeps its own copy of the log's descriptor.
            with open(self.folder / "postgres.log", "ab") as log:
                self._process = subprocess.Popen(
                    [str(binaries / "postgres"), "-D", str(data), "-p", str(self.port), *options],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    **self._as_user(),
                )
            if self._wait_ready(timeout):
                return self
            self._terminate()
        log_text = (self.folder / "postgres.log").read_text(errors="replace")[-2000:]
        self._cleanup()
        raise PostgresUnavailable(f"PostgreSQL did not start: {log_text}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                return False
            if asyncio.run(self._accepts()):
                return True
            time.sleep(0.05)
        return False

    async def _accepts(self) -> bool:
        import asyncpg

        try:
            connection = await asyncpg.connect(self.url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; returns its URL."""
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _execute(self, sql: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(self.url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, no waiting for them.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def _cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def stop(self) -> None:
        self._terminate()
        self._cleanup()

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
