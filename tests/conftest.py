"""Shared fixtures: the reference server on a loopback port, real HTTP all the way."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionscope.server.runner import ServerThread
from sessionscope.server.settings import ServerSettings, database_url

ORG = "acme"
OTHER_ORG = "globex"
API_KEY = "test-key-acme-0123456789"
OTHER_API_KEY = "test-key-globex-9876543210"


@dataclasses.dataclass
class RunningServer:
    thread: ServerThread
    url: str
    api_key: str
    org: str
    other_api_key: str
    other_org: str
    #: A SQLite file, or a PostgreSQL URL (tests/server run on both).
    db_path: Any

    @property
    def settings(self) -> ServerSettings:
        return self.thread.settings

    @property
    def app(self) -> Any:
        return self.thread.app


def test_settings(db_path: Path, **overrides: Any) -> ServerSettings:
    """Settings tuned for tests: port 0, two organisations, short timers."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "db_url": database_url(db_path),
        "api_keys": [(ORG, API_KEY), (OTHER_ORG, OTHER_API_KEY)],
        "heartbeat_interval": 1.0,
        "sweep_interval": 0.05,
        "action_completion_delay": 0.05,
        "sse_retry_ms": 100,
    }
    values.update(overrides)
    return ServerSettings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]


def _running(thread: ServerThread, db_path: Any) -> RunningServer:
    keys = thread.settings.api_keys
    other = keys[1] if len(keys) > 1 else keys[0]
    return RunningServer(
        thread=thread,
        url=thread.url,
        api_key=keys[0][1],
        org=keys[0][0],
        other_api_key=other[1],
        other_org=other[0],
        db_path=db_path,
    )


@pytest.fixture(scope="session")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    # tests/server parametrizes this by database ("sqlite" or "postgresql"; see its conftest).
    if getattr(request, "param", "sqlite") == "postgresql":
        db_path: Any = request.getfixturevalue("fresh_postgres_database")()
    else:
        db_path = tmp_path_factory.mktemp("server") / "sessionscope.db"
    with ServerThread(test_settings(db_path)) as thread:
        yield _running(thread, db_path)


MakeServer = Callable[..., RunningServer]


@pytest.fixture
def make_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeServer]:
    """Start extra servers: ``make_server(db_path=..., simulate=True, ...)``; any ServerSettings
    field can be overridden. Each is stopped after the test (or earlier with ``.thread.stop()``).
    In a test that uses the ``database`` fixture (tests/server: SQLite or PostgreSQL), servers
    without a ``db_path`` share that database.
    """
    started: list[ServerThread] = []
    database = request.getfixturevalue("database") if "database" in request.fixturenames else None

    def make(db_path: Any = None, **overrides: Any) -> RunningServer:
        path = db_path or database or tmp_path / f"server-{len(started)}.db"
        thread = ServerThread(test_settings(path, **overrides))
        thread.start()
        started.append(thread)
        return _running(thread, path)

    yield make
    for thread in started:
        thread.stop()


def _client(url: str, api_key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0)


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with _client(server.url, server.api_key) as client:
        yield client


@pytest.fixture
def other_api(server: RunningServer) -> Iterator[httpx.Client]:
    with _client(server.url, server.other_api_key) as client:
        yield client


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (yet): for a server that is down, then comes up."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
