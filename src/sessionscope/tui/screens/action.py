"""The pending-action modal: what the agent wants to do, how long is left, confirm or cancel."""

from __future__ import annotations

import json
import re
import uuid
from enum import Enum
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from sessionscope.backends import Backend, BackendError, Conflict, Gone, NotFound, WatchState
from sessionscope.models import ActionStatus, OrgChange, PendingAction
from sessionscope.tui.context import console_of
from sessionscope.tui.event_summary import mask_secrets
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import one_line, plain, plain_line, pretty_json
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.countdown import Countdown, seconds_left

#: How often the outcome of a confirmed action is polled while it is processing and the
#: organisation stream is not live.
OUTCOME_POLL_SECONDS = 0.5
#: While the stream is live its ``action.resolved`` change brings the outcome; polling stays as a
#: slow safety net (a change lost in a reconnect, a backend that never sends one).
LIVE_OUTCOME_POLL_SECONDS = 5.0
#: How often an item that cannot be decided (an AgentInbox wait) is read again while it is open.
WATCH_POLL_SECONDS = 2.0
#: Words in a tool's name that make its action destructive even when the platform does not flag
#: it: confirming one needs the tool's name typed, not one key.
DESTRUCTIVE_TOOL_WORDS = frozenset(
    {
        "delete", "del", "drop", "rm", "remove", "destroy", "truncate", "purge", "wipe", "erase",
        "transfer", "wire", "pay", "payment", "refund", "withdraw",
        "terminate", "kill", "shutdown", "revoke", "reset", "format", "overwrite",
    }
)  # fmt: skip


def is_destructive(action: PendingAction) -> bool:
    """Flagged by the platform, or a tool whose name has a destructive word
    (``delete_user``, ``bank.transfer``, ``rmTree``, ``rm -rf``)."""
    if action.destructive:
        return True
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", action.tool or "")
    words = re.split(r"[^a-z0-9]+", spaced.lower())
    return any(word in DESTRUCTIVE_TOOL_WORDS for word in words)


_EMAIL_KEYS = ("from", "to", "cc", "bcc", "reply_to", "subject")
_COMMAND_KEYS = ("command", "cmd", "shell", "script")


# Listed (and labelled read-only) by the app's key help when the console runs read-only.
class ModalState(Enum):
    LOADING = "loading"
    READY = "ready"
    DECIDING = "deciding"
    PROCESSING = "processing"
    DONE = "done"
    #: The item cannot be decided (a wait): it is shown, and read again until it ends.
    WATCHING = "watching"
    EXPIRED = "expired"
    DECIDED_ELSEWHERE = "decided"
    MISSING = "missing"


def render_preview(preview: dict[str, Any]) -> Text:
    """A readable, plain-text preview: an email as headers and body, a shell command verbatim,
    anything else as key/value lines. Nothing in it is parsed as markup."""
    preview = mask_secrets(preview)
    out = Text(end="")
    if any(key in preview for key in ("subject", "body")) and any(
        key in preview for key in ("to", "subject")
    ):
        for key in _EMAIL_KEYS:
            if key in preview:
                value = preview[key]
                if isinstance(value, list):
                    value = ", ".join(map(str, value))
                out.append(f"{key.replace('_', '-').capitalize():<9} ", style="bold")
                out.append_text(plain_line(value, limit=500))
                out.append("\n")
        body = preview.get("body", preview.get("text", ""))
        out.append("\n")
        out.append_text(plain(body if isinstance(body, str) else pretty_json(body)))
        rest = {k: v for k, v in preview.items() if k not in (*_EMAIL_KEYS, "body", "text")}
        if rest:
            out.append("\n\n")
            out.append_text(_key_values(rest))
        return out
    command_key = next((key for key in _COMMAND_KEYS if key in preview), None)
    if command_key is not None:
        command = preview[command_key]
        if isinstance(command, list):
            command = " ".join(map(str, command))
        out.append("$ ", style="bold")
        out.append_text(plain(command))
        rest = {k: v for k, v in preview.items() if k != command_key}
        if rest:
            out.append("\n\n")
            out.append_text(_key_values(rest))
        return out
    if not preview:
        return Text("(no preview)", style="dim", end="")
    return _key_values(preview)


def _key_values(values: dict[str, Any]) -> Text:
    out = Text(end="")
    for index, (key, value) in enumerate(values.items()):
        if index:
            out.append("\n")
        out.append_text(plain_line(key, style="bold", limit=60))
        out.append(": ", style="bold")
        rendered = value if isinstance(value, str) else pretty_json(value)
        out.append_text(plain(rendered))
    return out


class ActionModal(ModalScreen[None]):
    CSS_PATH: ClassVar = [stylesheet("action.tcss")]

    BINDINGS: ClassVar[list[BindingType]] = bindings("action")
    help_title = "Pending action"

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    def __init__(self, session_id: str, action_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.action_id = action_id
        self.action: PendingAction | None = None
        self.state = ModalState.LOADING
        #: One idempotency key per decision: a retry of the same decision can never decide twice.
        self._idempotency_keys = {True: uuid.uuid4().hex, False: uuid.uuid4().hex}
        self.decisions_sent = 0

    @property
    def read_only(self) -> bool:
        return console_of(self).read_only

    def compose(self) -> ComposeResult:
        with Vertical(id="action-dialog"):
            yield Static(Text("Pending action", style="bold"), id="action-title")
            yield Static("", id="action-session")
            yield Countdown(id="action-countdown")
            with VerticalScroll(id="action-preview-scroll"):
                yield Static("Loading…", id="action-preview")
            yield Static("", id="action-status")
            yield Input(id="action-typed", compact=True)
            with Horizontal(id="action-buttons"):
                yield Button("Close (esc)", id="action-close", variant="default")
                yield Button(self._decision_label("Cancel action", "n"), id="action-cancel")
                yield Button(self._decision_label("Confirm", "y"), id="action-confirm")

    def _decision_label(self, label: str, key: str) -> str:
        return f"{label} (read-only)" if self.read_only else f"{label} ({key})"

    def on_mount(self) -> None:
        console_of(self).org_changes.subscribe(self, self._org_changed)
        self._set_buttons(enabled=False)
        # The safe choice has the focus: enter on a freshly opened modal never confirms.
        self.query_one("#action-close", Button).focus()
        self.query_one("#action-typed", Input).display = False
        self._load()

    # -- loading --------------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="action-load")
    async def _load(self) -> None:
        try:
            action = await self.backend.get_action(self.session_id, self.action_id)
        except NotFound:
            self._finish(ModalState.MISSING, "This action no longer exists.")
            return
        except BackendError as error:
            self._status(f"Could not load the action: {error}", error=True)
            return
        self.action = action
        self._render_action()
        if not action.decidable:
            self._watch_only(action)
            return
        if action.status is ActionStatus.PENDING:
            left = seconds_left(action.expires_at)
            if left is not None and left <= 0:
                self._finish(ModalState.EXPIRED, "This action has expired; it can no longer run.")
            else:
                self.state = ModalState.READY
                self._set_buttons(enabled=True)
                self._status(self._ready_hint())
        elif action.status is ActionStatus.EXPIRED:
            self._finish(ModalState.EXPIRED, "This action has expired; it can no longer run.")
        elif action.status is ActionStatus.PROCESSING:
            self.state = ModalState.PROCESSING
            self._drop_decision_controls()
            self._status("Confirmed; processing…")
            self._await_outcome()
        else:
            self._finish(
                ModalState.DECIDED_ELSEWHERE,
                f"This action was already decided: {action.status.value}.",
            )

    # -- items that cannot be decided (waits) ---------------------------------------------------
    def _watch_only(self, action: PendingAction) -> None:
        """No confirm or cancel: a note says why, and the item is read again until it ends."""
        self.query_one("#action-confirm", Button).display = False
        self.query_one("#action-cancel", Button).display = False
        if action.status is ActionStatus.PENDING:
            self.state = ModalState.WATCHING
            self._status(
                "Watch only: this wait cannot be confirmed or cancelled here. It ends when its "
                "email arrives or when its time runs out."
            )
            self.set_timer(WATCH_POLL_SECONDS, self._reread, name="action-watch")
        elif action.status is ActionStatus.EXPIRED:
            self._finish(ModalState.EXPIRED, "This wait timed out before its email arrived.")
        else:
            self._show_outcome(action.status, action.outcome)
        self.refresh_bindings()

    @work(exclusive=True, exit_on_error=False, group="action-watch")
    async def _reread(self) -> None:
        if self.state is not ModalState.WATCHING:
            return
        try:
            action = await self.backend.get_action(self.session_id, self.action_id)
        except BackendError as error:
            self._status(f"Watching; could not read it again: {error}", error=True)
            self.set_timer(WATCH_POLL_SECONDS * 2, self._reread, name="action-watch")
            return
        self.action = action
        self._render_action()
        self._watch_only(action)

    def _ready_hint(self) -> str:
        if self.read_only:
            return "Read-only mode: decisions are disabled."
        destructive = self.action is not None and self.action.destructive
        return (
            "Destructive: check the preview before confirming."
            if destructive
            else "y confirms, n cancels the action, escape closes without deciding."
        )

    def _render_action(self) -> None:
        action = self.action
        if action is None:
            return
        title = Text(end="")
        title.append("Pending action  " if action.decidable else "Wait  ", style="bold")
        title.append_text(plain_line(action.tool, style="bold", limit=60))
        if action.destructive:
            title.append("  DESTRUCTIVE", style="bold red")
        self.query_one("#action-title", Static).update(title)
        session = Text(end="")
        session.append("session ", style="dim")
        session.append_text(plain_line(action.session_title or action.session_id, limit=80))
        session.append(f"  ({one_line(action.session_id, 40)})", style="dim")
        self.query_one("#action-session", Static).update(session)
        self.query_one(Countdown).set_expiry(action.expires_at)
        self.query_one("#action-preview", Static).update(render_preview(action.preview))
        self.query_one("#action-confirm", Button).variant = (
            "error" if action.destructive else "success"
        )

    # -- decisions ------------------------------------------------------------------------------
    def _set_buttons(self, *, enabled: bool) -> None:
        allowed = enabled and not self.read_only
        self.query_one("#action-confirm", Button).disabled = not allowed
        self.query_one("#action-cancel", Button).disabled = not allowed
        self.refresh_bindings()

    def _drop_decision_controls(self, *, keep_countdown: bool = False) -> None:
        """Decided (here or elsewhere), the modal shows the outcome: no countdown to race, no
        Confirm/Cancel to press; Close keeps the focus."""
        self.query_one("#action-confirm", Button).display = False
        self.query_one("#action-cancel", Button).display = False
        self.query_one("#action-typed", Input).display = False
        self.query_one(Countdown).display = keep_countdown
        self.query_one("#action-close", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("confirm", "cancel_action"):
            if self.action is not None and not self.action.decidable:
                return False  # nothing to decide: the keys are not offered at all
            return None if self.read_only or self.state is not ModalState.READY else True
        return True

    def action_confirm(self) -> None:
        self._decide(True)

    def action_cancel_action(self) -> None:
        self._decide(False)

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#action-confirm")
    def _confirm_pressed(self) -> None:
        self._decide(True)

    @on(Button.Pressed, "#action-cancel")
    def _cancel_pressed(self) -> None:
        self._decide(False)

    @on(Button.Pressed, "#action-close")
    def _close_pressed(self) -> None:
        self.dismiss(None)

    @on(Countdown.Expired)
    def _expired(self) -> None:
        if self.state is ModalState.WATCHING:
            self._reread()  # the platform says whether it timed out or just completed
        elif self.state is ModalState.READY:
            self._finish(ModalState.EXPIRED, "This action has expired; it can no longer run.")

    def _decide(self, confirmed: bool, *, typed: bool = False) -> None:
        if self.read_only:
            self.notify("Read-only mode: decisions are disabled.", severity="warning", timeout=3)
            return
        if self.state is not ModalState.READY:
            # A second press while the first decision is under way (or after it) sends nothing.
            return
        if confirmed and not typed and self.action is not None and is_destructive(self.action):
            self._ask_for_tool_name(self.action.tool)
            return
        self.query_one("#action-typed", Input).display = False
        self.state = ModalState.DECIDING
        self._set_buttons(enabled=False)
        self._status("Confirming…" if confirmed else "Cancelling…")
        self._send_decision(confirmed)

    def _ask_for_tool_name(self, tool: str) -> None:
        """The second, deliberate step for a destructive action: one key is not enough."""
        typed = self.query_one("#action-typed", Input)
        typed.placeholder = f"type {one_line(tool, 40)} and press enter"
        typed.value = ""
        typed.display = True
        typed.focus()
        self._status(
            f"Destructive: type the tool name “{one_line(tool, 60)}” and press enter to confirm. "
            "Escape closes without deciding.",
            error=True,
        )

    @on(Input.Submitted, "#action-typed")
    def _tool_name_typed(self, submitted: Input.Submitted) -> None:
        submitted.stop()
        if self.action is None:
            return
        if submitted.value.strip() == self.action.tool:
            self._decide(True, typed=True)
        else:
            self._status(
                f"That is not “{one_line(self.action.tool, 60)}”: nothing was sent. Type it "
                "exactly, or press escape.",
                error=True,
            )

    @work(exclusive=True, exit_on_error=False, group="action-decide")
    async def _send_decision(self, confirmed: bool) -> None:
        self.decisions_sent += 1
        try:
            result = await self.backend.decide_action(
                self.session_id,
                self.action_id,
                confirmed,
                idempotency_key=self._idempotency_keys[confirmed],
            )
        except Gone:
            self._finish(ModalState.EXPIRED, "This action expired before the decision arrived.")
            return
        except Conflict as error:
            await self._explain_conflict(error)
            return
        except NotFound:
            self._finish(ModalState.MISSING, "This action no longer exists.")
            return
        except BackendError as error:
            # Nothing is known to have been decided: allow a retry, with the same key.
            self.state = ModalState.READY
            self._set_buttons(enabled=True)
            self._status(f"Could not send the decision: {error}. Try again.", error=True)
            return
        status = result.status
        if not confirmed or status is ActionStatus.CANCELLED:
            self._finish(ModalState.DONE, "Cancelled: the agent will not do this.")
        elif status is ActionStatus.PROCESSING or status is ActionStatus.PENDING:
            self.state = ModalState.PROCESSING
            self._drop_decision_controls()
            self._status("Confirmed; processing…")
            self._await_outcome()
        else:
            self._show_outcome(status, None)

    async def _explain_conflict(self, error: BackendError) -> None:
        try:
            action = await self.backend.get_action(self.session_id, self.action_id)
            # This console did not decide it: the same words as when the stream tells first.
            detail = f"already decided elsewhere: {action.status.value}"
        except BackendError:
            detail = str(error)
        self._finish(ModalState.DECIDED_ELSEWHERE, f"This action was {detail}.")

    def _poll_interval(self) -> float:
        live = console_of(self).connection_state is WatchState.LIVE
        return LIVE_OUTCOME_POLL_SECONDS if live else OUTCOME_POLL_SECONDS

    @work(exclusive=True, exit_on_error=False, group="action-outcome")
    async def _await_outcome(self) -> None:
        if self.state is not ModalState.PROCESSING:
            return  # the live change already told the outcome
        try:
            action = await self.backend.get_action(self.session_id, self.action_id)
        except BackendError as error:
            self._status(f"Processing; could not check the outcome: {error}", error=True)
            self.set_timer(OUTCOME_POLL_SECONDS * 4, self._await_outcome)
            return
        if self.state is not ModalState.PROCESSING:
            return
        self.action = action
        if action.status in (ActionStatus.PROCESSING, ActionStatus.PENDING):
            self.set_timer(self._poll_interval(), self._await_outcome)
            return
        self._show_outcome(action.status, action.outcome)

    def _org_changed(self, changes: list[OrgChange]) -> None:
        """The app's organisation stream announces every resolution (``action.resolved``, with
        the action's status and outcome): the outcome shows as soon as it happens."""
        for change in changes:
            action = change.action
            if action is None or action.id != self.action_id:
                continue
            if self.state is ModalState.PROCESSING and action.status not in (
                ActionStatus.PROCESSING,
                ActionStatus.PENDING,
            ):
                self.action = action
                self._show_outcome(action.status, action.outcome)
            elif self.state is ModalState.READY and action.status is ActionStatus.EXPIRED:
                self._finish(ModalState.EXPIRED, "This action has expired; it can no longer run.")
            elif self.state is ModalState.READY and action.status is not ActionStatus.PENDING:
                # Someone else decided (another console, the API) while this one was open.
                self._finish(
                    ModalState.DECIDED_ELSEWHERE,
                    f"This action was just decided elsewhere: {action.status.value}.",
                )

    def _show_outcome(self, status: ActionStatus, outcome: dict[str, Any] | None) -> None:
        label = {
            ActionStatus.COMPLETED: "Completed.",
            ActionStatus.FAILED: "Failed.",
            ActionStatus.CANCELLED: "Cancelled.",
            ActionStatus.EXPIRED: "Expired.",
        }.get(status, f"{status.value}.")
        message = Text(label, style="bold", end="")
        if outcome:
            shown = mask_secrets(outcome)
            message.append("  ")
            message.append_text(
                plain_line(
                    "  ·  ".join(
                        f"{key}: {value if isinstance(value, str) else json.dumps(value)}"
                        for key, value in shown.items()
                    ),
                    limit=300,
                )
            )
        self.state = ModalState.DONE
        self._set_buttons(enabled=False)
        self._drop_decision_controls()
        self._status(message, error=status is ActionStatus.FAILED)

    def _finish(self, state: ModalState, message: str) -> None:
        self.state = state
        self._set_buttons(enabled=False)
        # Expired, the countdown's "expired" is the outcome.
        self._drop_decision_controls(keep_countdown=state is ModalState.EXPIRED)
        self._status(message, error=state is not ModalState.DONE)
        if state is ModalState.EXPIRED:
            countdown = self.query_one(Countdown)
            countdown.update("expired")
            countdown.add_class("-expired")

    def _status(self, message: str | Text, *, error: bool = False) -> None:
        status = self.query_one("#action-status", Static)
        status.update(message if isinstance(message, Text) else plain(message))
        status.set_class(error, "-error")
