"""A session's outstanding client tool calls: a table of calls with their arguments (secret ones
masked until ``v`` reveals them for ``REVEAL_SECONDS``) and the highlighted call's arguments in
full below; ``enter`` opens the form that answers the call.

Mount it in any screen of a ``SessionScopeApp``; it talks only to ``app.backend``. Tool names and
argument values come from the agent and are rendered as data.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from sessionscope.backends import Backend, BackendError
from sessionscope.models import ToolCall, ToolCallArgument
from sessionscope.tui.context import console_of
from sessionscope.tui.feedback import READ_ONLY_MESSAGE, notify_plain
from sessionscope.tui.keys import GatedKeys, bindings
from sessionscope.tui.messages import ToolResultRequested
from sessionscope.tui.safe import SECRET_MASK, one_line, plain_line
from sessionscope.tui.widgets.reveal import TimedReveal


def argument_text(argument: ToolCallArgument) -> str:
    """An argument's value as one string: text as is, anything else as compact JSON. Untrusted:
    render it through ``sessionscope.tui.safe``."""
    value = argument.value
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def render_arguments(arguments: list[ToolCallArgument], *, revealed: bool) -> Text:
    if not arguments:
        return Text("(no arguments)", style="dim", end="")
    text = Text(end="")
    for position, argument in enumerate(arguments):
        if position:
            text.append("\n")
        text.append_text(plain_line(argument.name, "bold", limit=60))
        text.append(" = ")
        if argument.secret and not revealed:
            text.append(SECRET_MASK, style="dim")
            text.append("  (secret: v reveals)", style="dim italic")
        else:
            text.append_text(plain_line(argument_text(argument), limit=2000))
            if argument.secret:
                text.append("  (secret, revealed)", style="italic yellow")
    return text


def arguments_line(arguments: list[ToolCallArgument], *, revealed: bool) -> str:
    """Every argument on one line, secret values masked unless revealed (neutralised)."""
    if not arguments:
        return "(no arguments)"
    parts = []
    for argument in arguments:
        value = SECRET_MASK if argument.secret and not revealed else argument_text(argument)
        parts.append(f"{one_line(argument.name, 40)}={one_line(value, 120)}")
    return ", ".join(parts)


class ToolCallTable(GatedKeys, DataTable[Text]):
    """The calls; ``enter`` asks to answer the highlighted one (not DataTable's select)."""

    KEY_OWNER = "tool_call_table"

    BINDINGS: ClassVar[list[BindingType]] = bindings("tool_call_table")

    class AnswerRequested(Message):
        pass

    def action_answer(self) -> None:
        self.post_message(self.AnswerRequested())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.key_unavailable(action) is not None:
            return None  # greyed out; `?` says why
        return True


class ToolCallsPane(TimedReveal, Vertical):
    BINDINGS: ClassVar[list[BindingType]] = bindings("tool_calls")

    class Changed(Message):
        """The list was (re)loaded; ``count`` outstanding calls."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    def __init__(self, session_id: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session_id = session_id
        self.calls: list[ToolCall] = []
        self.loaded = False
        self._loading = False
        self._reload_again = False

    def compose(self) -> ComposeResult:
        yield ToolCallTable(id="tool-calls-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="tool-calls-status")
        with VerticalScroll(id="tool-call-detail"):
            yield Static("", id="tool-call-arguments")

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    @property
    def table(self) -> ToolCallTable:
        return self.query_one(ToolCallTable)

    @property
    def current(self) -> ToolCall | None:
        row = self.table.cursor_row
        return self.calls[row] if 0 <= row < len(self.calls) else None

    def on_mount(self) -> None:
        table = self.table
        table.add_column("tool", key="tool", width=24)
        table.add_column("call", key="call", width=20)
        table.add_column("requested (UTC)", key="created", width=19)
        table.add_column("arguments", key="arguments")
        self._set_status("loading…")
        self.reload()

    # -- loading --------------------------------------------------------------------------------
    def reload(self) -> None:
        """Fetch the list again; calls made while a fetch runs are folded into one more fetch."""
        if self._loading:
            self._reload_again = True
            return
        self._loading = True
        self._fetch()

    @work(group="tool-calls", exit_on_error=False)
    async def _fetch(self) -> None:
        try:
            while True:
                self._reload_again = False
                try:
                    calls = await self.backend.list_tool_calls(self.session_id)
                except BackendError as error:
                    self._set_status(
                        f"could not list tool calls: {error.message} (r retries)", error=True
                    )
                else:
                    self._show(calls)
                if not self._reload_again:
                    return
        finally:
            self._loading = False

    def _show(self, calls: list[ToolCall]) -> None:
        current = self.current
        self.calls = [call for call in calls if call.status == "pending"]
        self.loaded = True
        self._render_rows()
        if current is not None:
            for index, call in enumerate(self.calls):
                if call.id == current.id:
                    self.table.move_cursor(row=index)
                    break
        count = len(self.calls)
        self._set_status(
            "no outstanding tool calls"
            if not count
            else f"{count} outstanding tool call{'s' if count != 1 else ''} · "
            "enter answers · v reveals secrets"
        )
        self._render_detail()
        self.post_message(self.Changed(count))

    def _render_rows(self) -> None:
        table = self.table
        cursor = table.cursor_row
        table.clear()
        for call in self.calls:
            created = call.created_at
            if created.tzinfo is not None:
                created = created.astimezone(UTC)
            table.add_row(
                plain_line(call.tool, "bold", limit=40),
                plain_line(call.id, "dim", limit=40),
                Text(created.strftime("%Y-%m-%d %H:%M:%S"), style="dim"),
                plain_line(arguments_line(call.arguments, revealed=self.revealed), limit=400),
                key=call.id,
            )
        if self.calls:
            table.move_cursor(row=min(max(cursor, 0), len(self.calls) - 1))

    def _render_detail(self) -> None:
        call = self.current
        detail = self.query_one("#tool-call-arguments", Static)
        if call is None:
            detail.update("")
            return
        text = plain_line(call.tool, "bold", limit=80)
        text.append(f"  {call.id}\n", style="dim")
        text.append_text(render_arguments(call.arguments, revealed=self.revealed))
        detail.update(text)

    def _set_status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one("#tool-calls-status", Static)
        status.update(plain_line(message, "bold red" if error else "dim", limit=300))

    @on(DataTable.RowHighlighted, "#tool-calls-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._render_detail()

    # -- keys -----------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self.reload()

    def can_reveal(self) -> bool:
        if any(argument.secret for call in self.calls for argument in call.arguments):
            return True
        notify_plain(self.app, "No outstanding tool call has secret arguments.", timeout=3)
        return False

    def render_secrets(self) -> None:
        self._render_rows()
        self._render_detail()

    @on(ToolCallTable.AnswerRequested)
    def _answer(self, event: ToolCallTable.AnswerRequested) -> None:
        event.stop()
        call = self.current
        if call is None:
            return
        if console_of(self).read_only:
            notify_plain(self.app, READ_ONLY_MESSAGE, severity="warning", title="Read-only")
            return

        def answered(result: ToolCall | None) -> None:
            if result is not None:
                self.reload()

        self.post_message(ToolResultRequested(self.session_id, call, answered))
