"""Health and the presented key's identity."""

from __future__ import annotations

from fastapi import APIRouter

import sessionscope
from sessionscope.models import (
    Health,
    KeyIdentity,
)
from sessionscope.server.api.deps import API_PREFIX, READ, CallerDep
from sessionscope.server.wire import StrictJsonRoute

router = APIRouter(prefix=API_PREFIX, route_class=StrictJsonRoute)


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok", name="sessionscope", version=sessionscope.__version__)


@router.get("/whoami", response_model=KeyIdentity, dependencies=[READ])
async def whoami(caller: CallerDep) -> KeyIdentity:
    """The presented key's organisation, name and role: a console with a viewer key knows to
    be read-only before it offers a key that would be refused."""
    return KeyIdentity(organisation=caller.org, key=caller.key_name, role=caller.role)
