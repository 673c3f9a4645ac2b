"""Saving artifacts to disk and handing them to other programs.

Artifact names come from the server and are untrusted: ``safe_filename`` keeps only a plain final
name component. Saving streams in chunks (never the whole artifact in memory), verifies the
server's SHA-256 while streaming, and never replaces an existing file unless told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sessionscope.backends import Backend
from sessionscope.models import Artifact

SAVE_CHUNK_BYTES = 1024 * 1024
MAX_FILENAME_CHARS = 200

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f<>:"|?*]')


def safe_filename(name: str, *, fallback: str = "artifact") -> str:
    """A file name that stays in the directory it is joined to: directories stripped (both
    separators), control/bidi and shell-hostile characters removed, no leading dots, bounded."""
    base = re.split(r"[\\/]", name)[-1]
    base = _UNSAFE_CHARS.sub("", base).strip().lstrip(".").strip()
    if len(base) > MAX_FILENAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        if dot and 0 < len(suffix) <= 16:
            base = stem[: MAX_FILENAME_CHARS - len(suffix) - 1] + "." + suffix
        else:
            base = base[:MAX_FILENAME_CHARS]
    return base or safe_filename(fallback, fallback="artifact")


def default_save_path(artifact: Artifact, directory: Path | None = None) -> Path:
    return (directory or Path.cwd()) / safe_filename(artifact.name, fallback=artifact.id)


class ChecksumStatus(StrEnum):
    VERIFIED = "verified"
    MISMATCH = "MISMATCH"
    #: The server gave no checksum.
    UNCHECKED = "not checked (no checksum from the server)"


@dataclass(frozen=True)
class SaveResult:
    path: Path
    size: int
    sha256: str
    checksum: ChecksumStatus

    def describe(self) -> str:
        return f"saved {self.size:,} bytes to {self.path} — checksum {self.checksum.value}"


ProgressCallback = Callable[[int], None]


async def save_artifact(
    backend: Backend,
    artifact: Artifact,
    destination: Path,
    *,
    overwrite: bool = False,
    chunk_size: int = SAVE_CHUNK_BYTES,
    on_progress: ProgressCallback | None = None,
) -> SaveResult:
    """Stream the artifact into ``destination``.

    Raises ``FileExistsError`` (before downloading anything) when the destination exists and
    ``overwrite`` is false. The bytes go to a temporary file beside the destination, which
    replaces it only when complete: an interrupted save leaves no half file behind.
    """
    directory = destination.parent
    claimed = False
    if not overwrite:
        # Claim the name atomically so a file appearing meanwhile is not replaced either.
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        claimed = True
    fd, temp_name = tempfile.mkstemp(prefix=".sessionscope-", suffix=".part", dir=directory)
    hasher = hashlib.sha256()
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            stream: AsyncIterator[bytes] = backend.read_artifact(
                artifact.session_id, artifact.id, chunk_size=chunk_size
            )
            async with aclosing(stream):  # type: ignore[type-var]
                async for chunk in stream:
                    hasher.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
                    written += len(chunk)
                    if on_progress is not None:
                        on_progress(written)
        os.replace(temp_name, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if claimed:
            with contextlib.suppress(OSError):
                os.unlink(destination)
        raise
    digest = hasher.hexdigest()
    expected = (artifact.checksum_sha256 or "").strip().lower()
    if not expected:
        status = ChecksumStatus.UNCHECKED
    elif expected == digest:
        status = ChecksumStatus.VERIFIED
    else:
        status = ChecksumStatus.MISMATCH
    return SaveResult(destination, written, digest, status)


def system_opener() -> list[str] | None:
    """The desktop's "open this file" command, when there is one."""
    if sys.platform == "darwin":
        command = "open"
    elif sys.platform.startswith("win"):
        return None
    else:
        command = "xdg-open"
    found = shutil.which(command)
    return [found] if found else None


def pager_command() -> list[str] | None:
    import shlex

    pager = os.environ.get("PAGER", "").strip()
    if pager:
        try:
            return shlex.split(pager)
        except ValueError:
            return None
    found = shutil.which("less")
    return [found] if found else None


#: The directories ``temp_copy_dir`` made in this process; ``remove_temp_copies`` deletes them.
_TEMP_COPY_DIRS: list[Path] = []


def temp_copy_dir() -> Path:
    """A private directory for files handed to other programs (they outlive the call, not the
    app: the app removes them when it quits)."""
    made = Path(tempfile.mkdtemp(prefix="sessionscope-open-"))
    _TEMP_COPY_DIRS.append(made)
    return made


def remove_temp_copies() -> None:
    """Delete every copy made for a pager or an opener (at quit; a viewer still showing one
    keeps its open file on POSIX)."""
    while _TEMP_COPY_DIRS:
        shutil.rmtree(_TEMP_COPY_DIRS.pop(), ignore_errors=True)
