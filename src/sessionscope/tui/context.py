"""What every screen and widget of the console shares, typed: the backend, read-only mode, the
organisation-change signal and the sessions the list already holds.

The app creates one ``ConsoleContext`` and keeps it as ``app.console_context``; screens and
widgets reach it with ``console_of(self)`` and never import the app. Anything that hosts console
widgets (a test app, an embedding) provides one the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from textual.app import App
from textual.dom import DOMNode
from textual.signal import Signal

from sessionscope.backends import Backend, Capability, WatchState
from sessionscope.backends.fleet import FleetBackend
from sessionscope.models import OrgChange, PendingAction, Session


class LoadedSessions(Protocol):
    """The sessions list's rows already fetched (``state.session_pages.SessionPages``)."""

    def index_of(self, session_id: str) -> int | None: ...

    def get(self, index: int) -> Session | None: ...

    def loaded(self) -> Iterator[Session] | Any: ...


@dataclass
class ConsoleContext:
    backend: Backend
    read_only: bool
    #: Coalesced batches of organisation changes, published by the app's organisation watch.
    #: Subscribe in ``on_mount``: ``console_of(self).org_changes.subscribe(self, callback)``.
    org_changes: Signal[list[OrgChange]]
    #: Published (with no data) whenever ``connection_state`` or ``connection_detail`` change.
    connection_changed: Signal[None]
    #: Published (with no data) whenever ``waiting`` changes (the fleet's header count).
    waiting_changed: Signal[None]
    #: Published with a profile's name whenever its health changes (the fleet's health strip).
    health_changed: Signal[str]
    #: Whether the host follows the organisation stream and so has a connection to show (an app
    #: hosting one screen on its own has none: its header shows no indicator).
    has_connection: bool = False
    connection_state: WatchState = WatchState.CONNECTING
    connection_detail: str = ""
    #: What the sessions list says until its first page arrives.
    loading_note: str = "loading…"
    #: Set by the sessions list once it has its paging model; never fetches.
    sessions: LoadedSessions | None = field(default=None)
    #: Every item that waits for a decision across the fleet, soonest deadline first (kept by
    #: the app in fleet mode only; empty otherwise).
    waiting: list[PendingAction] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        app: App[Any],
        backend: Backend,
        *,
        read_only: bool = False,
        has_connection: bool = False,
    ) -> ConsoleContext:
        return cls(
            backend,
            read_only,
            Signal(app, "org-changes"),
            Signal(app, "connection"),
            Signal(app, "waiting"),
            Signal(app, "health"),
            has_connection=has_connection,
        )

    def set_connection(self, state: WatchState, detail: str | None = None) -> None:
        if detail is None:
            detail = self.connection_detail
        if (state, detail) == (self.connection_state, self.connection_detail):
            return
        self.connection_state = state
        self.connection_detail = detail
        self.connection_changed.publish(None)

    @property
    def fleet(self) -> FleetBackend | None:
        """The backend when it is several profiles at once (``--all-profiles``), else None."""
        return self.backend if isinstance(self.backend, FleetBackend) else None

    def set_waiting(self, items: list[PendingAction]) -> None:
        self.waiting = items
        self.waiting_changed.publish(None)

    @property
    def platform(self) -> str:
        """The platform's name, as the operator is told what it does not offer ("Viben", not the
        dialect's "viben"; the reference server has no label and keeps its dialect name)."""
        return self.backend.platform_label or self.backend.name

    def supports(self, capability: Capability) -> bool:
        return self.backend.supports(capability)

    def loaded_session(self, session_id: str) -> Session | None:
        """The sessions list's row for ``session_id`` if it holds it; never fetches."""
        pages = self.sessions
        if pages is None:
            return None
        index = pages.index_of(session_id)
        return pages.get(index) if index is not None else None

    def loaded_sessions(self, limit: int) -> Iterator[Session]:
        """Sessions already fetched by the list (for the palette); never fetches."""
        if self.sessions is None:
            return
        for count, session in enumerate(self.sessions.loaded()):
            if count >= limit:
                return
            yield session


def find_console(node: DOMNode) -> ConsoleContext | None:
    """The console context of the app ``node`` runs in, if it has one (a generic dialog may be
    hosted by any app)."""
    context = getattr(node.app, "console_context", None)
    return context if isinstance(context, ConsoleContext) else None


def console_of(node: DOMNode) -> ConsoleContext:
    """The console context of the app ``node`` runs in."""
    context = find_console(node)
    if context is None:
        raise LookupError(
            f"{type(node.app).__name__} has no console context: set app.console_context to a "
            "ConsoleContext before mounting console screens or widgets"
        )
    return context
