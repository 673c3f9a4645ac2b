"""The operator's trail: every decision and change the console sends, in a local JSON Lines file.

Each send is two lines: ``sending`` is written (and flushed to disk) before the request leaves, and
``done`` after it returns with its outcome. A ``sending`` line with no ``done`` is a send that was
interrupted (a crash, a kill, a lost connection): visible instead of silently lost.
``sessionscope audit`` prints or filters the trail.

No Textual, no server: the console and the command line both use it.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: What the outcome of a send can be, as the summary of a batch names it too.
SENT = "sent"
ALREADY_DECIDED = "already decided"
EXPIRED = "expired"
REFUSED = "refused"
FAILED = "failed"
INTERRUPTED = "interrupted"


def default_audit_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("sessionscope", appauthor=False) / "audit.jsonl"


@dataclass
class AuditRecord:
    """One send: what, to whom, and how it ended (``interrupted`` while no outcome is known)."""

    id: str
    time: str
    operation: str
    profile: str | None
    backend: str
    session_id: str | None = None
    item_id: str | None = None
    choice: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    outcome: str = INTERRUPTED
    detail: str | None = None
    finished: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class AuditLog:
    """Append-only; safe to share between the console's tasks and threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_audit_path()
        self._lock = threading.Lock()

    def _append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(descriptor, data)
                # Before the request leaves: a crash right after must still show the attempt.
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def begin(
        self,
        operation: str,
        *,
        profile: str | None,
        backend: str,
        session_id: str | None = None,
        item_id: str | None = None,
        choice: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> str:
        record_id = uuid.uuid4().hex
        line: dict[str, Any] = {
            "id": record_id,
            "phase": "sending",
            "time": _now(),
            "operation": operation,
            "profile": profile,
            "backend": backend,
            "session_id": session_id,
            "item_id": item_id,
            "choice": choice,
            "reason": reason,
            "idempotency_key": idempotency_key,
        }
        if extra:
            line["extra"] = extra
        self._append(line)
        return record_id

    def finish(self, record_id: str, outcome: str, detail: str | None = None) -> None:
        self._append(
            {"id": record_id, "phase": "done", "time": _now(), "outcome": outcome, "detail": detail}
        )

    def records(self) -> list[AuditRecord]:
        """Every send, oldest first, each with its outcome (``interrupted`` when none came)."""
        return list(read_records(self.path))


def read_records(path: Path) -> Iterator[AuditRecord]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    records: dict[str, AuditRecord] = {}
    for text in lines:
        try:
            line = json.loads(text)
        except ValueError:
            continue  # a line cut by a crash mid-write: the rest still reads
        if not isinstance(line, dict) or "id" not in line:
            continue
        if line.get("phase") == "sending":
            records[line["id"]] = AuditRecord(
                id=line["id"],
                time=str(line.get("time", "")),
                operation=str(line.get("operation", "")),
                profile=line.get("profile"),
                backend=str(line.get("backend", "")),
                session_id=line.get("session_id"),
                item_id=line.get("item_id"),
                choice=line.get("choice"),
                reason=line.get("reason"),
                idempotency_key=line.get("idempotency_key"),
                extra=line.get("extra") or {},
            )
        elif line.get("phase") == "done" and line["id"] in records:
            record = records[line["id"]]
            record.outcome = str(line.get("outcome", FAILED))
            record.detail = line.get("detail")
            record.finished = line.get("time")
    yield from records.values()


def matching(
    records: Iterable[AuditRecord],
    *,
    profile: str | None = None,
    session_id: str | None = None,
    operation: str | None = None,
    outcome: str | None = None,
) -> list[AuditRecord]:
    return [
        record
        for record in records
        if (profile is None or record.profile == profile)
        and (session_id is None or record.session_id == session_id)
        and (operation is None or record.operation == operation)
        and (outcome is None or record.outcome == outcome)
    ]


def as_json(record: AuditRecord) -> str:
    return json.dumps(asdict(record), ensure_ascii=False)
