"""A yes/no modal for every destructive flow. The safe answer (No) has the focus, so a stray
``enter`` never destroys anything."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from sessionscope.tui.feedback import READ_ONLY_MESSAGE, describe_error, notify_plain
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain
from sessionscope.tui.styles import stylesheet


class ConfirmationModal(ModalScreen[bool]):
    """Dismisses with ``True`` only on ``y`` or the Yes button. ``title`` and ``body`` are shown
    as plain text, so they may carry untrusted strings such as a session's title."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("confirm")

    def __init__(
        self,
        title: str,
        body: str,
        *,
        confirm_label: str = "Yes",
        refuse_label: str = "No",
        destructive: bool = True,
        type_to_confirm: str | None = None,
    ) -> None:
        super().__init__()
        #: When set (deleting a session: its title), Yes needs this text typed first; y alone
        #: types a letter.
        self._type_to_confirm = type_to_confirm
        self._title = title
        self._body = body
        self._confirm_label = confirm_label
        self._refuse_label = refuse_label
        self._destructive = destructive
        self._answered = False

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(plain(self._title, "bold"), id="confirm-title", classes="dialog-title")
            yield Static(plain(self._body), id="confirm-body")
            if self._type_to_confirm is not None:
                yield Static(
                    plain(f"Type “{self._type_to_confirm}” and press enter to confirm."),
                    id="confirm-typed-note",
                )
                yield Input(id="confirm-typed", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self._confirm_label} (y)",
                    id="confirm-yes",
                    variant="error" if self._destructive else "primary",
                )
                yield Button(f"{self._refuse_label} (n)", id="confirm-no", variant="default")

    def on_mount(self) -> None:
        if self._type_to_confirm is not None:
            self.query_one("#confirm-yes", Button).disabled = True
            self.query_one("#confirm-typed", Input).focus()
        else:
            self.query_one("#confirm-no", Button).focus()

    def _typed_right(self) -> bool:
        if self._type_to_confirm is None:
            return True
        return self.query_one("#confirm-typed", Input).value.strip() == self._type_to_confirm

    def on_input_changed(self, changed: Input.Changed) -> None:
        changed.stop()
        self.query_one("#confirm-yes", Button).disabled = not self._typed_right()

    def on_input_submitted(self, submitted: Input.Submitted) -> None:
        submitted.stop()
        if self._typed_right():
            self._answer(True)
        else:
            self.query_one("#confirm-typed-note", Static).update(
                plain(f"Not “{self._type_to_confirm}”: type it exactly, or press escape.", "bold")
            )

    def _answer(self, value: bool) -> None:
        # A key repeat or a double press must not dismiss twice (the second would pop the
        # screen underneath).
        if self._answered:
            return
        self._answered = True
        self.dismiss(value)

    def action_confirm(self) -> None:
        if self._typed_right():
            self._answer(True)

    def action_refuse(self) -> None:
        self._answer(False)

    def action_switch_focus(self) -> None:
        yes = self.query_one("#confirm-yes", Button)
        no = self.query_one("#confirm-no", Button)
        (no if yes.has_focus else yes).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        yes = event.button.id == "confirm-yes"
        if not yes or self._typed_right():
            self._answer(yes)


class InfoModal(ModalScreen[None]):
    """A read-and-dismiss message, e.g. the outcome of closing a session."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("info")

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="info-dialog", classes="dialog"):
            yield Static(plain(self._title, "bold"), id="info-title", classes="dialog-title")
            yield Static(plain(self._body), id="info-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", id="info-ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#info-ok", Button).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


__all__ = [
    "READ_ONLY_MESSAGE",
    "ConfirmationModal",
    "InfoModal",
    "describe_error",
    "notify_plain",
]
