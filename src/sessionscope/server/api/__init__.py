"""The HTTP API, all under ``/v1``: one router per resource, each included by
``app.create_app``.

Every list endpoint replies ``{data, next_cursor, total, stream_position}`` (``Page``);
``next_cursor`` is null on the last page; only a sessions listing's first page has a
``stream_position``. Errors are ``application/problem+json``. Organisations are isolated:
another organisation's objects answer 404.
"""

from __future__ import annotations

from fastapi import APIRouter

from sessionscope.server.api import actions, artifacts, events, health, sessions, tool_calls

#: In this order: the OpenAPI document lists the operations as they are included.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    sessions.router,
    events.router,
    artifacts.router,
    tool_calls.router,
    actions.router,
)

__all__ = ["ROUTERS"]
