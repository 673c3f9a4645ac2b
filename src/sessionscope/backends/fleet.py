"""Several profiles at once: one ``Backend`` over many, for the fleet console.

``FleetBackend`` merges its members' session lists (newest first, one virtual list whose pages
keep each member's own paging), their inboxes (soonest deadline first) and their organisation
streams, and routes every session-scoped call to the member that owns the session. Ids it hands
out carry the member's profile name (``prod:ses_123``); the ids it receives are stripped before
they reach the member, so every platform sees only its own ids.

A member that fails does not stop the others: its error is kept in ``member_health`` (one entry per
member, for the console's health strip) and the rest of the fleet goes on. A read-only member's
items are listed but every change to them is refused with ``ReadOnlyProfile``.

``decide_many`` sends a batch of decisions across members, each exactly once, the items of one
platform pause together, and reports each outcome.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sessionscope.audit import ALREADY_DECIDED, EXPIRED, FAILED, REFUSED, SENT
from sessionscope.backends.audited import outcome_of
from sessionscope.backends.base import (
    Backend,
    BackendError,
    Capability,
    NotFound,
    ProtocolError,
    SessionQuery,
    Unsupported,
    WatchState,
    WatchStateCallback,
)
from sessionscope.models import (
    ActionDecisionResult,
    Artifact,
    CloseResult,
    Event,
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

#: Between the profile name and the member's own id; profile names may not contain it.
SEPARATOR = ":"
#: Capabilities that need a member chosen first (a new session belongs to one profile).
_NOT_FOR_THE_FLEET = frozenset({Capability.CREATE_SESSION, Capability.OLDEST_FIRST})
_LATEST = datetime.max
#: Partly merged member pages kept per member (the list's way down, and a page ahead).
_PARTIAL_PAGES_PER_MEMBER = 4


class ReadOnlyProfile(BackendError):
    """A change aimed at a member whose profile is read-only."""


@dataclass
class FleetMember:
    name: str
    backend: Backend
    read_only: bool = False


@dataclass
class MemberHealth:
    state: WatchState = WatchState.CONNECTING
    detail: str = ""
    #: The last error of a request that failed for this member alone (listing, inbox).
    error: str | None = None


def _split(fleet_id: str) -> tuple[str, str]:
    name, separator, raw = fleet_id.partition(SEPARATOR)
    if not separator:
        raise NotFound(f"{fleet_id!r} names no profile (expected PROFILE{SEPARATOR}ID)")
    return name, raw


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _decode(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        raise ProtocolError("the fleet's page cursor is not one it gave out") from None
    if not isinstance(state, dict):
        raise ProtocolError("the fleet's page cursor is not one it gave out")
    return state


class FleetBackend(Backend):
    name = "fleet"
    platform_label = "fleet"

    def __init__(self, members: list[FleetMember]) -> None:
        if not members:
            raise ValueError("a fleet needs at least one profile")
        for member in members:
            if SEPARATOR in member.name:
                raise ValueError(f"profile name {member.name!r} may not contain {SEPARATOR!r}")
        self.members = {member.name: member for member in members}
        self.member_health = {member.name: MemberHealth() for member in members}
        #: Called with the member's name whenever its health changes (the health strip).
        self.on_health: Callable[[str], None] | None = None
        #: The one profile the session list shows (``:ctx NAME``), or None for every profile.
        #: Session ids keep routing to every member either way.
        self.shown_profile: str | None = None
        #: Member pages only partly merged so far, by (member, cursor, query, size): the next
        #: merged page takes their remaining rows from here.
        self._partial_pages: dict[tuple[str, str | None, str, int], Page[Session]] = {}
        union: frozenset[Capability] = frozenset()
        for member in members:
            union |= member.backend.capabilities
        self.capabilities = union - _NOT_FOR_THE_FLEET
        self.decides_in_batches = any(m.backend.decides_in_batches for m in members)

    @property
    def display_name(self) -> str:
        return f"{len(self.members)} profiles: " + ", ".join(self.members)

    def member_of(self, fleet_id: str) -> tuple[FleetMember, str]:
        """The member owning a fleet id, and the member's own id."""
        name, raw = _split(fleet_id)
        member = self.members.get(name)
        if member is None:
            raise NotFound(f"no profile named {name!r} in this fleet")
        return member, raw

    def _writable(self, fleet_id: str) -> tuple[Backend, str]:
        member, raw = self.member_of(fleet_id)
        if member.read_only:
            raise ReadOnlyProfile(f"profile {member.name!r} is read-only: nothing is sent")
        return member.backend, raw

    def _reader(self, fleet_id: str) -> tuple[Backend, str]:
        member, raw = self.member_of(fleet_id)
        return member.backend, raw

    def _set_health(self, name: str, **changes: Any) -> None:
        health = self.member_health[name]
        for key, value in changes.items():
            setattr(health, key, value)
        if self.on_health is not None:
            with contextlib.suppress(Exception):
                self.on_health(name)

    async def aclose(self) -> None:
        await asyncio.gather(
            *(member.backend.aclose() for member in self.members.values()),
            return_exceptions=True,
        )

    # -- ids out --------------------------------------------------------------------------------
    @staticmethod
    def _session(name: str, session: Session) -> Session:
        return session.model_copy(update={"id": f"{name}{SEPARATOR}{session.id}", "profile": name})

    @staticmethod
    def _action(name: str, action: PendingAction, platform: str) -> PendingAction:
        update: dict[str, Any] = {
            "id": f"{name}{SEPARATOR}{action.id}",
            "session_id": f"{name}{SEPARATOR}{action.session_id}",
            "profile": name,
            "platform": platform,
        }
        if action.group_id is not None:
            update["group_id"] = f"{name}{SEPARATOR}{action.group_id}"
        return action.model_copy(update=update)

    @staticmethod
    def _owned(name: str, item: T) -> T:
        return item.model_copy(update={"session_id": f"{name}{SEPARATOR}{item.session_id}"})  # type: ignore[attr-defined,no-any-return]

    def _platform(self, name: str) -> str:
        backend = self.members[name].backend
        return backend.platform_label or backend.name

    # -- sessions -------------------------------------------------------------------------------
    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        if query is not None and query.order != "newest":
            raise self._unsupported(Capability.OLDEST_FIRST)
        if cursor is None:
            # Per member: [its page cursor, rows of that page already listed, finished].
            state: dict[str, Any] = {
                "limit": limit,
                "m": {name: [None, 0, False] for name in self._listed()},
            }
        else:
            state = _decode(cursor)
        page_size = int(state.get("limit", limit))
        positions: dict[str, list[Any]] = state["m"]
        live = [name for name, (_, _, done) in positions.items() if not done]

        async def fetch(name: str) -> Page[Session] | None:
            member_cursor, used = positions[name][0], positions[name][1]
            key = (name, member_cursor, repr(query), page_size)
            if used or member_cursor is not None:
                # The rest of a page the previous merged page was cut from (or stopped before):
                # the same rows, not a second request for them. A first page (no cursor, none
                # used) is always asked for afresh: it starts a list.
                kept = self._partial_pages.get(key)
                if kept is not None:
                    return kept
            try:
                page = await self.members[name].backend.list_sessions(
                    query, cursor=member_cursor, limit=page_size
                )
            except BackendError as error:
                self._set_health(name, error=error.message)
                return None
            if self.member_health[name].error is not None:
                self._set_health(name, error=None)
            return page

        pages = dict(zip(live, await asyncio.gather(*(fetch(name) for name in live)), strict=True))
        heads: dict[str, list[Session]] = {}
        for name, page in pages.items():
            if page is None:
                positions[name] = [None, 0, True]  # failed: its health row says why
                continue
            heads[name] = page.data[positions[name][1] :]
        taken = dict.fromkeys(heads, 0)
        merged: list[Session] = []
        while len(merged) < limit:
            candidates = [name for name in heads if taken[name] < len(heads[name])]
            # A member whose fetched rows ran out but that has more pages: its next rows may be
            # newer than anyone else's next one, so the page stops here to keep the order.
            if any(
                taken[name] == len(heads[name])
                and pages[name] is not None
                and pages[name].next_cursor  # type: ignore[union-attr]
                for name in heads
            ):
                break
            if not candidates:
                break
            name = max(candidates, key=lambda n: heads[n][taken[n]].created_at)
            merged.append(self._session(name, heads[name][taken[name]]))
            taken[name] += 1
        for name, rows in heads.items():
            page = pages[name]
            assert page is not None
            used = positions[name][1] + taken[name]
            if taken[name] == len(rows):
                positions[name] = [page.next_cursor, 0, page.next_cursor is None]
            else:
                positions[name] = [positions[name][0], used, False]
                self._keep_partial((name, positions[name][0], repr(query), page_size), page)
        more = any(not done for _, _, done in positions.values())
        total: int | None = None
        if cursor is None:
            totals = [page.total for page in pages.values() if page is not None]
            if len(totals) == len(positions) and all(t is not None for t in totals):
                total = sum(t for t in totals if t is not None)
        return Page[Session](data=merged, next_cursor=_encode(state) if more else None, total=total)

    def _keep_partial(self, key: tuple[str, str | None, str, int], page: Page[Session]) -> None:
        self._partial_pages.pop(key, None)
        self._partial_pages[key] = page
        while len(self._partial_pages) > _PARTIAL_PAGES_PER_MEMBER * len(self.members):
            del self._partial_pages[next(iter(self._partial_pages))]

    def _listed(self) -> list[str]:
        shown = self.shown_profile
        if shown is not None and shown in self.members:
            return [shown]
        return list(self.members)

    async def get_session(self, session_id: str) -> Session:
        backend, raw = self._reader(session_id)
        name = _split(session_id)[0]
        return self._session(name, await backend.get_session(raw))

    async def create_session(self, spec: SessionCreate) -> Session:
        raise Unsupported(
            Capability.CREATE_SESSION,
            self.name,
            "a new session belongs to one profile: switch to it first (:ctx NAME)",
        )

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        backend, raw = self._writable(session_id)
        return self._session(_split(session_id)[0], await backend.update_session(raw, update))

    async def delete_session(self, session_id: str) -> None:
        backend, raw = self._writable(session_id)
        await backend.delete_session(raw)

    async def close_session(self, session_id: str) -> CloseResult:
        backend, raw = self._writable(session_id)
        result = await backend.close_session(raw)
        return result.model_copy(update={"id": session_id})

    async def complete_session(self, session_id: str) -> Session:
        backend, raw = self._writable(session_id)
        return self._session(_split(session_id)[0], await backend.complete_session(raw))

    async def send_message(self, session_id: str, content: str) -> Event:
        backend, raw = self._writable(session_id)
        return await backend.send_message(raw, content)

    async def cancel_turn(self, session_id: str) -> str:
        backend, raw = self._writable(session_id)
        return await backend.cancel_turn(raw)

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
        backend, raw = self._reader(session_id)
        return await backend.list_events(
            raw, after=after, limit=limit, types=types, include_hidden=include_hidden
        )

    async def get_event(self, session_id: str, event_id: str) -> Event:
        backend, raw = self._reader(session_id)
        return await backend.get_event(raw, event_id)

    async def delete_event(self, session_id: str, event_id: str) -> None:
        backend, raw = self._writable(session_id)
        await backend.delete_event(raw, event_id)

    async def hide_event(self, session_id: str, event_id: str) -> Event:
        backend, raw = self._writable(session_id)
        return await backend.hide_event(raw, event_id)

    async def unhide_event(self, session_id: str, event_id: str) -> Event:
        backend, raw = self._writable(session_id)
        return await backend.unhide_event(raw, event_id)

    async def timeline(self, session_id: str) -> list[TimelineEntry]:
        backend, raw = self._reader(session_id)
        return await backend.timeline(raw)

    async def replay(self, session_id: str) -> Replay:
        backend, raw = self._reader(session_id)
        result = await backend.replay(raw)
        return result.model_copy(update={"session_id": session_id})

    # -- artifacts ------------------------------------------------------------------------------
    async def list_artifacts(
        self, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        backend, raw = self._reader(session_id)
        name = _split(session_id)[0]
        page = await backend.list_artifacts(raw, cursor=cursor, limit=limit)
        return page.model_copy(update={"data": [self._owned(name, a) for a in page.data]})

    async def get_artifact(self, session_id: str, artifact_id: str) -> Artifact:
        backend, raw = self._reader(session_id)
        return self._owned(_split(session_id)[0], await backend.get_artifact(raw, artifact_id))

    def read_artifact(
        self,
        session_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        max_bytes: int | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        backend, raw = self._reader(session_id)
        return backend.read_artifact(
            raw, artifact_id, offset=offset, max_bytes=max_bytes, chunk_size=chunk_size
        )

    # -- tool calls -----------------------------------------------------------------------------
    async def list_tool_calls(self, session_id: str) -> list[ToolCall]:
        backend, raw = self._reader(session_id)
        name = _split(session_id)[0]
        return [self._owned(name, call) for call in await backend.list_tool_calls(raw)]

    async def submit_tool_result(
        self,
        session_id: str,
        call_id: str,
        result: ToolResult,
        *,
        idempotency_key: str | None = None,
    ) -> ToolCall:
        backend, raw = self._writable(session_id)
        call = await backend.submit_tool_result(
            raw, call_id, result, idempotency_key=idempotency_key
        )
        return self._owned(_split(session_id)[0], call)

    # -- pending actions ------------------------------------------------------------------------
    async def list_pending_actions(self) -> list[PendingAction]:
        """Every member's waiting items together, soonest deadline first (none: last)."""

        async def inbox(name: str) -> list[PendingAction]:
            backend = self.members[name].backend
            if not backend.supports(Capability.PENDING_ACTIONS):
                return []
            try:
                items = await backend.list_pending_actions()
            except BackendError as error:
                self._set_health(name, error=error.message)
                return []
            platform = self._platform(name)
            return [self._action(name, item, platform) for item in items]

        gathered = await asyncio.gather(*(inbox(name) for name in self.members))
        items = [item for batch in gathered for item in batch]
        return sort_by_deadline(items)

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        backend, raw = self._reader(session_id)
        name = _split(session_id)[0]
        platform = self._platform(name)
        return [self._action(name, a, platform) for a in await backend.list_session_actions(raw)]

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        backend, raw = self._reader(session_id)
        name = _split(session_id)[0]
        action = await backend.get_action(raw, self._own_id(name, action_id))
        return self._action(name, action, self._platform(name))

    @staticmethod
    def _own_id(name: str, item_id: str) -> str:
        prefix = f"{name}{SEPARATOR}"
        return item_id[len(prefix) :] if item_id.startswith(prefix) else item_id

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
        backend, raw = self._writable(session_id)
        name = _split(session_id)[0]
        result = await backend.decide_action(
            raw,
            self._own_id(name, action_id),
            confirmed,
            idempotency_key=idempotency_key,
            choice=choice,
            reason=reason,
        )
        return result.model_copy(update={"session_id": session_id, "action_id": action_id})

    async def decide_actions(
        self,
        session_id: str,
        decisions: list[tuple[str, str]],
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[ActionDecisionResult]:
        backend, raw = self._writable(session_id)
        name = _split(session_id)[0]
        own = [(self._own_id(name, action_id), choice) for action_id, choice in decisions]
        results = await backend.decide_actions(
            raw, own, reason=reason, idempotency_key=idempotency_key
        )
        return [
            result.model_copy(
                update={
                    "session_id": session_id,
                    "action_id": f"{name}{SEPARATOR}{result.action_id}",
                }
            )
            for result in results
        ]

    # -- live -----------------------------------------------------------------------------------
    async def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        backend, raw = self._reader(session_id)
        async for event in backend.watch_session(raw, after=after, on_state=on_state):
            yield event

    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        """Every member's changes as one stream. Positions are the fleet's own count: each
        member resumes by itself, so a fleet watch started again begins from "now"."""
        queue: asyncio.Queue[tuple[str, OrgChange]] = asyncio.Queue()
        counter = after or 0

        def report(name: str) -> WatchStateCallback:
            def changed(state: WatchState, detail: str | None) -> None:
                self._set_health(name, state=state, detail=detail or "")
                if on_state is not None:
                    on_state(*self.overall_state())

            return changed

        async def follow(name: str) -> None:
            backend = self.members[name].backend
            try:
                async for change in backend.watch_org(on_state=report(name)):
                    await queue.put((name, change))
            except Unsupported:
                self._set_health(
                    name, state=WatchState.OFFLINE, detail="no live updates from this platform"
                )
            except BackendError as error:
                self._set_health(name, state=WatchState.OFFLINE, detail=error.message)
            if on_state is not None:
                on_state(*self.overall_state())

        tasks = [asyncio.create_task(follow(name)) for name in self.members]
        try:
            while True:
                name, change = await queue.get()
                counter += 1
                yield self._change(name, change, counter)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _change(self, name: str, change: OrgChange, position: int) -> OrgChange:
        update: dict[str, Any] = {"id": position}
        if change.session_id:
            update["session_id"] = f"{name}{SEPARATOR}{change.session_id}"
        if change.session is not None:
            update["session"] = self._session(name, change.session)
        if change.action is not None:
            update["action"] = self._action(name, change.action, self._platform(name))
        return change.model_copy(update=update)

    def overall_state(self) -> tuple[WatchState, str]:
        """One word for the header: live while any member is, with the others' trouble said."""
        states = {name: health.state for name, health in self.member_health.items()}
        troubled = [
            f"{name}: {health.state.value}"
            for name, health in self.member_health.items()
            if health.state not in (WatchState.LIVE, WatchState.POLLING)
        ]
        if any(state is WatchState.LIVE for state in states.values()):
            overall = WatchState.LIVE
        elif any(state is WatchState.POLLING for state in states.values()):
            overall = WatchState.POLLING
        elif any(state is WatchState.CONNECTING for state in states.values()):
            overall = WatchState.CONNECTING
        elif any(state is WatchState.RECONNECTING for state in states.values()):
            overall = WatchState.RECONNECTING
        else:
            overall = WatchState.OFFLINE
        healthy = len(states) - len(troubled)
        detail = f"{healthy} of {len(states)} profiles live"
        if troubled:
            detail += "; " + "; ".join(troubled)
        return overall, detail


def sort_by_deadline(items: list[PendingAction]) -> list[PendingAction]:
    """Soonest deadline first; items without one last, oldest first among equals."""

    def key(item: PendingAction) -> tuple[bool, datetime, datetime]:
        expires = item.expires_at
        naive = expires.replace(tzinfo=None) if expires is not None else _LATEST
        return (expires is None, naive, item.created_at.replace(tzinfo=None))

    return sorted(items, key=key)


# -------------------------------------------------------------------------------------------------
# Batch decisions
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRequest:
    action: PendingAction
    choice: str


@dataclass
class DecisionOutcome:
    request: DecisionRequest
    #: sent / already decided / expired / refused / failed (``sessionscope.audit``'s words).
    outcome: str
    detail: str = ""
    result: ActionDecisionResult | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return str(getattr(self.request.action, "profile", None) or "")


def with_whole_groups(
    chosen: list[PendingAction], every: list[PendingAction]
) -> list[PendingAction]:
    """The chosen items plus every other pending item of their groups (an Everruns pause is
    answered as a whole), in the order of ``every``."""
    groups = {item.group_id for item in chosen if item.group_id is not None}
    ids = {item.id for item in chosen}
    return [item for item in every if item.id in ids or (item.group_id in groups and item.group_id)]


async def decide_many(
    backend: Backend, requests: list[DecisionRequest], *, reason: str | None = None
) -> list[DecisionOutcome]:
    """Send every decision exactly once: one idempotency key per send, no re-send after an
    answer. Items of one group go in one request; the others one by one, concurrently across
    sessions. A failure of one send is that item's outcome, not the batch's end."""
    outcomes: dict[int, DecisionOutcome] = {}
    grouped: dict[tuple[str, str], list[int]] = {}
    singles: list[int] = []
    for index, request in enumerate(requests):
        action = request.action
        if action.group_id is not None and backend.decides_in_batches:
            grouped.setdefault((action.session_id, action.group_id), []).append(index)
        else:
            singles.append(index)

    async def single(index: int) -> None:
        request = requests[index]
        choice = next((c for c in request.action.choices if c.id == request.choice), None)
        confirmed = choice.confirms if choice is not None else request.choice == "confirm"
        try:
            result = await backend.decide_action(
                request.action.session_id,
                request.action.id,
                confirmed,
                idempotency_key=uuid.uuid4().hex,
                choice=request.choice,
                reason=reason,
            )
        except ReadOnlyProfile as error:
            outcomes[index] = DecisionOutcome(request, REFUSED, error.message)
        except BackendError as error:
            outcomes[index] = DecisionOutcome(request, outcome_of(error), error.message)
        else:
            outcomes[index] = DecisionOutcome(request, SENT, result.status.value, result)

    async def group(session_id: str, indexes: list[int]) -> None:
        decisions = [(requests[i].action.id, requests[i].choice) for i in indexes]
        try:
            results = await backend.decide_actions(
                session_id, decisions, reason=reason, idempotency_key=uuid.uuid4().hex
            )
        except ReadOnlyProfile as error:
            for i in indexes:
                outcomes[i] = DecisionOutcome(requests[i], REFUSED, error.message)
            return
        except BackendError as error:
            for i in indexes:
                outcomes[i] = DecisionOutcome(requests[i], outcome_of(error), error.message)
            return
        by_id = {result.action_id: result for result in results}
        for i in indexes:
            found = by_id.get(requests[i].action.id)
            if found is None:
                outcomes[i] = DecisionOutcome(requests[i], SENT, "sent with its group")
            else:
                outcomes[i] = DecisionOutcome(requests[i], SENT, found.status.value, found)

    await asyncio.gather(
        *(single(index) for index in singles),
        *(group(session_id, indexes) for (session_id, _), indexes in grouped.items()),
    )
    return [outcomes[index] for index in range(len(requests))]


def summarise(outcomes: list[DecisionOutcome]) -> str:
    """One line: how many of each outcome, e.g. "3 sent, 1 already decided, 1 failed"."""
    order = (SENT, ALREADY_DECIDED, EXPIRED, REFUSED, FAILED)
    counts = {word: sum(1 for o in outcomes if o.outcome == word) for word in order}
    return ", ".join(f"{count} {word}" for word, count in counts.items() if count) or "nothing"
