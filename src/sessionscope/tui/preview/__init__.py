"""Artifact previews: content sniffing and one renderer per kind (image, JSON, Markdown, CSV,
source/text, hex). Everything shown comes from an untrusted server and is rendered as data."""

from sessionscope.tui.preview.loader import Preview, load_preview, read_prefix
from sessionscope.tui.preview.sniff import PreviewKind, Sniffed, sniff
from sessionscope.tui.preview.widgets import preview_widget

__all__ = [
    "Preview",
    "PreviewKind",
    "Sniffed",
    "load_preview",
    "preview_widget",
    "read_prefix",
    "sniff",
]
