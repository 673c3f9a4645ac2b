"""Messages that go up: navigation the app performs, and dialogs a widget needs that the screen
hosting it opens (widgets never import screens). Each request carries the callback that receives
the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from sessionscope.models import ToolCall


# -- navigation (handled by the app) -------------------------------------------------------------
class OpenSession(Message):
    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id


class OpenAction(Message):
    def __init__(self, session_id: str, action_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.action_id = action_id


class OpenInbox(Message):
    pass


class Retry(Message):
    """Reload the sessions list and restart the organisation watch if it stopped."""


# -- dialogs a widget asks its screen for ----------------------------------------------------------
@dataclass(frozen=True)
class Question:
    title: str
    body: str
    confirm_label: str = "Yes"
    refuse_label: str = "No"
    destructive: bool = True


class ConfirmRequested(Message):
    """Ask a yes/no question; ``answer`` gets ``True`` only for yes."""

    def __init__(self, question: Question, answer: Callable[[bool], object]) -> None:
        super().__init__()
        self.question = question
        self.answer = answer


class SavePathRequested(Message):
    """Ask where to save a file; ``chosen`` gets the path, or ``None`` when the operator
    cancelled."""

    def __init__(
        self, name: str, default_path: Path, chosen: Callable[[Path | None], object]
    ) -> None:
        super().__init__()
        self.name = name
        self.default_path = default_path
        self.chosen = chosen


class ToolResultRequested(Message):
    """Open the form that answers a client tool call; ``answered`` gets the call as the server
    then has it, or ``None``."""

    def __init__(
        self, session_id: str, call: ToolCall, answered: Callable[[ToolCall | None], object]
    ) -> None:
        super().__init__()
        self.session_id = session_id
        self.call = call
        self.answered = answered


class ListStarted(Message):
    """The sessions list has the page that starts it, whose snapshot includes the organisation
    stream up to ``position`` (``None``: unknown, or no page): the organisation watch starts
    there."""

    def __init__(self, position: int | None) -> None:
        super().__init__()
        self.position = position


class FirstPageShown(Message):
    """The sessions list's first page is on screen: time for work that must not delay it."""
