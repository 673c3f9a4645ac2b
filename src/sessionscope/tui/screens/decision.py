"""Deciding held calls with the platform's own choices (Everruns: allow, allow always, reject,
reject always), a pause's calls together in one screen with a choice per call, and an optional
reason. Each call starts on the safe choice (a refusal that applies to this call only), so
sending without looking refuses, once; persistent choices are marked.

The plain confirm/cancel modal (``action.py``) stays for platforms without choices or batches.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, RadioButton, RadioSet, Static

from sessionscope.backends import Backend, BackendError, Conflict, NotFound
from sessionscope.models import ActionStatus, DecisionChoice, PendingAction
from sessionscope.tui.context import console_of
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import one_line, plain, plain_line
from sessionscope.tui.screens.action import render_preview
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.countdown import Countdown

#: Keys for the choices platforms offer; a choice not listed here gets a digit.
CHOICE_KEYS: dict[str, str] = {
    "reject": "r",
    "allow": "a",
    "allow_always": "A",
    "reject_always": "R",
    "confirm": "y",
    "cancel": "n",
}


def safe_choice(choices: list[DecisionChoice]) -> DecisionChoice | None:
    """The refusal that applies to this one item, else any refusal, else the first choice."""
    for choice in choices:
        if not choice.confirms and not choice.persistent:
            return choice
    for choice in choices:
        if not choice.confirms:
            return choice
    return choices[0] if choices else None


def key_for(choice: DecisionChoice, index: int) -> str:
    return CHOICE_KEYS.get(choice.id, str(index + 1))


class DecisionState(Enum):
    LOADING = "loading"
    READY = "ready"
    SENDING = "sending"
    DONE = "done"
    GONE = "gone"


class CallChoices(RadioSet):
    """One held call's choices; the selected button is the decision for that call."""

    def __init__(self, action: PendingAction, *, disabled: bool) -> None:
        self.action = action
        self.choices = list(action.choices)
        safe = safe_choice(self.choices)
        buttons = []
        for index, choice in enumerate(self.choices):
            label = Text(f"{choice.label} ({key_for(choice, index)})", end="")
            buttons.append(RadioButton(label, value=choice is safe, id=f"choice-{choice.id}"))
        super().__init__(*buttons, disabled=disabled, classes="decision-choices")

    @property
    def chosen(self) -> DecisionChoice | None:
        index = self.pressed_index
        return self.choices[index] if 0 <= index < len(self.choices) else None

    def choose(self, choice_id: str) -> bool:
        for index, choice in enumerate(self.choices):
            if choice.id == choice_id:
                button = self.query(RadioButton)[index]
                button.value = True
                return True
        return False


class DecisionScreen(ModalScreen[None]):
    """The held calls of one pause, each with the platform's choices, sent together."""

    CSS_PATH: ClassVar = [stylesheet("action.tcss")]

    BINDINGS: ClassVar[list[BindingType]] = bindings("decision")

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    def __init__(self, session_id: str, action_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.action_id = action_id
        self.calls: list[PendingAction] = []
        self.state = DecisionState.LOADING
        #: One key for this screen's answer: a retry after a failure cannot answer twice.
        self._idempotency_key = uuid.uuid4().hex
        self.decisions_sent = 0

    @property
    def read_only(self) -> bool:
        return console_of(self).read_only

    def compose(self) -> ComposeResult:
        with Vertical(id="action-dialog"):
            yield Static(Text("Held calls", style="bold"), id="action-title")
            yield Static("", id="action-session")
            yield Countdown(id="action-countdown")
            yield Static("", id="decision-note")
            with VerticalScroll(id="decision-calls"):
                yield Static("Loading…", id="decision-loading")
            yield Input(
                placeholder="reason (optional, kept in the session's history)",
                id="decision-reason",
                max_length=500,
            )
            yield Static("", id="action-status")
            with Horizontal(id="action-buttons"):
                yield Button("Close (esc)", id="action-close", variant="default")
                label = "Send (read-only)" if self.read_only else "Send decisions (ctrl+s)"
                yield Button(label, id="decision-send", variant="warning", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#action-close", Button).focus()
        self._load()

    @work(exclusive=True, exit_on_error=False, group="decision-load")
    async def _load(self) -> None:
        try:
            held = await self.backend.list_session_actions(self.session_id)
        except BackendError as error:
            self._status(f"Could not load the held calls: {error}", error=True)
            return
        target = next((item for item in held if item.id == self.action_id), None)
        if target is None:
            self._finish(DecisionState.GONE, "This call is no longer held (answered or expired).")
            return
        if target.group_id is None:
            self.calls = [target]
        else:
            self.calls = [item for item in held if item.group_id == target.group_id]
        await self._render_calls()

    async def _render_calls(self) -> None:
        first = self.calls[0]
        count = len(self.calls)
        title = Text(end="")
        title.append("Held call" if count == 1 else f"{count} held calls", style="bold")
        title.append("  one answer for the pause" if count > 1 else "", style="dim")
        self.query_one("#action-title", Static).update(title)
        session = Text(end="")
        session.append("session ", style="dim")
        session.append_text(plain_line(first.session_title or first.session_id, limit=80))
        session.append(f"  ({one_line(first.session_id, 40)})", style="dim")
        self.query_one("#action-session", Static).update(session)
        deadlines = [call.expires_at for call in self.calls if call.expires_at is not None]
        self.query_one(Countdown).set_expiry(min(deadlines) if deadlines else None)
        note = Text(end="")
        deadline_note = (first.model_extra or {}).get("deadline_note")
        if isinstance(deadline_note, str):
            note.append_text(plain_line(deadline_note.capitalize() + ".", limit=120))
        if any(choice.persistent for call in self.calls for choice in call.choices):
            note.append("  “always” covers every call of that tool in this session.", style="dim")
        self.query_one("#decision-note", Static).update(note)
        box = self.query_one("#decision-calls", VerticalScroll)
        await box.remove_children()
        decidable = [call for call in self.calls if call.decidable]
        rows: list[Widget] = []
        for index, call in enumerate(self.calls):
            header = Text(end="")
            header.append_text(plain_line(call.tool or "(unnamed tool)", style="bold", limit=60))
            if call.destructive:
                header.append("  outward-facing or destructive", style="bold red")
            if call.reason:
                header.append("  ")
                header.append_text(plain_line(call.reason, style="italic", limit=120))
            first_row = " -first" if index == 0 else ""
            rows.append(Static(header, classes="decision-call-title" + first_row))
            rows.append(Static(render_preview(call.preview), classes="decision-preview"))
            if call.decidable:
                rows.append(CallChoices(call, disabled=self.read_only))
            else:
                rows.append(Static(f"cannot be decided: {call.status.value}", classes="dim"))
        await box.mount_all(rows)
        if not decidable:
            self._finish(DecisionState.GONE, "Nothing here can be decided any more.")
            return
        self.state = DecisionState.READY
        send = self.query_one("#decision-send", Button)
        send.disabled = self.read_only
        sets = list(self.query(CallChoices))
        if sets and not self.read_only:
            sets[0].focus()
        self._status(
            "Read-only mode: decisions are disabled."
            if self.read_only
            else "Each call starts on a refusal for this call only; choose per call, then send."
        )
        self.refresh_bindings()

    # -- choosing -------------------------------------------------------------------------------
    def _current(self) -> CallChoices | None:
        """The call a choice key applies to: the focused one, or the only one."""
        if isinstance(self.focused, CallChoices):
            return self.focused
        sets = list(self.query(CallChoices))
        return sets[0] if len(sets) == 1 else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose":
            choice_id = str(parameters[0]) if parameters else ""
            offered = {choice.id for call in self.calls for choice in call.choices}
            if choice_id not in offered:
                return False  # a choice this platform does not offer is not shown at all
            return None if self.read_only or self.state is not DecisionState.READY else True
        if action == "send":
            return None if self.read_only or self.state is not DecisionState.READY else True
        return True

    def action_choose(self, choice_id: str) -> None:
        current = self._current()
        if current is None:
            self._status("Move to a call first (tab), then choose.", error=True)
            return
        current.choose(choice_id)

    def chosen(self) -> list[tuple[str, str]]:
        decisions = []
        for choices in self.query(CallChoices):
            picked = choices.chosen
            if picked is not None:
                decisions.append((choices.action.id, picked.id))
        return decisions

    # -- sending --------------------------------------------------------------------------------
    def action_send(self) -> None:
        if self.read_only:
            self.notify("Read-only mode: decisions are disabled.", severity="warning", timeout=3)
            return
        if self.state is not DecisionState.READY:
            return
        self.state = DecisionState.SENDING
        self.query_one("#decision-send", Button).disabled = True
        for choices in self.query(CallChoices):
            choices.disabled = True
        self._status("Sending…")
        reason = self.query_one("#decision-reason", Input).value.strip() or None
        self._send(self.chosen(), reason)

    @on(Button.Pressed, "#decision-send")
    def _send_pressed(self) -> None:
        self.action_send()

    @on(Button.Pressed, "#action-close")
    def _close_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, exit_on_error=False, group="decision-send")
    async def _send(self, decisions: list[tuple[str, str]], reason: str | None) -> None:
        self.decisions_sent += 1
        try:
            results = await self.backend.decide_actions(
                self.session_id, decisions, reason=reason, idempotency_key=self._idempotency_key
            )
        except (Conflict, NotFound) as error:
            self._finish(DecisionState.GONE, f"Not sent: {error}")
            return
        except BackendError as error:
            # Nothing is known to have been decided: allow a retry, with the same key.
            self.state = DecisionState.READY
            self.query_one("#decision-send", Button).disabled = False
            for choices in self.query(CallChoices):
                choices.disabled = False
            self._status(f"Could not send the decisions: {error}. Try again.", error=True)
            return
        tools = {call.id: call.tool for call in self.calls}
        summary = Text("Sent. ", style="bold", end="")
        for index, result in enumerate(results):
            if index:
                summary.append(" · ")
            summary.append_text(plain_line(tools.get(result.action_id, result.action_id), limit=40))
            word = "allowed" if result.status is ActionStatus.PROCESSING else "refused"
            summary.append(f" {result.message or word}")
        self._finish(DecisionState.DONE, summary)

    @on(Countdown.Expired)
    def _expired(self) -> None:
        if self.state is DecisionState.READY:
            self._finish(
                DecisionState.GONE, "The deadline passed: unanswered calls count as rejected."
            )

    def _finish(self, state: DecisionState, message: str | Text) -> None:
        self.state = state
        self.query_one("#decision-send", Button).disabled = True
        for choices in self.query(CallChoices):
            choices.disabled = True
        self._status(message, error=state is DecisionState.GONE)
        self.refresh_bindings()

    def _status(self, message: str | Text, *, error: bool = False) -> None:
        status = self.query_one("#action-status", Static)
        status.update(message if isinstance(message, Text) else plain(message))
        status.set_class(error, "-error")
