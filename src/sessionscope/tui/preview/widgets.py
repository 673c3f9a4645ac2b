"""Pick the widget that shows a prepared preview."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widget import Widget

from sessionscope.tui.preview.hexdump import HexView
from sessionscope.tui.preview.image import ImageView
from sessionscope.tui.preview.json_tree import JsonTree
from sessionscope.tui.preview.loader import Preview
from sessionscope.tui.preview.markdown import SafeMarkdown
from sessionscope.tui.preview.sniff import PreviewKind
from sessionscope.tui.preview.source import SourceView
from sessionscope.tui.preview.table import CsvTable

PREVIEW_BODY_ID = "artifact-preview-body"


def preview_widget(preview: Preview, *, dark: bool = True) -> Widget:
    kind = preview.kind
    if kind is PreviewKind.IMAGE and preview.image is not None:
        return ImageView(preview.image, id=PREVIEW_BODY_ID)
    if kind is PreviewKind.JSON:
        return JsonTree(preview.json_value, id=PREVIEW_BODY_ID)
    if kind is PreviewKind.CSV and preview.csv is not None:
        return CsvTable(preview.csv, id=PREVIEW_BODY_ID)
    if kind is PreviewKind.MARKDOWN and preview.markdown is not None:
        # Markdown sizes to its content; the scroll container gives it a viewport.
        return VerticalScroll(SafeMarkdown(preview.markdown), id=PREVIEW_BODY_ID)
    if kind in (PreviewKind.SOURCE, PreviewKind.TEXT) and preview.lines is not None:
        lexer = preview.sniffed.lexer if kind is PreviewKind.SOURCE else None
        return SourceView(preview.lines, lexer, dark=dark, id=PREVIEW_BODY_ID)
    return HexView(preview.data, id=PREVIEW_BODY_ID)
