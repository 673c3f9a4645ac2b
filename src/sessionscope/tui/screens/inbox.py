"""The actions inbox: every pending action of the organisation, oldest first, with time left.

With several profiles at once (the fleet) it is one inbox for all of them: profile and platform
columns, soonest deadline first, a filter, marks and batch decisions (each decision reaches the
profile that owns the item, and a read-only profile's items are refused on the key)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from sessionscope.audit import FAILED
from sessionscope.backends import Backend, BackendError
from sessionscope.backends.fleet import (
    DecisionRequest,
    FleetBackend,
    decide_many,
    sort_by_deadline,
    summarise,
    with_whole_groups,
)
from sessionscope.models import ActionStatus, EventType, OrgChange, PendingAction
from sessionscope.tui import clock
from sessionscope.tui.context import console_of
from sessionscope.tui.durations import format_duration
from sessionscope.tui.keys import bindings
from sessionscope.tui.messages import OpenAction
from sessionscope.tui.safe import one_line, plain_line
from sessionscope.tui.screens.batch import BatchDecisionModal, describe_outcomes
from sessionscope.tui.screens.confirm import InfoModal
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
#: In front of those with several profiles at once.
_FLEET_COLUMNS = (
    ("mark", "✓", 1),
    ("profile", "Profile", 12),
    ("platform", "Platform", 10),
)
MARK = "✓"


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
        #: Ids of the marked items (fleet mode): what a batch key decides.
        self.marked: set[str] = set()
        self.text_filter = ""
        #: Every pending item fetched (``actions`` is what the filter shows of it).
        self._every: list[PendingAction] = []

    @property
    def fleet(self) -> FleetBackend | None:
        return console_of(self).fleet

    def compose(self) -> ComposeResult:
        yield AppHeader("Actions inbox")
        table: DataTable[Text | str] = DataTable(id="inbox-table", cursor_type="row")
        columns = (*_FLEET_COLUMNS, *_COLUMNS) if self.fleet is not None else _COLUMNS
        for key, label, width in columns:
            table.add_column(label, key=key, width=width)
        yield table
        filter_input = Input(
            placeholder="filter: profile, platform, tool or session", id="inbox-filter"
        )
        filter_input.display = False
        yield filter_input
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
        pending = [a for a in actions if a.status is ActionStatus.PENDING]
        if self.fleet is not None:
            # Time left decides what is answered first across platforms.
            self._every = sort_by_deadline(pending)
        else:
            self._every = sorted(pending, key=lambda a: a.created_at)
        still = {action.id for action in self._every}
        self.marked &= still
        self.actions = [a for a in self._every if self._shown(a)]
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
        if self.fleet is not None:
            self._set_status(self._fleet_status())
            return
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

    def _fleet_status(self) -> str:
        count = len(self.actions)
        if not self._every:
            return "Nothing waits in any profile."
        shown = f"{count} of {len(self._every)}" if self.text_filter else f"{count}"
        marked = f", {len(self.marked)} marked" if self.marked else ""
        return (
            f"{shown} waiting across the fleet, soonest deadline first{marked}. "
            "space marks, * all shown, y/n decide the marked."
        )

    def _cells(self, action: PendingAction) -> tuple[Text | str, ...]:
        left = seconds_left(action.expires_at)
        urgent = left is not None and left <= 30
        if self.fleet is not None:
            profile = str(getattr(action, "profile", "") or "")
            platform = str(getattr(action, "platform", "") or "")
            return (
                MARK if action.id in self.marked else " ",
                plain_line(profile, limit=12),
                plain_line(platform, limit=10),
                *self._base_cells(action, left, urgent),
            )
        return self._base_cells(action, left, urgent)

    def _base_cells(
        self, action: PendingAction, left: float | None, urgent: bool
    ) -> tuple[Text | str, ...]:
        return (
            _age(action),
            Text(format_time_left(action.expires_at), style="bold red" if urgent else ""),
            plain_line(action.tool, limit=24),
            plain_line(action.session_title or action.session_id, limit=60),
        )

    def _tick(self) -> None:
        table = self.query_one(DataTable)
        for action in self.actions:
            left_seconds = seconds_left(action.expires_at)
            waiting, left, *_ = self._base_cells(
                action, left_seconds, left_seconds is not None and left_seconds <= 30
            )
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
        if action is not None and (name := self._read_only_profile(action)) is not None:
            # Said on the key rather than after a decision modal whose every answer is refused.
            self._refuse_read_only([name])
            return
        if action is not None:
            self.post_message(OpenAction(action.session_id, action.id))

    @on(DataTable.RowSelected)
    def _row_selected(self, selected: DataTable.RowSelected) -> None:
        selected.stop()
        self.action_open()

    def action_back(self) -> None:
        filter_input = self.query_one("#inbox-filter", Input)
        if filter_input.has_focus:
            filter_input.display = False
            self.query_one(DataTable).focus()
            return
        self.app.pop_screen()

    #: Marks, batches and the filter belong to the fleet's inbox (one profile's inbox is short).
    _FLEET_ACTIONS = frozenset({"toggle_mark", "mark_all", "decide_marked", "filter"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self._FLEET_ACTIONS and self.fleet is None:
            return False  # not in the footer, and the key does nothing
        return True

    # -- filter -----------------------------------------------------------------------------------
    def _shown(self, action: PendingAction) -> bool:
        if not self.text_filter:
            return True
        needle = self.text_filter.casefold()
        haystack = " ".join(
            str(part or "")
            for part in (
                getattr(action, "profile", None),
                getattr(action, "platform", None),
                action.tool,
                action.session_title,
                action.session_id,
            )
        )
        return needle in haystack.casefold()

    def action_filter(self) -> None:
        filter_input = self.query_one("#inbox-filter", Input)
        filter_input.display = True
        filter_input.focus()

    @on(Input.Changed, "#inbox-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.text_filter = event.value.strip()
        self.actions = [a for a in self._every if self._shown(a)]
        self._rebuild()

    @on(Input.Submitted, "#inbox-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            event.input.display = False
        self.query_one(DataTable).focus()

    # -- marks and batch decisions (fleet) --------------------------------------------------------
    def _redraw_marks(self) -> None:
        if self.fleet is None:
            return
        table = self.query_one(DataTable)
        for action in self.actions:
            try:
                table.update_cell(action.id, "mark", MARK if action.id in self.marked else " ")
            except LookupError:
                continue
        self._set_status(self._fleet_status())

    def action_toggle_mark(self) -> None:
        action = self._selected()
        if action is None or self.fleet is None:
            return
        # An Everruns pause is answered as a whole: its items are marked and unmarked together.
        group = {item.id for item in with_whole_groups([action], self._every)}
        if action.id in self.marked:
            self.marked -= group
        else:
            self.marked |= group
        self._redraw_marks()
        table = self.query_one(DataTable)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_mark_all(self) -> None:
        if self.fleet is None:
            return
        shown = [action for action in self.actions if action.decidable]
        every_shown = {item.id for item in with_whole_groups(shown, self._every)}
        # A second * with everything shown already marked unmarks it (k9s' toggle).
        if every_shown and every_shown <= self.marked:
            self.marked -= every_shown
        else:
            self.marked |= every_shown
        self._redraw_marks()

    def _read_only_profile(self, action: PendingAction) -> str | None:
        fleet = self.fleet
        profile = getattr(action, "profile", None)
        if fleet is None or profile is None:
            return None
        member = fleet.members.get(str(profile))
        return member.name if member is not None and member.read_only else None

    def _refuse_read_only(self, names: list[str]) -> None:
        listed = ", ".join(sorted(set(names)))
        self.notify(
            one_line(f"Profile {listed} is read-only: its items cannot be decided here.", 200),
            severity="warning",
            timeout=4,
            markup=False,
        )

    def action_decide_marked(self, confirmed: bool) -> None:
        if self.fleet is None:
            self.action_open()
            return
        if self.marked:
            chosen = [action for action in self._every if action.id in self.marked]
        else:
            selected = self._selected()
            chosen = [selected] if selected is not None else []
        chosen = with_whole_groups(chosen, self._every)
        if not chosen:
            return
        read_only = [name for a in chosen if (name := self._read_only_profile(a)) is not None]
        if read_only:
            self._refuse_read_only(read_only)
            return
        requests: list[DecisionRequest] = []
        for action in chosen:
            choice = action.choice_for(confirmed)
            if choice is not None:
                requests.append(DecisionRequest(action, choice.id))
        if not requests:
            self.notify("Nothing marked can be decided (waits are watch only).", timeout=3)
            return

        def answered(answer: tuple[bool, str] | None) -> None:
            if answer is not None and answer[0]:
                self._send_batch(requests, answer[1] or None)

        self.app.push_screen(BatchDecisionModal(requests), answered)

    @work(exclusive=True, exit_on_error=False, group="inbox-batch")
    async def _send_batch(self, requests: list[DecisionRequest], reason: str | None) -> None:
        self._set_status(f"Sending {len(requests)} decisions…")
        outcomes = await decide_many(self.backend, requests, reason=reason)
        # A failed send stays marked, so that trying again is one key away.
        self.marked -= {o.request.action.id for o in outcomes if o.outcome != FAILED}
        summary = InfoModal(f"Batch: {summarise(outcomes)}", describe_outcomes(outcomes))
        self.app.push_screen(summary)
        self.action_reload()
