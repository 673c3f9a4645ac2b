"""A sessions listing's first page says which organisation stream changes its snapshot includes."""

from __future__ import annotations

import httpx
import pytest
from server_helpers import frames
from test_org_stream_floor import prune_everything

from sessionscope.models import OrgChange, Page, Session

# Every test here runs on SQLite and on PostgreSQL (see conftest.py).
pytestmark = pytest.mark.usefixtures("database")


def _client(server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"X-API-Key": server.api_key}, timeout=httpx.Timeout(20.0)
    )


def _first_change_after(api: httpx.Client, position: int) -> OrgChange:
    with api.stream("GET", "/v1/stream", params={"after": position}) as response:
        frame = next(frame for frame in frames(response) if frame.data)
    return OrgChange.model_validate(frame.json())


def test_the_first_page_carries_the_stream_position_of_its_snapshot(make_server) -> None:
    server = make_server()
    with _client(server) as api:
        first = api.post("/v1/sessions", json={"title": "first"}).json()["id"]
        api.patch(f"/v1/sessions/{first}", json={"title": "first, renamed"}).raise_for_status()
        listed = Page[Session].model_validate(api.get("/v1/sessions").json())
        assert [s.title for s in listed.data] == ["first, renamed"]
        position = listed.stream_position
        assert position is not None
        later = api.post("/v1/sessions", json={"title": "later"}).json()["id"]

        # The last change the page shows is at the position: it is not ahead of the snapshot...
        at = _first_change_after(api, position - 1)
        assert (at.id, at.kind, at.session_id) == (position, "session.updated", first)
        # ...and what follows it is the first change the page does not show: not behind.
        after = _first_change_after(api, position)
        assert (after.kind, after.session_id) == ("session.created", later)

        # Only first pages carry it (as only they carry the total), in either order.
        paged = api.get("/v1/sessions", params={"limit": 1}).json()
        assert paged["stream_position"] == position + 1
        rest = api.get("/v1/sessions", params={"limit": 1, "cursor": paged["next_cursor"]})
        assert rest.json()["stream_position"] is None
        oldest = api.get("/v1/sessions", params={"order": "oldest"}).json()
        assert oldest["stream_position"] == position + 1


@pytest.mark.timeout(60)
def test_once_everything_was_pruned_the_position_is_the_floor(make_server) -> None:
    server = make_server(org_change_retention=0.2)
    with _client(server) as api:
        floor = prune_everything(server, api)
        position = api.get("/v1/sessions").json()["stream_position"]
        # Not 0: a watch resumed from below the floor is told to reload (stream.reset).
        assert position == floor


# SQLite only: the forcing write runs inside the read, which needs the read in a reader thread
# while the event loop serves the write; on PostgreSQL reads run on the event loop itself
# (REPEATABLE READ gives the snapshot there).
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_change_committed_while_the_first_page_is_read_is_after_its_position(
    make_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The position and the page are one snapshot. Forced deterministically: a session is
    created (and committed by the server) inside the page's read, after the position is read
    and before the page's rows are. It is neither listed nor counted nor covered by the
    position, so a watch resumed from the position delivers it, and nothing is replayed."""
    server = make_server()
    store = server.app.state.store
    with _client(server) as api, _client(server) as writer:
        api.post("/v1/sessions", json={"title": "before"}).raise_for_status()
        read_page = store._session_page
        created: list[str] = []

        def write_then_read_page(*args, **kwargs):
            if not created:
                # In the server's reader thread; the event loop serves this meanwhile.
                reply = writer.post("/v1/sessions", json={"title": "between"})
                reply.raise_for_status()
                created.append(reply.json()["id"])
            return read_page(*args, **kwargs)

        monkeypatch.setattr(store, "_session_page", write_then_read_page)
        listed = Page[Session].model_validate(api.get("/v1/sessions").json())
        assert created, "the write did not run inside the listing"
        assert [s.title for s in listed.data] == ["before"]
        assert listed.total == 1
        assert listed.stream_position is not None
        after = _first_change_after(api, listed.stream_position)
        assert (after.kind, after.session_id) == ("session.created", created[0])
