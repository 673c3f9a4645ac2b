"""One session: its header, its pending actions and the live timeline of its events."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from sessionscope.backends import Backend, BackendError, WatchState
from sessionscope.models import ActionStatus, Event, EventType, PendingAction, Session
from sessionscope.tui import event_summary
from sessionscope.tui.event_store import EventStore, FilteredStore, SequenceStore
from sessionscope.tui.safe import one_line, plain_line
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.countdown import format_time_left
from sessionscope.tui.widgets.timeline import Timeline

#: Live events are applied in batches at this rate, never one refresh per event.
FLUSH_HZ = 30
ALL_TYPES = "__all__"


class TypeFilterModal(ModalScreen[str | None]):
    """Pick one event type to show, or all of them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "dismiss_filter", "Close", id="type_filter.close", tooltip="Keep the filter"
        ),
    ]

    def __init__(self, types: list[str], current: str | None) -> None:
        super().__init__()
        self._types = types
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="type-filter-dialog"):
            yield Static("Show events of type", classes="dialog-title")
            options = [Option("All types", id=ALL_TYPES)]
            options += [Option(plain_line(name, limit=60), id=name) for name in self._types]
            yield OptionList(*options, id="type-filter-options")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        if self._current:
            try:
                option_list.highlighted = option_list.get_option_index(self._current)
            except LookupError:
                option_list.highlighted = 0
        option_list.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, selected: OptionList.OptionSelected) -> None:
        self.dismiss(selected.option.id)

    def action_dismiss_filter(self) -> None:
        self.dismiss(None)


class SessionScreen(Screen[None]):
    CSS_PATH: ClassVar = [stylesheet("session.tcss")]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "back", "Back", id="session.back", tooltip="Return to the previous screen"
        ),
        Binding(
            "f",
            "toggle_follow",
            "Follow",
            id="session.follow",
            tooltip="Follow new events (tail -f)",
        ),
        Binding("/", "search", "Search", id="session.search", tooltip="Search the timeline's text"),
        Binding(
            "n", "search_next", "Next match", id="session.search_next", tooltip="Next search match"
        ),
        Binding(
            "N",
            "search_previous",
            "Previous match",
            show=False,
            id="session.search_previous",
            tooltip="Previous search match",
        ),
        Binding(
            "t", "filter_type", "Type", id="session.filter_type", tooltip="Show one event type"
        ),
        Binding(
            "h",
            "toggle_hidden",
            "Hidden",
            id="session.toggle_hidden",
            tooltip="Show or collapse hidden events",
        ),
        Binding(
            "p",
            "focus_actions",
            "Actions",
            id="session.actions",
            tooltip="Select one of this session's pending actions",
        ),
        Binding(
            "r", "refresh", "Refresh", id="session.refresh", tooltip="Reload the session and retry"
        ),
    ]

    @property
    def backend(self) -> Backend:
        backend: Backend = self.app.backend  # type: ignore[attr-defined]
        return backend

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.session: Session | None = None
        self.type_filter: str | None = None
        self.watch_state: WatchState = WatchState.CONNECTING
        self.watch_detail: str | None = None
        self._batch: list[Event] = []
        self._last_seen = 0
        self._meta_stale = False
        self._seen_types: set[str] = set()
        self._search_status = ""
        self._actions: list[PendingAction] = []

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Text("Loading session…"), id="session-header")
        yield OptionList(id="session-actions")
        yield Timeline(SequenceStore(self.backend, self.session_id, 0), id="timeline")
        yield Input(placeholder="search the timeline (enter: find, escape: close)", id="search")
        yield Static("", id="timeline-status")
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    def on_mount(self) -> None:
        self.query_one("#session-actions").display = False
        self.query_one("#search").display = False
        self.timeline.focus()
        self.set_interval(1 / FLUSH_HZ, self._flush, name="timeline-flush")
        self.set_interval(1.0, self._tick, name="session-tick")
        self._open()

    # -- loading ----------------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="session-open")
    async def _open(self) -> None:
        try:
            session = await self.backend.get_session(self.session_id)
        except BackendError as error:
            self._show_header_error(f"Could not open this session: {error}. Press r to retry.")
            return
        self.session = session
        self._last_seen = max(
            session.last_sequence, session.event_count if not session.last_sequence else 0
        )
        self._render_header()
        self.timeline.set_store(self._new_store())
        self._load_actions()
        self._watch()

    def _new_store(self) -> EventStore:
        if self.type_filter:
            return FilteredStore(
                self.backend,
                self.session_id,
                types=[self.type_filter],
                include_hidden=self.timeline.show_hidden,
            )
        return SequenceStore(self.backend, self.session_id, self._last_seen)

    @work(exclusive=True, exit_on_error=False, group="session-watch")
    async def _watch(self) -> None:
        def on_state(state: WatchState, detail: str | None) -> None:
            self.watch_state = state
            self.watch_detail = detail
            self._render_status()

        try:
            async for event in self.backend.watch_session(
                self.session_id, after=self._last_seen, on_state=on_state
            ):
                self._batch.append(event)
        except BackendError as error:
            self.watch_state = WatchState.OFFLINE
            self.watch_detail = str(error)
            self._render_status()

    def _flush(self) -> None:
        """Apply the live events gathered since the last frame in one go."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        for event in batch:
            if event.sequence > self._last_seen:
                self._last_seen = event.sequence
            kind = event.type
            self._seen_types.add(kind)
            if kind.startswith(("session.", "variables.", "action.")):
                self._meta_stale = True
        added = self.timeline.store.append(batch)
        self.timeline.apply_appended(added)
        self._render_status()

    def _tick(self) -> None:
        if self._meta_stale and self.session is not None:
            self._meta_stale = False
            self._refresh_meta()
        self._render_actions()

    @work(exclusive=True, exit_on_error=False, group="session-meta")
    async def _refresh_meta(self) -> None:
        try:
            self.session = await self.backend.get_session(self.session_id)
        except BackendError as error:
            self.notify(f"Could not refresh the session: {error}", severity="warning", markup=False)
            return
        self._render_header()
        await self._fetch_actions()

    @work(exclusive=True, exit_on_error=False, group="session-actions")
    async def _load_actions(self) -> None:
        await self._fetch_actions()

    async def _fetch_actions(self) -> None:
        try:
            actions = await self.backend.list_session_actions(self.session_id)
        except BackendError:
            # Backends without pending actions simply show none.
            actions = []
        self._actions = sorted(
            (action for action in actions if action.status is ActionStatus.PENDING),
            key=lambda action: action.created_at,
        )
        self._render_actions(rebuild=True)
        self._render_header()

    # -- rendering ------------------------------------------------------------------------------
    def _show_header_error(self, message: str) -> None:
        self.query_one("#session-header", Static).update(Text(one_line(message, 300), style="bold"))

    def _render_header(self) -> None:
        session = self.session
        if session is None:
            return
        usage = session.usage
        header = Text(end="")
        header.append(
            f" {session.status.value.upper()} ", style=f"reverse {_status_colour(session)}"
        )
        header.append(" ")
        header.append_text(plain_line(session.title or session.id, style="bold", limit=80))
        header.append("  ")
        header.append_text(plain_line(session.id, style="dim", limit=40))
        header.append("\n")
        details = [
            ("agent", session.agent_id or "—"),
            ("model", session.model_id or "—"),
            ("tokens", f"{usage.input_tokens:,} in / {usage.output_tokens:,} out"),
            ("cost", f"${usage.cost_usd:,.4f}"),
            ("variables", str(len(session.context_variables))),
            ("events", f"{max(session.event_count, self._last_seen):,}"),
            ("pending", str(len(self._actions))),
        ]
        for index, (label, value) in enumerate(details):
            if index:
                header.append(" · ", style="dim")
            header.append(f"{label} ", style="dim")
            header.append_text(plain_line(value, limit=60))
        self.query_one("#session-header", Static).update(header)

    def _render_actions(self, *, rebuild: bool = False) -> None:
        option_list = self.query_one("#session-actions", OptionList)
        option_list.display = bool(self._actions)
        prompts = [self._action_prompt(action) for action in self._actions]
        if rebuild or option_list.option_count != len(prompts):
            highlighted = option_list.highlighted
            option_list.clear_options()
            option_list.add_options(
                Option(prompt, id=action.id)
                for prompt, action in zip(prompts, self._actions, strict=True)
            )
            if highlighted is not None and prompts:
                option_list.highlighted = min(highlighted, len(prompts) - 1)
        else:
            for prompt, action in zip(prompts, self._actions, strict=True):
                option_list.replace_option_prompt(action.id, prompt)

    def _action_prompt(self, action: PendingAction) -> Text:
        prompt = Text("⚑ pending action  ", style="bold", end="")
        prompt.append_text(plain_line(action.tool, style="bold", limit=40))
        prompt.append("  ")
        prompt.append(format_time_left(action.expires_at), style="dim")
        prompt.append("  (enter to decide)", style="dim")
        return prompt

    def _render_status(self) -> None:
        store = self.timeline.store
        parts = [
            "following" if self.timeline.follow else "paused (f follows)",
            f"{store.row_count:,} rows" + ("+" if store.wants_more() else ""),
            f"stream {self.watch_state.value}",
        ]
        if self.watch_detail and self.watch_state is not WatchState.LIVE:
            parts.append(one_line(self.watch_detail, 80))
        if self.type_filter:
            parts.append(f"type {one_line(self.type_filter, 40)}")
        if self.timeline.show_hidden:
            parts.append("showing hidden")
        if self.timeline.search_term:
            parts.append(f"search “{one_line(self.timeline.search_term, 40)}”")
        if self._search_status:
            parts.append(self._search_status)
        self.query_one("#timeline-status", Static).update(Text("  ·  ".join(parts), end=""))

    # -- timeline ---------------------------------------------------------------------------------
    @on(Timeline.Opened)
    def _open_event(self, opened: Timeline.Opened) -> None:
        from sessionscope.tui.screens.event_detail import EventDetailScreen

        self.app.push_screen(EventDetailScreen(opened.event))

    @on(Timeline.LoadFailed)
    def _load_failed(self, failed: Timeline.LoadFailed) -> None:
        self.notify(
            f"Could not load events: {failed.reason}", severity="error", markup=False, timeout=4
        )

    @on(OptionList.OptionSelected, "#session-actions")
    def _action_chosen(self, selected: OptionList.OptionSelected) -> None:
        if selected.option.id:
            self.app.open_action(self.session_id, selected.option.id)  # type: ignore[attr-defined]

    def on_screen_resume(self) -> None:
        if self.session is not None:
            self._load_actions()

    # -- actions --------------------------------------------------------------------------------
    def action_back(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.timeline.focus()
            return
        self.app.pop_screen()

    def action_toggle_follow(self) -> None:
        self.timeline.follow = not self.timeline.follow
        self._render_status()

    def action_toggle_hidden(self) -> None:
        self.timeline.show_hidden = not self.timeline.show_hidden
        if self.type_filter:
            self.timeline.set_store(self._new_store())
        self._render_status()

    def action_focus_actions(self) -> None:
        option_list = self.query_one("#session-actions", OptionList)
        if not self._actions:
            self.notify("This session has no pending actions.", timeout=3)
            return
        option_list.focus()
        if option_list.highlighted is None:
            option_list.highlighted = 0

    def action_refresh(self) -> None:
        self.timeline.retry_failed()
        if self.session is None:
            self._open()
        else:
            self._refresh_meta()

    def action_filter_type(self) -> None:
        types = sorted({*(kind.value for kind in EventType), *self._seen_types})

        def chosen(choice: str | None) -> None:
            if choice is None:
                return
            self.type_filter = None if choice == ALL_TYPES else choice
            self.timeline.set_store(self._new_store())
            self._render_status()

        self.app.push_screen(TypeFilterModal(types, self.type_filter), chosen)

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.value = self.timeline.search_term
        search.focus()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, submitted: Input.Submitted) -> None:
        submitted.input.display = False
        self.timeline.focus()
        self.timeline.search_term = submitted.value.strip()
        if self.timeline.search_term:
            self._search(forward=True, from_row=self.timeline.cursor_row)
        self._render_status()

    def action_search_next(self) -> None:
        if self.timeline.search_term:
            self._search(forward=True, from_row=self.timeline.cursor_row + 1)

    def action_search_previous(self) -> None:
        if self.timeline.search_term:
            self._search(forward=False, from_row=self.timeline.cursor_row - 1)

    @work(exclusive=True, exit_on_error=False, group="timeline-search")
    async def _search(self, *, forward: bool, from_row: int) -> None:
        """Client-side scan: walk the timeline page by page from the cursor (fetching pages the
        window does not hold) until an event's type or payload contains the term."""
        timeline = self.timeline
        store = timeline.store
        needle = timeline.search_term
        row = max(0, from_row)
        step = 1 if forward else -1
        scanned = 0
        try:
            while 0 <= row and (row < store.row_count or (forward and store.wants_more())):
                if row >= store.row_count:
                    await store.load_page(store.frontier_page())
                    if row >= store.row_count:
                        break
                found = await store.ensure(row)
                if isinstance(found, Event) and event_summary.matches(found, needle):
                    timeline.follow = False
                    timeline.move_cursor(row)
                    self._search_status = ""
                    self._render_status()
                    return
                scanned += 1
                if scanned % store.page_size == 0:
                    self._search_status = f"searching… row {row + 1:,} of {store.row_count:,}"
                    self._render_status()
                row += step
        except BackendError as error:
            self._search_status = ""
            self.notify(f"Search stopped: {error}", severity="error", markup=False)
            return
        finally:
            if store is timeline.store:
                timeline.refresh()
        self._search_status = ""
        self._render_status()
        self.notify(f"No match for “{one_line(needle, 60)}”.", markup=False, timeout=3)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("search_next", "search_previous"):
            timelines = self.query(Timeline)
            if not timelines or not timelines.first().search_term:
                return None
        return True


def _status_colour(session: Session) -> str:
    if session.status.value in ("failed",):
        return "red"
    if session.status.value in ("waiting", "paused"):
        return "yellow"
    if session.status.is_terminal:
        return "bright_black"
    return "green"
