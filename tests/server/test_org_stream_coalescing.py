"""The organisation stream under load: coalesced session.updated, retention with a reset frame."""

from __future__ import annotations

import httpx
import pytest
from server_helpers import frames, wait_until

from sessionscope.models import OrgChange

# Every test here runs on SQLite and on PostgreSQL (see conftest.py).
pytestmark = pytest.mark.usefixtures("database")


def _client(server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"X-API-Key": server.api_key}, timeout=httpx.Timeout(20.0)
    )


@pytest.mark.timeout(60)
def test_appended_events_coalesce_into_few_session_updates(make_server) -> None:
    # A long interval: the ten appends below land well inside one, whatever the machine's load.
    server = make_server(session_update_interval=3.0)
    with _client(server) as api, _client(server) as watcher:
        session_id = api.post("/v1/sessions", json={"title": "busy"}).json()["id"]
        with watcher.stream("GET", "/v1/stream") as response:
            for number in range(10):
                reply = api.post(
                    f"/v1/sessions/{session_id}/events",
                    json={"type": "log", "payload": {"n": number}},
                )
                assert reply.status_code == 201
            updates: list[OrgChange] = []
            for frame in frames(response):
                if not frame.data:
                    continue
                change = OrgChange.model_validate(frame.json())
                if change.kind == "session.updated" and change.session_id == session_id:
                    updates.append(change)
                    assert change.session is not None
                    if change.session.event_count == 11:
                        break
    # The first append is announced at once, the rest coalesce into a trailing frame that
    # carries the newest counters.
    assert 2 <= len(updates) < 10
    assert updates[0].session is not None and updates[0].session.event_count == 2
    assert updates[-1].session is not None and updates[-1].session.last_sequence == 11


@pytest.mark.timeout(60)
def test_resuming_from_before_the_retention_window_gets_a_reset(make_server) -> None:
    server = make_server(org_change_retention=0.2)
    with _client(server) as api:
        first = api.post("/v1/sessions", json={"title": "old news"}).json()["id"]

        def first_frame_after_zero() -> OrgChange | None:
            with api.stream("GET", "/v1/stream", params={"after": 0}) as response:
                for frame in frames(response):
                    if frame.data:
                        change = OrgChange.model_validate(frame.json())
                        return change if change.kind == "stream.reset" else None
                    if frame.comments:
                        return None  # a heartbeat: nothing to replay, nothing pruned yet
            return None

        reset = wait_until(first_frame_after_zero, timeout=30, what="a stream.reset frame")
        assert reset.id > 0 and reset.session_id == ""
        # After the reset the stream goes on live, in order.
        with api.stream("GET", "/v1/stream", params={"after": 0}) as response:
            seen: list[OrgChange] = []
            later = None
            for frame in frames(response):
                if not frame.data:
                    if later is None:
                        later = api.post("/v1/sessions", json={"title": "fresh"}).json()["id"]
                    continue
                seen.append(OrgChange.model_validate(frame.json()))
                if seen[-1].session_id == later and seen[-1].kind == "session.created":
                    break
    assert seen[0].kind == "stream.reset"
    assert first not in {change.session_id for change in seen[1:]}
    ids = [change.id for change in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
