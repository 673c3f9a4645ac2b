"""Test support for the artifacts pane: an in-memory Backend (for deterministic snapshots and
widget tests; flow tests use the real server), a host app, deterministic content, and waiting on
conditions with a deadline."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from textual.app import App
from textual.pilot import Pilot

from sessionscope.backends import Backend, Capability, NotFound
from sessionscope.models import Artifact, Page
from sessionscope.tui.context import ConsoleContext
from sessionscope.tui.screens.artifacts import ArtifactsScreen
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.artifacts import ArtifactsPane

SESSION_ID = "ses_fixture"
CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class MemoryArtifacts(Backend):
    name = "memory"
    capabilities = frozenset({Capability.ARTIFACTS})

    def __init__(self) -> None:
        self.items: list[tuple[Artifact, bytes]] = []
        self.bytes_served = 0
        self.list_calls = 0

    @property
    def display_name(self) -> str:
        return "memory"

    def add(
        self,
        name: str,
        data: bytes,
        mime: str = "application/octet-stream",
        *,
        checksum: str | None = "auto",
    ) -> Artifact:
        index = len(self.items)
        artifact = Artifact(
            id=f"art_{index:04d}",
            session_id=SESSION_ID,
            name=name,
            mime_type=mime,
            size_bytes=len(data),
            checksum_sha256=hashlib.sha256(data).hexdigest() if checksum == "auto" else checksum,
            created_at=CREATED + timedelta(minutes=index),
        )
        self.items.append((artifact, data))
        return artifact

    async def list_artifacts(
        self, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        self.list_calls += 1
        start = int(cursor or 0)
        chunk = [artifact for artifact, _ in self.items[start : start + limit]]
        end = start + len(chunk)
        return Page(data=chunk, next_cursor=str(end) if end < len(self.items) else None)

    async def get_artifact(self, session_id: str, artifact_id: str) -> Artifact:
        for artifact, _ in self.items:
            if artifact.id == artifact_id:
                return artifact
        raise NotFound("no such artifact")

    async def read_artifact(  # type: ignore[override]
        self,
        session_id: str,
        artifact_id: str,
        *,
        offset: int = 0,
        max_bytes: int | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        data = next((data for a, data in self.items if a.id == artifact_id), None)
        if data is None:
            raise NotFound("no such artifact")
        end = len(data) if max_bytes is None else min(len(data), offset + max_bytes)
        for start in range(offset, end, chunk_size):
            piece = data[start : min(end, start + chunk_size)]
            self.bytes_served += len(piece)
            yield piece
            await asyncio.sleep(0)


class ArtifactsHost(App[None]):
    """Hosts ArtifactsScreen with the app's own stylesheet; has the ``backend`` the pane uses."""

    CSS_PATH: ClassVar = [stylesheet("app.tcss")]

    def __init__(self, backend: Backend, session_id: str = SESSION_ID) -> None:
        super().__init__()
        self.backend = backend
        self.console_context = ConsoleContext.create(self, backend)
        self.session_id = session_id

    def on_mount(self) -> None:
        self.push_screen(ArtifactsScreen(self.session_id))

    @property
    def pane(self) -> ArtifactsPane:
        return self.screen.query_one(ArtifactsPane)


async def wait_for(
    pilot: Pilot[object], condition: Callable[[], object], *, within: float = 10.0
) -> None:
    """Let the app run until ``condition()`` is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await pilot.pause(0.01)


def pane_of(pilot: Pilot[object]) -> ArtifactsPane:
    return pilot.app.screen.query_one(ArtifactsPane)


def preview_ready(pilot: Pilot[object], artifact_id: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            pane = pilot.app.screen.query_one(ArtifactsPane)
        except Exception:
            return False
        return pane.shown_id == artifact_id

    return ready


def gradient_png(width: int = 48, height: int = 32) -> bytes:
    """A deterministic picture: red rises left to right, blue top to bottom, a white square."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    for y in range(height):
        for x in range(width):
            image.putpixel((x, y), (x * 255 // (width - 1), 80, y * 255 // (height - 1)))
    for y in range(height // 4, height // 2):
        for x in range(width // 4, width // 2):
            image.putpixel((x, y), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def binary_blob(size: int = 1024) -> bytes:
    return bytes((index * 37 + 11) % 256 for index in range(size))


SAMPLE_JSON = (
    b'{"run": {"id": "r1", "ok": true, "score": 0.93, "tags": ["alpha", "beta"]},'
    b' "steps": [{"tool": "search", "ms": 120}, {"tool": "[bold]write[/bold]", "ms": 45}],'
    b' "note": null}'
)
SAMPLE_MARKDOWN = (
    b"# Report\n\nThe agent found **3 issues**; see [the docs](app.quit) and "
    b"[@click=app.quit]click me[/].\n\n- first\n- second with `code`\n\n"
    b"```python\nprint('hi')\n```\n\x1b[31mred?\x1b[0m\n"
)
SAMPLE_CSV = b"city,country,population\nLisbon,Portugal,545000\nOslo,Norway,709000\n" + b"".join(
    f"Town {index},Nowhere,{index * 1000}\n".encode() for index in range(300)
)
SAMPLE_SOURCE = b'def greet(name: str) -> str:\n    """Say hi."""\n    return f"hi {name} [red]"\n'
