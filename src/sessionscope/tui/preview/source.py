"""Text and source previews: neutralised, optionally syntax highlighted, rendered a line at a time.

Highlighting is done lazily in blocks of lines as they come on screen: lexing a whole 256 KiB
preview up front costs tens of MB of spans (the JSON lexer makes one token per punctuation mark)
for lines nobody may scroll to. Each block is lexed on its own, so a construct spanning a block
boundary (a long multi-line string) may be coloured as plain text there: a preview's trade-off.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.syntax import Syntax
from rich.text import Text
from textual.cache import LRUCache

from sessionscope.tui.preview.lines import LineView
from sessionscope.tui.safe import neutralise

#: Longer lines are cut so one minified megabyte cannot make a line nobody can scroll.
MAX_PREVIEW_LINE = 2000
#: Lines lexed together; a screen shows a few dozen.
BLOCK_LINES = 200
#: Highlighted blocks kept.
CACHED_BLOCKS = 6


def _clip(line: str) -> str:
    if len(line) <= MAX_PREVIEW_LINE:
        return line
    return f"{line[:MAX_PREVIEW_LINE]}… [{len(line) - MAX_PREVIEW_LINE:,} more characters]"


def prepare_lines(text: str) -> list[str]:
    """Control characters made visible, CRLF folded, tabs expanded, long lines cut."""
    text = neutralise(text.replace("\r\n", "\n"))
    if text.endswith("\n"):
        text = text[:-1]
    return [_clip(line.expandtabs(4)) for line in text.split("\n")]


def highlight_block(lines: list[str], lexer: str | None, *, dark: bool = True) -> list[Text]:
    """One Text per line. Pygments output is built into Text directly: the data is never
    interpreted as markup."""
    if not lexer:
        return [Text(line, no_wrap=True, end="") for line in lines]
    code = "\n".join(lines)
    syntax = Syntax(code, lexer, theme="ansi_dark" if dark else "ansi_light", word_wrap=False)
    highlighted = syntax.highlight(code)
    # The widget's own background shows through; Syntax would paint "on default".
    highlighted.style = ""
    highlighted.spans = [span for span in highlighted.spans if not isinstance(span.style, str)]
    result = list(highlighted.split("\n", allow_blank=True))[: len(lines)]
    for line in result:
        line.no_wrap = True
        line.end = ""
    return result


def highlight_lines(text: str, lexer: str | None, *, dark: bool = True) -> list[Text]:
    return highlight_block(prepare_lines(text), lexer, dark=dark)


class SourceView(LineView):
    """Prepared lines, highlighted a block at a time when first drawn."""

    def __init__(
        self, lines: list[str], lexer: str | None, *, dark: bool = True, id: str | None = None
    ) -> None:
        width = max((cell_len(line) for line in lines), default=0)
        super().__init__(line_count=len(lines), max_width=width, id=id)
        self._lines = lines
        self.lexer = lexer
        self._dark = dark
        self._blocks: LRUCache[int, list[Text]] = LRUCache(CACHED_BLOCKS)

    def build_line(self, index: int) -> Text:
        block = index // BLOCK_LINES
        texts = self._blocks.get(block)
        if texts is None:
            start = block * BLOCK_LINES
            texts = highlight_block(
                self._lines[start : start + BLOCK_LINES], self.lexer, dark=self._dark
            )
            self._blocks[block] = texts
        return texts[index % BLOCK_LINES]

    @property
    def plain_text(self) -> str:
        return "\n".join(self._lines)
