"""What every route shares: authentication, roles, the app's store, broker and settings, common
parameters and replies."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response
from pydantic import BaseModel

from sessionscope.models import (
    MAX_POSITION,
)
from sessionscope.server.broker import Broker
from sessionscope.server.errors import ApiError
from sessionscope.server.roles import Caller, key_name
from sessionscope.server.settings import ServerSettings
from sessionscope.server.store import Store

#: Every route's prefix, on each resource's router: the routes' own paths carry it, which
#: errors._methods_of reads to answer a 405's ``Allow``.
API_PREFIX = "/v1"
audit_log = logging.getLogger("sessionscope.audit")


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


# The dependencies are coroutines, though none of them awaits: FastAPI runs a plain ``def``
# dependency in its thread pool, two thread hops per request for a few attribute reads.


async def authenticate(request: Request) -> Caller:
    presented = _presented_key(request)
    if presented is not None:
        settings: ServerSettings = request.app.state.settings
        found: tuple[str, str] | None = None
        for org, key in settings.api_keys:
            # Compare against every key in constant time so timing reveals nothing.
            if hmac.compare_digest(presented.encode(), key.encode()):
                found = (org, key)
        if found is not None:
            org, key = found
            return Caller(org=org, key_name=key_name(key), role=settings.key_roles.get(key))
    raise ApiError(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})


CallerDep = Annotated[Caller, Depends(authenticate)]


async def require_org(caller: CallerDep) -> str:
    return caller.org


def allow(*roles: str) -> Any:
    """A route's roles: a key with another role gets a 403 naming its role (never a 401 or a
    404: the key is valid and the resource may exist). A key without a role may do anything."""

    async def in_role(caller: CallerDep) -> None:
        if caller.role is not None and caller.role not in roles:
            raise ApiError(
                403,
                f"this key's role ({caller.role}) may not do this; it takes " + " or ".join(roles),
                errors=[{"field": "role", "message": caller.role}],
            )

    in_role.__name__ = "role_" + "_".join(roles)
    return Depends(in_role)


#: Every role reads; writes belong to the agent (what it reports) or to the operator (what the
#: console decides, edits and deletes).
READ = allow("agent", "operator", "viewer")
AGENT = allow("agent")
OPERATOR = allow("operator")
AGENT_OR_OPERATOR = allow("agent", "operator")


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


async def get_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


Org = Annotated[str, Depends(require_org)]
StoreDep = Annotated[Store, Depends(get_store)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
#: Stream positions (event sequences, organisation change ids) are integers the store can hold;
#: anything else in ``after``, an events ``cursor`` or ``Last-Event-ID`` is a 400 naming it.
Position = Annotated[int, Query(ge=0, le=MAX_POSITION)]
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=MAX_POSITION,
        description="The id of the last frame received: the stream resumes after it.",
    ),
]
#: The events cursor is the last sequence a page holds, as digits.
EventsCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,19}$", description="A page's `next_cursor`.")
]


def json_reply(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise once: FastAPI would validate a returned model against ``response_model`` again,
    which doubles the cost of large pages."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def split_values(values: list[str] | None) -> list[str]:
    """Accept both ``?x=a&x=b`` and ``?x=a,b``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
