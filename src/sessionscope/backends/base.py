"""The one interface the console talks to. Every platform adapter implements ``Backend``.

No Textual and no server imports here (enforced by import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from sessionscope.models import (
    ActionDecisionResult,
    Artifact,
    CloseResult,
    Event,
    KeyIdentity,
    OrgChange,
    Page,
    PendingAction,
    Replay,
    Session,
    SessionCreate,
    SessionStatus,
    SessionUpdate,
    TimelineEntry,
    ToolCall,
    ToolResult,
)


class Capability(StrEnum):
    LIST_SESSIONS = "list_sessions"
    CREATE_SESSION = "create_session"
    UPDATE_SESSION = "update_session"
    DELETE = "delete"
    CLOSE = "close"
    COMPLETE = "complete"
    MESSAGES = "messages"
    EVENTS = "events"
    HIDE_EVENTS = "hide_events"
    LIVE_STREAM = "live_stream"
    ORG_STREAM = "org_stream"
    TIMELINE = "timeline"
    REPLAY = "replay"
    ARTIFACTS = "artifacts"
    TOOL_CALLS = "tool_calls"
    PENDING_ACTIONS = "pending_actions"
    VARIABLES = "variables"
    #: Stop the turn the agent is running, leaving the session open (Everruns ``/cancel``).
    CANCEL_TURN = "cancel_turn"
    #: ``list_sessions`` honours ``SessionQuery(order="oldest")``; without it a list's far end
    #: is reached only by walking every page from the newest.
    OLDEST_FIRST = "oldest_first"
    #: ``update_session`` takes ``status=paused`` and ``status=active`` (pause and resume).
    PAUSE = "pause"


# ---------------------------------------------------------------------------------------------
# Errors. Every message is fit to show an operator and never contains a credential.
# ---------------------------------------------------------------------------------------------


class BackendError(Exception):
    """Base of every error a backend raises. ``str(error)`` is an operator-facing sentence."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Unsupported(BackendError):
    def __init__(
        self, capability: Capability, backend_name: str, message: str | None = None
    ) -> None:
        super().__init__(
            message or f"{backend_name} does not support {capability.value.replace('_', ' ')}"
        )
        self.capability = capability


class ConnectError(BackendError):
    """The server could not be reached (refused, DNS, timeout)."""


class AuthError(BackendError):
    """401/403: missing or wrong credentials."""


class NotFound(BackendError):
    pass


class Conflict(BackendError):
    """409: e.g. a different decision on an already decided action."""


class Gone(BackendError):
    """410: e.g. the pending action expired."""


class ValidationFailed(BackendError):
    """400/422: the server rejected the input; ``errors`` names the fields."""

    def __init__(
        self, message: str, *, status: int | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.errors = errors or []


class RateLimited(BackendError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class ServerError(BackendError):
    """5xx."""


class ProtocolError(BackendError):
    """A reply that is not what the API promises: bad JSON, wrong shape, HTML error page."""


# ---------------------------------------------------------------------------------------------
# Live watch state, reported so the console can show live / reconnecting / polling / offline.
# ---------------------------------------------------------------------------------------------


class WatchState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    POLLING = "polling"
    OFFLINE = "offline"
    #: The server answered but refused the credentials (401/403): reachable, not offline.
    REFUSED = "refused"


WatchStateCallback = Callable[[WatchState, str | None], None]
"""Called with the new state and an optional operator-facing detail (e.g. the last error)."""


@dataclass(frozen=True)
class SessionQuery:
    status: SessionStatus | None = None
    agent_id: str | None = None
    task_id: str | None = None
    tag: str | None = None
    text: str | None = None
    #: By creation time: "newest" first or "oldest" first (the far end of the list in one
    #: request instead of a walk through every page). A cursor pages on in its own order only.
    order: Literal["newest", "oldest"] = "newest"


@dataclass(frozen=True)
class BackendConfig:
    """What a registry needs to build a backend. Credentials live here and nowhere else."""

    name: str = "native"
    url: str = "http://127.0.0.1:8765"
    api_key: str | None = field(default=None, repr=False)
    #: Polling interval for backends (or fallbacks) without a live stream.
    poll_interval: float = 2.0
    timeout: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)


def _confirms(choice: str) -> bool:
    """Whether a choice id lets the agent go ahead, for backends that only know yes/no."""
    return choice in ("confirm", "allow", "allow_always", "approve", "yes")


class Backend(abc.ABC):
    """Async interface to one platform. Methods a backend cannot serve raise ``Unsupported``;
    ``capabilities`` says beforehand which ones those are."""

    #: Short dialect name, e.g. "native".
    name: str = "backend"
    capabilities: frozenset[Capability] = frozenset()
    #: The platform's name for the console's header ("" for the reference server).
    platform_label: str = ""
    #: Pending items come in groups answered together, each with the platform's own choices
    #: (an Everruns pause): the console decides them in one screen via ``decide_actions``.
    decides_in_batches: bool = False
    #: Operator-facing notes about how the backend was configured (e.g. a key the platform does
    #: not take and that is therefore never sent); the console shows them once at start.
    notices: tuple[str, ...] = ()
    #: What closing a session means on this platform beyond ending it (e.g. "stops billing"),
    #: for the close confirmation; None when there is nothing more to say.
    close_note: str | None = None
    #: The ``SessionCreate`` fields the platform takes: the console's new-session form offers
    #: exactly these.
    create_fields: frozenset[str] = frozenset({"agent_id", "title", "tags", "prompt"})
    #: The session header's details the platform has (agent, model, tokens, cost, variables,
    #: events, pending); one it lacks would only ever show a dash or a zero.
    header_details: frozenset[str] = frozenset(
        {"agent", "model", "tokens", "cost", "variables", "events", "pending"}
    )
    #: Every sequence number up to a session's last holds an event. False where the platform
    #: numbers things it does not list (Everruns' ephemeral deltas): the timeline then lists
    #: the events there are instead of a row per number.
    dense_sequences: bool = True
    #: A session starts with its first message (AG2Trust's pool endpoint): the form asks for it.
    prompt_required: bool = False

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def set_retry_listener(self, listener: Callable[[str], None] | None) -> None:
        """Told (with an operator-facing sentence, e.g. "rate limited, retrying in 3 s") when a
        request waits before a retry, so a console can say so. HTTP backends pass it to their
        client; others have nothing to say."""
        http = getattr(self, "_http", None)
        if http is not None and hasattr(http, "on_retry"):
            http.on_retry = listener

    @property
    def status_hint(self) -> str | None:
        """A short note for the console's status line, e.g. that the platform's request budget
        runs low; None when there is nothing to say."""
        return None

    def _unsupported(self, capability: Capability) -> Unsupported:
        return Unsupported(capability, self.name)

    @property
    @abc.abstractmethod
    def display_name(self) -> str:
        """Server name to show in the console (e.g. host:port); never contains credentials."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- server ---------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        raise self._unsupported(Capability.LIST_SESSIONS)

    async def identity(self) -> KeyIdentity | None:
        """What the configured key may do (e.g. a viewer key: read only), or None when the
        backend cannot say; the console then offers everything and shows refusals as they come."""
        return None

    # -- sessions -------------------------------------------------------------------------------
    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        raise self._unsupported(Capability.LIST_SESSIONS)

    async def iter_sessions(
        self, query: SessionQuery | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Session]:
        cursor: str | None = None
        while True:
            page = await self.list_sessions(query, cursor=cursor, limit=page_size)
            for session in page.data:
                yield session
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def get_session(self, session_id: str) -> Session:
        raise self._unsupported(Capability.LIST_SESSIONS)

    async def create_session(self, spec: SessionCreate) -> Session:
        raise self._unsupported(Capability.CREATE_SESSION)

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        raise self._unsupported(Capability.UPDATE_SESSION)

    async def delete_session(self, session_id: str) -> None:
        raise self._unsupported(Capability.DELETE)

    async def close_session(self, session_id: str) -> CloseResult:
        raise self._unsupported(Capability.CLOSE)

    async def complete_session(self, session_id: str) -> Session:
        raise self._unsupported(Capability.COMPLETE)

    async def send_message(self, session_id: str, content: str) -> Event:
        raise self._unsupported(Capability.MESSAGES)

    async def cancel_turn(self, session_id: str) -> str:
        """Stop the running turn (a no-op when none runs); returns the platform's message."""
        raise self._unsupported(Capability.CANCEL_TURN)

    # -- events ---------------------------------------------------------------------------------
    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        raise self._unsupported(Capability.EVENTS)

    async def iter_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        page_size: int = 1000,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> AsyncIterator[Event]:
        while True:
            page = await self.list_events(
                session_id, after=after, limit=page_size, types=types, include_hidden=include_hidden
            )
            for event in page.data:
                after = max(after, event.sequence)
                yield event
            if not page.next_cursor or not page.data:
                return

    async def get_event(self, session_id: str, event_id: str) -> Event:
        raise self._unsupported(Capability.EVENTS)

    async def delete_event(self, session_id: str, event_id: str) -> None:
        raise self._unsupported(Capability.HIDE_EVENTS)

    async def hide_event(self, session_id: str, event_id: str) -> Event:
        raise self._unsupported(Capability.HIDE_EVENTS)

    async def unhide_event(self, session_id: str, event_id: str) -> Event:
        raise self._unsupported(Capability.HIDE_EVENTS)

    async def timeline(self, session_id: str) -> list[TimelineEntry]:
        raise self._unsupported(Capability.TIMELINE)

    async def replay(self, session_id: str) -> Replay:
        raise self._unsupported(Capability.REPLAY)

    # -- artifacts ------------------------------------------------------------------------------
    async def list_artifacts(
        self, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        raise self._unsupported(Capability.ARTIFACTS)

    async def get_artifact(self, session_id: str, artifact_id: str) -> Artifact:
        raise self._unsupported(Capability.ARTIFACTS)

    def read_artifact(
        self,
        session_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        max_bytes: int | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        """Stream the artifact's bytes from ``offset``, stopping after ``max_bytes``."""
        raise self._unsupported(Capability.ARTIFACTS)

    # -- client tool calls ----------------------------------------------------------------------
    async def list_tool_calls(self, session_id: str) -> list[ToolCall]:
        raise self._unsupported(Capability.TOOL_CALLS)

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        raise self._unsupported(Capability.TOOL_CALLS)

    # -- pending actions ------------------------------------------------------------------------
    async def list_pending_actions(self) -> list[PendingAction]:
        """The organisation's inbox: pending actions, oldest first."""
        raise self._unsupported(Capability.PENDING_ACTIONS)

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        raise self._unsupported(Capability.PENDING_ACTIONS)

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        raise self._unsupported(Capability.PENDING_ACTIONS)

    async def decide_action(
        self,
        session_id: str,
        action_id: str,
        confirmed: bool,
        *,
        idempotency_key: str | None = None,
        choice: str | None = None,
        reason: str | None = None,
    ) -> ActionDecisionResult:
        """Send a decision exactly once. The backend generates an idempotency key when none is
        given and reuses it on every retry of this call; pass one to extend that across calls.

        ``choice`` is one of the action's ``choices`` ids (richer than yes/no, e.g. Everruns'
        ``allow_always``); without it the backend sends the plain confirm or cancel. ``reason``
        goes where the platform takes one and is dropped elsewhere."""
        raise self._unsupported(Capability.PENDING_ACTIONS)

    async def decide_actions(
        self,
        session_id: str,
        decisions: list[tuple[str, str]],
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[ActionDecisionResult]:
        """Decide several items of one session at once: ``decisions`` is (action id, choice id).
        Platforms that hold a batch (an Everruns pause) answer it in one request; the default
        sends each decision on its own, each exactly once."""
        results: list[ActionDecisionResult] = []
        for index, (action_id, choice) in enumerate(decisions):
            key = f"{idempotency_key}-{index}" if idempotency_key else None
            results.append(
                await self.decide_action(
                    session_id,
                    action_id,
                    _confirms(choice),
                    idempotency_key=key,
                    choice=choice,
                    reason=reason,
                )
            )
        return results

    # -- live -----------------------------------------------------------------------------------
    def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        """Yield the session's events with sequence > ``after``, forever, reconnecting and
        resuming as needed: each event once, in order."""
        raise self._unsupported(Capability.LIVE_STREAM)

    def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        """Yield organisation-wide changes (sessions created/updated/deleted, actions
        pending/resolved), forever, reconnecting and resuming as needed."""
        raise self._unsupported(Capability.ORG_STREAM)
