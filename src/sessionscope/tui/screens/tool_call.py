"""Answer a client tool call: its arguments (secret ones masked; ``v`` reveals them for
``REVEAL_SECONDS``), and a form to submit a result (text or JSON) or an error."""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Static, TextArea

from sessionscope.models import ToolCall, ToolResult
from sessionscope.tui.feedback import notify_plain
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain_line
from sessionscope.tui.screens.forms import FormScreen
from sessionscope.tui.widgets.reveal import TimedReveal
from sessionscope.tui.widgets.tool_calls import render_arguments


class ToolResultScreen(TimedReveal, FormScreen[ToolCall | None]):
    """Dismisses with the tool call as the server has it after the submission."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("tool_result")

    def __init__(self, session_id: str, tool_call: ToolCall) -> None:
        super().__init__()
        self.session_id = session_id
        self.tool_call = tool_call
        # One key for this form: a retry or a double press records one result.
        self._idempotency_key = f"tool-result-{uuid.uuid4()}"

    def compose(self) -> ComposeResult:
        call = self.tool_call
        with Vertical(id="tool-result-dialog", classes="dialog -wide"):
            title = Text("Tool call ", style="bold", end="")
            title.append_text(plain_line(call.tool, "bold", limit=60))
            title.append(f"  ·  {call.id}", style="dim")
            yield Static(title, classes="dialog-title")
            yield self.read_only_notice()
            with VerticalScroll(id="tool-arguments"):
                yield Static(render_arguments(call.arguments, revealed=False), id="tool-args-text")
            yield Static("Result, or the error text", classes="form-label")
            yield TextArea(id="tool-result-input", soft_wrap=True)
            yield Checkbox("Parse as JSON", id="tool-result-json")
            yield self.status_line()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Submit result (ctrl+s)", id="tool-submit-result", variant="primary")
                yield Button("Submit error (ctrl+e)", id="tool-submit-error", variant="warning")
                yield Button("Cancel (esc)", id="tool-cancel")

    def on_mount(self) -> None:
        self.query_one("#tool-result-input", TextArea).focus()
        #: Until the operator ticks or unticks it, "Parse as JSON" follows the text: on while
        #: the text is valid JSON, so a JSON answer is not sent as a string.
        self._json_chosen = False
        self._json_auto = False

    @on(TextArea.Changed, "#tool-result-input")
    def _result_text_changed(self, changed: TextArea.Changed) -> None:
        if self._json_chosen:
            return
        checkbox = self.query_one("#tool-result-json", Checkbox)
        valid = _is_json(changed.text_area.text)
        self._json_auto = valid
        checkbox.value = valid

    @on(Checkbox.Changed, "#tool-result-json")
    def _json_toggled(self, changed: Checkbox.Changed) -> None:
        changed.stop()
        # Our own setting comes back as a change too; only a different value is the operator's.
        if changed.value != self._json_auto:
            self._json_chosen = True

    # -- secrets --------------------------------------------------------------------------------
    def can_reveal(self) -> bool:
        if any(argument.secret for argument in self.tool_call.arguments):
            return True
        notify_plain(self.app, "This call has no secret arguments.")
        return False

    def render_secrets(self) -> None:
        self.query_one("#tool-args-text", Static).update(
            render_arguments(self.tool_call.arguments, revealed=self.revealed)
        )

    # -- submit ---------------------------------------------------------------------------------
    def _result_from_form(self, as_error: bool) -> ToolResult | None:
        text = self.query_one("#tool-result-input", TextArea).text
        if as_error:
            if not text.strip():
                self.show_status("Describe the error first.", error=True)
                return None
            return ToolResult(error=text)
        output: Any = text
        if self.query_one("#tool-result-json", Checkbox).value:
            try:
                output = json.loads(text)
            except json.JSONDecodeError as error:
                self.show_status(f"Not valid JSON: {error}", error=True)
                return None
        return ToolResult(output=output)

    def _submit(self, as_error: bool) -> None:
        result = self._result_from_form(as_error)
        if result is None:
            return

        async def send() -> None:
            self.show_status("Submitting…")
            call = await self.backend.submit_tool_result(
                self.session_id,
                self.tool_call.id,
                result,
                idempotency_key=self._idempotency_key,
            )
            notify_plain(
                self.app,
                f"{'Error' if as_error else 'Result'} submitted for {call.tool}",
                title="Tool call",
            )
            self.dismiss(call)

        self.submit(send)

    def action_submit_result(self) -> None:
        self._submit(as_error=False)

    def action_submit_error(self) -> None:
        self._submit(as_error=True)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#tool-submit-result")
    def _result_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_submit_result()

    @on(Button.Pressed, "#tool-submit-error")
    def _error_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_submit_error()

    @on(Button.Pressed, "#tool-cancel")
    def _cancel_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_cancel()


def _is_json(text: str) -> bool:
    if not text.strip():
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
