"""Helpers for server tests: waiting on conditions and reading Server-Sent Events."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def db_rows(location: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders) on a test server's database, SQLite file or
    PostgreSQL URL, and return its rows: for checking what the server stored."""
    if not str(location).startswith("postgresql"):
        with sqlite3.connect(location, timeout=5) as conn:
            return [tuple(row) for row in conn.execute(sql, params)]
    counter = itertools.count(1)
    numbered = "".join(
        f"${next(counter)}{part}" if at else part for at, part in enumerate(sql.split("?"))
    )

    async def run() -> list[tuple[Any, ...]]:
        import asyncpg

        conn = await asyncpg.connect(str(location))
        try:
            return [tuple(row) for row in await conn.fetch(numbered, *params)]
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_until(
    probe: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe}")
        time.sleep(interval)


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


def frames(response: httpx.Response) -> Iterator[Frame]:
    """Parse an SSE body into frames (comments and retry-only frames included)."""
    current = Frame()
    data_lines: list[str] = []
    touched = False
    for line in response.iter_lines():
        if line == "":
            if touched:
                current.data = "\n".join(data_lines)
                yield current
            current, data_lines, touched = Frame(), [], False
            continue
        touched = True
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "data":
            data_lines.append(value)
        elif name == "retry":
            current.retry = int(value)


def data_frames(response: httpx.Response, count: int) -> list[Frame]:
    """The next ``count`` frames that carry data. The parser is dropped on return, and with it
    httpx's byte stream, which closes the connection: use ``frames`` to keep reading."""
    found: list[Frame] = []
    for frame in frames(response):
        if frame.data:
            found.append(frame)
            if len(found) == count:
                break
    return found
