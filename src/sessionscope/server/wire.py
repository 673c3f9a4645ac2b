"""The server's one JSON policy for request bodies: strict RFC 8259 JSON in UTF-8.

What it refuses, at the edge, before any model or the database sees it:

- ``NaN``, ``Infinity``, ``-Infinity`` and numbers too large for a float (``1e999``): not JSON
  (a reply or a live frame carrying one would not be JSON either) -> 400.
- Bytes that are not UTF-8 (encoded surrogates included) -> 400.
- A ``\\ud800`` escape without its pair (a lone surrogate): valid JSON syntax, but no Unicode
  text, which storage cannot hold -> 422 naming the field.

Every body the API parses goes through ``parse_body``: FastAPI's own parsing (``StrictJsonRoute``)
and the handlers that parse their bytes themselves.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from sessionscope.server.errors import InvalidBody

M = TypeVar("M", bound=BaseModel)

#: What a body must contain for the strict checks to matter: a number literal the fast parser
#: would read as a non-finite float, or an escape of a surrogate. Bodies without any (nearly all)
#: take the plain parser; a match (perhaps inside a string) only takes the slower, exact path.
_SUSPECT = re.compile(rb"NaN|Infinity|[eE][+]?0*[1-9][0-9]{2}|[0-9]{300}|\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is beyond what a JSON number may hold here")
    return value


def _not_json(reason: str, doc: str = "") -> json.JSONDecodeError:
    return json.JSONDecodeError(reason, doc, 0)


def _lone_surrogate(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first string (or object key) holding a lone surrogate is, if any."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                return (*path, key.encode("utf-8", "backslashreplace").decode())
            found = _lone_surrogate(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate(item, (*path, index))
            if found is not None:
                return found
    return None


def parse_body(body: bytes) -> Any:
    """The body's JSON value under the policy above. Raises ``json.JSONDecodeError`` for what is
    not JSON (400) and ``InvalidBody`` for a lone surrogate (422)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_json("the body is not UTF-8") from None
    if not _SUSPECT.search(body):
        return json.loads(text)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except ValueError as error:
        raise _not_json(str(error), text) from None
    where = _lone_surrogate(value)
    if where is not None:
        field = ".".join(str(part) for part in where) or "body"
        message = "the text holds a lone surrogate (\\ud800-\\udfff without its pair)"
        detail = {"field": field, "message": message, "type": "string_unicode"}
        raise InvalidBody(422, f"invalid {field}: {message}", [detail])
    return value


def validate_body(model: type[M], body: bytes) -> M:
    """``model`` from a body under the policy, with pydantic's JSON parser (the fast path) when
    nothing in the body needs the strict checks."""
    if not _SUSPECT.search(body):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_json("the body is not UTF-8") from None
        return model.model_validate_json(body)
    return model.model_validate(parse_body(body))


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_body(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """Routes whose JSON bodies are parsed by ``parse_body``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict
