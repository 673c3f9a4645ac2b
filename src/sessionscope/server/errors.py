"""Problem details (RFC 9457) for every error the API returns; never a bare 500 with a trace."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
#: Query parameters and headers holding stream positions or cursors: a bad one is a 400.
POSITION_PARAMETERS = frozenset({"after", "cursor", "Last-Event-ID"})

log = logging.getLogger("sessionscope.server")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers


class InvalidBody(StarletteHTTPException):
    """A body refused while it is read (``wire.parse_body``): Starlette's exception, because
    FastAPI turns any other error raised while it reads a body into a bare 400."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(status, detail)
        self.errors = errors


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def field_error(field: str, message: str, *, status: int = 422) -> ApiError:
    return ApiError(status, message, errors=[{"field": field, "message": message}])


def problem(
    status: int,
    detail: str | None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in loc]
    # "body"/"query"/"path"/"header" say where, the rest names the field.
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = []
    malformed = False
    for error in exc.errors():
        kind = str(error.get("type", ""))
        if kind == "json_invalid":
            malformed = True
        message = str(error.get("msg", "invalid value"))
        # pydantic prefixes messages of ValueErrors raised in validators.
        message = message.removeprefix("Value error, ")
        errors.append(
            {"field": _field_name(error.get("loc", ())), "message": message, "type": kind}
        )
    if malformed:
        return problem(400, "the request body is not valid JSON", errors=errors)
    names = ", ".join(e["field"] for e in errors) or "input"
    if errors and all(e["field"] in POSITION_PARAMETERS for e in errors):
        # A position the client holds that no server issued: the request is wrong, not the
        # content of a resource.
        return problem(400, f"invalid {names}: {errors[0]['message']}", errors=errors)
    first = errors[0]["message"] if errors else "invalid input"
    return problem(422, f"invalid {names}: {first}", errors=errors)


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        # Starlette names the methods of the first route matching the path; the path may take
        # more through other routes.
        headers = {**(headers or {}), "Allow": ", ".join(_methods_of(request))}
    errors = exc.errors if isinstance(exc, InvalidBody) else None
    return problem(exc.status_code, str(exc.detail), errors=errors, headers=headers)


def _methods_of(request: Request) -> list[str]:
    """Every method the request's path takes: those of the most literal path template that
    matches it (``/events/stream`` is the stream's, not an event's called "stream")."""
    matched: list[Any] = []

    def visit(routes: Iterable[Any]) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's included router
            if included is not None:
                visit(included.routes)
            elif route.matches(request.scope)[0] is not Match.NONE:
                matched.append(route)

    visit(request.app.router.routes)
    if not matched:
        return []
    fewest = min(str(getattr(route, "path", "")).count("{") for route in matched)
    methods: set[str] = set()
    for route in matched:
        if str(getattr(route, "path", "")).count("{") == fewest:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
