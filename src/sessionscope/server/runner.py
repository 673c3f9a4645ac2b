"""Running the server: in a background thread (tests, the console's demo) or in the foreground
(``sessionscope serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import secrets
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import click
import platformdirs
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from sessionscope.server.app import create_app
from sessionscope.server.settings import (
    DEFAULT_ORG,
    ServerSettings,
    api_key_specs_from_env,
    database_url,
    parse_api_key_spec,
    sqlite_path,
)

APP_NAME = "sessionscope"
KEY_FILE_NAME = "server-api-key"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _uvicorn_config(
    app: FastAPI, settings: ServerSettings, *, embedded: bool = False
) -> uvicorn.Config:
    extra: dict[str, Any] = {}
    if embedded:
        # In a host process (tests, the console) logging belongs to the host: uvicorn's default
        # config would rebind handlers to the real stderr, under a full-screen console.
        extra["log_config"] = None
    return uvicorn.Config(
        app,
        **extra,
        log_level="warning",
        access_log=settings.access_log,
        lifespan="on",
        # Live streams never end by themselves; the app closes them, this bounds the wait.
        timeout_graceful_shutdown=2,
    )


class _NotifyingServer(uvicorn.Server):
    """Sets ``ready`` once lifespan startup is done and the socket listens."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready_event = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._ready_event.set()


class _ProcessServer(uvicorn.Server):
    """The server owning its process (``sessionscope serve``): once started, what start-up
    built (modules, the app, its routes and validators) is moved out of the collector's reach.
    A full collection otherwise walked those ~110k objects, 55-65 ms on a 2-vCPU machine,
    stalling whichever request or live stream it interrupted (the listing's p99)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        gc.collect()
        gc.freeze()


class ServerThread:
    """The server on its own event loop in a daemon thread.

    ``start()`` returns once the server accepts requests (schema ready); ``stop()`` closes live
    streams and waits for the thread. Usable as a context manager.
    """

    def __init__(self, settings: ServerSettings, *, startup_timeout: float = 30.0) -> None:
        self.settings = settings
        self.startup_timeout = startup_timeout
        self.app: FastAPI | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = settings.port

    @property
    def url(self) -> str:
        return _url(self.settings.host, self.port)

    @property
    def api_key(self) -> str | None:
        first = self.settings.first_key
        return first[1] if first else None

    @property
    def org(self) -> str | None:
        first = self.settings.first_key
        return first[0] if first else None

    def __repr__(self) -> str:
        return f"ServerThread(url={self.url!r})"

    def start(self) -> ServerThread:
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        self._socket = _bind(self.settings.host, self.settings.port)
        self.port = self._socket.getsockname()[1]
        self.settings = dataclasses.replace(self.settings, port=self.port)
        self.app = create_app(self.settings)
        self._server = _NotifyingServer(
            _uvicorn_config(self.app, self.settings, embedded=True), self._ready
        )
        self._thread = threading.Thread(
            target=self._run, name=f"sessionscope-server-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self.startup_timeout):
            self.stop()
            raise RuntimeError(f"the server did not start within {self.startup_timeout} s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"the server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self._error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._socket])
        if not self._server.started:
            raise RuntimeError("uvicorn exited during startup (see the log above)")

    def stop(self, timeout: float = 15.0) -> None:
        server, loop, thread = self._server, self._loop, self._thread
        if server is not None:
            if loop is not None and self.app is not None and not loop.is_closed():
                broker = getattr(self.app.state, "broker", None)
                if broker is not None:
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(broker.close_all)
            server.should_exit = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# sessionscope serve / demo
# ---------------------------------------------------------------------------------------------


def default_database_path() -> Path:
    return platformdirs.user_data_path(APP_NAME) / "sessionscope.db"


def _key_file_for(db_url: str) -> Path:
    db_file = sqlite_path(db_url)
    directory = db_file.parent if db_file is not None else platformdirs.user_data_path(APP_NAME)
    return directory / KEY_FILE_NAME


def ensure_key_file(path: Path) -> str:
    """The key stored at ``path``, created (0600) on first use so restarts keep the same key."""
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            os.chmod(path, 0o600)
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def _stop_when_stdin_closes(server: uvicorn.Server) -> None:
    """The parent holds our stdin's write end: end of file means it has gone."""

    def wait() -> None:
        with contextlib.suppress(OSError, ValueError):
            while os.read(0, 65536):
                pass
        server.should_exit = True
        # A server that does not wind down (a stuck stream) must still not outlive its parent.
        threading.Timer(10.0, os._exit, args=(0,)).start()

    threading.Thread(target=wait, name="exit-with-parent", daemon=True).start()


def serve_forever(
    host: str,
    port: int,
    db: str | None,
    api_keys: list[str],
    simulate: bool,
    rate: float,
    seed: int | None,
    temporary: bool = False,
    listen_fd: int | None = None,
    exit_with_parent: bool = False,
) -> None:
    """Run in the foreground until interrupted (Ctrl-C).

    ``listen_fd``: accept on this inherited, already listening socket instead of binding one
    (the demo binds it, so the console knows the URL before this process has started).
    ``exit_with_parent``: stop when standard input reaches end of file, i.e. when the process
    that started this one has exited, however it ended."""
    try:
        specs = [parse_api_key_spec(spec) for spec in api_keys] + api_key_specs_from_env()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    keys = [(org, key) for org, key, _role in specs]
    key_roles = {key: role for _org, key, role in specs if role is not None}
    scratch: Path | None = None
    if temporary:
        scratch = Path(tempfile.mkdtemp(prefix="sessionscope-"))
        db_url = database_url(scratch / "sessionscope.db")
    else:
        db_url = database_url(db if db is not None else default_database_path())
    key_file: Path | None = None
    if not keys:
        key_file = _key_file_for(db_url)
        keys = [(DEFAULT_ORG, ensure_key_file(key_file))]
    settings = ServerSettings(
        host=host,
        port=port,
        db_url=db_url,
        api_keys=keys,
        key_roles=key_roles,
        simulate=simulate,
        rate=rate,
        seed=seed,
    )
    if listen_fd is not None:
        sock = socket.socket(fileno=listen_fd)
        host = sock.getsockname()[0]
    else:
        try:
            sock = _bind(host, port)
        except OSError as error:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {error.strerror}"
            ) from None
    url = _url(host, sock.getsockname()[1])
    click.echo(f"sessionscope server listening on {url}")
    # A PostgreSQL URL may carry a password: never printed.
    click.echo(f"  database: {make_url(db_url).render_as_string(hide_password=True)}")
    if key_file is not None:
        click.echo(f"  API key file: {key_file}")
        click.echo(f'  connect: sessionscope --url {url} --api-key "$(cat {key_file})"')
    else:
        click.echo(f"  organisations: {', '.join(sorted({org for org, _ in keys}))}")
        click.echo(f"  connect: sessionscope --url {url} --api-key YOUR_KEY")
    if simulate:
        click.echo(f"  simulator: {rate:g} events/s into organisation '{keys[0][0]}'")
    click.echo("Press Ctrl-C to stop.")
    try:
        server = _ProcessServer(_uvicorn_config(create_app(settings), settings))
        if exit_with_parent:
            _stop_when_stdin_closes(server)
        server.run(sockets=[sock])
    finally:
        sock.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
