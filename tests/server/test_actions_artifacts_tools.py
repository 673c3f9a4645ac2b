"""Pending actions (decisions, idempotency, expiry), artifacts (content, ranges), tool calls."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from server_helpers import wait_until

from sessionscope.models import (
    ActionDecisionResult,
    Artifact,
    ArtifactWithContent,
    Page,
    PendingAction,
    ToolCall,
)

# Every test here runs on SQLite and on PostgreSQL (see conftest.py).
pytestmark = pytest.mark.usefixtures("database")


def _session(api: httpx.Client) -> str:
    response = api.post("/v1/sessions", json={"title": "actions", "prompt": "go"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _propose(api: httpx.Client, session_id: str, **body: object) -> PendingAction:
    spec = {"tool": "send_email", "preview": {"to": "ops@example.com", "subject": "hi"}, **body}
    response = api.post(f"/v1/sessions/{session_id}/actions", json=spec)
    assert response.status_code == 201, response.text
    return PendingAction.model_validate(response.json())


def _event_types(api: httpx.Client, session_id: str) -> list[str]:
    events = api.get(f"/v1/sessions/{session_id}/events", params={"limit": 1000}).json()
    return [event["type"] for event in events["data"]]


def _action_status(api: httpx.Client, session_id: str, action_id: str) -> str:
    return str(api.get(f"/v1/sessions/{session_id}/actions/{action_id}").json()["status"])


def test_pending_action_shows_in_inbox_and_session(api: httpx.Client) -> None:
    session_id = _session(api)
    action = _propose(api, session_id, destructive=True)
    assert action.status == "pending" and action.session_title == "actions"
    session = api.get(f"/v1/sessions/{session_id}").json()
    assert session["status"] == "waiting" and session["pending_action_count"] == 1

    inbox = Page[PendingAction].model_validate(
        api.get("/v1/actions", params={"status": "pending"}).json()
    )
    assert action.id in [a.id for a in inbox.data]
    created = [a.created_at for a in inbox.data]
    assert created == sorted(created)
    listed = api.get(f"/v1/sessions/{session_id}/actions").json()["data"]
    assert [a["id"] for a in listed] == [action.id] and listed[0]["destructive"] is True
    assert "action.pending" in _event_types(api, session_id)
    assert api.get("/v1/actions", params={"status": "bogus"}).status_code == 422


def test_cancel_is_200_and_final(api: httpx.Client) -> None:
    session_id = _session(api)
    action = _propose(api, session_id)
    path = f"/v1/sessions/{session_id}/actions/{action.id}"
    response = api.post(path, json={"confirmed": False})
    assert response.status_code == 200
    assert ActionDecisionResult.model_validate(response.json()).status == "cancelled"
    assert api.post(path, json={"confirmed": False}).status_code == 200
    conflict = api.post(path, json={"confirmed": True})
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    session = api.get(f"/v1/sessions/{session_id}").json()
    assert session["pending_action_count"] == 0 and session["status"] == "active"
    assert "action.cancelled" in _event_types(api, session_id)


def test_confirm_is_idempotent_and_completes_later(api: httpx.Client) -> None:
    session_id = _session(api)
    action = _propose(api, session_id)
    path = f"/v1/sessions/{session_id}/actions/{action.id}"
    headers = {"Idempotency-Key": "decision-1"}
    first = api.post(path, json={"confirmed": True}, headers=headers)
    assert first.status_code == 202
    result = ActionDecisionResult.model_validate(first.json())
    assert result.status == "processing" and result.callback_id

    replay = api.post(path, json={"confirmed": True}, headers=headers)
    assert replay.status_code == 202 and replay.json() == first.json()
    assert api.post(path, json={"confirmed": False}, headers=headers).status_code == 409

    wait_until(lambda: _action_status(api, session_id, action.id) == "completed", what="done")
    types = _event_types(api, session_id)
    assert types.count("action.confirmed") == 1 and types.count("action.completed") == 1
    completed = api.get(path).json()
    assert completed["outcome"] and completed["callback_id"] == result.callback_id
    # A repeat after the outcome arrived says where the action ended, not "processing": the
    # decision is still the first one (same callback), and nothing new happens.
    again = api.post(path, json={"confirmed": True}, headers=headers)
    assert again.status_code == 200, again.text
    repeated = ActionDecisionResult.model_validate(again.json())
    assert repeated.status == "completed" and repeated.callback_id == result.callback_id
    assert _event_types(api, session_id).count("action.completed") == 1


def test_action_expires_and_then_is_gone(api: httpx.Client) -> None:
    session_id = _session(api)
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    action = _propose(api, session_id, expires_at=soon.isoformat())
    wait_until(lambda: _action_status(api, session_id, action.id) == "expired", what="expiry")
    assert "action.expired" in _event_types(api, session_id)
    response = api.post(f"/v1/sessions/{session_id}/actions/{action.id}", json={"confirmed": True})
    assert response.status_code == 410
    assert api.get(f"/v1/sessions/{session_id}").json()["pending_action_count"] == 0


def test_decision_on_an_overdue_action_is_410_even_before_the_sweep(make_server) -> None:
    server = make_server(sweep_interval=3600)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        session_id = _session(api)
        past = datetime.now(UTC) - timedelta(seconds=1)
        action = _propose(api, session_id, expires_at=past.isoformat())
        path = f"/v1/sessions/{session_id}/actions/{action.id}"
        assert api.post(path, json={"confirmed": False}).status_code == 410
        assert api.get(path).json()["status"] == "expired"


def test_action_errors(api: httpx.Client, other_api: httpx.Client) -> None:
    session_id = _session(api)
    action = _propose(api, session_id)
    path = f"/v1/sessions/{session_id}/actions/{action.id}"
    assert other_api.post(path, json={"confirmed": True}).status_code == 404
    assert other_api.get(path).status_code == 404
    assert action.id not in [a["id"] for a in other_api.get("/v1/actions").json()["data"]]
    missing = api.post(f"/v1/sessions/{session_id}/actions/act_nope", json={"confirmed": True})
    assert missing.status_code == 404
    bad = api.post(path, json={"confirmed": "perhaps"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "confirmed"
    bad = api.post(f"/v1/sessions/{session_id}/actions", json={"preview": {}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "tool"


def test_closing_a_session_cancels_its_pending_actions(api: httpx.Client) -> None:
    session_id = _session(api)
    action = _propose(api, session_id)
    assert api.post(f"/v1/sessions/{session_id}/close").status_code == 200
    assert _action_status(api, session_id, action.id) == "cancelled"
    late = api.post(f"/v1/sessions/{session_id}/actions/{action.id}", json={"confirmed": True})
    assert late.status_code == 409


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _upload(api: httpx.Client, session_id: str, name: str, mime: str, data: bytes) -> Artifact:
    response = api.post(
        f"/v1/sessions/{session_id}/artifacts",
        json={"name": name, "mime_type": mime, "data": base64.b64encode(data).decode()},
    )
    assert response.status_code == 201, response.text
    return Artifact.model_validate(response.json())


def test_artifacts_metadata_content_and_ranges(api: httpx.Client) -> None:
    session_id = _session(api)
    text = "hello, artifact\n" * 10
    first = _upload(api, session_id, "notes.md", "text/markdown", text.encode())
    image = _upload(api, session_id, "pixel.png", "image/png", PNG)
    assert image.size_bytes == len(PNG)
    assert image.checksum_sha256 == hashlib.sha256(PNG).hexdigest()
    assert "artifact.created" in _event_types(api, session_id)

    base = f"/v1/sessions/{session_id}/artifacts"
    page = Page[Artifact].model_validate(api.get(base, params={"limit": 1}).json())
    assert [a.id for a in page.data] == [first.id] and page.next_cursor and page.total == 2
    page2 = Page[Artifact].model_validate(
        api.get(base, params={"limit": 1, "cursor": page.next_cursor}).json()
    )
    assert [a.id for a in page2.data] == [image.id] and page2.next_cursor is None
    assert "data" not in page.data[0].model_dump()

    with_content = ArtifactWithContent.model_validate(api.get(f"{base}/{image.id}").json())
    assert base64.b64decode(with_content.data) == PNG

    content = api.get(f"{base}/{image.id}/content")
    assert content.status_code == 200 and content.content == PNG
    assert content.headers["content-type"] == "image/png"
    assert content.headers["accept-ranges"] == "bytes"

    ranged = api.get(f"{base}/{first.id}/content", headers={"Range": "bytes=7-14"})
    assert ranged.status_code == 206 and ranged.content == text.encode()[7:15]
    assert ranged.headers["content-range"] == f"bytes 7-14/{len(text)}"
    assert ranged.headers["content-type"].startswith("text/markdown")
    tail = api.get(f"{base}/{first.id}/content", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == text.encode()[-5:]
    open_ended = api.get(f"{base}/{first.id}/content", headers={"Range": "bytes=150-"})
    assert open_ended.content == text.encode()[150:]
    outside = api.get(f"{base}/{first.id}/content", headers={"Range": "bytes=9999-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(text)}"


def test_artifact_errors(api: httpx.Client, other_api: httpx.Client) -> None:
    session_id = _session(api)
    artifact = _upload(api, session_id, "a.bin", "application/octet-stream", b"\x00\x01")
    base = f"/v1/sessions/{session_id}/artifacts"
    assert other_api.get(f"{base}/{artifact.id}").status_code == 404
    assert other_api.get(f"{base}/{artifact.id}/content").status_code == 404
    assert api.get(f"{base}/art_missing/content").status_code == 404
    bad = api.post(base, json={"name": "x", "data": "***not base64***"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "data"
    bad = api.post(base, json={"name": "", "data": ""})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"


def test_tool_calls_with_secret_arguments(api: httpx.Client, other_api: httpx.Client) -> None:
    session_id = _session(api)
    response = api.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={
            "tool": "fetch_invoice",
            "arguments": [
                {"name": "invoice", "value": "INV-7"},
                {"name": "token", "value": "tok-SECRET-1", "secret": True},
            ],
        },
    )
    assert response.status_code == 201, response.text
    call = ToolCall.model_validate(response.json())
    base = f"/v1/sessions/{session_id}/tool-calls"
    listed = Page[ToolCall].model_validate(api.get(base).json()).data
    assert [c.id for c in listed] == [call.id]
    assert [(a.name, a.secret) for a in listed[0].arguments] == [
        ("invoice", False),
        ("token", True),
    ]
    # The event log never carries the secret value.
    events = api.get(f"/v1/sessions/{session_id}/events").json()["data"]
    requested = next(e for e in events if e["type"] == "tool_call.requested")
    assert "tok-SECRET-1" not in str(requested)

    result_path = f"{base}/{call.id}/result"
    assert other_api.post(result_path, json={"output": 1}).status_code == 404
    headers = {"Idempotency-Key": "tool-result-1"}
    done = api.post(result_path, json={"output": {"total": 12}}, headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    again = api.post(result_path, json={"output": {"total": 12}}, headers=headers)
    assert again.status_code == 200 and again.json() == done.json()
    assert api.post(result_path, json={"output": 3}).status_code == 409
    assert api.get(base).json()["data"] == []
    assert "tool_call.result" in _event_types(api, session_id)
    assert api.post(f"{base}/call_missing/result", json={}).status_code == 404


@pytest.mark.timeout(60)
def test_simulated_server_produces_sessions(make_server) -> None:
    server = make_server(simulate=True, rate=50.0, seed=3)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        wait_until(lambda: api.get("/v1/sessions").json()["total"] > 0, timeout=30, what="sim")
