"""Decide how to preview an artifact from its MIME type, its name and its first bytes.

The server's MIME type and the file name are hints from an untrusted source; the bytes decide
where they disagree (a ``text/plain`` PNG is drawn as an image, an ``image/png`` that is not one
is shown as a hex dump).
"""

from __future__ import annotations

import codecs
import csv
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from pygments.lexers import get_lexer_for_filename, get_lexer_for_mimetype
from pygments.util import ClassNotFound

#: How much of a text-like artifact is read for its preview.
TEXT_PREVIEW_BYTES = 256 * 1024
#: An image is decoded only when it fits in this many bytes: a truncated image cannot be drawn.
IMAGE_PREVIEW_BYTES = 8 * 1024 * 1024
#: Decoding more pixels than this costs hundreds of MB for a picture a terminal shows in 10 KB.
IMAGE_MAX_PIXELS = 12_000_000
#: Rendering Markdown mounts a widget per block; past this the first part is rendered.
MARKDOWN_PREVIEW_CHARS = 64 * 1024
#: Rows of a CSV shown in the table.
CSV_PREVIEW_ROWS = 200
CSV_PREVIEW_COLUMNS = 50


class PreviewKind(StrEnum):
    IMAGE = "image"
    JSON = "json"
    MARKDOWN = "markdown"
    CSV = "csv"
    SOURCE = "source"
    TEXT = "text"
    BINARY = "binary"

    @property
    def is_text(self) -> bool:
        return self not in (PreviewKind.IMAGE, PreviewKind.BINARY)


@dataclass(frozen=True)
class Sniffed:
    kind: PreviewKind
    #: Decoded text for text kinds (the whole head, a partial last character dropped).
    text: str | None = None
    #: Pygments lexer alias for SOURCE (and for JSON shown as text).
    lexer: str | None = None
    #: Image format for IMAGE ("PNG", "JPEG", "GIF").
    image_format: str | None = None
    #: CSV dialect for CSV.
    dialect: type[csv.Dialect] | None = None
    #: Why the preview is less than the artifact (e.g. "truncated JSON shown as text").
    note: str | None = None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)

_MARKDOWN_MIMES = {"text/markdown", "text/x-markdown"}
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
_CSV_MIMES = {"text/csv", "text/tab-separated-values", "application/csv"}
_CSV_SUFFIXES = {".csv", ".tsv"}
_JSON_SUFFIXES = {".json", ".geojson", ".har"}
#: MIME types that say nothing about the content.
_VAGUE_MIMES = {"", "application/octet-stream", "text/plain", "binary/octet-stream"}


def image_format(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def decode_text(data: bytes, *, truncated: bool) -> str | None:
    """UTF-8 text, or ``None`` for binary. A cut multi-byte character at the end of a truncated
    read is dropped rather than counted as binary."""
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        text = decoder.decode(data, final=not truncated)
    except UnicodeDecodeError:
        return None
    if text and _control_ratio(text) > 0.1:
        return None
    return text.removeprefix("\ufeff")


def _control_ratio(text: str) -> float:
    sample = text[:4096]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls / len(sample)


def _base_mime(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def _suffix(name: str) -> str:
    # Server names are untrusted; only the final suffix is used as a hint.
    return PurePosixPath(name.replace("\\", "/")).suffix.lower()


def guess_lexer(name: str, mime: str) -> str | None:
    """A pygments lexer alias from the file name, else from the MIME type."""
    base_name = PurePosixPath(name.replace("\\", "/")).name
    for guess in (
        lambda: get_lexer_for_filename(base_name) if base_name else None,
        lambda: get_lexer_for_mimetype(_base_mime(mime)) if _base_mime(mime) else None,
    ):
        try:
            lexer = guess()
        except ClassNotFound:
            continue
        if lexer is not None and lexer.aliases and lexer.aliases[0] not in ("text", "output"):
            return str(lexer.aliases[0])
    return None


def sniff_csv(text: str, *, hinted: bool) -> type[csv.Dialect] | None:
    """The CSV dialect when ``text`` looks tabular. Without a name/MIME hint the test is strict:
    prose with commas must not become a one-column-too-many table."""
    lines = [line for line in text[:16384].splitlines() if line.strip()][:20]
    if len(lines) < 2:
        return None
    sample = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;|")
    except csv.Error:
        return None
    rows = list(csv.reader(lines, dialect))
    widths = {len(row) for row in rows}
    if min(widths) < 2:
        return None
    if hinted:
        return dialect
    if len(widths) != 1:
        return None
    try:
        has_header = csv.Sniffer().has_header(sample)
    except csv.Error:
        return None
    return dialect if has_header else None


def sniff(name: str, mime: str, head: bytes, *, truncated: bool) -> Sniffed:
    """Choose the preview for an artifact whose first bytes are ``head``.

    ``truncated`` says ``head`` is not the whole artifact.
    """
    fmt = image_format(head)
    if fmt is not None:
        return Sniffed(PreviewKind.IMAGE, image_format=fmt)

    text = decode_text(head, truncated=truncated)
    if text is None:
        return Sniffed(PreviewKind.BINARY)

    base = _base_mime(mime)
    suffix = _suffix(name)

    json_hinted = base == "application/json" or base.endswith("+json") or suffix in _JSON_SUFFIXES
    stripped = text.lstrip()
    if json_hinted or (base in _VAGUE_MIMES and stripped[:1] in ("{", "[")):
        if truncated:
            if json_hinted:
                return Sniffed(
                    PreviewKind.SOURCE,
                    text=text,
                    lexer="json",
                    note="the JSON tree needs the whole document; showing its start as text",
                )
        else:
            try:
                json.loads(text)
            except ValueError:
                pass
            else:
                return Sniffed(PreviewKind.JSON, text=text, lexer="json")

    if base in _MARKDOWN_MIMES or suffix in _MARKDOWN_SUFFIXES:
        return Sniffed(PreviewKind.MARKDOWN, text=text)

    csv_hinted = base in _CSV_MIMES or suffix in _CSV_SUFFIXES
    if csv_hinted or base in _VAGUE_MIMES:
        dialect = sniff_csv(text, hinted=csv_hinted)
        if dialect is not None:
            return Sniffed(PreviewKind.CSV, text=text, dialect=dialect)

    lexer = guess_lexer(name, mime)
    if lexer is not None:
        return Sniffed(PreviewKind.SOURCE, text=text, lexer=lexer)
    return Sniffed(PreviewKind.TEXT, text=text)
