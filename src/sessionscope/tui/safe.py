"""Rendering untrusted text: everything that comes from an agent or a server goes through here.

Rules: never parse as markup (``rich.text.Text(...)`` is constructed directly, never via
``from_markup``/``Content.from_markup``), and neutralise terminal control sequences by replacing
every control character with a visible stand-in, so an ``ESC[2J`` in a message shows as ``␛[2J``
instead of clearing the operator's screen.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.style import Style
from rich.text import Text

# One mask for screens and exports; re-exported for the console.
from sessionscope.models import SECRET_MASK as SECRET_MASK

#: C0 controls (minus tab and newline), DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
#: Bidirectional overrides and isolates can make text read differently from what it is.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f]")

#: A single line longer than this is cut, with a note of how much was left out.
MAX_LINE_CHARS = 10_000


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400 CONTROL PICTURES: ␀ ␁ … ␛ …
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def neutralise(value: str) -> str:
    """Replace control and bidi characters with visible stand-ins; keep tabs and newlines."""
    value = _CONTROL.sub(_visible, value)
    return _BIDI.sub("\ufffd", value)


def one_line(value: str, limit: int = 200) -> str:
    """A neutralised single-line summary, for table cells and timeline rows."""
    value = neutralise(value).replace("\r", " ").replace("\n", " ⏎ ").replace("\t", " ")
    if len(value) > limit:
        return value[: max(0, limit - 1)] + "…"
    return value


def _clip_lines(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    lines = value.split("\n")
    return "\n".join(
        line if len(line) <= limit else f"{line[:limit]}… [{len(line) - limit:,} more characters]"
        for line in lines
    )


def plain(value: object, style: str | Style = "", *, max_line: int = MAX_LINE_CHARS) -> Text:
    """Untrusted value -> Text, never interpreted as markup."""
    text = value if isinstance(value, str) else str(value)
    return Text(_clip_lines(neutralise(text), max_line), style=style, no_wrap=False, end="")


def plain_line(value: object, style: str | Style = "", *, limit: int = 200) -> Text:
    text = value if isinstance(value, str) else str(value)
    return Text(one_line(text, limit), style=style, no_wrap=True, overflow="ellipsis", end="")


def pretty_json(value: Any) -> str:
    """Indented JSON for display; non-JSON values fall back to ``str``."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
