"""Fetch the first part of an artifact and prepare its preview off the event loop.

Only a bounded prefix is ever held in memory: ``TEXT_PREVIEW_BYTES`` for everything, extended to
``IMAGE_PREVIEW_BYTES`` for an image that fits (a cut image cannot be decoded).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sessionscope.backends import Backend
from sessionscope.models import Artifact
from sessionscope.tui.preview.image import DecodedImage, ImageTooLarge, decode_image
from sessionscope.tui.preview.markdown import prepare_markdown
from sessionscope.tui.preview.sniff import (
    IMAGE_PREVIEW_BYTES,
    TEXT_PREVIEW_BYTES,
    PreviewKind,
    Sniffed,
    sniff,
)
from sessionscope.tui.preview.source import prepare_lines
from sessionscope.tui.preview.table import CsvPreview, parse_csv


async def read_prefix(
    backend: Backend, artifact: Artifact, limit: int, *, offset: int = 0
) -> bytes:
    """At most ``limit`` bytes from ``offset``; the stream is closed as soon as they are in."""
    buffer = bytearray()
    stream: AsyncIterator[bytes] = backend.read_artifact(
        artifact.session_id, artifact.id, offset=offset, max_bytes=limit
    )
    async with aclosing(stream):  # type: ignore[type-var]
        async for chunk in stream:
            buffer += chunk
            if len(buffer) >= limit:
                break
    del buffer[limit:]
    return bytes(buffer)


@dataclass
class Preview:
    artifact: Artifact
    kind: PreviewKind
    #: Bytes read for the preview (a prefix of the artifact).
    data: bytes
    #: The artifact's size as the server reports it (0 when unknown and nothing was read).
    total: int
    truncated: bool
    sniffed: Sniffed
    notes: list[str] = field(default_factory=list)
    #: Prepared text lines for SOURCE and TEXT (highlighted lazily by the view).
    lines: list[str] | None = None
    image: DecodedImage | None = None
    csv: CsvPreview | None = None
    json_value: Any = None
    markdown: str | None = None

    @property
    def shown_bytes(self) -> int:
        return len(self.data)

    @property
    def extent(self) -> str:
        """'showing N of M bytes' when part of the artifact is previewed, else 'M bytes'."""
        if self.truncated:
            return f"showing {self.shown_bytes:,} of {self.total:,} bytes"
        return f"{self.total:,} bytes"

    @property
    def text(self) -> str | None:
        """The previewed text, for copying (None for images and binaries)."""
        return self.sniffed.text if self.kind.is_text else None


async def load_preview(backend: Backend, artifact: Artifact) -> Preview:
    size = max(artifact.size_bytes, 0)
    head_limit = min(size, TEXT_PREVIEW_BYTES) if size else TEXT_PREVIEW_BYTES
    data = await read_prefix(backend, artifact, head_limit) if head_limit else b""
    sniffed = sniff(artifact.name, artifact.mime_type, data, truncated=size > len(data))
    notes: list[str] = []
    if sniffed.kind is PreviewKind.IMAGE and size > len(data):
        if size <= IMAGE_PREVIEW_BYTES:
            data += await read_prefix(backend, artifact, size - len(data), offset=len(data))
        else:
            notes.append(
                f"image too large to draw ({size:,} bytes; the limit is "
                f"{IMAGE_PREVIEW_BYTES:,}): hex dump of its start"
            )
            data = data[:TEXT_PREVIEW_BYTES]
            sniffed = Sniffed(PreviewKind.BINARY)
    total = max(size, len(data))
    return await asyncio.to_thread(_prepare, artifact, data, total, sniffed, notes)


def _prepare(
    artifact: Artifact,
    data: bytes,
    total: int,
    sniffed: Sniffed,
    notes: list[str],
) -> Preview:
    truncated = total > len(data)
    preview = Preview(artifact, sniffed.kind, data, total, truncated, sniffed, notes)
    if sniffed.note:
        notes.append(sniffed.note)
    kind = sniffed.kind
    if kind is PreviewKind.IMAGE:
        try:
            preview.image = decode_image(data)
        except ImageTooLarge as exc:
            notes.append(f"{exc}: hex dump of its start")
            preview.kind = PreviewKind.BINARY
        except (OSError, ValueError, SyntaxError) as exc:
            # Pillow reports a broken image with any of these.
            notes.append(f"could not decode the image ({type(exc).__name__}): hex dump instead")
            preview.kind = PreviewKind.BINARY
        if preview.kind is PreviewKind.BINARY:
            preview.data = data = data[:TEXT_PREVIEW_BYTES]
            preview.truncated = total > len(data)
    elif kind is PreviewKind.JSON:
        assert sniffed.text is not None
        preview.json_value = json.loads(sniffed.text)
    elif kind is PreviewKind.CSV:
        assert sniffed.text is not None and sniffed.dialect is not None
        preview.csv = parse_csv(sniffed.text, sniffed.dialect, truncated=truncated)
        shown = len(preview.csv.rows)
        more = f"{preview.csv.more_rows:,}{'+' if truncated else ''}"
        if preview.csv.more_rows or truncated:
            notes.append(f"table shows the first {shown:,} rows ({more} more not shown)")
        if preview.csv.more_columns:
            notes.append(f"{preview.csv.more_columns:,} more columns not shown")
    elif kind is PreviewKind.MARKDOWN:
        assert sniffed.text is not None
        preview.markdown, cut = prepare_markdown(sniffed.text)
        if cut:
            notes.append(f"markdown rendered from its first {len(preview.markdown):,} characters")
    elif kind in (PreviewKind.SOURCE, PreviewKind.TEXT):
        assert sniffed.text is not None
        preview.lines = prepare_lines(sniffed.text)
    return preview
