"""Export one session to a folder: the session, its events as JSON Lines, its artifacts as files.

Layout of ``DIR``::

    session.json          the session as the server describes it (written last)
    events.jsonl          one event per line, in sequence order, hidden events included
    artifacts.jsonl       one line per artifact: its metadata plus the file it was saved as
    artifacts/<name>      the artifact bytes, under a sanitised file name
    .export-state.json    the resume checkpoint

Nothing is held whole in memory: events are written as they are read from ``iter_events`` and
artifacts are streamed chunk by chunk through ``read_artifact``. An interrupted export (cancel,
Ctrl-C, crash, kill) resumes on rerun: events continue after the last checkpointed sequence (a
partly written tail is cut off first), finished artifacts are skipped once their checksum is
verified on disk, and a partly downloaded artifact continues from where it stopped.

No Textual here: the CLI and the console both drive :func:`export_session`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from sessionscope.backends.base import Backend, BackendError, Capability
from sessionscope.models import Artifact, mask_secret_arguments

STATE_FILE = ".export-state.json"
SESSION_FILE = "session.json"
EVENTS_FILE = "events.jsonl"
ARTIFACTS_INDEX_FILE = "artifacts.jsonl"
ARTIFACTS_DIR = "artifacts"
PARTIAL_SUFFIX = ".part"

#: Checkpoint the events file at least this often, so a hard kill loses little work.
CHECKPOINT_EVERY_EVENTS = 500
#: Progress callbacks are this far apart (cancellation is checked at every event).
REPORT_EVERY_EVENTS = 25
MAX_FILE_NAME_CHARS = 120

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+\- ]+")
#: Names Windows refuses whatever the extension; harmless to avoid everywhere.
_RESERVED_STEMS = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


class ExportError(Exception):
    """An export could not finish; ``str(error)`` is fit to show an operator."""


class ExportCancelled(ExportError):
    """The export was asked to stop. Everything done so far is checkpointed."""


class ChecksumMismatch(ExportError):
    pass


class FinishedArtifact(BaseModel):
    file: str
    size_bytes: int
    sha256: str


class ExportState(BaseModel):
    """The resume checkpoint. ``events_bytes`` is the length of ``events.jsonl`` at
    ``last_sequence``: anything after it is a torn write from an interrupted run."""

    version: int = 1
    session_id: str
    last_sequence: int = 0
    events_written: int = 0
    events_bytes: int = 0
    #: artifact id -> file name chosen for it; kept so a rerun reuses the same names.
    artifact_files: dict[str, str] = Field(default_factory=dict)
    finished_artifacts: dict[str, FinishedArtifact] = Field(default_factory=dict)
    complete: bool = False


@dataclass(frozen=True)
class ExportProgress:
    """A snapshot handed to the progress callback. Totals are estimates (``None`` if unknown):
    a live session grows while it is exported."""

    phase: str  # "events" | "artifacts" | "done"
    events_done: int
    events_total: int | None
    artifacts_done: int
    artifacts_total: int | None
    bytes_done: int
    current: str = ""


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    events_written: int
    events_added: int
    artifacts_written: int
    artifacts_skipped: int
    last_sequence: int


ProgressCallback = Callable[[ExportProgress], None]


def safe_file_name(name: str, fallback: str = "artifact") -> str:
    """A file name that cannot leave its folder or surprise a shell: no separators, no ``..``,
    no control or hidden characters, bounded length. Readable where the input was."""
    name = unicodedata.normalize("NFKC", name)
    # Only the last path component counts, whichever separator the agent used.
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip(" .")
    name = name.lstrip("-")  # a leading dash reads as an option to most commands
    if not name or set(name) <= {"_"}:
        name = fallback
    stem, dot, suffix = name.partition(".")
    if stem.lower() in _RESERVED_STEMS:
        name = f"_{name}"
    if len(name) > MAX_FILE_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) <= 16:
            name = f"{stem[: MAX_FILE_NAME_CHARS - len(suffix) - 1]}.{suffix}"
        else:
            name = name[:MAX_FILE_NAME_CHARS]
    if name.endswith(PARTIAL_SUFFIX):
        name = f"{name}_"
    return name


def _unique_file_name(artifact: Artifact, taken: set[str]) -> str:
    base = safe_file_name(artifact.name)
    if base.lower() not in taken:
        return base
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem:
        stem, suffix = base, ""
    tag = safe_file_name(artifact.id, fallback="dup")[:24]
    candidate = f"{stem}-{tag}{'.' + suffix if suffix else ''}"
    counter = 2
    while candidate.lower() in taken:
        candidate = f"{stem}-{tag}-{counter}{'.' + suffix if suffix else ''}"
        counter += 1
    return candidate


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def _close(iterator: object) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _hash_partial(partial: Path, expected_size: int) -> tuple[Any, int]:
    """Digest and length of what an earlier run downloaded; drops a file that cannot be a
    prefix of the artifact."""
    digest = hashlib.sha256()
    offset = 0
    if partial.exists():
        if expected_size and partial.stat().st_size > expected_size:
            partial.unlink()
        else:
            with partial.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
                    offset += len(chunk)
    return digest, offset


class _Exporter:
    def __init__(
        self,
        backend: Backend,
        session_id: str,
        out_dir: Path,
        *,
        on_progress: ProgressCallback | None,
        cancel: asyncio.Event | None,
        include_hidden: bool,
        page_size: int,
    ) -> None:
        self.backend = backend
        self.session_id = session_id
        self.out_dir = out_dir
        self.on_progress = on_progress
        self.cancel = cancel
        self.include_hidden = include_hidden
        self.page_size = page_size
        self.state_path = out_dir / STATE_FILE
        self.events_path = out_dir / EVENTS_FILE
        self.artifacts_dir = out_dir / ARTIFACTS_DIR
        self.state = self._load_state()
        self.events_total: int | None = None
        self.artifacts_total: int | None = None
        self.events_added = 0
        self.artifacts_written = 0
        self.artifacts_skipped = 0
        self.bytes_done = 0
        self.phase = "events"

    # -- state ----------------------------------------------------------------------------------
    def _load_state(self) -> ExportState:
        if not self.state_path.exists():
            if self.events_path.exists() and self.events_path.stat().st_size:
                raise ExportError(
                    f"{self.out_dir} already holds an export without a resume checkpoint; "
                    "choose an empty folder"
                )
            return ExportState(session_id=self.session_id)
        try:
            state = ExportState.model_validate_json(self.state_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ExportError(f"the resume checkpoint in {self.out_dir} is unreadable") from error
        if state.session_id != self.session_id:
            raise ExportError(
                f"{self.out_dir} holds an export of another session ({state.session_id}); "
                "choose another folder"
            )
        return state

    def _save_state(self) -> None:
        _write_atomically(self.state_path, self.state.model_dump_json(indent=2))

    def _report(self, current: str = "") -> None:
        if self.on_progress is not None:
            self.on_progress(
                ExportProgress(
                    phase=self.phase,
                    events_done=self.state.events_written,
                    events_total=self.events_total,
                    artifacts_done=len(self.state.finished_artifacts),
                    artifacts_total=self.artifacts_total,
                    bytes_done=self.bytes_done,
                    current=current,
                )
            )

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ExportCancelled("export cancelled; run it again to resume")

    # -- run ------------------------------------------------------------------------------------
    async def run(self) -> ExportResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        session = await self.backend.get_session(self.session_id)
        self.events_total = max(session.event_count, session.last_sequence) or None
        self.state.complete = False
        self._save_state()
        await self._export_events()
        if self.backend.supports(Capability.ARTIFACTS):
            await self._export_artifacts()
        # Read again so session.json matches the events just written as closely as possible.
        session = await self.backend.get_session(self.session_id)
        _write_atomically(
            self.out_dir / SESSION_FILE,
            json.dumps(session.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n",
        )
        self.state.complete = True
        self._save_state()
        self.phase = "done"
        self._report()
        return ExportResult(
            out_dir=self.out_dir,
            events_written=self.state.events_written,
            events_added=self.events_added,
            artifacts_written=self.artifacts_written,
            artifacts_skipped=self.artifacts_skipped,
            last_sequence=self.state.last_sequence,
        )

    async def _export_events(self) -> None:
        self.phase = "events"
        self._report()
        # Cut a torn tail left by a run that died between writing and checkpointing.
        with self.events_path.open("ab") as handle:
            if handle.tell() != self.state.events_bytes:
                handle.truncate(self.state.events_bytes)
        since_checkpoint = 0
        with self.events_path.open("ab") as handle:
            events = self.backend.iter_events(
                self.session_id,
                after=self.state.last_sequence,
                page_size=self.page_size,
                include_hidden=self.include_hidden,
            )
            try:
                async for event in events:
                    self._check_cancel()
                    if event.sequence <= self.state.last_sequence:
                        continue  # a backend that overlaps pages must not duplicate lines
                    # Secret-flagged tool arguments stay masked in an export too: a file on
                    # disk is no place to reveal them.
                    line = json.dumps(
                        mask_secret_arguments(event.model_dump(mode="json")),
                        ensure_ascii=False,
                        separators=(",", ":"),
                    )
                    handle.write(line.encode("utf-8") + b"\n")
                    self.state.last_sequence = event.sequence
                    self.state.events_written += 1
                    self.events_added += 1
                    since_checkpoint += 1
                    if since_checkpoint >= CHECKPOINT_EVERY_EVENTS:
                        self._checkpoint_events(handle)
                        since_checkpoint = 0
                    if self.events_added % REPORT_EVERY_EVENTS == 0:
                        self._report()
            finally:
                # Runs on cancel, Ctrl-C and backend errors alike: what is written is kept.
                self._checkpoint_events(handle)
                await _close(events)
        self._report()

    def _checkpoint_events(self, handle: Any) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        self.state.events_bytes = handle.tell()
        self._save_state()

    async def _export_artifacts(self) -> None:
        self.phase = "artifacts"
        self.artifacts_dir.mkdir(exist_ok=True)
        index_path = self.out_dir / ARTIFACTS_INDEX_FILE
        index_temporary = index_path.with_name(index_path.name + ".tmp")
        taken = {name.lower() for name in self.state.artifact_files.values()}
        first_page = await self.backend.list_artifacts(self.session_id, limit=self.page_size)
        self.artifacts_total = first_page.total
        self._report()
        page = first_page
        with index_temporary.open("w", encoding="utf-8") as index:
            while True:
                for artifact in page.data:
                    self._check_cancel()
                    file_name = self.state.artifact_files.get(artifact.id)
                    if file_name is None:
                        file_name = _unique_file_name(artifact, taken)
                        taken.add(file_name.lower())
                        self.state.artifact_files[artifact.id] = file_name
                        self._save_state()
                    await self._export_artifact(artifact, file_name)
                    record = artifact.model_dump(mode="json")
                    record["file"] = f"{ARTIFACTS_DIR}/{file_name}"
                    index.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                    index.write("\n")
                if not page.next_cursor or not page.data:
                    break
                page = await self.backend.list_artifacts(
                    self.session_id, cursor=page.next_cursor, limit=self.page_size
                )
        os.replace(index_temporary, index_path)

    async def _export_artifact(self, artifact: Artifact, file_name: str) -> None:
        target = self.artifacts_dir / file_name
        finished = self.state.finished_artifacts.get(artifact.id)
        if finished is not None and target.exists():
            expected = artifact.checksum_sha256 or finished.sha256
            if await asyncio.to_thread(_sha256_of_file, target) == expected.lower():
                self.artifacts_skipped += 1
                self.bytes_done += finished.size_bytes
                self._report(artifact.name)
                return
        # Not finished, or finished but altered on disk since: (re)download.
        self.state.finished_artifacts.pop(artifact.id, None)
        partial = target.with_name(target.name + PARTIAL_SUFFIX)
        try:
            digest = await self._download(artifact, partial)
            expected = (artifact.checksum_sha256 or "").lower()
            if expected and digest != expected:
                # A partial file from another run may have been of different bytes; retry whole.
                partial.unlink(missing_ok=True)
                digest = await self._download(artifact, partial)
                if digest != expected:
                    raise ChecksumMismatch(
                        f"artifact {artifact.id}: the downloaded bytes do not match the "
                        "server's checksum"
                    )
        except BackendError as error:
            raise ExportError(f"artifact {artifact.id}: {error}") from error
        os.replace(partial, target)
        self.state.finished_artifacts[artifact.id] = FinishedArtifact(
            file=file_name, size_bytes=target.stat().st_size, sha256=digest
        )
        self.artifacts_written += 1
        self._save_state()
        self._report(artifact.name)

    async def _download(self, artifact: Artifact, partial: Path) -> str:
        """Append to ``partial`` from where it stops; returns the sha256 of the whole file."""
        digest, offset = await asyncio.to_thread(_hash_partial, partial, artifact.size_bytes)
        self.bytes_done += offset
        with partial.open("ab") as handle:
            chunks = self.backend.read_artifact(self.session_id, artifact.id, offset=offset)
            try:
                async for chunk in chunks:
                    self._check_cancel()
                    handle.write(chunk)
                    digest.update(chunk)
                    self.bytes_done += len(chunk)
                    self._report(artifact.name)
            finally:
                await _close(chunks)  # end the HTTP stream now, not when collected
        return digest.hexdigest()


async def export_session(
    backend: Backend,
    session_id: str,
    out_dir: Path | str,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: asyncio.Event | None = None,
    include_hidden: bool = True,
    page_size: int = 500,
) -> ExportResult:
    """Export (or resume exporting) ``session_id`` into ``out_dir``.

    ``cancel`` is checked between events and between artifact chunks; when set the export stops
    with :class:`ExportCancelled` after checkpointing. Backend failures propagate as
    ``BackendError`` (also after checkpointing), so a rerun resumes."""
    exporter = _Exporter(
        backend,
        session_id,
        Path(out_dir),
        on_progress=on_progress,
        cancel=cancel,
        include_hidden=include_hidden,
        page_size=page_size,
    )
    return await exporter.run()


def run_export_command(backend: Backend, session_id: str, out_dir: Path | str) -> ExportResult:
    """The ``sessionscope export`` command's body: a progress display on stderr, Ctrl-C safe."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    events_task = progress.add_task("events", total=None)
    artifacts_task = progress.add_task("artifacts", total=None, visible=False)

    def show(update: ExportProgress) -> None:
        progress.update(events_task, completed=update.events_done, total=update.events_total)
        if update.phase in ("artifacts", "done"):
            progress.update(
                artifacts_task,
                visible=True,
                completed=update.artifacts_done,
                total=update.artifacts_total,
                description=f"artifacts ({update.bytes_done:,} bytes)",
            )

    async def run() -> ExportResult:
        async with backend:
            return await export_session(backend, session_id, out_dir, on_progress=show)

    with progress:
        return asyncio.run(run())
