"""The organisation stream of an idle organisation whose every change retention has pruned."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from server_helpers import db_rows, frames, wait_until

from sessionscope.models import OrgChange

# Every test here runs on SQLite and on PostgreSQL (see conftest.py).
pytestmark = pytest.mark.usefixtures("database")


def _client(server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"X-API-Key": server.api_key}, timeout=httpx.Timeout(20.0)
    )


def pruned_floor(db_path: Any, org: str) -> int | None:
    """The retention floor once every org change of ``org`` has been pruned, else None."""
    (left,) = db_rows(db_path, "SELECT count(*) FROM org_changes WHERE org = ?", org)
    floor = db_rows(db_path, "SELECT change_id FROM org_stream_floor WHERE org = ?", org)
    if left[0] == 0 and floor and floor[0][0] > 0:
        return int(floor[0][0])
    return None


def prune_everything(server, api: httpx.Client) -> int:
    """Make one change and wait until retention has pruned it: returns the floor."""
    api.post("/v1/sessions", json={"title": "old news"}).raise_for_status()
    return wait_until(lambda: pruned_floor(server.db_path, server.org), timeout=30, what="pruning")


@pytest.mark.timeout(60)
def test_a_fresh_subscriber_after_everything_was_pruned_gets_no_reset(make_server) -> None:
    server = make_server(org_change_retention=0.2)
    with _client(server) as api:
        floor = prune_everything(server, api)
        with api.stream("GET", "/v1/stream") as response:
            stream = frames(response)
            opening = next(stream)
            # It starts at the floor, the newest position there is, not at 0 below it.
            assert opening.id == str(floor)
            later = api.post("/v1/sessions", json={"title": "fresh"}).json()["id"]
            first = next(frame for frame in stream if frame.data)
    change = OrgChange.model_validate(first.json())
    # Nothing this subscriber could have missed: no stream.reset (the console would reload).
    assert (change.kind, change.session_id) == ("session.created", later)
    assert change.id > floor
