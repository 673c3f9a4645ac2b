"""Live streams across replicas on PostgreSQL: NOTIFY after commit, LISTEN, read by position.

Every write transaction that adds events or organisation changes ends with a small
``pg_notify`` (delivered by PostgreSQL at commit, never for a rollback) naming, per session and
per organisation, the newest position it wrote: ids and positions, never payloads, one
notification per transaction (more only past PostgreSQL's 8000-byte payload limit).

Every replica's ``PgFanout`` LISTENs on its own direct asyncpg connection. For each channel
that has subscribers on this replica it keeps a watermark (the last position it published) and,
when told of a newer position, reads the rows after the watermark in position order and hands
them to the in-process ``Broker``; the SSE streams then work as on SQLite. The writer's own
replica is poked directly after its commit rather than waiting for its notification.

Nothing is published straight from a write on PostgreSQL: positions commit in order (a
session's row lock; an organisation's stream lock), so reading "after the watermark" yields
them gapless and in order whichever replica wrote them. A periodic catch-up compares the
watermarks with the database's heads, which covers a notification missed while the listener
connection was down (it reconnects by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Hashable, Iterable
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, make_url

from sessionscope.models import Event, OrgChange
from sessionscope.server import db
from sessionscope.server.broker import Broker
from sessionscope.server.streams import LiveFrame, live_frame

log = logging.getLogger("sessionscope.server.fanout")

#: The NOTIFY channel every replica listens on.
NOTIFY_CHANNEL = "sessionscope_changes"
#: PostgreSQL refuses payloads of 8000 bytes or more; a transaction writing more positions
#: than fit sends several notifications.
_PAYLOAD_LIMIT = 7000
#: Rows read per query while catching a set of channels up.
READ_BATCH = 2000

#: A session channel is ("session", org, session_id), an organisation's ("org", org).
Channel = Hashable


def notify_payloads(positions: dict[Channel, int], closed: Iterable[Channel] = ()) -> list[str]:
    """The NOTIFY payloads for one transaction's newest positions per channel and the session
    channels it closed: ``{"s": [[org, session, seq]...], "o": [[org, id]...], "d": [[org,
    session]...]}``, split to stay under the payload limit."""
    entries: list[tuple[str, list[Any]]] = []
    for channel, position in positions.items():
        kind, *names = cast(tuple[str, ...], channel)
        entries.append(("s" if kind == "session" else "o", [*names, position]))
    entries.extend(("d", list(cast(tuple[str, ...], channel))[1:]) for channel in closed)
    payloads: list[str] = []
    current: dict[str, list[Any]] = {}
    size = 0
    for key, entry in entries:
        cost = len(json.dumps(entry)) + 1
        if current and size + cost > _PAYLOAD_LIMIT:
            payloads.append(json.dumps(current, separators=(",", ":")))
            current, size = {}, 0
        current.setdefault(key, []).append(entry)
        size += cost + 8
    if current:
        payloads.append(json.dumps(current, separators=(",", ":")))
    return payloads


def newest_positions(items: Iterable[tuple[Channel, int]]) -> dict[Channel, int]:
    """(channel, position) pairs -> each channel's newest position."""
    newest: dict[Channel, int] = {}
    for channel, position in items:
        if position > newest.get(channel, -1):
            newest[channel] = position
    return newest


def notify(conn: Connection, positions: dict[Channel, int], closed: Iterable[Channel] = ()) -> None:
    """In the writing transaction (PostgreSQL only): tell every replica, at commit, what it
    wrote. A no-op on other databases and for a transaction that wrote nothing to stream."""
    if conn.dialect.name != "postgresql":
        return
    for payload in notify_payloads(positions, closed):
        conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, payload)))


def _asyncpg_dsn(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


_EVENTS_AFTER = """
SELECT e.org, e.id, e.session_id, e.sequence, e.type, e.created_at, e.payload::text,
       e.hidden, e.hide_reason
FROM unnest($1::text[], $2::bigint[]) AS w(session_id, after)
JOIN events e ON e.session_id = w.session_id AND e.sequence > w.after
ORDER BY e.session_id, e.sequence
LIMIT $3
"""
_CHANGES_AFTER = """
SELECT c.id, c.org, c.kind, c.session_id, c.created_at, c.body::text
FROM unnest($1::text[], $2::bigint[]) AS w(org, after)
JOIN org_changes c ON c.org = w.org AND c.id > w.after
ORDER BY c.org, c.id
LIMIT $3
"""
_SESSION_HEADS = "SELECT id, org, last_sequence FROM sessions WHERE id = ANY($1::text[])"
# The newest change, else the retention floor (see store._org_stream_head).
_ORG_HEADS = """
SELECT w.org, COALESCE(
    (SELECT max(c.id) FROM org_changes c WHERE c.org = w.org),
    (SELECT f.change_id FROM org_stream_floor f WHERE f.org = w.org),
    0)
FROM unnest($1::text[]) AS w(org)
"""


class PgFanout:
    """One replica's listener and reader (see the module). ``follow``/``release`` are called by
    the broker as streams start and end; ``poke`` by the store after its own commits."""

    def __init__(self, db_url: str, broker: Broker, *, catch_up_interval: float = 1.0) -> None:
        self.dsn = _asyncpg_dsn(db_url)
        self.broker = broker
        self.catch_up_interval = catch_up_interval
        #: channel -> the newest position published to it on this replica.
        self._watermarks: dict[Channel, int] = {}
        #: channel -> streams following it here (tracking ends with the last).
        self._followers: dict[Channel, int] = {}
        #: channel -> the newest position known to be committed, not yet read.
        self._pending: dict[Channel, int] = {}
        self._wake = asyncio.Event()
        self._conn: Any = None
        #: One query at a time on the connection (asyncpg's rule).
        self._io = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()

    @property
    def listening(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.is_closed()

    async def start(self) -> None:
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._deliver_forever(), name="sessionscope-fanout"),
            asyncio.create_task(self._catch_up_forever(), name="sessionscope-fanout-catch-up"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._conn = conn

    # -- following ------------------------------------------------------------------------------

    async def follow(self, channel: Channel) -> None:
        """A stream starts following ``channel`` here: from now on its new rows are read and
        published. Returns once the watermark is set, so that a backlog read after this call
        reaches at least the watermark (nothing falls between the two)."""
        self._followers[channel] = self._followers.get(channel, 0) + 1
        if channel in self._watermarks:
            return
        async with self._io:
            if channel in self._watermarks:
                return
            heads = await self._heads([channel])
            if self._followers.get(channel):
                self._watermarks[channel] = heads.get(channel, 0)

    def release(self, channel: Channel) -> None:
        left = self._followers.get(channel, 0) - 1
        if left > 0:
            self._followers[channel] = left
            return
        self._followers.pop(channel, None)
        self._watermarks.pop(channel, None)
        self._pending.pop(channel, None)

    def poke(self, positions: dict[Channel, int]) -> None:
        """Newest committed positions (the store's own commit, or a notification): the
        channels followed here behind them are read."""
        woke = False
        for channel, position in positions.items():
            mark = self._watermarks.get(channel)
            if mark is None or position <= mark:
                continue
            if position > self._pending.get(channel, 0):
                self._pending[channel] = position
                woke = True
        if woke:
            self._wake.set()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("ignored a malformed change notification")
            return
        positions: dict[Channel, int] = {}
        for org, session_id, sequence in message.get("s", ()):
            positions[("session", org, session_id)] = int(sequence)
        for org, change_id in message.get("o", ()):
            positions[("org", org)] = int(change_id)
        self.poke(positions)
        for org, session_id in message.get("d", ()):
            # The session was deleted through another replica: its streams end here too.
            self.broker.close_channel(("session", org, session_id))

    # -- reading --------------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._deliver()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The catch-up loop notices a broken connection and reconnects; the pending
                # positions are kept, so they are read then.
                log.exception("reading new rows for live streams failed; retrying")
                await asyncio.sleep(min(self.catch_up_interval, 1.0))
                self._wake.set()

    async def _deliver(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, {}
            sessions = {c: p for c, p in pending.items() if c[0] == "session"}  # type: ignore[index]
            orgs = {c: p for c, p in pending.items() if c[0] == "org"}  # type: ignore[index]
            async with self._io:
                if sessions:
                    await self._read(sessions, _EVENTS_AFTER, self._event_frames)
                if orgs:
                    await self._read(orgs, _CHANGES_AFTER, self._change_frames)

    async def _read(
        self,
        targets: dict[Channel, int],
        query: str,
        frames_of: Any,
    ) -> None:
        """Read every target channel from its watermark on, publishing in position order."""
        wanted = {c: p for c, p in targets.items() if c in self._watermarks}
        while wanted:
            keys = list(wanted)
            names = [channel[-1] for channel in keys]  # type: ignore[index]
            afters = [self._watermarks[channel] for channel in keys]
            rows = await self._conn.fetch(query, names, afters, READ_BATCH)
            grouped: dict[Channel, list[LiveFrame]] = {}
            for channel, frame in frames_of(rows):
                grouped.setdefault(channel, []).append(frame)
            for channel, frames in grouped.items():
                mark = self._watermarks.get(channel)
                if mark is None:  # released meanwhile
                    continue
                fresh = [frame for frame in frames if frame.cursor > mark]
                if fresh:
                    self._watermarks[channel] = fresh[-1].cursor
                    self.broker.publish_many(channel, fresh)
            if len(rows) < READ_BATCH:
                # Everything committed is read. (A channel may have been told of a position
                # no row reaches: a deleted event's sequence. Nothing to wait for there.)
                return
            wanted = {c: p for c, p in wanted.items() if c in self._watermarks}

    @staticmethod
    def _event_frames(rows: list[Any]) -> Iterable[tuple[Channel, LiveFrame]]:
        for row in rows:
            org, event_id, session_id, sequence, kind, created, payload, hidden, reason = row
            event = Event(
                id=event_id,
                session_id=session_id,
                sequence=sequence,
                type=kind,
                created_at=db.from_micros(created),
                payload=json.loads(payload),
                hidden=hidden,
                hide_reason=reason,
            )
            yield ("session", org, session_id), live_frame(event)

    @staticmethod
    def _change_frames(rows: list[Any]) -> Iterable[tuple[Channel, LiveFrame]]:
        for change_id, org, kind, session_id, created, body in rows:
            change = OrgChange.model_validate(
                {
                    "id": change_id,
                    "kind": kind,
                    "session_id": session_id,
                    "created_at": db.from_micros(created),
                    **json.loads(body),
                }
            )
            yield ("org", org), live_frame(change)

    async def _heads(self, channels: list[Channel]) -> dict[Channel, int]:
        """The database's newest position of each channel (the caller holds ``_io``)."""
        heads: dict[Channel, int] = {}
        session_ids = [c[2] for c in channels if c[0] == "session"]  # type: ignore[index]
        orgs = [c[1] for c in channels if c[0] == "org"]  # type: ignore[index]
        if session_ids:
            for session_id, org, last in await self._conn.fetch(_SESSION_HEADS, session_ids):
                heads[("session", org, session_id)] = int(last)
        if orgs:
            for org, head in await self._conn.fetch(_ORG_HEADS, orgs):
                heads[("org", org)] = int(head)
        return heads

    # -- catching up ----------------------------------------------------------------------------

    async def _catch_up_forever(self) -> None:
        backoff = 0.1
        while True:
            await asyncio.sleep(self.catch_up_interval)
            try:
                if not self.listening:
                    await self._reconnect()
                await self.catch_up()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("live fan-out catch-up failed (%s); retrying", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _reconnect(self) -> None:
        async with self._io:
            old, self._conn = self._conn, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.terminate()
            await self._connect()
        log.info("live fan-out listener reconnected")

    async def catch_up(self) -> None:
        """Compare every followed channel's watermark with the database's head: whatever a
        lost notification did not announce is read now."""
        channels = list(self._watermarks)
        if not channels:
            return
        async with self._io:
            heads = await self._heads(channels)
        self.poke(heads)
