"""Event appends: queued, then committed in groups by one writer (group commit), each append
still getting its own sequence numbers and reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import pydantic_core
from sqlalchemy import (
    bindparam,
    select,
    update,
)
from sqlalchemy.engine import Connection

from sessionscope.models import (
    Event,
    OrgChange,
)
from sessionscope.server import db, pg_fanout
from sessionscope.server.errors import ApiError, not_found
from sessionscope.server.store.codecs import new_event_ids, now_utc, org_channel, session_channel
from sessionscope.server.store.core import (
    Appended,
    StoreCore,
    _AppendBatch,
    _AppendRequest,
    _apply_event_to_session,
    _DriverSql,
    _record_org_change,
    _refuse_closed,
)
from sessionscope.server.streams import sse_frame

#: Appends committed together at most (each still gets its own sequence and reply).
APPEND_BATCH_REQUESTS = 256
#: How long the writer thread keeps committing queued appends before it lets other writes
#: (which wait on the same lock) have a turn.
APPEND_LEASE_SECONDS = 0.05


class IngestStore(StoreCore):
    # -- events ---------------------------------------------------------------------------------

    async def append_event(
        self, org: str, session_id: str, event_type: str, payload: dict[str, Any]
    ) -> Event:
        (event,) = await self.append_events(org, session_id, [(event_type, payload)])
        return event

    async def append_events(
        self, org: str, session_id: str, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Event]:
        """Append events (type, payload) in order, atomically; returns them with sequences."""
        return (await self.append_events_encoded(org, session_id, items)).events

    async def append_events_encoded(
        self, org: str, session_id: str, items: Sequence[tuple[str, dict[str, Any]]]
    ) -> Appended:
        """``append_events``, with each event's encoded frame (for replies without encoding
        the events again)."""
        if not items:
            return Appended()
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._appends.append(_AppendRequest(org, session_id, list(items), future))
        if self._append_drainer is None or self._append_drainer.done():
            self._append_drainer = asyncio.create_task(
                self._drain_appends(), name="sessionscope-appends"
            )
        # A caller that goes away cancels only its own future; the commit it may share with
        # other callers goes on (replies to futures already done are skipped).
        return await future

    def _may_announce_session_update(self, key: tuple[str, str]) -> bool:
        """Called in the transaction (writer thread, write lock held): True when the session
        has had no session.updated for an interval, so this one goes out at once."""
        sent = self._session_update_sent.get(key)
        return sent is None or time.monotonic() - sent >= self.session_update_interval

    def _note_session_updates(self, outcome: _AppendBatch) -> None:
        now = time.monotonic()
        for key in outcome.announced:
            self._session_update_sent[key] = now
            self._session_update_owed.discard(key)
        owed = [key for key in outcome.touched if key not in outcome.announced]
        self._session_update_owed.update(owed)
        if self._session_update_owed and (
            self._session_update_flusher is None or self._session_update_flusher.done()
        ):
            self._session_update_flusher = asyncio.create_task(
                self._flush_session_updates(), name="sessionscope-session-updates"
            )

    async def _flush_session_updates(self) -> None:
        """Send each owed session.updated once its interval is over, with the newest state."""
        interval = self.session_update_interval
        while self._session_update_owed:
            now = time.monotonic()
            due = [
                key
                for key in self._session_update_owed
                if now - self._session_update_sent.get(key, 0.0) >= interval
            ]
            if not due:
                earliest = min(
                    self._session_update_sent.get(key, 0.0) for key in self._session_update_owed
                )
                await asyncio.sleep(max(0.0, earliest + interval - now))
                continue
            async with self._write_lock:
                stamp = now_utc()
                changes = await self._run_write(
                    partial(_record_sessions_updated, keys=due, now=stamp, notify=True)
                )
                sent = time.monotonic()
                for key in due:
                    self._session_update_owed.discard(key)
                    self._session_update_sent[key] = sent
                if self.fanout is not None:
                    self.fanout.poke(
                        pg_fanout.newest_positions((channel, c.id) for channel, c in changes)
                    )
                else:
                    for channel, change in changes:
                        self._publish(channel, change)
            # Forget sessions that have been quiet for a while so the map stays small.
            cutoff = time.monotonic() - 10 * interval
            # list() copies in one step: the writer thread may add keys meanwhile.
            for key in [k for k, v in list(self._session_update_sent.items()) if v < cutoff]:
                if key not in self._session_update_owed:
                    del self._session_update_sent[key]

    def _take_appends(self) -> list[_AppendRequest]:
        taken: list[_AppendRequest] = []
        while self._appends and len(taken) < APPEND_BATCH_REQUESTS:
            taken.append(self._appends.popleft())
        return taken

    async def _drain_appends(self) -> None:
        while self._appends:
            async with self._write_lock:
                if self._writer is not None and self._sync_engine is not None:
                    try:
                        job = self._writer.submit(self._commit_appends, asyncio.get_running_loop())
                    except RuntimeError as error:  # the writer is shut down: the store closed
                        while batch := self._take_appends():
                            self._finish_appends(batch, error)
                        return
                    lease = asyncio.wrap_future(job)
                    try:
                        await asyncio.shield(lease)
                    except asyncio.CancelledError:
                        # The writer thread ends its current group regardless: hold the lock
                        # until it has.
                        await asyncio.gather(lease, return_exceptions=True)
                        raise
                    continue
                batch = self._take_appends()
                try:
                    outcome = await self._run_write(
                        partial(
                            _append_batch,
                            requests=batch,
                            now=now_utc(),
                            announce_now=self._may_announce_session_update,
                        )
                    )
                except BaseException as error:
                    self._finish_appends(batch, error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                self._finish_appends(batch, outcome)

    def _commit_appends(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the writer thread, while the drainer holds the write lock: commit queued appends
        group after group for up to a lease, each group's frames and replies handed to the event
        loop in one call. Appends that arrive during a commit make the next group, without the
        loop scheduling anything in between."""
        assert self._sync_engine is not None
        lease_ends = time.monotonic() + APPEND_LEASE_SECONDS
        while batch := self._take_appends():
            outcome: _AppendBatch | BaseException
            try:
                with self._sync_engine.begin() as conn:
                    outcome = _append_batch(
                        conn, batch, now_utc(), announce_now=self._may_announce_session_update
                    )
                # Recorded here, not when the loop gets the group, so that the next group
                # (already being committed by then) does not announce the same session again.
                sent = time.monotonic()
                for key in outcome.announced:
                    self._session_update_sent[key] = sent
            except Exception as error:
                outcome = error
            try:
                loop.call_soon_threadsafe(self._finish_appends, batch, outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            if time.monotonic() >= lease_ends:
                return

    def _finish_appends(
        self, batch: list[_AppendRequest], outcome: _AppendBatch | BaseException
    ) -> None:
        """On the event loop, in commit order: publish a group's frames, then reply."""
        if isinstance(outcome, BaseException):
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(outcome)
            return
        try:
            if outcome.recount:
                self._counts.clear()
            self._note_session_updates(outcome)
            if self.fanout is not None:
                self.fanout.poke(_batch_positions(outcome))
            else:
                for channel, frames in outcome.frames:
                    self.broker.publish_many(channel, frames)
                for channel, change in outcome.changes:
                    self._publish(channel, change)
        finally:
            # Committed is committed: the callers get their replies even if publishing failed
            # (this runs as a bare loop callback, so nobody else would answer them).
            for request, result in zip(batch, outcome.results, strict=True):
                if request.future.done():
                    continue
                if isinstance(result, ApiError):
                    request.future.set_exception(result)
                else:
                    request.future.set_result(result)


#: The session columns an appended event can change (what ``_apply_event_to_session`` reads).
_HOT_COLUMNS = (
    "status",
    "last_sequence",
    "event_count",
    "message_count",
    "preview",
    "output_preview",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "started_at",
    "finished_at",
)
_TIME_COLUMNS = ("started_at", "finished_at", "last_active_at", "updated_at")
#: A change of one of these may move the session in or out of a sessions-list filter.
_FILTERED_COLUMNS = ("status", "preview")
# FOR UPDATE (on databases that have it): the sequence read here is the one this transaction
# continues; another replica's append to the session waits for this commit.
_SELECT_HOT = _DriverSql(
    select(*(db.sessions.c[name] for name in _HOT_COLUMNS))
    .where(db.sessions.c.id == bindparam("p_id"), db.sessions.c.org == bindparam("p_org"))
    .with_for_update()
)
_LOCK_SESSION = _DriverSql(
    select(db.sessions.c.id)
    .where(db.sessions.c.id == bindparam("p_id"), db.sessions.c.org == bindparam("p_org"))
    .with_for_update()
)
_UPDATE_HOT = _DriverSql(
    update(db.sessions)
    .where(db.sessions.c.id == bindparam("p_id"))
    .values(
        {name: bindparam(f"v_{name}") for name in (*_HOT_COLUMNS, "last_active_at", "updated_at")}
    )
)
_INSERT_EVENT = _DriverSql(
    db.events.insert().values(
        {column.name: bindparam(f"v_{column.name}") for column in db.events.c}
    )
)


#: ``Event(...).model_dump_json()`` for an appended event (not hidden), from its encoded parts:
#: id, session id, sequence, type, created_at, payload. Tests hold the two byte-identical.
_EVENT_JSON = (
    b'{"id":"%s","session_id":%s,"sequence":%d,"type":%s,"created_at":%s,"payload":%s,'
    b'"hidden":false,"hide_reason":null}'
)


def _append_batch(
    conn: Connection,
    requests: list[_AppendRequest],
    now: datetime,
    announce_now: Callable[[tuple[str, str]], bool] = lambda key: True,
) -> _AppendBatch:
    """One transaction for a group of append requests: read each session once, apply the
    events in memory (the same rules as every other write), then one multi-row INSERT and one
    UPDATE per session. A request that fails (unknown or closed session) adds nothing."""
    outcome = _AppendBatch()
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    originals: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    if conn.dialect.name == "postgresql":
        # Lock every session of the group in one fixed order before any is read: replicas
        # appending to the same sessions then queue on the rows instead of deadlocking, and
        # each reads the last sequence the previous commit left (``_SELECT_HOT`` locks too).
        keys = sorted({(request.session_id, request.org) for request in requests})
        for session_id, org in keys:
            _LOCK_SESSION.run(conn, {"p_id": session_id, "p_org": org})
    now_micros = db.to_micros(now)
    created_json = pydantic_core.to_json(now)
    for request in requests:
        key = (request.org, request.session_id)
        session = sessions.get(key)
        if session is None:
            found = _SELECT_HOT.run(conn, {"p_id": request.session_id, "p_org": request.org})
            values = found.first()
            if values is None:
                outcome.results.append(not_found("session"))
                continue
            session = dict(zip(_HOT_COLUMNS, values, strict=True))
            for name in ("started_at", "finished_at"):
                if session[name] is not None:
                    session[name] = db.from_micros(session[name])
            session["id"], session["org"] = request.session_id, request.org
            sessions[key] = session
            originals[key] = dict(session)
        try:
            _refuse_closed(session)
        except ApiError as error:
            outcome.results.append(error)
            continue
        channel = session_channel(request.org, request.session_id)
        appended = Appended()
        session_json = pydantic_core.to_json(request.session_id)
        event_ids = new_event_ids(len(request.items))
        for (event_type, payload), event_id in zip(request.items, event_ids, strict=True):
            sequence = session["last_sequence"] + 1
            session["last_sequence"] = sequence
            session["event_count"] += 1
            _apply_event_to_session(session, event_type, payload, now)
            # pydantic-core's encoder: several times json.dumps' speed, same JSON value.
            payload_json = pydantic_core.to_json(payload)
            rows.append(
                {
                    "v_id": event_id,
                    "v_session_id": request.session_id,
                    "v_org": request.org,
                    "v_sequence": sequence,
                    "v_type": event_type,
                    "v_created_at": now_micros,
                    "v_payload": payload_json.decode(),
                    "v_hidden": False,
                    "v_hide_reason": None,
                }
            )
            # The event's JSON, encoded once for every live stream and the caller's reply, from
            # parts already encoded: building and validating an ``Event`` per row, then
            # encoding it (the payload again), was a third of the writer's time.
            body = _EVENT_JSON % (
                event_id.encode(),
                session_json,
                sequence,
                pydantic_core.to_json(event_type),
                created_json,
                payload_json,
            )
            appended.frames.append(sse_frame(sequence, event_type, False, body))
        outcome.results.append(appended)
        if outcome.frames and outcome.frames[-1][0] == channel:
            outcome.frames[-1][1].extend(appended.frames)
        else:
            # A copy: the group may grow with the next request's frames, the reply must not.
            outcome.frames.append((channel, list(appended.frames)))
    if rows:
        _INSERT_EVENT.run_many(conn, rows)
    for key, session in sessions.items():
        original = originals[key]
        if session["last_sequence"] == original["last_sequence"]:
            continue
        session["last_active_at"] = session["updated_at"] = now
        params = {"p_id": session["id"]}
        for name in (*_HOT_COLUMNS, "last_active_at", "updated_at"):
            value = session[name]
            if name in _TIME_COLUMNS and value is not None:
                value = db.to_micros(value)
            params[f"v_{name}"] = value
        _UPDATE_HOT.run(conn, params)
        if any(session[name] != original[name] for name in _FILTERED_COLUMNS):
            outcome.recount = True
        outcome.touched.append(key)
        if announce_now(key):
            outcome.announced.append(key)
    outcome.changes.extend(_record_sessions_updated(conn, outcome.announced, now))
    if conn.dialect.name == "postgresql":
        pg_fanout.notify(conn, _batch_positions(outcome))
    return outcome


def _record_sessions_updated(
    conn: Connection, keys: list[tuple[str, str]], now: datetime, notify: bool = False
) -> list[tuple[Hashable, OrgChange]]:
    """(org channel, change) of a ``session.updated`` org change carrying each session's current
    row (gone ones skipped)."""
    recorded: list[tuple[Hashable, OrgChange]] = []
    s = db.sessions.c
    # In organisation order: each organisation's stream lock is then taken in one fixed order.
    for org, session_id in sorted(keys):
        row = conn.execute(select(db.sessions).where(s.id == session_id, s.org == org)).first()
        if row is not None:
            change = _record_org_change(conn, org, "session.updated", session_id, now, session=row)
            recorded.append((org_channel(org), change))
    if notify:
        pg_fanout.notify(
            conn, pg_fanout.newest_positions((channel, c.id) for channel, c in recorded)
        )
    return recorded


def _batch_positions(outcome: _AppendBatch) -> dict[Hashable, int]:
    """Each channel's newest position written by a group commit."""
    return pg_fanout.newest_positions(
        [
            *((channel, frames[-1].cursor) for channel, frames in outcome.frames if frames),
            *((channel, change.id) for channel, change in outcome.changes),
        ]
    )
