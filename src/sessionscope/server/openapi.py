"""The OpenAPI document, complete: every status an operation can answer, with the
``application/problem+json`` body every error has, and the streams and artifact content as the
media types they are. FastAPI declares only a route's success and a generic 422."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from sessionscope.models import OrgChange, Problem
from sessionscope.server.errors import PROBLEM_JSON

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
#: Operations whose 200 is a Server-Sent Events stream.
_STREAMS = ("/events/stream", "/v1/stream")
_ARTIFACT_CONTENT = "/artifacts/{artifact_id}/content"
_DECISION = "/actions/{action_id}"


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
    }


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    """``model`` and the models it holds, as components (FastAPI adds only what routes name)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, nested in schema.pop("$defs", {}).items():
        schemas.setdefault(name, nested)
    schemas.setdefault(model.__name__, schema)


def _sse_frame(model: str) -> dict[str, Any]:
    """One frame of a stream, as SSE parsers hand it over."""
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{model}"},
            },
            "retry": {"type": "integer", "minimum": 0},
        },
    }


def problem_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """What an operation may answer besides its successes (the rules the handlers follow)."""
    if path == "/v1/health":
        return []
    has_body = "requestBody" in operation
    has_parameters = bool(operation.get("parameters")) or has_body
    under_a_session = "{session_id}" in path
    statuses = [400, 401, 403]
    if "{" in path:
        statuses.append(404)
    if under_a_session and method in ("post", "patch", "delete"):
        statuses.append(409)  # a closed session, a decided action, a tool call with a result
    if path.endswith(_DECISION) and method == "post":
        statuses.append(410)
    if has_body:
        statuses.append(413)
    if path.endswith(_ARTIFACT_CONTENT):
        statuses.append(416)
    if has_parameters:
        statuses.append(422)
    return statuses


def complete_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for component in (Problem, OrgChange):
        _add_schema(schemas, component)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in problem_statuses(path, method, operation):
                responses[str(status)] = _problem(status)
            if path.endswith(_STREAMS):
                model = "Event" if path.endswith("/events/stream") else "OrgChange"
                responses["200"] = {
                    "description": "Server-Sent Events: `id` (the resume position), `event` "
                    f"(the event type or change kind), `data` (the {model}'s JSON). The first "
                    "frame carries only the position resumed from and `retry`.",
                    "content": {"text/event-stream": {"schema": _sse_frame(model)}},
                }
            elif path.endswith(_ARTIFACT_CONTENT):
                body = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
                responses["200"] = {"description": "The artifact's bytes", "content": body}
                responses["206"] = {"description": "The requested range", "content": body}
    return document


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
