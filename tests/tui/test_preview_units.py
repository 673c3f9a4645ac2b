"""Content sniffing and the renderers' pure parts."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import pytest
from artifacts_support import (
    SAMPLE_CSV,
    SAMPLE_JSON,
    SAMPLE_MARKDOWN,
    MemoryArtifacts,
    binary_blob,
    gradient_png,
)

from sessionscope.tui.preview.files import ChecksumStatus, safe_filename, save_artifact
from sessionscope.tui.preview.hexdump import hexdump
from sessionscope.tui.preview.image import ImageTooLarge, decode_image, fit, halfblock_rows
from sessionscope.tui.preview.loader import load_preview
from sessionscope.tui.preview.markdown import prepare_markdown, safe_parser
from sessionscope.tui.preview.sniff import TEXT_PREVIEW_BYTES, PreviewKind, decode_text, sniff
from sessionscope.tui.preview.source import highlight_lines


@pytest.mark.parametrize(
    ("name", "mime", "data", "kind"),
    [
        ("pic.bin", "text/plain", gradient_png(), PreviewKind.IMAGE),  # bytes beat the MIME type
        ("x.jpg", "image/jpeg", b"\xff\xd8\xff\xe0rest", PreviewKind.IMAGE),
        ("x.gif", "image/gif", b"GIF89a....", PreviewKind.IMAGE),
        ("fake.png", "image/png", binary_blob(64), PreviewKind.BINARY),
        ("blob", "application/octet-stream", binary_blob(), PreviewKind.BINARY),
        ("data.txt", "text/plain", b"abc\x00def", PreviewKind.BINARY),
        ("r.json", "application/json", SAMPLE_JSON, PreviewKind.JSON),
        ("noext", "application/octet-stream", SAMPLE_JSON, PreviewKind.JSON),
        ("bad.json", "application/json", b"{not json", PreviewKind.SOURCE),
        ("README.md", "text/plain", SAMPLE_MARKDOWN, PreviewKind.MARKDOWN),
        ("r", "text/markdown", b"hello", PreviewKind.MARKDOWN),
        ("t.csv", "text/csv", SAMPLE_CSV, PreviewKind.CSV),
        ("t", "text/plain", SAMPLE_CSV, PreviewKind.CSV),
        (
            "prose.txt",
            "text/plain",
            b"Hello, world. Prose, commas.\nMore, yes.\n",
            PreviewKind.TEXT,
        ),
        ("main.py", "text/plain", b"import os\n", PreviewKind.SOURCE),
        ("x", "application/x-python", b"import os\n", PreviewKind.SOURCE),
    ],
)
def test_sniff_chooses_the_view(name: str, mime: str, data: bytes, kind: PreviewKind) -> None:
    assert sniff(name, mime, data, truncated=False).kind is kind


def test_truncated_json_is_shown_as_text_with_a_note() -> None:
    result = sniff("big.json", "application/json", SAMPLE_JSON[:40], truncated=True)
    assert result.kind is PreviewKind.SOURCE and result.lexer == "json"
    assert result.note and "whole document" in result.note


def test_a_cut_multibyte_character_at_the_end_of_a_partial_read_is_not_binary() -> None:
    data = "héllo wörld".encode() + "ö".encode()[:1]
    assert decode_text(data, truncated=True) == "héllo wörld"
    assert decode_text(data, truncated=False) is None


def test_hexdump_lines_show_offset_hex_and_ascii() -> None:
    dump = hexdump(b"ABC\x00\x01" + bytes(range(0x20, 0x30)), base_offset=0x100).splitlines()
    assert dump[0] == (
        "00000100  41 42 43 00 01 20 21 22  23 24 25 26 27 28 29 2a  |ABC.. !\"#$%&'()*|"
    )
    assert dump[1].startswith("00000110  2b 2c 2d 2e 2f")
    assert dump[1].endswith("|+,-./|")


def test_hexdump_never_emits_control_characters() -> None:
    dump = hexdump(bytes(range(256)))
    assert not any(ord(ch) < 0x20 and ch != "\n" for ch in dump)
    assert "\x7f" not in dump


def test_half_block_rows_fit_the_box_and_carry_two_pixels_per_cell() -> None:
    decoded = decode_image(gradient_png(48, 32))
    assert (decoded.width, decoded.height, decoded.format) == (48, 32, "PNG")
    rows = halfblock_rows(decoded.image, 24, 40)
    assert len(rows) == 8  # 24 wide keeps the 3:2 ratio: 16 pixels high = 8 cells
    first = rows[0][0]
    assert first.text[0] == "▀"
    assert first.style is not None and first.style.color and first.style.bgcolor


def test_fit_never_upscales() -> None:
    assert fit(10, 10, 100, 100) == (10, 10)
    assert fit(200, 100, 50, 50) == (50, 25)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_a_png_declaring_a_huge_canvas_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(_png_header_only(50_000, 50_000))


def test_markdown_parser_has_no_links_images_or_html() -> None:
    tokens = safe_parser().parse(
        "[x](app.quit) ![i](y.png) <https://a.b> https://c.d <b>raw</b>\n\n<div>block</div>"
    )
    kinds = {child.type for token in tokens for child in (token.children or [])}
    kinds |= {token.type for token in tokens}
    assert not kinds & {"link_open", "image", "html_inline", "html_block"}


def test_markdown_text_is_neutralised_and_cut() -> None:
    text, cut = prepare_markdown("a\x1b[2Jb\n" * 20_000)
    assert "\x1b" not in text and "␛[2J" in text
    assert cut


def test_highlighted_source_keeps_markup_literal() -> None:
    lines = highlight_lines('x = "[bold]hi[/bold]"\n\x1b[2J\n', "python")
    assert [line.plain for line in lines] == ['x = "[bold]hi[/bold]"', "␛[2J"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("..", "artifact"),
        (".bashrc", "bashrc"),
        ("evil\x1b[2J\n.txt", "evil[2J.txt"),
        ("a\u202egnp.exe", "agnp.exe"),
        ('q<>:"|?*.txt', "q.txt"),
        ("", "artifact"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_bounds_length_and_keeps_the_suffix() -> None:
    name = safe_filename("x" * 500 + ".csv")
    assert len(name) <= 200 and name.endswith(".csv")


async def test_save_streams_verifies_and_refuses_to_overwrite(tmp_path: Path) -> None:
    backend = MemoryArtifacts()
    data = binary_blob(300_000)
    artifact = backend.add("blob.bin", data)
    target = tmp_path / "blob.bin"
    result = await save_artifact(backend, artifact, target, chunk_size=4096)
    assert target.read_bytes() == data
    assert result.checksum is ChecksumStatus.VERIFIED
    assert result.sha256 == hashlib.sha256(data).hexdigest()

    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        await save_artifact(backend, artifact, target)
    assert target.read_bytes() == b"keep me"
    assert os.listdir(tmp_path) == ["blob.bin"]  # no temporary left behind

    await save_artifact(backend, artifact, target, overwrite=True)
    assert target.read_bytes() == data


async def test_save_reports_a_checksum_mismatch(tmp_path: Path) -> None:
    backend = MemoryArtifacts()
    artifact = backend.add("x.txt", b"hello", checksum="0" * 64)
    result = await save_artifact(backend, artifact, tmp_path / "x.txt")
    assert result.checksum is ChecksumStatus.MISMATCH
    unchecked = backend.add("y.txt", b"hello", checksum=None)
    result = await save_artifact(backend, unchecked, tmp_path / "y.txt")
    assert result.checksum is ChecksumStatus.UNCHECKED


async def test_preview_of_a_large_text_reads_only_its_head() -> None:
    backend = MemoryArtifacts()
    artifact = backend.add("big.log", b"line of log text\n" * 200_000, "text/plain")
    preview = await load_preview(backend, artifact)
    assert backend.bytes_served == TEXT_PREVIEW_BYTES
    assert preview.truncated
    assert preview.extent == f"showing {TEXT_PREVIEW_BYTES:,} of {artifact.size_bytes:,} bytes"


async def test_preview_of_an_image_reads_it_whole_and_decodes_it() -> None:
    backend = MemoryArtifacts()
    png = gradient_png()
    artifact = backend.add("g.png", png, "image/png")
    preview = await load_preview(backend, artifact)
    assert preview.kind is PreviewKind.IMAGE and preview.image is not None
    assert preview.extent == f"{len(png):,} bytes"


async def test_a_broken_image_falls_back_to_hex_with_a_note() -> None:
    backend = MemoryArtifacts()
    artifact = backend.add("bad.png", gradient_png()[:60], "image/png")
    preview = await load_preview(backend, artifact)
    assert preview.kind is PreviewKind.BINARY
    assert any("could not decode" in note for note in preview.notes)


async def test_csv_preview_caps_rows_and_says_so() -> None:
    backend = MemoryArtifacts()
    artifact = backend.add("t.csv", SAMPLE_CSV, "text/csv")
    preview = await load_preview(backend, artifact)
    assert preview.csv is not None
    assert preview.csv.header == ["city", "country", "population"]
    assert len(preview.csv.rows) == 200
    assert any("first 200 rows" in note and "102 more" in note for note in preview.notes)
