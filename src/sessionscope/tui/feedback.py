"""Operator feedback shared by every layer of the console: the read-only refusal, a failure in
plain words, a toast that is never markup."""

from __future__ import annotations

from typing import Any

from textual.app import App

from sessionscope.backends.base import BackendError, ValidationFailed

READ_ONLY_MESSAGE = "Read-only mode: this console was started with --read-only and changes nothing."


def count_of(count: int, noun: str, plural: str | None = None) -> str:
    """ "1 artifact", "2 artifacts", "1,200 events": a count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def describe_error(error: BaseException) -> str:
    """An operator-facing sentence for any failure; the result is untrusted text (it may quote
    the server), so render it with ``safe.plain``."""
    if isinstance(error, ValidationFailed):
        details = []
        for item in error.errors:
            location = item.get("loc") or item.get("field") or ""
            if isinstance(location, list | tuple):
                location = ".".join(str(part) for part in location if part != "body")
            message = item.get("msg") or item.get("message") or item.get("detail") or ""
            details.append(f"{location}: {message}" if location else str(message))
        text = str(error) or "the server rejected the input"
        return "\n".join([text, *(f"  • {line}" for line in details if line)])
    if isinstance(error, BackendError):
        return str(error) or type(error).__name__
    return f"unexpected error ({type(error).__name__}); the operation may not have happened"


def notify_plain(app: App[Any], message: str, **options: Any) -> None:
    """A toast whose text is never parsed as markup (it may quote a session title)."""
    app.notify(message, markup=False, **options)
