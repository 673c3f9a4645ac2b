"""The OpenAPI document says what the API does: every error status as problem+json, positions
and cursors typed, the context-variable rule, and a 405 that names every method of its path."""

from __future__ import annotations

from typing import Any

import httpx

from sessionscope.models import MAX_POSITION

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _document(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _problems(operation: dict[str, Any]) -> set[int]:
    found = set()
    for status, response in operation["responses"].items():
        content = response.get("content", {})
        if "application/problem+json" in content:
            assert content["application/problem+json"]["schema"] == PROBLEM
            found.add(int(status))
    return found


def test_every_operation_declares_its_errors_as_problems(api: httpx.Client) -> None:
    document = _document(api)
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            problems = _problems(operation)
            if path == "/v1/health":
                assert problems == set()
                continue
            where = f"{method.upper()} {path}"
            assert {400, 401, 403} <= problems, where
            if "{" in path:
                assert 404 in problems, where
            if "requestBody" in operation:
                assert {413, 422} <= problems, where
    decide = document["paths"]["/v1/sessions/{session_id}/actions/{action_id}"]["post"]
    assert {409, 410} <= _problems(decide)
    content = document["paths"]["/v1/sessions/{session_id}/artifacts/{artifact_id}/content"]
    assert 416 in _problems(content["get"])
    stream = document["paths"]["/v1/stream"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream


def test_positions_and_cursors_are_typed(api: httpx.Client) -> None:
    paths = _document(api)["paths"]

    def parameter(path: str, name: str) -> dict[str, Any]:
        for item in paths[path]["get"]["parameters"]:
            if item["name"] == name:
                return dict(item["schema"])
        raise AssertionError(f"{path} has no {name}")

    def integer(schema: dict[str, Any]) -> dict[str, Any]:
        options = schema.get("anyOf", [schema])
        return next(option for option in options if option.get("type") == "integer")

    for path in ("/v1/stream", "/v1/sessions/{session_id}/events/stream"):
        for name in ("after", "Last-Event-ID"):
            schema = integer(parameter(path, name))
            assert schema["minimum"] == 0 and schema["maximum"] == MAX_POSITION
    events = "/v1/sessions/{session_id}/events"
    assert integer(parameter(events, "after"))["maximum"] == MAX_POSITION
    cursor = parameter(events, "cursor")["anyOf"][0]
    assert cursor["type"] == "string" and cursor["pattern"] == "^[0-9]{1,19}$"


def test_the_variable_key_rule_is_stated(api: httpx.Client) -> None:
    schemas = _document(api)["components"]["schemas"]
    for name in ("SessionCreate", "SessionUpdate"):
        variables = schemas[name]["properties"]["context_variables"]
        assert variables["propertyNames"]["pattern"].startswith("^[A-Z]")
        assert variables["maxProperties"] == 20 and "4096 bytes" in variables["description"]


def test_405_lists_every_method_of_the_path(api: httpx.Client) -> None:
    for path, methods in [
        ("/v1/sessions", {"GET", "POST"}),
        ("/v1/sessions/ses_x", {"GET", "PATCH", "DELETE"}),
        ("/v1/sessions/ses_x/actions/act_x", {"GET", "POST"}),
        ("/v1/sessions/ses_x/events/evt_x", {"GET", "DELETE"}),
        # The stream's own path, not an event called "stream".
        ("/v1/sessions/ses_x/events/stream", {"GET"}),
    ]:
        response = api.request("PUT", path)
        assert response.status_code == 405, path
        assert response.headers["content-type"].startswith("application/problem+json")
        allowed = {method.strip() for method in response.headers["allow"].split(",")}
        assert allowed == methods, path
