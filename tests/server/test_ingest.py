"""Event ingest: the batch endpoint and group-committed appends (real server, real HTTP)."""

from __future__ import annotations

import asyncio

import httpx
from httpx_sse import connect_sse

from sessionscope.models import Event, Page, Problem, Session


def _session(api: httpx.Client) -> str:
    response = api.post("/v1/sessions", json={"title": "ingest"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_batch_append_returns_each_event_in_order_and_updates_counters(api: httpx.Client) -> None:
    session_id = _session(api)
    before = Session.model_validate(api.get(f"/v1/sessions/{session_id}").json())
    body = {
        "events": [
            {"type": "message.user", "payload": {"content": "first question"}},
            {"type": "log", "payload": {"message": "working"}},
            {
                "type": "message.agent",
                "payload": {"content": "the answer", "usage": {"input_tokens": 7}},
            },
        ]
    }
    response = api.post(f"/v1/sessions/{session_id}/events:batch", json=body)
    assert response.status_code == 201, response.text
    appended = Page[Event].model_validate(response.json()).data
    assert [e.type for e in appended] == ["message.user", "log", "message.agent"]
    first = before.last_sequence + 1
    assert [e.sequence for e in appended] == [first, first + 1, first + 2]
    assert len({e.id for e in appended}) == 3

    stored = api.get(f"/v1/sessions/{session_id}/events", params={"after": before.last_sequence})
    assert [e["id"] for e in stored.json()["data"]] == [e.id for e in appended]
    session = Session.model_validate(api.get(f"/v1/sessions/{session_id}").json())
    assert session.last_sequence == first + 2
    assert session.event_count == before.event_count + 3
    assert session.message_count == before.message_count + 2
    assert session.preview == "first question" and session.output_preview == "the answer"
    assert session.usage.input_tokens == 7 and session.status == "active"

    # The slash spelling is the same endpoint.
    again = api.post(
        f"/v1/sessions/{session_id}/events/batch", json={"events": body["events"][1:2]}
    )
    assert again.status_code == 201 and again.json()["data"][0]["sequence"] == first + 3


def test_batch_append_errors(api: httpx.Client, other_api: httpx.Client) -> None:
    session_id = _session(api)
    path = f"/v1/sessions/{session_id}/events:batch"
    assert api.post(path, json={"events": []}).status_code == 422
    too_many = {"events": [{"type": "log"}] * 1001}
    assert api.post(path, json=too_many).status_code == 422
    blank = api.post(path, json={"events": [{"type": "log"}, {"type": " "}]})
    assert blank.status_code == 422
    assert Problem.model_validate(blank.json()).errors[0]["field"] == "events.1.type"
    assert other_api.post(path, json={"events": [{"type": "log"}]}).status_code == 404
    # Nothing of the refused batches was stored.
    assert api.get(f"/v1/sessions/{session_id}").json()["event_count"] == 1
    assert api.post(f"/v1/sessions/{session_id}/close").status_code == 200
    assert api.post(path, json={"events": [{"type": "log"}]}).status_code == 409


def test_concurrent_appends_each_get_their_own_sequence(server) -> None:
    """Appends arriving together share commits; every reply still names its own event."""
    headers = {"X-API-Key": server.api_key}
    with httpx.Client(base_url=server.url, headers=headers) as api:
        session_ids = [_session(api), _session(api)]
        missing = "ses_does_not_exist"

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as client:
            requests = [
                client.post(
                    f"/v1/sessions/{target}/events",
                    json={"type": "log", "payload": {"n": number}},
                )
                for number in range(60)
                for target in (*session_ids, missing)
            ]
            return await asyncio.gather(*requests)

    replies = asyncio.run(flood())
    refused = [r for r in replies if r.request.url.path.startswith(f"/v1/sessions/{missing}")]
    assert refused and all(r.status_code == 404 for r in refused)
    accepted = [Event.model_validate(r.json()) for r in replies if r not in refused]
    assert all(r.status_code == 201 for r in replies if r not in refused)
    with httpx.Client(base_url=server.url, headers=headers) as api:
        for session_id in session_ids:
            mine = [e for e in accepted if e.session_id == session_id]
            sequences = sorted(e.sequence for e in mine)
            assert sequences == list(range(2, 62))
            stored = api.get(f"/v1/sessions/{session_id}/events", params={"after": 1}).json()
            assert {e["id"]: e["sequence"] for e in stored["data"]} == {
                e.id: e.sequence for e in mine
            }
            session = api.get(f"/v1/sessions/{session_id}").json()
            assert session["last_sequence"] == 61 and session["event_count"] == 61


def test_append_replies_are_the_models_json_and_match_the_stored_and_streamed_events(
    api: httpx.Client,
) -> None:
    session = api.post("/v1/sessions", json={"title": "wire form of appends"}).json()
    base = f"/v1/sessions/{session['id']}"
    # A type with line breaks would forge SSE fields if it reached the event: line as is.
    forged = 'log\ndata: {"forged":true}\nid: 999\r\n\n"ü'
    payload = {"text": 'ünïcode \u2028 "quoted" \\ \x01', "n": [1, 2.5, None, True], "o": {}}
    single = api.post(f"{base}/events", json={"type": "log", "payload": payload})
    assert single.status_code == 201 and single.headers["content-type"] == "application/json"
    assert single.text == Event.model_validate_json(single.text).model_dump_json()
    batch = api.post(
        f"{base}/events:batch",
        json={"events": [{"type": "message.agent", "payload": payload}, {"type": forged}]},
    )
    assert batch.status_code == 201
    assert batch.text == Page[Event].model_validate_json(batch.text).model_dump_json()
    replied = [
        Event.model_validate_json(single.text),
        *Page[Event].model_validate_json(batch.text).data,
    ]
    assert [e.payload for e in replied] == [payload, payload, {}]
    assert replied[2].type == forged
    stored = (
        Page[Event]
        .model_validate(api.get(f"{base}/events", params={"after": replied[0].sequence - 1}).json())
        .data
    )
    assert stored == replied
    # A stream opened afterwards replays them from the database; its frames carry the same JSON.
    # (httpx-sse splits lines as SSE does: httpx's own iter_lines also splits at U+2028.)
    frames: list[Event] = []
    with connect_sse(
        api, "GET", f"{base}/events/stream", params={"after": replied[0].sequence - 1}
    ) as source:
        for sse in source.iter_sse():
            if sse.data and sse.id:
                frames.append(Event.model_validate_json(sse.data))
                assert sse.id == str(frames[-1].sequence)
            if len(frames) == len(replied):
                break
    assert frames == replied


def test_batch_body_errors_name_the_field_and_the_schema_is_documented(
    server, api: httpx.Client
) -> None:
    path = f"/v1/sessions/{_session(api)}/events:batch"
    missing = api.post(path, json={"events": [{"type": "log"}, {"payload": {}}]})
    assert missing.status_code == 422
    assert [e["field"] for e in Problem.model_validate(missing.json()).errors] == ["events.1.type"]
    wrong = api.post(path, json={"events": [{"type": "log", "payload": [1]}]})
    assert wrong.status_code == 422
    assert Problem.model_validate(wrong.json()).errors[0]["field"] == "events.0.payload"
    malformed = api.post(
        path, content=b'{"events": [', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/v1/sessions/{session_id}/events:batch"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["properties"]["events"]["items"] == {"$ref": "#/components/schemas/EventCreate"}
    assert "EventCreate" in spec["components"]["schemas"]
