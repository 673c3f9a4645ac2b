"""Events, timeline, replay and the two live streams (resume without gaps or duplicates)."""

from __future__ import annotations

import httpx
import pytest
from server_helpers import data_frames, frames

from sessionscope.models import Event, OrgChange, Page, Replay, TimelineEntry

# Every test here runs on SQLite and on PostgreSQL (see conftest.py).
pytestmark = pytest.mark.usefixtures("database")


def _session(api: httpx.Client, **body: object) -> str:
    response = api.post("/v1/sessions", json={"title": "events", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _append(api: httpx.Client, session_id: str, event_type: str, **payload: object) -> Event:
    response = api.post(
        f"/v1/sessions/{session_id}/events", json={"type": event_type, "payload": payload}
    )
    assert response.status_code == 201, response.text
    return Event.model_validate(response.json())


def _stream(server, path: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"X-API-Key": server.api_key, **headers},
        timeout=httpx.Timeout(10.0),
    )


def test_list_get_hide_unhide_delete(api: httpx.Client) -> None:
    session_id = _session(api)
    appended = [_append(api, session_id, "log", message=f"line {n}") for n in range(5)]
    sequences = [event.sequence for event in appended]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5

    page = Page[Event].model_validate(
        api.get(f"/v1/sessions/{session_id}/events", params={"after": 1, "limit": 3}).json()
    )
    assert [e.sequence for e in page.data] == [2, 3, 4] and page.next_cursor == "4"
    rest = Page[Event].model_validate(
        api.get(f"/v1/sessions/{session_id}/events", params={"cursor": page.next_cursor}).json()
    )
    assert [e.sequence for e in rest.data] == [5, 6] and rest.next_cursor is None

    only_logs = api.get(f"/v1/sessions/{session_id}/events", params={"types": "log"}).json()
    assert {e["type"] for e in only_logs["data"]} == {"log"} and len(only_logs["data"]) == 5

    target = appended[1]
    base = f"/v1/sessions/{session_id}/events/{target.id}"
    assert Event.model_validate(api.get(base).json()) == target
    hidden = api.post(f"{base}/hide").json()
    assert hidden["hidden"] is True and hidden["hide_reason"] == "manual"
    visible = api.get(f"/v1/sessions/{session_id}/events").json()["data"]
    assert target.id not in {e["id"] for e in visible}
    everything = api.get(
        f"/v1/sessions/{session_id}/events", params={"include_hidden": True}
    ).json()["data"]
    assert target.id in {e["id"] for e in everything}
    assert api.post(f"{base}/unhide").json()["hidden"] is False

    assert api.delete(base).status_code == 204
    assert api.get(base).status_code == 404
    assert api.post(f"{base}/hide").status_code == 404
    # Sequence numbers only grow, even after a deletion (hide, unhide and delete each took one
    # for the event announcing them, and the delete one more for its audit record).
    assert _append(api, session_id, "log").sequence == appended[-1].sequence + 5


def test_event_errors(api: httpx.Client) -> None:
    session_id = _session(api)
    assert api.get("/v1/sessions/ses_missing/events").status_code == 404
    assert api.get(f"/v1/sessions/{session_id}/events/evt_missing").status_code == 404
    response = api.get(f"/v1/sessions/{session_id}/events", params={"limit": 1001})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "limit"
    response = api.post(f"/v1/sessions/{session_id}/events", json={"payload": {}})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "type"
    response = api.get(f"/v1/sessions/{session_id}/events/stream", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Last-Event-ID"


def test_timeline_and_replay_pair_tool_calls(api: httpx.Client) -> None:
    session_id = _session(api, prompt="find flights")
    _append(api, session_id, "tool.started", tool="search", call_id="c1", input={"q": "LIS"})
    _append(api, session_id, "message.agent", content="searching")
    _append(api, session_id, "tool.completed", tool="search", call_id="c1", output=["TP123"])

    timeline = (
        Page[TimelineEntry]
        .model_validate(api.get(f"/v1/sessions/{session_id}/timeline").json())
        .data
    )
    kinds = [entry.kind for entry in timeline]
    assert kinds == ["session.created", "message.user", "tool", "message.agent"]
    tool_entry = timeline[2]
    assert tool_entry.summary == "search completed" and tool_entry.duration_ms is not None

    response = api.post(f"/v1/sessions/{session_id}/replay")
    assert response.status_code == 200
    replay = Replay.model_validate(response.json())
    assert [step.action for step in replay.steps] == ["message.user", "search", "message.agent"]
    assert [step.index for step in replay.steps] == [0, 1, 2]
    search = replay.steps[1]
    assert search.input == {"q": "LIS"} and search.output == ["TP123"] and search.duration_ms >= 0


@pytest.mark.timeout(30)
def test_session_stream_resumes_without_gap_or_duplicate(server, api: httpx.Client) -> None:
    session_id = _session(api)  # sequence 1: session.created
    path = f"/v1/sessions/{session_id}/events/stream"
    received: list[int] = []
    with _stream(server, path) as client:
        with client.stream("GET", path) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            iterator = frames(response)
            first = next(iterator)
            assert first.retry == server.settings.sse_retry_ms and first.id == "0"
            for n in range(3):
                _append(api, session_id, "log", n=n)
            for frame in iterator:
                if frame.data:
                    assert frame.id == str(frame.json()["sequence"])
                    received.append(int(frame.id))
                    if len(received) == 4:
                        break
        # The connection is gone now. Events keep coming while the client is away.
        for n in range(3, 6):
            _append(api, session_id, "log", n=n)
        headers = {"Last-Event-ID": str(received[-1])}
        with client.stream("GET", path, headers=headers) as response:
            _append(api, session_id, "log", n=6)
            for frame in data_frames(response, 4):
                event = Event.model_validate(frame.json())
                assert frame.event == event.type
                received.append(event.sequence)
    assert received == list(range(1, 9))


@pytest.mark.timeout(30)
def test_stream_after_query_and_heartbeat(make_server) -> None:
    server = make_server(heartbeat_interval=0.05)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        session_id = _session(api)
        _append(api, session_id, "log")
        path = f"/v1/sessions/{session_id}/events/stream"
        with api.stream("GET", path, params={"after": 1}) as response:
            seen = []
            for frame in frames(response):
                seen.append(frame)
                if frame.comments:
                    break
    data = [frame for frame in seen if frame.data]
    assert [frame.id for frame in data] == ["2"]
    assert seen[-1].comments and not seen[-1].data


@pytest.mark.timeout(30)
def test_org_stream_reports_changes_and_resumes(server, api: httpx.Client) -> None:
    with _stream(server, "/v1/stream") as client:
        with client.stream("GET", "/v1/stream") as response:
            assert response.status_code == 200
            session_id = _session(api)
            api.patch(f"/v1/sessions/{session_id}", json={"title": "renamed"})
            changes: list[OrgChange] = []
            for frame in frames(response):
                change = OrgChange.model_validate(frame.json()) if frame.data else None
                # Sessions of earlier tests on this shared server may still get their trailing
                # (coalesced) session.updated, up to session_update_interval later.
                if change is not None and change.session_id == session_id:
                    changes.append(change)
                    if len(changes) == 2:
                        break
        assert [change.kind for change in changes] == ["session.created", "session.updated"]
        assert all(change.session_id == session_id for change in changes)
        assert changes[0].session is not None and changes[0].session.event_count == 1
        assert changes[1].session is not None and changes[1].session.title == "renamed"
        ids = [change.id for change in changes]
        assert ids[1] > ids[0]

        action = api.post(f"/v1/sessions/{session_id}/actions", json={"tool": "deploy"}).json()
        api.delete(f"/v1/sessions/{session_id}")
        with client.stream("GET", "/v1/stream", params={"after": ids[-1]}) as response:
            resumed: list[OrgChange] = []
            for frame in frames(response):
                if frame.data:
                    resumed.append(OrgChange.model_validate(frame.json()))
                    if resumed[-1].kind == "session.deleted":
                        break
    assert resumed[0].id == ids[-1] + 1
    assert [c.id for c in resumed] == list(range(ids[-1] + 1, ids[-1] + 1 + len(resumed)))
    kinds = [change.kind for change in resumed]
    assert "action.pending" in kinds and "action.resolved" in kinds
    pending = next(change for change in resumed if change.kind == "action.pending")
    assert pending.action is not None and pending.action.id == action["id"]


@pytest.mark.timeout(30)
def test_org_stream_is_scoped_to_the_organisation(server, api: httpx.Client, other_api) -> None:
    with other_api.stream("GET", "/v1/stream") as response:
        _session(api)
        theirs = _session(other_api)
        first = OrgChange.model_validate(data_frames(response, 1)[0].json())
    assert first.session_id == theirs


@pytest.mark.timeout(30)
def test_hide_unhide_delete_are_announced_on_the_session_stream(server, api: httpx.Client) -> None:
    session_id = _session(api)
    target = _append(api, session_id, "message.agent", content="oops")
    base = f"/v1/sessions/{session_id}/events/{target.id}"
    assert api.post(f"{base}/hide").status_code == 200
    assert api.post(f"{base}/unhide").status_code == 200
    assert api.delete(base).status_code == 204
    status_before = api.get(f"/v1/sessions/{session_id}").json()["status"]

    # A stream that resumes from before them replays the three announcements in order.
    with _stream(server, "") as client:
        path = f"/v1/sessions/{session_id}/events/stream"
        with client.stream("GET", path, params={"after": target.sequence}) as response:
            announced = [Event.model_validate(f.json()) for f in data_frames(response, 3)]
    assert [e.type for e in announced] == ["event.hidden", "event.unhidden", "event.deleted"]
    assert [e.sequence for e in announced] == [target.sequence + n for n in (1, 2, 3)]
    assert all(e.payload == {"event_id": target.id, "sequence": target.sequence} for e in announced)
    # Bookkeeping is not agent activity: the timeline leaves it out and the status holds.
    entries = api.get(f"/v1/sessions/{session_id}/timeline").json()["data"]
    assert not [entry for entry in entries if entry["kind"].startswith("event.")]
    assert status_before == "active"
