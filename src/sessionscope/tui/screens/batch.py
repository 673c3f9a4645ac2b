"""A batch of decisions across the fleet: asked once, listing what goes to which profile, with
an optional reason; the safe answer has the focus. Then one summary of every outcome."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from sessionscope.backends.fleet import DecisionOutcome, DecisionRequest, summarise
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import one_line, plain
from sessionscope.tui.styles import stylesheet


def _where(request: DecisionRequest) -> str:
    action = request.action
    profile = getattr(action, "profile", None) or "-"
    title = action.session_title or action.session_id
    return f"{one_line(str(profile), 16)}  {one_line(action.tool, 24)}  “{one_line(title, 40)}”"


def describe_batch(requests: list[DecisionRequest]) -> str:
    """One line per item: the profile it goes to, the tool, the session, the choice."""
    return "\n".join(f"{request.choice:>8} → {_where(request)}" for request in requests)


def describe_outcomes(outcomes: list[DecisionOutcome]) -> str:
    lines = [summarise(outcomes), ""]
    for outcome in outcomes:
        detail = f" ({one_line(outcome.detail, 80)})" if outcome.detail else ""
        lines.append(f"{outcome.outcome}{detail}: {_where(outcome.request)}")
    return "\n".join(lines)


class BatchDecisionModal(ModalScreen[tuple[bool, str]]):
    """Dismisses with (send?, reason). Every line shown may quote agent text: plain, never
    markup."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("batch")
    DEFAULT_CSS = """
    BatchDecisionModal #batch-items { height: auto; max-height: 16; }
    BatchDecisionModal #batch-reason { margin-top: 1; }
    """

    def __init__(self, requests: list[DecisionRequest]) -> None:
        super().__init__()
        self.requests = requests
        self._answered = False

    def compose(self) -> ComposeResult:
        count = len(self.requests)
        profiles = sorted({str(getattr(r.action, "profile", None) or "-") for r in self.requests})
        title = (
            f"Send {count} decision{'' if count == 1 else 's'} to "
            f"{len(profiles)} profile{'' if len(profiles) == 1 else 's'}?"
        )
        with Vertical(id="batch-dialog", classes="dialog"):
            yield Static(Text(title, style="bold", end=""), classes="dialog-title")
            with VerticalScroll(id="batch-items"):
                yield Static(plain(describe_batch(self.requests)), id="batch-body")
            yield Input(
                placeholder="reason (optional, sent where the platform takes one)",
                id="batch-reason",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send (ctrl+s)", id="batch-send", variant="error")
                yield Button("Don't send (esc)", id="batch-no", variant="default")

    def on_mount(self) -> None:
        self.query_one("#batch-no", Button).focus()

    def _answer(self, send: bool) -> None:
        if self._answered:
            return
        self._answered = True
        self.dismiss((send, self.query_one("#batch-reason", Input).value.strip()))

    def action_send(self) -> None:
        self._answer(True)

    def action_refuse(self) -> None:
        self._answer(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._answer(event.button.id == "batch-send")
