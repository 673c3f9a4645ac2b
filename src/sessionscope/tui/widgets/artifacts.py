"""The artifacts pane of a session: a paged list and a preview of the highlighted artifact.

Mount it anywhere (a tab of the session screen, or ``screens.artifacts.ArtifactsScreen``); it
talks only to the console's backend and asks its screen for the save dialogs (``messages``).
Names, MIME types and contents come from the server and are rendered as data.
"""

from __future__ import annotations

import subprocess
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import BindingType
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from sessionscope.backends import Backend, BackendError
from sessionscope.models import Artifact
from sessionscope.tui.context import console_of
from sessionscope.tui.keys import bindings
from sessionscope.tui.messages import ConfirmRequested, Question, SavePathRequested
from sessionscope.tui.preview.files import (
    SaveResult,
    default_save_path,
    pager_command,
    safe_filename,
    save_artifact,
    system_opener,
    temp_copy_dir,
)
from sessionscope.tui.preview.loader import Preview, load_preview
from sessionscope.tui.preview.widgets import preview_widget
from sessionscope.tui.safe import one_line, plain, plain_line
from sessionscope.tui.styles import stylesheet

if TYPE_CHECKING:
    from textual.widget import Widget

STYLESHEET = stylesheet("artifacts.tcss")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def short_checksum(checksum: str | None) -> str:
    if not checksum:
        return "—"
    return checksum[:12] + ("…" if len(checksum) > 12 else "")


def artifact_row(artifact: Artifact) -> tuple[Text, Text, Text, Text, Text]:
    created = artifact.created_at
    if created.tzinfo is not None:
        created = created.astimezone(UTC)
    return (
        plain_line(artifact.name, limit=60),
        plain_line(artifact.mime_type, "dim", limit=40),
        Text(human_size(artifact.size_bytes), justify="right"),
        Text(created.strftime("%Y-%m-%d %H:%M"), style="dim"),
        plain_line(short_checksum(artifact.checksum_sha256), "dim", limit=13),
    )


def _ensure_stylesheet(screen: Screen[object]) -> None:
    """Load artifacts.tcss into the app once, whichever screen mounts the pane."""
    sheet = screen.app.stylesheet
    if not sheet.has_source(str(STYLESHEET), ""):
        sheet.read(STYLESHEET)
        sheet.reparse()
        sheet.update(screen.app)


class ArtifactsPane(Container):
    """List of a session's artifacts (loaded a page at a time) and a preview of the selected one."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("artifacts")

    #: Load the next page when the cursor is this close to the end of what is loaded.
    LOAD_MORE_MARGIN = 10

    def __init__(self, session_id: str, *, page_size: int = 50, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session_id = session_id
        self.page_size = page_size
        self.artifacts: list[Artifact] = []
        self.next_cursor: str | None = None
        self.exhausted = False
        self.loading_page = False
        self.list_error: str | None = None
        self.preview: Preview | None = None
        #: The artifact whose preview (or error) is on screen; None while one loads.
        self.shown_id: str | None = None
        self.preview_error: str | None = None
        self.last_save: SaveResult | None = None

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="artifacts-list-side"):
            yield DataTable(id="artifacts-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="artifacts-list-status")
        with Vertical(id="artifacts-preview-side"):
            yield Static("", id="artifacts-preview-header")
            yield Container(id="artifacts-preview")

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one("#artifacts-table", DataTable)

    @property
    def current(self) -> Artifact | None:
        table = self.table
        if not self.artifacts or table.cursor_row < 0 or table.cursor_row >= len(self.artifacts):
            return None
        return self.artifacts[table.cursor_row]

    def on_mount(self) -> None:
        _ensure_stylesheet(self.screen)
        table = self.table
        table.add_column("name", key="name", width=32)
        table.add_column("type", key="type", width=22)
        table.add_column("size", key="size", width=10)
        table.add_column("created (UTC)", key="created", width=16)
        table.add_column("sha256", key="checksum", width=13)
        self._set_list_status("loading…")
        self._load_page()

    # -- list -----------------------------------------------------------------------------------
    def _set_list_status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one("#artifacts-list-status", Static)
        status.update(plain_line(message, "bold red" if error else "dim", limit=300))

    def _describe_list(self) -> str:
        count = len(self.artifacts)
        if count == 0 and self.exhausted:
            return "no artifacts in this session"
        more = "" if self.exhausted else " (more below)"
        return f"{count:,} artifact{'s' if count != 1 else ''} loaded{more}"

    def _load_page(self) -> None:
        if self.loading_page or self.exhausted:
            return
        self.loading_page = True
        self._fetch_page()

    @work(group="artifacts-page", exit_on_error=False)
    async def _fetch_page(self) -> None:
        try:
            page = await self.backend.list_artifacts(
                self.session_id, cursor=self.next_cursor, limit=self.page_size
            )
        except BackendError as exc:
            self.list_error = exc.message
            self._set_list_status(
                f"could not list artifacts: {exc.message} (r retries)", error=True
            )
            return
        finally:
            self.loading_page = False
        self.list_error = None
        table = self.table
        known = {artifact.id for artifact in self.artifacts}
        first_page = not self.artifacts
        for artifact in page.data:
            if artifact.id in known:
                continue
            self.artifacts.append(artifact)
            table.add_row(*artifact_row(artifact), key=artifact.id)
        self.next_cursor = page.next_cursor
        self.exhausted = not page.next_cursor or not page.data
        self._set_list_status(self._describe_list())
        if first_page and self.artifacts:
            self._start_preview(self.artifacts[0])
        elif first_page:
            self._show_empty()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "artifacts-table":
            return  # a CSV preview is a DataTable too
        event.stop()
        index = event.cursor_row
        if index >= len(self.artifacts) - self.LOAD_MORE_MARGIN:
            self._load_page()
        if 0 <= index < len(self.artifacts):
            artifact = self.artifacts[index]
            if self.preview is None or self.preview.artifact.id != artifact.id:
                self._start_preview(artifact)

    def action_reload(self) -> None:
        self.workers.cancel_group(self, "artifacts-page")
        self.artifacts.clear()
        self.table.clear()
        self.next_cursor = None
        self.exhausted = False
        self.loading_page = False
        self.preview = None
        self._set_list_status("loading…")
        self._load_page()

    # -- preview --------------------------------------------------------------------------------
    def _preview_header(self, artifact: Artifact, detail: str, *, error: bool = False) -> None:
        header = plain_line(artifact.name, "bold", limit=80)
        header.append(" · ", style="dim")
        header.append_text(plain_line(artifact.mime_type, "dim", limit=40))
        header.append(" · ", style="dim")
        header.append(detail, style="bold red" if error else "")
        self.query_one("#artifacts-preview-header", Static).update(header)

    @work(group="artifacts-preview", exclusive=True, exit_on_error=False)
    async def _show_empty(self) -> None:
        await self._show_message("nothing to preview")

    async def _show_message(self, message: str) -> None:
        await self._replace_body(Static(plain(message, "dim"), id="artifact-preview-body"))

    async def _replace_body(self, body: Widget) -> None:
        container = self.query_one("#artifacts-preview", Container)
        await container.remove_children()
        await container.mount(body)

    def _start_preview(self, artifact: Artifact) -> None:
        self.preview = None
        self.preview_error = None
        self.shown_id = None
        self._preview_header(artifact, "loading preview…")
        self._fetch_preview(artifact)

    @work(group="artifacts-preview", exclusive=True, exit_on_error=False)
    async def _fetch_preview(self, artifact: Artifact) -> None:
        try:
            preview = await load_preview(self.backend, artifact)
        except BackendError as exc:
            await self._preview_failed(artifact, exc.message)
            return
        except Exception as exc:  # a preview bug must not take the console down
            self.log.error("artifact preview failed", exc_info=exc)
            await self._preview_failed(artifact, f"preview failed ({type(exc).__name__})")
            return
        self.preview = preview
        detail = f"{preview.kind.value} · {preview.extent}"
        if preview.notes:
            detail += " · " + "; ".join(preview.notes)
        self._preview_header(artifact, detail)
        await self._replace_body(preview_widget(preview, dark=self.app.current_theme.dark))
        self.shown_id = artifact.id

    async def _preview_failed(self, artifact: Artifact, message: str) -> None:
        self.preview_error = message
        self._preview_header(artifact, f"could not load: {one_line(message)}", error=True)
        await self._show_message("")
        self.shown_id = artifact.id

    # -- save / open / copy ---------------------------------------------------------------------
    def _notify(self, message: str, *, severity: str = "information") -> None:
        self.app.notify(one_line(message, 400), markup=False, severity=severity)  # type: ignore[arg-type]

    def action_save(self) -> None:
        artifact = self.current
        if artifact is None:
            self._notify("no artifact selected", severity="warning")
            return

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.exists():
                self._ask_overwrite(artifact, path)
            else:
                self._run_save(artifact, path, overwrite=False)

        self.post_message(SavePathRequested(artifact.name, default_save_path(artifact), chosen))

    def _ask_overwrite(self, artifact: Artifact, path: Path) -> None:
        def answered(replace: bool | None) -> None:
            if replace:
                self._run_save(artifact, path, overwrite=True)
            else:
                self._set_list_status(f"not saved: {path} exists and was kept")

        question = Question(
            "Replace the existing file?",
            f"{path} already exists. Replace it with the artifact ({artifact.size_bytes:,} bytes)?",
            confirm_label="Replace",
            refuse_label="Keep",
        )
        self.post_message(ConfirmRequested(question, answered))

    def _run_save(self, artifact: Artifact, path: Path, *, overwrite: bool) -> None:
        self._save(artifact, path, overwrite=overwrite)

    @work(group="artifacts-save", exit_on_error=False)
    async def _save(self, artifact: Artifact, path: Path, *, overwrite: bool) -> None:
        total = artifact.size_bytes

        def progress(written: int) -> None:
            self._set_list_status(f"saving {path.name}: {written:,} of {total:,} bytes")

        try:
            result = await save_artifact(
                self.backend, artifact, path, overwrite=overwrite, on_progress=progress
            )
        except FileExistsError:
            # Appeared between the question and the save: ask again rather than replace it.
            self._ask_overwrite(artifact, path)
            return
        except (BackendError, OSError) as exc:
            message = exc.message if isinstance(exc, BackendError) else str(exc)
            self._set_list_status(f"save failed: {message}", error=True)
            self._notify(f"save failed: {message}", severity="error")
            return
        self.last_save = result
        mismatch = result.checksum.name == "MISMATCH"
        self._set_list_status(result.describe(), error=mismatch)
        self._notify(result.describe(), severity="error" if mismatch else "information")

    def action_copy(self) -> None:
        preview = self.preview
        if preview is None or preview.text is None:
            self._notify("nothing to copy: no text preview", severity="warning")
            return
        self.app.copy_to_clipboard(preview.text)
        part = f" (the first {preview.shown_bytes:,} bytes)" if preview.truncated else ""
        self._notify(f"copied {len(preview.text):,} characters{part}")

    def action_open(self) -> None:
        artifact = self.current
        if artifact is None:
            self._notify("no artifact selected", severity="warning")
            return
        preview = self.preview
        if preview is not None and preview.artifact.id == artifact.id:
            is_text = preview.kind.is_text
        else:
            is_text = artifact.mime_type.startswith("text/")
        self._open(artifact, is_text)

    @work(group="artifacts-open", exit_on_error=False)
    async def _open(self, artifact: Artifact, is_text: bool) -> None:
        pager = pager_command() if is_text else None
        opener = system_opener()
        if pager is None and opener is None:
            self._notify(
                "no pager or system opener found; use s to save instead", severity="warning"
            )
            return
        try:
            result = await save_artifact(
                self.backend,
                artifact,
                temp_copy_dir() / safe_filename(artifact.name, fallback=artifact.id),
                overwrite=True,
            )
        except (BackendError, OSError) as exc:
            message = exc.message if isinstance(exc, BackendError) else str(exc)
            self._notify(f"could not open: {message}", severity="error")
            return
        if pager is not None:
            self._run_pager(pager, result.path)
        elif opener is not None:
            self._launch_opener(opener, result.path)

    def _run_pager(self, pager: list[str], path: Path) -> None:
        # The pager owns the terminal until it exits: blocking here is the point.
        try:
            with self.app.suspend():
                subprocess.run([*pager, str(path)], check=False)
        except SuspendNotSupported:
            self._notify(f"cannot run a pager here; the file is at {path}")
        except OSError as exc:
            self._notify(f"pager failed: {exc}", severity="error")

    def _launch_opener(self, opener: list[str], path: Path) -> None:
        try:
            subprocess.Popen(
                [*opener, str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self._notify(f"could not start the opener: {exc}", severity="error")
            return
        self._notify(f"opened {path}")
