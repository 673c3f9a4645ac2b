"""A fault-injecting TCP proxy on loopback: relays bytes to an upstream server and cuts each
connection after a random number of server->client bytes, so cuts land anywhere: in the status
line, in the headers, in the middle of an SSE frame or between frames.

Seeded, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    seed: int = 0
    #: Each connection is cut after a number of downstream bytes drawn from this range.
    cut_after: tuple[int, int] = (1, 800)
    #: Stop cutting once this many cuts were made (None: never stop).
    max_cuts: int | None = None
    cuts: int = 0
    connections: int = 0
    port: int = 0
    _rng: random.Random = field(init=False)
    _server: asyncio.Server | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _cut_seen: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_for_cuts(self, count: int) -> None:
        async with self._cut_seen:
            await self._cut_seen.wait_for(lambda: self.cuts >= count)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self.connections += 1
        cutting = self.max_cuts is None or self.cuts < self.max_cuts
        budget = self._rng.randint(*self.cut_after) if cutting else None
        rude = self._rng.random() < 0.5  # half the cuts are resets, half are clean closes
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)  # type: ignore[arg-type]
            return
        upward = asyncio.create_task(self._pipe(reader, up_writer))
        try:
            passed = 0
            while True:
                chunk = await up_reader.read(4096)
                if not chunk:
                    break
                if budget is not None and passed + len(chunk) >= budget:
                    writer.write(chunk[: budget - passed])
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    if rude:
                        writer.transport.abort()
                    async with self._cut_seen:
                        self.cuts += 1
                        self._cut_seen.notify_all()
                    break
                passed += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upward
            up_writer.transport.abort()
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                writer.write(chunk)
                await writer.drain()
        writer.close()
