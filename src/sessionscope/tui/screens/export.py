"""Export a session from the console: the same core as ``sessionscope export``, with a progress
bar. Escape during an export stops it at a checkpoint; starting again into the same folder
resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static

from sessionscope.backends.base import Backend
from sessionscope.export import (
    ExportCancelled,
    ExportError,
    ExportProgress,
    ExportResult,
    export_session,
    safe_file_name,
)
from sessionscope.tui.context import console_of
from sessionscope.tui.feedback import count_of, describe_error
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain
from sessionscope.tui.styles import stylesheet


def default_export_dir(session_id: str) -> Path:
    return Path.cwd() / f"sessionscope-export-{safe_file_name(session_id, fallback='session')}"


class ExportScreen(ModalScreen[ExportResult | None]):
    """Dismisses with the result of the last finished export, or ``None``."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("export")

    def __init__(self, session_id: str, out_dir: Path | str | None = None) -> None:
        super().__init__()
        self.session_id = session_id
        self.out_dir = Path(out_dir) if out_dir is not None else default_export_dir(session_id)
        self.result: ExportResult | None = None
        self._cancel: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog", classes="dialog -wide"):
            yield Static(plain(f"Export session {self.session_id}"), classes="dialog-title")
            yield Label("Folder (an earlier export there is resumed)", classes="form-label")
            yield Input(str(self.out_dir), id="export-dir")
            yield ProgressBar(id="export-progress", show_eta=False)
            yield Static("", id="export-detail", classes="form-label")
            yield Static("", id="form-status", classes="form-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export (ctrl+s)", id="export-start", variant="primary")
                yield Button("Close (esc)", id="export-close")

    def on_mount(self) -> None:
        self.query_one("#export-start", Button).focus()

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#form-status", Static)
        status.update(plain(text))
        status.set_class(error, "-error")

    def _show_progress(self, update: ExportProgress) -> None:
        bar = self.query_one("#export-progress", ProgressBar)
        if update.phase == "events":
            bar.update(total=update.events_total, progress=update.events_done)
            detail = f"events: {update.events_done:,}"
            if update.events_total:
                detail += f" of about {update.events_total:,}"
        elif update.phase == "artifacts":
            bar.update(total=update.artifacts_total, progress=update.artifacts_done)
            detail = f"artifacts: {update.artifacts_done:,}"
            if update.artifacts_total is not None:
                detail += f" of {update.artifacts_total:,}"
            detail += f" · {update.bytes_done:,} bytes"
            if update.current:
                detail += f" · {update.current}"
        else:
            bar.update(total=1, progress=1)
            detail = (
                f"done: {count_of(update.events_done, 'event')}, "
                f"{count_of(update.artifacts_done, 'artifact')}"
            )
        self.query_one("#export-detail", Static).update(plain(detail))

    @on(Input.Submitted, "#export-dir")
    def _submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        if self.running:
            return
        folder = self.query_one("#export-dir", Input).value.strip()
        if not folder:
            self._status("Choose a folder first.", error=True)
            return
        self.out_dir = Path(folder).expanduser()
        self._cancel = asyncio.Event()
        self.query_one("#export-start", Button).disabled = True
        self._status("Exporting…")
        self.run_worker(self._run(self._cancel), group="export", exclusive=True)

    async def _run(self, cancel: asyncio.Event) -> None:
        backend: Backend = console_of(self).backend
        try:
            self.result = await export_session(
                backend,
                self.session_id,
                self.out_dir,
                on_progress=self._show_progress,
                cancel=cancel,
            )
        except ExportCancelled:
            self._status("Stopped. Export again into the same folder to resume.", error=True)
        except ExportError as error:
            self._status(f"Export failed: {error}", error=True)
        except Exception as error:
            self._status(f"Export failed: {describe_error(error)}", error=True)
        else:
            result = self.result
            self._status(
                f"Exported {count_of(result.events_written, 'event')} "
                f"({result.events_added:,} new) and "
                f"{count_of(result.artifacts_written + result.artifacts_skipped, 'artifact')} to "
                f"{result.out_dir}"
            )
        finally:
            self._cancel = None
            self.query_one("#export-start", Button).disabled = False

    def action_stop_or_close(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self._status("Stopping at the next checkpoint…")
            return
        self.dismiss(self.result)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export-start":
            self.action_start()
        else:
            self.action_stop_or_close()
