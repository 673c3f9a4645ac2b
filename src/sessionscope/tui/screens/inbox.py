"""The actions inbox: every pending action of the organisation, oldest first, with time left."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Static

from sessionscope.backends import Backend, BackendError
from sessionscope.models import ActionStatus, EventType, OrgChange, PendingAction
from sessionscope.tui import clock
from sessionscope.tui.context import console_of
from sessionscope.tui.durations import format_duration
from sessionscope.tui.keys import bindings
from sessionscope.tui.messages import OpenAction
from sessionscope.tui.safe import one_line, plain_line
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.countdown import format_time_left, seconds_left
from sessionscope.tui.widgets.footer import AppFooter
from sessionscope.tui.widgets.status import AppHeader

#: Re-fetch this often even when the org stream is quiet or unavailable.
FALLBACK_REFRESH_SECONDS = 15.0
#: Bursts of org changes (many actions resolved at once) cost one fetch.
CHANGE_DEBOUNCE_SECONDS = 0.2
#: Fixed widths: auto-sized columns are measured from the first rows added, which can land
#: before the table's first layout and leave every column at its label's width.
_COLUMNS = (
    ("waiting", "Waiting", 9),
    ("left", "Time left", 10),
    ("tool", "Tool", 24),
    ("session", "Session", 60),
)


def _age(action: PendingAction) -> str:
    return format_duration((clock.now() - action.created_at).total_seconds())


class InboxScreen(Screen[None]):
    CSS_PATH: ClassVar = [stylesheet("action.tcss")]

    BINDINGS: ClassVar[list[BindingType]] = bindings("inbox")

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[PendingAction] = []
        #: Successful fetches so far (0: the inbox has not been shown yet).
        self.loads = 0
        self._fallback: Timer | None = None
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        yield AppHeader("Actions inbox")
        table: DataTable[Text | str] = DataTable(id="inbox-table", cursor_type="row")
        for key, label, width in _COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static("Loading…", id="inbox-status")
        yield AppFooter()

    def on_mount(self) -> None:
        console_of(self).org_changes.subscribe(self, self._org_changed)
        self.query_one(DataTable).focus()
        self.set_interval(1.0, self._tick, name="inbox-countdown")
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    # -- data -----------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self._load()

    @work(exclusive=True, exit_on_error=False, group="inbox-load")
    async def _load(self) -> None:
        try:
            actions = await self.backend.list_pending_actions()
        except BackendError as error:
            self._set_status(f"Could not load the inbox: {error}. Press r to retry.")
            self._arm_fallback()
            return
        self.actions = sorted(
            (a for a in actions if a.status is ActionStatus.PENDING), key=lambda a: a.created_at
        )
        self.loads += 1
        self._rebuild()
        self._arm_fallback()

    def _arm_fallback(self) -> None:
        if self._fallback is not None:
            self._fallback.stop()
        self._fallback = self.set_timer(
            FALLBACK_REFRESH_SECONDS, self.action_reload, name="inbox-fallback"
        )

    def _org_changed(self, changes: list[OrgChange]) -> None:
        """The app's one organisation stream (no second stream per inbox): a change to any
        action, or a reset (changes the console missed were pruned), re-fetches the inbox,
        debounced so a burst costs one fetch."""
        if any(
            change.kind.startswith("action.") or change.kind == EventType.STREAM_RESET
            for change in changes
        ):
            self._reload_soon()

    def _reload_soon(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(
            CHANGE_DEBOUNCE_SECONDS, self.action_reload, name="inbox-change"
        )

    # -- rendering ------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        table = self.query_one(DataTable)
        selected = None
        if table.row_count and 0 <= table.cursor_row < table.row_count:
            selected = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        table.clear()
        for action in self.actions:
            table.add_row(*self._cells(action), key=action.id)
        if selected is not None:
            ids = [action.id for action in self.actions]
            if selected in ids:
                table.move_cursor(row=ids.index(selected), animate=False)
        count = len(self.actions)
        watch_only = sum(1 for action in self.actions if not action.decidable)
        if not count:
            status = "No pending actions."
        elif watch_only == count:
            status = f"{count} waiting, oldest first. enter opens; waits cannot be decided."
        elif watch_only:
            status = (
                f"{count} pending, oldest first ({watch_only} waits, watch only). enter decides."
            )
        else:
            status = f"{count} pending, oldest first. enter decides."
        self._set_status(status)

    def _cells(self, action: PendingAction) -> tuple[Text | str, ...]:
        left = seconds_left(action.expires_at)
        urgent = left is not None and left <= 30
        return (
            _age(action),
            Text(format_time_left(action.expires_at), style="bold red" if urgent else ""),
            plain_line(action.tool, limit=24),
            plain_line(action.session_title or action.session_id, limit=60),
        )

    def _tick(self) -> None:
        table = self.query_one(DataTable)
        for action in self.actions:
            waiting, left, *_ = self._cells(action)
            try:
                table.update_cell(action.id, "waiting", waiting)
                table.update_cell(action.id, "left", left)
            except LookupError:
                continue

    def _set_status(self, message: str) -> None:
        self.query_one("#inbox-status", Static).update(Text(one_line(message, 300), end=""))

    # -- navigation -------------------------------------------------------------------------------
    def _selected(self) -> PendingAction | None:
        table = self.query_one(DataTable)
        if not self.actions or not 0 <= table.cursor_row < len(self.actions):
            return None
        return self.actions[table.cursor_row]

    def action_open(self) -> None:
        action = self._selected()
        if action is not None:
            self.post_message(OpenAction(action.session_id, action.id))

    @on(DataTable.RowSelected)
    def _row_selected(self, selected: DataTable.RowSelected) -> None:
        selected.stop()
        self.action_open()

    def action_back(self) -> None:
        self.app.pop_screen()
