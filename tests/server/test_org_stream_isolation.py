"""Organisation-stream ids are per organisation: one organisation cannot read another's activity
from the gaps between its own ids."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from server_helpers import data_frames

from sessionscope.models import OrgChange


def _position(api: httpx.Client) -> int:
    position = api.get("/v1/sessions", params={"limit": 1}).json()["stream_position"]
    assert isinstance(position, int)
    return position


def _next_changes(api: httpx.Client, after: int, count: int) -> list[OrgChange]:
    with api.stream("GET", "/v1/stream", params={"after": after}) as response:
        assert response.status_code == 200
        return [OrgChange.model_validate(frame.json()) for frame in data_frames(response, count)]


@pytest.mark.timeout(60)
def test_another_organisations_activity_leaves_no_gap(make_server) -> None:
    server = make_server()
    with (
        httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as busy,
        httpx.Client(base_url=server.url, headers={"X-API-Key": server.other_api_key}) as quiet,
    ):
        start = _position(quiet)
        assert quiet.post("/v1/sessions", json={"title": "first"}).status_code == 201
        for n in range(10):
            created = busy.post("/v1/sessions", json={"title": f"busy {n}", "prompt": "go"})
            assert created.status_code == 201
        assert quiet.post("/v1/sessions", json={"title": "second"}).status_code == 201
        ids = [change.id for change in _next_changes(quiet, start, 2)]
        # Consecutive, whatever the other organisation did in between.
        assert ids == [start + 1, start + 2]
        assert _position(quiet) == start + 2
        # The busy organisation's own ids are consecutive too.
        busy_ids = [change.id for change in _next_changes(busy, 0, 10)]
        assert busy_ids == list(range(busy_ids[0], busy_ids[0] + 10))


@pytest.mark.timeout(60)
def test_an_older_database_keeps_its_ids_and_goes_on_per_organisation(make_server, tmp_path):
    db_path = tmp_path / "old.db"
    server = make_server(db_path=db_path)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        for n in range(3):
            assert api.post("/v1/sessions", json={"title": f"old {n}"}).status_code == 201
        before = _next_changes(api, 0, 3)
    server.thread.stop()
    # Back to the previous schema: no per-organisation ids, global ids only.
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP INDEX ux_org_changes_org_stream_id")
        conn.execute("ALTER TABLE org_changes DROP COLUMN stream_id")
        conn.execute("UPDATE org_changes SET id = id + 100")
        conn.execute("UPDATE schema_version SET version = 6")  # before schema 7
    server = make_server(db_path=db_path)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        kept = _next_changes(api, 0, 3)
        assert [change.id for change in kept] == [change.id + 100 for change in before]
        assert [change.session_id for change in kept] == [change.session_id for change in before]
        head = _position(api)
        assert head == kept[-1].id
        assert api.post("/v1/sessions", json={"title": "new"}).status_code == 201
        assert [change.id for change in _next_changes(api, head, 1)] == [head + 1]
