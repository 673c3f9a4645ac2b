"""Getting the operator's attention when something new waits: the terminal bell and, opt-in, a
desktop notification as OSC 9 (iTerm2, WezTerm, Windows Terminal, kitty) and OSC 777 (urxvt,
foot, Ghostty, VTE terminals), both of which tmux passes on with ``allow-passthrough``.

The text comes from agents and platforms: every control character is removed (one could end the
sequence early and write to the terminal itself), and ``;`` (OSC 777's field separator) in the
title too.
"""

from __future__ import annotations

import re

from sessionscope.tui.safe import one_line

BELL = "\a"
_ESC = "\x1b"
#: String terminator (ESC \): accepted by every terminal that takes these sequences.
_ST = f"{_ESC}\\"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clean(value: str, limit: int) -> str:
    return _CONTROL.sub("", one_line(value, limit)).strip()


def desktop_notification(title: str, body: str) -> str:
    """OSC 9 (body only, with the title in front) then OSC 777 (title and body)."""
    clean_title = _clean(title, 80).replace(";", ",")
    clean_body = _clean(body, 200)
    return (
        f"{_ESC}]9;{clean_title}: {clean_body}{_ST}"
        f"{_ESC}]777;notify;{clean_title};{clean_body}{_ST}"
    )
