"""The console's notion of "now", in one place so snapshot tests can freeze it."""

from __future__ import annotations

from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Freeze the clock at ``at`` (``None`` unfreezes). For tests and snapshots."""
    global _frozen
    _frozen = at
