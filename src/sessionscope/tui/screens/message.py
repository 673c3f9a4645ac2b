"""Send a message to a session: ``m`` on the session screen. Multi-line; ``ctrl+s`` sends;
``ctrl+t`` interrupts the agent's turn where the platform offers it."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static, TextArea

from sessionscope.backends import Capability
from sessionscope.models import Event
from sessionscope.tui.feedback import notify_plain
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain
from sessionscope.tui.screens.forms import FormScreen


class MessageScreen(FormScreen[Event | None]):
    """Dismisses with the ``message.user`` event the server recorded, or ``None``."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("message")

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        with Vertical(id="message-dialog", classes="dialog -wide"):
            yield Static(plain(f"Message to session {self.session_id}"), classes="dialog-title")
            yield self.read_only_notice()
            yield TextArea(id="message-input", soft_wrap=True, show_line_numbers=False)
            yield self.status_line()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send (ctrl+s)", id="message-send", variant="primary")
                if self.backend.supports(Capability.CANCEL_TURN):
                    yield Button("Interrupt (ctrl+t)", id="message-interrupt", variant="warning")
                yield Button("Cancel (esc)", id="message-cancel")

    def on_mount(self) -> None:
        self.query_one("#message-input", TextArea).focus()

    def action_send(self) -> None:
        content = self.query_one("#message-input", TextArea).text
        if not content.strip():
            self.show_status("Write something first.", error=True)
            return

        async def send() -> None:
            self.show_status("Sending…")
            event = await self.backend.send_message(self.session_id, content)
            notify_plain(self.app, f"Message sent (event #{event.sequence})", title="Message")
            self.dismiss(event)

        self.submit(send)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "interrupt":
            return self.backend.supports(Capability.CANCEL_TURN)
        return True

    def action_interrupt(self) -> None:
        async def interrupt() -> None:
            self.show_status("Interrupting…")
            said = await self.backend.cancel_turn(self.session_id)
            notify_plain(self.app, said, title="Interrupt")
            self.dismiss(None)

        self.submit(interrupt)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#message-send")
    def _send_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_send()

    @on(Button.Pressed, "#message-interrupt")
    def _interrupt_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_interrupt()

    @on(Button.Pressed, "#message-cancel")
    def _cancel_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_cancel()
