"""Hostile input at the API's edge: positions the store cannot hold, text that is not Unicode,
numbers that are not JSON, loosely typed decisions, and bodies larger than a client reads."""

from __future__ import annotations

import json

import httpx
import pytest
from server_helpers import frames, wait_until

from sessionscope.backends import BackendConfig, create_backend
from sessionscope.models import (
    MAX_EVENT_BYTES,
    MAX_POSITION,
    MAX_REPLY_BYTES,
    Event,
    Page,
    PendingAction,
)
from sessionscope.server.settings import ServerSettings

TOO_FAR = [str(MAX_POSITION + 1), str(2**64), "9" * 30]


def _session(api: httpx.Client) -> str:
    response = api.post("/v1/sessions", json={"title": "hostile"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _problem(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == [field], response.text


def _post_raw(api: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return api.post(path, content=body, headers={"Content-Type": "application/json"})


# -- positions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", TOO_FAR)
def test_positions_beyond_the_store_are_400_naming_the_parameter(
    api: httpx.Client, value: str
) -> None:
    session_id = _session(api)
    base = f"/v1/sessions/{session_id}"
    for path, params, headers, field in [
        (f"{base}/events", {"after": value}, {}, "after"),
        (f"{base}/events", {"cursor": value}, {}, "cursor"),
        (f"{base}/timeline", {"after": value}, {}, "after"),
        (f"{base}/events/stream", {"after": value}, {}, "after"),
        (f"{base}/events/stream", {}, {"Last-Event-ID": value}, "Last-Event-ID"),
        ("/v1/stream", {"after": value}, {}, "after"),
        ("/v1/stream", {}, {"Last-Event-ID": value}, "Last-Event-ID"),
    ]:
        # Streams answer before any frame: a client sees the refusal, not an aborted stream.
        with api.stream("GET", path, params=params, headers=headers) as response:
            response.read()
            _problem(response, 400, field)


def test_the_largest_position_is_still_served(api: httpx.Client) -> None:
    session_id = _session(api)
    base = f"/v1/sessions/{session_id}"
    last = str(MAX_POSITION)
    page = api.get(f"{base}/events", params={"after": last})
    assert page.status_code == 200 and page.json()["data"] == []
    assert api.get(f"{base}/events", params={"cursor": last}).json()["data"] == []
    assert api.get(f"{base}/timeline", params={"after": last}).json()["data"] == []
    for path in (f"{base}/events/stream", "/v1/stream"):
        with api.stream("GET", path, headers={"Last-Event-ID": last}) as response:
            assert response.status_code == 200
            assert next(frames(response)).id == last


# -- text that is not Unicode ------------------------------------------------------------------


def test_a_lone_surrogate_is_422_naming_the_field(api: httpx.Client) -> None:
    _problem(_post_raw(api, "/v1/sessions", rb'{"title": "a\ud800b"}'), 422, "title")
    session_id = _session(api)
    events = f"/v1/sessions/{session_id}/events"
    _problem(_post_raw(api, events, rb'{"type": "\udfff"}'), 422, "type")
    _problem(
        _post_raw(api, events, rb'{"type": "log", "payload": {"k\uDC00": 1}}'),
        422,
        "payload.k\\udc00",
    )
    _problem(
        _post_raw(api, f"{events}:batch", rb'{"events": [{"type": "log"}, {"type": "x\ud83d"}]}'),
        422,
        "events.1.type",
    )
    # A pair is one character, as JSON means it.
    paired = _post_raw(api, events, rb'{"type": "log", "payload": {"m": "\ud83d\ude00"}}')
    assert paired.status_code == 201 and paired.json()["payload"] == {"m": "\U0001f600"}
    # Nothing of the refused ones was stored.
    assert [e["type"] for e in api.get(events).json()["data"]] == ["session.created", "log"]


def test_bytes_that_are_not_utf8_are_400(api: httpx.Client) -> None:
    # An encoded surrogate (CESU-8) and a stray byte.
    for body in (b'{"title": "\xed\xa0\x80"}', b'{"title": "\xff"}'):
        response = _post_raw(api, "/v1/sessions", body)
        assert response.status_code == 400, response.text


# -- numbers that are not JSON -----------------------------------------------------------------


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
def test_non_finite_numbers_are_refused_at_the_edge(api: httpx.Client, number: bytes) -> None:
    session_id = _session(api)
    events = f"/v1/sessions/{session_id}/events"
    single = _post_raw(api, events, b'{"type": "log", "payload": {"v": %s}}' % number)
    assert single.status_code == 400, single.text
    batch = _post_raw(
        api, f"{events}:batch", b'{"events": [{"type": "log", "payload": [%s]}]}' % number
    )
    assert batch.status_code in (400, 422), batch.text
    action = _post_raw(
        api, f"/v1/sessions/{session_id}/actions", b'{"tool": "t", "preview": {"n": %s}}' % number
    )
    assert action.status_code == 400, action.text
    assert [e["type"] for e in api.get(events).json()["data"]] == ["session.created"]


def test_replies_and_live_frames_are_json(api: httpx.Client) -> None:
    """What looks like a non-finite number but is not one still goes through, and every reply
    and frame parses as strict JSON (no bare NaN)."""
    session_id = _session(api)
    events = f"/v1/sessions/{session_id}/events"
    payload = {"text": "NaN Infinity 1e999 \\ud800", "big": 1e308, "small": 1e-400, "n": 10**200}
    path = f"{events}/stream"
    with api.stream("GET", path) as stream:
        reply = api.post(events, json={"type": "log", "payload": payload})
        assert reply.status_code == 201, reply.text
        for frame in frames(stream):
            if frame.data:
                live = json.loads(frame.data, parse_constant=_refuse)
                if live["type"] == "log":
                    break
    stored = json.loads(reply.text, parse_constant=_refuse)
    assert stored["payload"]["text"] == payload["text"] and stored["payload"]["n"] == 10**200
    assert live == stored


def _refuse(name: str) -> None:
    raise AssertionError(f"{name} in a reply")


# -- decisions ---------------------------------------------------------------------------------


def test_confirmed_must_be_a_json_boolean(api: httpx.Client) -> None:
    session_id = _session(api)
    response = api.post(f"/v1/sessions/{session_id}/actions", json={"tool": "rm"})
    action = PendingAction.model_validate(response.json())
    path = f"/v1/sessions/{session_id}/actions/{action.id}"
    for loose in ["yes", "on", 1, "true", "no", "off", 0, "false", None, [], {}]:
        _problem(api.post(path, json={"confirmed": loose}), 422, "confirmed")
    _problem(api.post(path, json={}), 422, "confirmed")
    assert api.get(path).json()["status"] == "pending"
    assert api.post(path, json={"confirmed": False}).json()["status"] == "cancelled"


def test_a_repeated_cancel_replays_cancelled(api: httpx.Client) -> None:
    session_id = _session(api)
    action = PendingAction.model_validate(
        api.post(f"/v1/sessions/{session_id}/actions", json={"tool": "rm"}).json()
    )
    path = f"/v1/sessions/{session_id}/actions/{action.id}"
    first = api.post(path, json={"confirmed": False})
    again = api.post(path, json={"confirmed": False})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()


def test_a_repeat_after_completion_replays_the_final_state(api: httpx.Client) -> None:
    session_id = _session(api)
    action = PendingAction.model_validate(
        api.post(f"/v1/sessions/{session_id}/actions", json={"tool": "deploy"}).json()
    )
    path = f"/v1/sessions/{session_id}/actions/{action.id}"
    assert api.post(path, json={"confirmed": True}).json()["status"] == "processing"
    wait_until(lambda: api.get(path).json()["status"] == "completed", what="completion")
    again = api.post(path, json={"confirmed": True})
    assert again.status_code == 200 and again.json()["status"] == "completed"


# -- one size limit ----------------------------------------------------------------------------


def test_the_limits_are_shared_by_server_and_client() -> None:
    settings = ServerSettings()
    assert settings.max_reply_bytes == MAX_REPLY_BYTES
    assert settings.max_event_bytes == MAX_EVENT_BYTES < MAX_REPLY_BYTES // 2
    backend = create_backend(BackendConfig(url="http://127.0.0.1:9", api_key="k"))
    assert backend._http.max_response_bytes == MAX_REPLY_BYTES  # type: ignore[attr-defined]


def test_events_larger_than_a_client_reads_are_413_and_pages_fit(make_server) -> None:
    server = make_server(max_event_bytes=20_000, max_reply_bytes=60_000)
    headers = {"X-API-Key": server.api_key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        session_id = _session(api)
        events = f"/v1/sessions/{session_id}/events"
        too_big = api.post(events, json={"type": "log", "payload": {"x": "x" * 25_000}})
        assert too_big.status_code == 413, too_big.text
        assert (
            api.post(f"{events}:batch", json={"events": [{"type": "log"}] * 2_000}).status_code
            == 413
        )
        message = api.post(f"/v1/sessions/{session_id}/messages", json={"content": "m" * 25_000})
        assert message.status_code == 413
        # Artifact uploads keep their own, larger limit.
        upload = api.post(
            f"/v1/sessions/{session_id}/artifacts",
            json={"name": "big.txt", "data": "QUJD" * 10_000},
        )
        assert upload.status_code == 201, upload.text
        for n in range(12):
            assert (
                api.post(
                    events, json={"type": "log", "payload": {"n": n, "x": "y" * 15_000}}
                ).status_code
                == 201
            )
        sequences: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, object] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            response = api.get(events, params=params)
            assert len(response.content) <= 60_000
            page = Page[Event].model_validate(response.json())
            sequences += [event.sequence for event in page.data]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) == 14
        assert pages >= 4
