"""Hex dump of binary data: offset, 16 bytes in hex, and their printable ASCII."""

from __future__ import annotations

from rich.text import Text

from sessionscope.tui.preview.lines import LineView

BYTES_PER_LINE = 16
#: "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|"
LINE_WIDTH = 8 + 2 + BYTES_PER_LINE * 3 + 1 + 1 + BYTES_PER_LINE + 2

#: Latin-1 decoded byte -> itself when printable ASCII, else ".".
_ASCII_TABLE = {code: chr(code) if 0x20 <= code < 0x7F else "." for code in range(256)}


def hexdump_line(data: bytes | memoryview, offset: int, *, base_offset: int = 0) -> Text:
    """One line of the dump for ``data[offset:offset + 16]``; ``base_offset`` is where ``data``
    starts in the artifact (so a window into a large file shows true offsets)."""
    chunk = bytes(data[offset : offset + BYTES_PER_LINE])
    hex_left = " ".join(f"{byte:02x}" for byte in chunk[:8])
    hex_right = " ".join(f"{byte:02x}" for byte in chunk[8:])
    hex_part = f"{hex_left:<23}  {hex_right:<23}"
    ascii_part = chunk.decode("latin-1").translate(_ASCII_TABLE)
    line = Text(no_wrap=True, end="")
    line.append(f"{base_offset + offset:08x}", style="dim")
    line.append("  ")
    line.append(hex_part)
    line.append("  |", style="dim")
    line.append(ascii_part, style="bold")
    line.append("|", style="dim")
    return line


def hexdump(data: bytes, *, base_offset: int = 0) -> str:
    """The whole dump as plain text (for copying and tests)."""
    return "\n".join(
        hexdump_line(data, offset, base_offset=base_offset).plain
        for offset in range(0, len(data), BYTES_PER_LINE)
    )


class HexView(LineView):
    """Hex dump rendered a line at a time; holds only the bytes it shows."""

    def __init__(self, data: bytes, *, base_offset: int = 0, id: str | None = None) -> None:
        lines = (len(data) + BYTES_PER_LINE - 1) // BYTES_PER_LINE
        super().__init__(line_count=lines, max_width=LINE_WIDTH, id=id)
        self._data = data
        self._base_offset = base_offset

    def build_line(self, index: int) -> Text:
        return hexdump_line(self._data, index * BYTES_PER_LINE, base_offset=self._base_offset)

    @property
    def plain_text(self) -> str:
        return hexdump(self._data, base_offset=self._base_offset)
