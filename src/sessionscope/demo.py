"""``sessionscope demo``: the reference server and its simulator in a child process, started in
parallel with the console.

The console paints at once instead of waiting for the server: this process binds the listening
socket itself (so the URL is known before the child has imported anything) and hands it to the
child, whose ``serve`` accepts on it once ready. Connections made meanwhile wait in the socket's
backlog, so the console's first request is answered as soon as the server is up, with no retry
loop. Server, simulator and console no longer share one interpreter and its lock.

The child never outlives the console: it exits when its standard input (a pipe from here) reaches
end of file, which happens when this process exits for any reason, a crash or a kill included.

Standard library only: the console's start must not pay for the server's imports.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

DEMO_ORG = "demo"
#: The server reads its keys from here (``ORG:KEY``), so the key is not on a command line that
#: every user of the machine can list.
SERVER_KEYS_ENV = "SESSIONSCOPE_SERVER_API_KEYS"
_STOP_TIMEOUT_SECONDS = 5.0


@dataclass
class DemoServer:
    """The demo's server process. ``url`` and ``api_key`` are known before it is ready."""

    rate: float = 2.0
    seed: int | None = None
    api_key: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(18), repr=False)
    url: str = ""
    folder: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path | None:
        return self.folder / "server.log" if self.folder else None

    def start(self) -> DemoServer:
        self.folder = Path(tempfile.mkdtemp(prefix="sessionscope-demo-"))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        # Listening now queues the console's connections until the child accepts them.
        sock.listen(128)
        sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        command = [
            sys.executable,
            "-m",
            "sessionscope",
            "serve",
            "--listen-fd",
            str(sock.fileno()),
            "--db",
            str(self.folder / "demo.db"),
            "--simulate",
            "--rate",
            f"{self.rate:g}",
            "--exit-with-parent",
            # The console comes first: its frames are what the operator waits for.
            "--nice",
            "5",
        ]
        if self.seed is not None:
            command += ["--seed", str(self.seed)]
        env = {**os.environ, SERVER_KEYS_ENV: f"{DEMO_ORG}:{self.api_key}"}
        assert self.log_path is not None
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
                env=env,
                start_new_session=True,  # ctrl+c in the console's terminal is the console's
            )
        # The child holds the socket now; were it to die, connections must be refused at once
        # rather than wait in a backlog nobody reads.
        sock.close()
        return self

    def failure(self) -> str | None:
        """Why the child is gone, if it is: its exit code and the end of its log."""
        if self.process is None or self.process.poll() is None:
            return None
        tail = ""
        if self.log_path is not None and self.log_path.exists():
            tail = self.log_path.read_text(errors="replace")[-1500:]
        return f"the demo server exited with code {self.process.returncode}\n{tail}".strip()

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()  # the child's signal to stop
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
