"""``:`` — a k9s-style command line at the bottom of the screen. It only reads a line: the app
runs it (``SessionScopeApp.run_command``), so every screen shares one set of commands."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import ModalScreen
from textual.widgets import Input

from sessionscope.tui.keys import bindings

COMMANDS_HELP = "ctx [NAME|all], inbox, sessions [status=STATUS]"


class CommandLine(ModalScreen[str | None]):
    """Dismisses with the line typed (``None`` on escape)."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("command_line")
    DEFAULT_CSS = """
    CommandLine { align: left bottom; background: $background 0%; }
    CommandLine > Input { dock: bottom; width: 100%; border: none; height: 1; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Input(placeholder=COMMANDS_HELP, id="command-line")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_close(self) -> None:
        self.dismiss(None)
