"""Schema migrations at start, on SQLite and PostgreSQL: an empty database gets the latest
schema, a database of the previous version is migrated with its data kept, and replicas
starting together on one empty database create the schema once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from server_helpers import db_rows
from sqlalchemy import Index, Integer, MetaData, Table

from sessionscope.server import db
from sessionscope.server.settings import database_url

pytestmark = pytest.mark.usefixtures("database")


def _versions(location: str) -> list[int]:
    return [row[0] for row in db_rows(location, "SELECT version FROM schema_version ORDER BY 1")]


async def _prepare(location: str) -> int:
    engine = db.make_engine(database_url(location))
    try:
        return await db.prepare_schema(engine)
    finally:
        await engine.dispose()


def _version_5_metadata() -> MetaData:
    """The tables as schema version 5 declared them: today's, but org_changes.id an INTEGER
    (PostgreSQL: SERIAL) and no per-organisation stream_id (schema 7)."""
    legacy = MetaData()
    for table in db.metadata.sorted_tables:
        if table.name != "org_changes":
            table.to_metadata(legacy)
            continue
        Table(
            table.name,
            legacy,
            *(column._copy() for column in table.c if column.name != "stream_id"),
            *(
                Index(i.name, *i.columns.keys())
                for i in table.indexes
                if "stream_id" not in i.columns
            ),
            sqlite_autoincrement=True,
        )
    legacy.tables["org_changes"].c.id.type = Integer()
    return legacy


async def _create_version_5(location: str) -> None:
    """A database as the server of schema version 5 created it, with one session's worth of
    rows in the tables migration 6 touches."""
    engine = db.make_engine(database_url(location))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(db.schema_version.create)
            await conn.run_sync(_version_5_metadata().create_all)
            await conn.run_sync(db.install_session_counts)
            await conn.execute(
                db.schema_version.insert().values(version=5, applied_at=datetime.now(UTC))
            )
            await conn.execute(
                db.org_changes.insert().values(
                    org="acme",
                    kind="session.created",
                    session_id="ses_old",
                    created_at=datetime.now(UTC),
                    body={},
                )
            )
    finally:
        await engine.dispose()


def test_an_empty_database_gets_the_latest_schema(database: str) -> None:
    assert asyncio.run(_prepare(database)) == db.SCHEMA_VERSION
    assert _versions(database) == [db.SCHEMA_VERSION]
    # Idempotent: a restart finds nothing to do.
    assert asyncio.run(_prepare(database)) == db.SCHEMA_VERSION
    assert _versions(database) == [db.SCHEMA_VERSION]


def test_the_previous_schema_is_migrated_and_keeps_its_data(database: str, make_server) -> None:
    asyncio.run(_create_version_5(database))
    server = make_server()
    assert _versions(database) == list(range(5, db.SCHEMA_VERSION + 1))
    if database.startswith("postgresql"):
        (kind,) = db_rows(
            database,
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'org_changes' AND column_name = 'id'",
        )
        assert kind == ("bigint",)
    ((old_id,),) = db_rows(database, "SELECT id FROM org_changes WHERE session_id = 'ses_old'")
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        created = api.post("/v1/sessions", json={"title": "after the migration"})
        assert created.status_code == 201, created.text
        listed = api.get("/v1/sessions").json()
    assert [s["title"] for s in listed["data"]] == ["after the migration"]
    assert listed["stream_position"] > old_id


# Replicas share a PostgreSQL database; a SQLite file has one server.
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_replicas_starting_together_create_the_schema_once(database: str) -> None:
    async def start_four() -> list[Any]:
        return await asyncio.gather(*(_prepare(database) for _ in range(4)))

    assert asyncio.run(start_four()) == [db.SCHEMA_VERSION] * 4
    assert _versions(database) == [db.SCHEMA_VERSION]
