"""Context variables: one row per variable, checked against the API's rules on every keystroke
(``validate_context_variables``: UPPERCASE_SNAKE_CASE keys, at most 20, 4 KB in total) so an
invalid set is never sent; the server's answer is shown as it came."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from sessionscope.models import (
    MAX_CONTEXT_VARIABLES,
    MAX_CONTEXT_VARIABLES_BYTES,
    VARIABLE_KEY_PATTERN,
    Session,
    SessionUpdate,
    validate_context_variables,
)
from sessionscope.tui.feedback import count_of, notify_plain
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain
from sessionscope.tui.screens.forms import FormScreen


class VariableRow(Horizontal):
    def __init__(self, key: str = "", value: str = "") -> None:
        super().__init__(classes="variable-row")
        self._key = key
        self._value = value

    def compose(self) -> ComposeResult:
        yield Input(self._key, placeholder="KEY_NAME", classes="variable-key")
        yield Input(self._value, placeholder="value", classes="variable-value")
        yield Button("✕", classes="variable-remove", tooltip="Remove this variable")

    @property
    def key_input(self) -> Input:
        return self.query_one(".variable-key", Input)

    @property
    def value_input(self) -> Input:
        return self.query_one(".variable-value", Input)


class VariablesScreen(FormScreen[dict[str, str] | None]):
    """Dismisses with the saved variables, or ``None`` when closed without saving."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("variables")

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.loaded = False

    def compose(self) -> ComposeResult:
        with Vertical(id="variables-dialog", classes="dialog -wide"):
            yield Static(plain(f"Context variables · {self.session_id}"), classes="dialog-title")
            yield self.read_only_notice()
            yield Static(
                f"Keys UPPERCASE_SNAKE_CASE · at most {MAX_CONTEXT_VARIABLES} · "
                f"{MAX_CONTEXT_VARIABLES_BYTES:,} bytes in total",
                classes="form-label",
            )
            yield VerticalScroll(id="variables-rows")
            yield Static("", id="variables-usage", classes="form-label")
            yield Static("", id="variables-error", classes="form-error")
            yield self.status_line()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add (ctrl+n)", id="variables-add")
                yield Button("Save (ctrl+s)", id="variables-save", variant="primary")
                yield Button("Close (esc)", id="variables-close")

    async def load(self) -> Session:
        return await self.backend.get_session(self.session_id)

    async def fill(self, loaded: Any) -> None:
        session: Session = loaded
        # Names the agent asked for (AG2Trust's requested_variables) come as rows to fill in.
        requested = [
            str(name)
            for name in session.metadata.get("requested_variables") or ()
            if str(name) not in session.context_variables
        ]
        await self.set_rows({**session.context_variables, **dict.fromkeys(requested, "")})
        self.loaded = True
        self.show_status(
            f"The agent asks for {', '.join(requested)}: fill in the value" if requested else ""
        )

    async def set_rows(self, variables: dict[str, str]) -> None:
        rows = self.query_one("#variables-rows", VerticalScroll)
        await rows.remove_children()
        await rows.mount_all([VariableRow(key, value) for key, value in variables.items()])
        if not variables:
            await rows.mount(VariableRow())
        self.validate()
        first = rows.query(VariableRow).first()
        first.key_input.focus()

    def rows(self) -> list[VariableRow]:
        return list(self.query(VariableRow))

    def collect(self) -> tuple[dict[str, str], str | None, VariableRow | None]:
        """The form's variables, and the first violation with the row it concerns."""
        variables: dict[str, str] = {}
        for row in self.rows():
            key = row.key_input.value.strip()
            value = row.value_input.value
            if not key and not value:
                continue  # an empty row is just space to type in
            if not key:
                return variables, "a variable has a value but no key", row
            if not VARIABLE_KEY_PATTERN.match(key):
                return variables, f"key {key!r} must be UPPERCASE_SNAKE_CASE (e.g. API_REGION)", row
            if key in variables:
                return variables, f"key {key!r} appears twice", row
            variables[key] = value
        try:
            validate_context_variables(variables)
        except ValueError as error:
            return variables, str(error), None
        return variables, None, None

    def validate(self) -> tuple[dict[str, str], str | None]:
        variables, problem, offending = self.collect()
        for row in self.rows():
            row.key_input.set_class(row is offending, "-invalid")
        # Counted over every filled row, so the figures do not jump when a row turns invalid.
        filled = [
            (row.key_input.value.strip(), row.value_input.value)
            for row in self.rows()
            if row.key_input.value.strip() or row.value_input.value
        ]
        size = sum(len(k.encode()) + len(v.encode()) for k, v in filled)
        self.query_one("#variables-usage", Static).update(
            f"{len(filled)}/{MAX_CONTEXT_VARIABLES} variables · "
            f"{size:,}/{MAX_CONTEXT_VARIABLES_BYTES:,} bytes"
        )
        self.query_one("#variables-error", Static).update(plain(problem or ""))
        self.query_one("#variables-save", Button).disabled = problem is not None
        return variables, problem

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.validate()

    async def action_add_row(self) -> None:
        row = VariableRow()
        await self.query_one("#variables-rows", VerticalScroll).mount(row)
        row.key_input.focus()
        self.validate()

    async def action_remove_row(self) -> None:
        focused = self.focused
        for row in self.rows():
            if focused is not None and focused in (row.key_input, row.value_input):
                await row.remove()
                break
        self.validate()

    def action_save(self) -> None:
        if not self.loaded:
            self.show_status("The variables have not loaded yet.", error=True)
            return
        variables, problem = self.validate()
        if problem is not None:
            self.show_status("Not sent: fix the problem shown above first.", error=True)
            return

        async def save() -> None:
            self.show_status("Saving…")
            session = await self.backend.update_session(
                self.session_id, SessionUpdate(context_variables=variables)
            )
            saved = session.context_variables
            self.show_status(f"Saved: the server now holds {count_of(len(saved), 'variable')}.")
            notify_plain(self.app, "Context variables saved", title="Variables")

        self.submit(save)

    def action_cancel(self) -> None:
        self.dismiss(None)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button
        if button.has_class("variable-remove"):
            row = next(
                ancestor for ancestor in button.ancestors if isinstance(ancestor, VariableRow)
            )
            await row.remove()
            self.validate()
        elif button.id == "variables-add":
            await self.action_add_row()
        elif button.id == "variables-save":
            self.action_save()
        else:
            self.action_cancel()
