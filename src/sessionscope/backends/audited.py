"""A backend that writes every change it sends to the operator's trail (``sessionscope.audit``).

``AuditedBackend`` wraps any backend: reads pass straight through; each mutating call is written
to the audit log as ``sending`` before the request leaves and completed with its outcome after,
so an interrupted send stays visible. The console wraps every backend it opens, so no screen has
to remember to log.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sessionscope.audit import ALREADY_DECIDED, EXPIRED, FAILED, REFUSED, SENT, AuditLog
from sessionscope.backends.base import (
    AuthError,
    Backend,
    BackendError,
    Capability,
    Conflict,
    Gone,
    SessionQuery,
    WatchStateCallback,
)
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
    SessionUpdate,
    TimelineEntry,
    ToolCall,
    ToolResult,
)

T = TypeVar("T")


def outcome_of(error: BaseException) -> str:
    """How a failed send is named in the trail and in a batch's summary."""
    if isinstance(error, Conflict):
        return ALREADY_DECIDED
    if isinstance(error, Gone):
        return EXPIRED
    if isinstance(error, AuthError):
        return REFUSED
    return FAILED


class DelegatingBackend(Backend):
    """Forwards everything to ``inner``; subclasses override what they add to."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    # The inner backend's class-level facts, read through (some change per instance).
    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Capability]:  # type: ignore[override]
        return self.inner.capabilities

    @property
    def platform_label(self) -> str:  # type: ignore[override]
        return self.inner.platform_label

    @property
    def decides_in_batches(self) -> bool:  # type: ignore[override]
        return self.inner.decides_in_batches

    @property
    def notices(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.notices

    @property
    def close_note(self) -> str | None:  # type: ignore[override]
        return self.inner.close_note

    @property
    def create_fields(self) -> frozenset[str]:  # type: ignore[override]
        return self.inner.create_fields

    def supports(self, capability: Capability) -> bool:
        return self.inner.supports(capability)

    @property
    def status_hint(self) -> str | None:
        return self.inner.status_hint

    @property
    def display_name(self) -> str:
        return self.inner.display_name

    def __getattr__(self, attribute: str) -> Any:
        # Backend-specific extras (e.g. a platform's own helpers) pass through as well.
        return getattr(self.inner, attribute)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def health(self) -> dict[str, Any]:
        return await self.inner.health()

    async def identity(self) -> KeyIdentity | None:
        return await self.inner.identity()

    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        return await self.inner.list_sessions(query, cursor=cursor, limit=limit)

    async def iter_sessions(
        self, query: SessionQuery | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Session]:
        async for session in self.inner.iter_sessions(query, page_size=page_size):
            yield session

    async def get_session(self, session_id: str) -> Session:
        return await self.inner.get_session(session_id)

    async def create_session(self, spec: SessionCreate) -> Session:
        return await self.inner.create_session(spec)

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        return await self.inner.update_session(session_id, update)

    async def delete_session(self, session_id: str) -> None:
        await self.inner.delete_session(session_id)

    async def close_session(self, session_id: str) -> CloseResult:
        return await self.inner.close_session(session_id)

    async def complete_session(self, session_id: str) -> Session:
        return await self.inner.complete_session(session_id)

    async def send_message(self, session_id: str, content: str) -> Event:
        return await self.inner.send_message(session_id, content)

    async def cancel_turn(self, session_id: str) -> str:
        return await self.inner.cancel_turn(session_id)

    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        return await self.inner.list_events(
            session_id, after=after, limit=limit, types=types, include_hidden=include_hidden
        )

    async def iter_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        page_size: int = 1000,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> AsyncIterator[Event]:
        async for event in self.inner.iter_events(
            session_id,
            after=after,
            page_size=page_size,
            types=types,
            include_hidden=include_hidden,
        ):
            yield event

    async def get_event(self, session_id: str, event_id: str) -> Event:
        return await self.inner.get_event(session_id, event_id)

    async def delete_event(self, session_id: str, event_id: str) -> None:
        await self.inner.delete_event(session_id, event_id)

    async def hide_event(self, session_id: str, event_id: str) -> Event:
        return await self.inner.hide_event(session_id, event_id)

    async def unhide_event(self, session_id: str, event_id: str) -> Event:
        return await self.inner.unhide_event(session_id, event_id)

    async def timeline(self, session_id: str) -> list[TimelineEntry]:
        return await self.inner.timeline(session_id)

    async def replay(self, session_id: str) -> Replay:
        return await self.inner.replay(session_id)

    async def list_artifacts(
        self, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        return await self.inner.list_artifacts(session_id, cursor=cursor, limit=limit)

    async def get_artifact(self, session_id: str, artifact_id: str) -> Artifact:
        return await self.inner.get_artifact(session_id, artifact_id)

    def read_artifact(
        self,
        session_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        max_bytes: int | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        return self.inner.read_artifact(
            session_id, artifact_id, offset=offset, max_bytes=max_bytes, chunk_size=chunk_size
        )

    async def list_tool_calls(self, session_id: str) -> list[ToolCall]:
        return await self.inner.list_tool_calls(session_id)

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        return await self.inner.submit_tool_result(
            session_id, call_id, result, idempotency_key=idempotency_key
        )

    async def list_pending_actions(self) -> list[PendingAction]:
        return await self.inner.list_pending_actions()

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        return await self.inner.list_session_actions(session_id)

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        return await self.inner.get_action(session_id, action_id)

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
        return await self.inner.decide_action(
            session_id,
            action_id,
            confirmed,
            idempotency_key=idempotency_key,
            choice=choice,
            reason=reason,
        )

    async def decide_actions(
        self,
        session_id: str,
        decisions: list[tuple[str, str]],
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[ActionDecisionResult]:
        return await self.inner.decide_actions(
            session_id, decisions, reason=reason, idempotency_key=idempotency_key
        )

    def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        return self.inner.watch_session(session_id, after=after, on_state=on_state)

    def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        return self.inner.watch_org(after=after, on_state=on_state)


def _forward_the_rest(cls: type[DelegatingBackend]) -> None:
    """Every public member of ``Backend`` that ``DelegatingBackend`` does not spell out reads
    through to the inner backend: a hook added to the interface later is forwarded without
    anyone remembering to (inherited, it would silently answer with the base default)."""
    for attribute, value in vars(Backend).items():
        if attribute.startswith("_") or attribute in vars(cls):
            continue
        if callable(value) and not isinstance(value, property):

            def forward(
                self: DelegatingBackend, *args: Any, _name: str = attribute, **kwargs: Any
            ) -> Any:
                return getattr(self.inner, _name)(*args, **kwargs)

            forward.__name__ = attribute
            setattr(cls, attribute, forward)
        else:

            def read(self: DelegatingBackend, _name: str = attribute) -> Any:
                return getattr(self.inner, _name)

            setattr(cls, attribute, property(read))


_forward_the_rest(DelegatingBackend)


class AuditedBackend(DelegatingBackend):
    """Every change sent through it leaves a line in the audit log before and after."""

    def __init__(self, inner: Backend, log: AuditLog, *, profile: str | None = None) -> None:
        super().__init__(inner)
        self.audit_log = log
        self.profile = profile

    async def _sent(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        *,
        session_id: str | None = None,
        item_id: str | None = None,
        choice: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> T:
        record = self.audit_log.begin(
            operation,
            profile=self.profile,
            backend=self.inner.name,
            session_id=session_id,
            item_id=item_id,
            choice=choice,
            reason=reason,
            idempotency_key=idempotency_key,
            **extra,
        )
        try:
            result = await call()
        except BackendError as error:
            self.audit_log.finish(record, outcome_of(error), error.message)
            raise
        except BaseException as error:
            # Cancelled or crashed mid-send: the platform may or may not have it.
            self.audit_log.finish(
                record, FAILED, f"not known to have arrived ({type(error).__name__})"
            )
            raise
        status = getattr(result, "status", None)
        self.audit_log.finish(record, SENT, str(getattr(status, "value", status) or "") or None)
        return result

    async def create_session(self, spec: SessionCreate) -> Session:
        return await self._sent("create", lambda: self.inner.create_session(spec))

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        changed = sorted(update.model_dump(exclude_none=True))
        operation = "variables" if changed == ["context_variables"] else "update"
        return await self._sent(
            operation,
            lambda: self.inner.update_session(session_id, update),
            session_id=session_id,
            fields=changed,
        )

    async def delete_session(self, session_id: str) -> None:
        await self._sent(
            "delete", lambda: self.inner.delete_session(session_id), session_id=session_id
        )

    async def close_session(self, session_id: str) -> CloseResult:
        return await self._sent(
            "close", lambda: self.inner.close_session(session_id), session_id=session_id
        )

    async def complete_session(self, session_id: str) -> Session:
        return await self._sent(
            "complete", lambda: self.inner.complete_session(session_id), session_id=session_id
        )

    async def send_message(self, session_id: str, content: str) -> Event:
        # The content stays out of the trail: it may carry what an operator would not log.
        return await self._sent(
            "message",
            lambda: self.inner.send_message(session_id, content),
            session_id=session_id,
            characters=len(content),
        )

    async def cancel_turn(self, session_id: str) -> str:
        return await self._sent(
            "cancel turn", lambda: self.inner.cancel_turn(session_id), session_id=session_id
        )

    async def delete_event(self, session_id: str, event_id: str) -> None:
        await self._sent(
            "delete event",
            lambda: self.inner.delete_event(session_id, event_id),
            session_id=session_id,
            item_id=event_id,
        )

    async def hide_event(self, session_id: str, event_id: str) -> Event:
        return await self._sent(
            "hide",
            lambda: self.inner.hide_event(session_id, event_id),
            session_id=session_id,
            item_id=event_id,
        )

    async def unhide_event(self, session_id: str, event_id: str) -> Event:
        return await self._sent(
            "unhide",
            lambda: self.inner.unhide_event(session_id, event_id),
            session_id=session_id,
            item_id=event_id,
        )

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        key = idempotency_key or uuid.uuid4().hex
        return await self._sent(
            "tool result",
            lambda: self.inner.submit_tool_result(session_id, call_id, result, idempotency_key=key),
            session_id=session_id,
            item_id=call_id,
            choice="error" if result.error is not None else "output",
            idempotency_key=key,
        )

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
        # The key is fixed here so that the trail names the one the platform saw.
        key = idempotency_key or uuid.uuid4().hex
        return await self._sent(
            "decide",
            lambda: self.inner.decide_action(
                session_id,
                action_id,
                confirmed,
                idempotency_key=key,
                choice=choice,
                reason=reason,
            ),
            session_id=session_id,
            item_id=action_id,
            choice=choice or ("confirm" if confirmed else "cancel"),
            reason=reason,
            idempotency_key=key,
        )

    async def decide_actions(
        self,
        session_id: str,
        decisions: list[tuple[str, str]],
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[ActionDecisionResult]:
        key = idempotency_key or uuid.uuid4().hex
        return await self._sent(
            "decide batch",
            lambda: self.inner.decide_actions(
                session_id, decisions, reason=reason, idempotency_key=key
            ),
            session_id=session_id,
            item_id=",".join(action_id for action_id, _ in decisions),
            choice=",".join(choice for _, choice in decisions),
            reason=reason,
            idempotency_key=key,
        )
