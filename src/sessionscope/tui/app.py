"""The console application. Talks only to a ``Backend``."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from sessionscope.backends import Backend
from sessionscope.tui.styles import stylesheet


class SessionScopeApp(App[None]):
    TITLE = "sessionscope"
    CSS_PATH: ClassVar = [stylesheet("app.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave sessionscope"),
    ]

    def __init__(self, backend: Backend, *, read_only: bool = False) -> None:
        super().__init__()
        self.backend = backend
        self.read_only = read_only

    # Navigation entry points shared by every screen, the command palette and notifications.
    def open_session(self, session_id: str) -> None:
        from sessionscope.tui.screens.session import SessionScreen

        self.push_screen(SessionScreen(session_id))

    def open_action(self, session_id: str, action_id: str) -> None:
        from sessionscope.tui.screens.action import ActionModal

        self.push_screen(ActionModal(session_id, action_id))

    def open_inbox(self) -> None:
        from sessionscope.tui.screens.inbox import InboxScreen

        self.push_screen(InboxScreen())
