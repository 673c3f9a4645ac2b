"""Markdown written by an agent, rendered with links, images and raw HTML switched off.

The text is the agent's: it must not be able to run an action. Textual turns a Markdown link into
an ``@click`` action; with the link, image, autolink, linkify and HTML rules disabled in the
parser no such token exists, so ``[x](app.quit)`` shows as written. Control characters are made
visible before parsing.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from textual.widgets import Markdown

from sessionscope.tui.preview.sniff import MARKDOWN_PREVIEW_CHARS
from sessionscope.tui.safe import neutralise

_DISABLED_INLINE = ["link", "image", "autolink", "linkify", "html_inline"]


def safe_parser() -> MarkdownIt:
    parser = MarkdownIt("gfm-like", {"html": False, "linkify": False})
    parser.disable([*_DISABLED_INLINE, "html_block"], ignoreInvalid=True)
    return parser


def prepare_markdown(text: str) -> tuple[str, bool]:
    """Neutralised text, cut to the render limit at a line end; says whether it was cut."""
    cut = len(text) > MARKDOWN_PREVIEW_CHARS
    if cut:
        text = text[:MARKDOWN_PREVIEW_CHARS]
        if "\n" in text:
            text = text[: text.rindex("\n")]
    return neutralise(text.replace("\r\n", "\n")), cut


class SafeMarkdown(Markdown):
    DEFAULT_CSS = """
    SafeMarkdown {
        height: auto;
    }
    """

    def __init__(self, text: str, *, id: str | None = None) -> None:
        super().__init__(text, id=id, parser_factory=safe_parser, open_links=False)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        # Unreachable with links disabled; kept so a future parser change cannot open URLs.
        event.stop()
