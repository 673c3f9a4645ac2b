"""Where to save an artifact: a modal with the path in an Input.

Replacing an existing file is asked separately with ``ConfirmationModal`` (see
``ArtifactsPane.action_save``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain
from sessionscope.tui.styles import stylesheet


class SaveArtifactScreen(ModalScreen[Path | None]):
    """Ask for a destination path; dismisses with the path, or None when cancelled."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss"), stylesheet("artifacts.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("artifact_save")

    def __init__(self, artifact_name: str, default_path: Path) -> None:
        super().__init__()
        self.artifact_name = artifact_name
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(id="artifact-save-dialog", classes="dialog -wide"):
            yield Static(
                plain(f"Save artifact {self.artifact_name}", "bold", max_line=200),
                classes="dialog-title",
            )
            yield Static("Path (enter saves, escape cancels)", classes="form-label")
            yield Input(str(self.default_path), id="artifact-save-path")

    def on_mount(self) -> None:
        self.query_one("#artifact-save-path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        raw = event.value.strip()
        if not raw:
            return
        path = Path(raw).expanduser()
        if path.is_dir():
            path = path / self.default_path.name
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
