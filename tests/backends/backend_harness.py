"""What the shared backend suite needs from each platform: a running server that behaves as the
platform's documents say, and the agent's side of it (create, append, propose), done without the
backend under test."""

from __future__ import annotations

from typing import Any, Protocol

from sessionscope.backends import BackendConfig


class Harness(Protocol):
    #: The ``create_backend`` name of the backend under test.
    backend_name: str
    #: An id in the platform's format that names no session (some platforms check formats).
    unknown_session_id: str

    def config(self, **options: Any) -> BackendConfig:
        """A config pointing at the running server, with fast retries and polling."""
        ...

    async def create_session(self, title: str) -> str:
        """Create a session and return its id as the backend reports it."""
        ...

    async def append_events(self, session_id: str, count: int) -> None:
        """The agent's side adds ``count`` activities, each exactly one ``Event``."""
        ...

    async def create_pending_action(self, session_id: str) -> str | None:
        """A decidable pending item's ``PendingAction.id``; ``None`` where the platform has none."""
        ...

    async def drop_live_connections(self) -> None:
        """Cut every open live connection (nothing to do for a polling platform)."""
        ...

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        """Answer the next request with ``status`` in the platform's documented error shape."""
        ...


#: Options that make retries and polling take milliseconds; a harness merges its own on top.
FAST_OPTIONS: dict[str, Any] = {
    "retry_attempts": 3,
    "retry_base": 0.001,
    "retry_max": 0.01,
    "reconnect_base": 0.01,
    "reconnect_max": 0.1,
    "seed": 7,
}
