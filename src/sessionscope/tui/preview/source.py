"""Text and source previews: neutralised, optionally syntax highlighted, split into lines."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text

from sessionscope.tui.safe import neutralise

#: Longer lines are cut so one minified megabyte cannot make a line nobody can scroll.
MAX_PREVIEW_LINE = 2000


def _clip(line: str) -> str:
    if len(line) <= MAX_PREVIEW_LINE:
        return line
    return f"{line[:MAX_PREVIEW_LINE]}… [{len(line) - MAX_PREVIEW_LINE:,} more characters]"


def prepare_text(text: str) -> str:
    """Control characters made visible (tabs and newlines kept), CRLF folded, long lines cut."""
    text = text.replace("\r\n", "\n")
    return "\n".join(_clip(line) for line in neutralise(text).split("\n"))


def highlight_lines(text: str, lexer: str | None, *, dark: bool = True) -> list[Text]:
    """``text`` as one Text per line; highlighted when a lexer is known. Pygments output is
    built into Text directly: the data is never interpreted as markup."""
    code = prepare_text(text).expandtabs(4)
    if lexer:
        syntax = Syntax(
            code,
            lexer,
            theme="ansi_dark" if dark else "ansi_light",
            word_wrap=False,
        )
        highlighted = syntax.highlight(code)
        # The widget's own background shows through; Syntax would paint "on default".
        highlighted.style = ""
        highlighted.spans = [span for span in highlighted.spans if not isinstance(span.style, str)]
    else:
        highlighted = Text(code)
    highlighted.end = ""
    lines = list(highlighted.split("\n", allow_blank=True))
    if lines and not lines[-1].plain and code.endswith("\n"):
        lines.pop()
    for line in lines:
        line.no_wrap = True
        line.end = ""
    return lines
