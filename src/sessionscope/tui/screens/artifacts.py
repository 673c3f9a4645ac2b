"""The artifacts pane on a screen of its own."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain_line
from sessionscope.tui.screens.dialogs import HostsDialogs
from sessionscope.tui.widgets.artifacts import STYLESHEET, ArtifactsPane
from sessionscope.tui.widgets.footer import AppFooter
from sessionscope.tui.widgets.status import AppHeader


class ArtifactsScreen(HostsDialogs, Screen[None]):
    """The artifacts pane on a screen of its own."""

    CSS_PATH: ClassVar = [STYLESHEET]
    BINDINGS: ClassVar[list[BindingType]] = bindings("artifacts_screen")

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        yield AppHeader("Artifacts")
        yield Static(
            plain_line(f"Artifacts · session {self.session_id}", "bold", limit=200),
            id="artifacts-screen-title",
        )
        yield ArtifactsPane(self.session_id, id="artifacts-pane")
        yield AppFooter()
