"""Sessions, auth, errors and organisation isolation, over real HTTP."""

from __future__ import annotations

import httpx

from sessionscope.models import CloseResult, Health, Page, Problem, Session


def _create(api: httpx.Client, **body: object) -> Session:
    response = api.post("/v1/sessions", json={"title": "t", **body})
    assert response.status_code == 201, response.text
    return Session.model_validate(response.json())


def _problem(response: httpx.Response, status: int) -> Problem:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = Problem.model_validate(response.json())
    assert problem.status == status and problem.title and problem.detail
    return problem


def test_health_needs_no_key(server) -> None:
    response = httpx.get(f"{server.url}/v1/health")
    assert response.status_code == 200
    assert Health.model_validate(response.json()).status == "ok"


def test_openapi_is_served(server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/sessions/{session_id}/actions/{action_id}" in spec["paths"]


def test_every_route_needs_a_valid_key(server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
        response = httpx.get(f"{server.url}/v1/sessions", headers=headers)
        _problem(response, 401)
    assert httpx.get(f"{server.url}/v1/sessions", headers={"X-API-Key": server.api_key}).is_success


def test_create_get_patch_delete(api: httpx.Client) -> None:
    session = _create(
        api, title="Refund", agent_id="agent-1", task_id="task-9", tags=["vip"], prompt="Hi"
    )
    assert session.status == "active" and session.message_count == 1
    assert session.preview == "Hi" and session.last_sequence == 2

    fetched = Session.model_validate(api.get(f"/v1/sessions/{session.id}").json())
    assert fetched.id == session.id and fetched.tags == ["vip"]

    patched = api.patch(
        f"/v1/sessions/{session.id}",
        json={
            "title": "Refund #2",
            "tags": ["vip", "eu"],
            "metadata": {"k": 1},
            "status": "paused",
            "context_variables": {"CUSTOMER_ID": "42"},
        },
    )
    assert patched.status_code == 200, patched.text
    updated = Session.model_validate(patched.json())
    assert updated.title == "Refund #2" and updated.tags == ["vip", "eu"]
    assert updated.status == "paused" and updated.context_variables == {"CUSTOMER_ID": "42"}

    assert api.delete(f"/v1/sessions/{session.id}").status_code == 204
    _problem(api.get(f"/v1/sessions/{session.id}"), 404)
    _problem(api.delete(f"/v1/sessions/{session.id}"), 404)


def test_context_variable_violations_name_the_key(api: httpx.Client) -> None:
    session = _create(api)
    problem = _problem(
        api.patch(f"/v1/sessions/{session.id}", json={"context_variables": {"lower_case": "x"}}),
        422,
    )
    assert "lower_case" in (problem.detail or "")
    assert problem.errors[0]["field"] == "context_variables"
    problem = _problem(api.post("/v1/sessions", json={"context_variables": {"Bad-Key": "x"}}), 422)
    assert "Bad-Key" in (problem.detail or "")
    too_many = {f"KEY_{n}": "v" for n in range(21)}
    _problem(api.patch(f"/v1/sessions/{session.id}", json={"context_variables": too_many}), 422)
    too_big = {"BIG": "x" * 5000}
    _problem(api.patch(f"/v1/sessions/{session.id}", json={"context_variables": too_big}), 422)


def test_bad_input_is_400_or_422_naming_the_field(api: httpx.Client) -> None:
    problem = _problem(api.get("/v1/sessions", params={"limit": 500}), 422)
    assert problem.errors[0]["field"] == "limit"
    problem = _problem(api.get("/v1/sessions", params={"status": "sleeping"}), 422)
    assert problem.errors[0]["field"] == "status"
    problem = _problem(api.get("/v1/sessions", params={"cursor": "!!not-a-cursor"}), 400)
    assert problem.errors[0]["field"] == "cursor"
    _problem(
        api.post(
            "/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    problem = _problem(api.post("/v1/sessions", json={"title": 5}), 422)
    assert problem.errors[0]["field"] == "title"
    session = _create(api)
    problem = _problem(api.post(f"/v1/sessions/{session.id}/messages", json={}), 422)
    assert problem.errors[0]["field"] == "content"


def test_filters_and_text_search(api: httpx.Client) -> None:
    marker = "zebra-unique-marker"
    a = _create(api, title=f"{marker} alpha", agent_id="filter-agent", tags=["t-filter"])
    b = _create(api, title="beta", agent_id="filter-agent", task_id="filter-task", prompt=marker)
    api.patch(f"/v1/sessions/{b.id}", json={"status": "idle"})

    def ids(**params: object) -> list[str]:
        page = Page[Session].model_validate(api.get("/v1/sessions", params=params).json())
        return [s.id for s in page.data]

    assert ids(agent_id="filter-agent") == [b.id, a.id]
    assert ids(task_id="filter-task") == [b.id]
    assert ids(tag="t-filter") == [a.id]
    assert ids(q=marker.upper()) == [b.id, a.id]
    assert ids(agent_id="filter-agent", status="idle") == [b.id]
    assert ids(agent_id="filter-agent", status="idle,created") == [b.id, a.id]
    assert ids(q="100%_literal") == []


def test_close_and_complete(api: httpx.Client) -> None:
    session = _create(api, prompt="bill me")
    completed = api.post(f"/v1/sessions/{session.id}/complete")
    assert completed.status_code == 200 and completed.json()["status"] == "completed"
    assert completed.json()["finished_at"] is not None

    closed = api.post(f"/v1/sessions/{session.id}/close")
    assert closed.status_code == 200, closed.text
    result = CloseResult.model_validate(closed.json())
    assert result.billable is True and result.duration_seconds >= 0 and result.closed_at
    _problem(api.post(f"/v1/sessions/{session.id}/close"), 409)
    _problem(api.post(f"/v1/sessions/{session.id}/messages", json={"content": "hello?"}), 409)
    assert api.get(f"/v1/sessions/{session.id}").json()["status"] == "closed"


def test_patching_status_to_closed_closes_properly(api: httpx.Client) -> None:
    session = _create(api)
    patched = api.patch(f"/v1/sessions/{session.id}", json={"status": "closed"}).json()
    assert patched["status"] == "closed" and patched["closed_at"] is not None
    assert patched["billable"] is False and patched["duration_seconds"] is not None


def test_messages_update_counters_and_previews(api: httpx.Client) -> None:
    session = _create(api)
    sent = api.post(f"/v1/sessions/{session.id}/messages", json={"content": "first question"})
    assert sent.status_code == 201 and sent.json()["type"] == "message.user"
    api.post(
        f"/v1/sessions/{session.id}/events",
        json={
            "type": "message.agent",
            "payload": {
                "content": "the answer",
                "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01},
            },
        },
    )
    fetched = Session.model_validate(api.get(f"/v1/sessions/{session.id}").json())
    assert fetched.message_count == 2 and fetched.event_count == 3
    assert fetched.preview == "first question" and fetched.output_preview == "the answer"
    assert fetched.usage.total_tokens == 15 and fetched.usage.cost_usd == 0.01
    assert fetched.last_active_at is not None


def test_other_organisations_objects_are_404(api: httpx.Client, other_api: httpx.Client) -> None:
    session = _create(api)
    base = f"/v1/sessions/{session.id}"
    event_id = api.get(f"{base}/events").json()["data"][0]["id"]
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"title": "x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/close", None),
        ("POST", f"{base}/complete", None),
        ("POST", f"{base}/messages", {"content": "x"}),
        ("GET", f"{base}/events", None),
        ("POST", f"{base}/events", {"type": "log"}),
        ("GET", f"{base}/events/{event_id}", None),
        ("POST", f"{base}/events/{event_id}/hide", None),
        ("DELETE", f"{base}/events/{event_id}", None),
        ("GET", f"{base}/events/stream", None),
        ("GET", f"{base}/timeline", None),
        ("POST", f"{base}/replay", None),
        ("GET", f"{base}/artifacts", None),
        ("GET", f"{base}/tool-calls", None),
        ("GET", f"{base}/actions", None),
        ("POST", f"{base}/actions", {"tool": "deploy"}),
    ]:
        response = other_api.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    listed = other_api.get("/v1/sessions", params={"limit": 200}).json()["data"]
    assert session.id not in {s["id"] for s in listed}
    assert api.get(base).status_code == 200


def test_total_comes_with_the_first_page_only_and_follows_inserts(api: httpx.Client) -> None:
    tag = "total-first-page"
    for index in range(3):
        _create(api, title=f"counted {index}", tags=[tag])
    first = Page[Session].model_validate(
        api.get("/v1/sessions", params={"tag": tag, "limit": 2}).json()
    )
    assert first.total == 3 and first.next_cursor
    second = Page[Session].model_validate(
        api.get("/v1/sessions", params={"tag": tag, "limit": 2, "cursor": first.next_cursor}).json()
    )
    assert second.total is None and len(second.data) == 1
    # A cached count never hides a session created through the API.
    _create(api, title="counted 3", tags=[tag])
    again = api.get("/v1/sessions", params={"tag": tag, "limit": 2}).json()
    assert again["total"] == 4


def test_a_status_filter_naming_no_status_is_refused(api: httpx.Client) -> None:
    for blank in ("", " ", ",", " , "):
        response = api.get("/v1/sessions", params={"status": blank})
        assert response.status_code in (400, 422), (blank, response.status_code)
        assert "status" in response.text
