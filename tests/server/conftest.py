"""The server tests on both databases: SQLite (a file) and a real PostgreSQL started from the
machine's binaries in a temporary folder on a loopback port.

The shared ``server`` runs once per database for every test here that uses it. Modules that
hold storage behaviour run on both too: they mark themselves with
``pytestmark = pytest.mark.usefixtures("database")``, and ``make_server()`` without a
``db_path`` then uses that test's database (a fresh file, or a fresh PostgreSQL database).

Without PostgreSQL binaries the PostgreSQL half is skipped on a workstation, and FAILS in CI
(``CI=true``): there, a PostgreSQL that cannot start must not pass unnoticed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sessionscope.server.pg_local import LocalPostgres, PostgresUnavailable

BACKENDS = ("sqlite", "postgresql")
_database_names = itertools.count()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _marked_databases(metafunc: pytest.Metafunc) -> list[str] | None:
    """The databases a test's own ``parametrize("database", ...)`` mark restricts it to."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        if mark.args and mark.args[0] == "database":
            return list(mark.args[1])
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    marked = _marked_databases(metafunc)
    if "server" in names:
        # A test using ``database`` too gets the shared server's database kind (see there).
        metafunc.parametrize("server", marked or BACKENDS, indirect=True, scope="session")
    elif "database" in names and marked is None:
        metafunc.parametrize("database", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    try:
        cluster = LocalPostgres().start()
    except PostgresUnavailable as error:
        if in_ci():
            pytest.fail(f"PostgreSQL could not start: {error}")
        pytest.skip(f"PostgreSQL is not available here: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def fresh_postgres_database(postgres: LocalPostgres) -> Callable[[], str]:
    """Creates an empty database on the test PostgreSQL and returns its URL."""

    def create() -> str:
        return postgres.create_database(f"t{os.getpid()}_{next(_database_names)}")

    return create


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's servers keep their data: a SQLite file path, or the URL of an empty
    PostgreSQL database. The same kind as the shared server's in a test that uses both."""
    backend = getattr(request, "param", None)
    if backend is None:
        backend = request.node.callspec.params["server"]
    if backend == "sqlite":
        return str(tmp_path / "sessionscope.db")
    create: Callable[[], str] = request.getfixturevalue("fresh_postgres_database")
    return create()
