"""One session: its header (with an event-rate sparkline), its pending actions, and tabs for the
live timeline of its events, its artifacts, its outstanding client tool calls and its context
variables; plus the keys that act on the session (message, edit, close, complete, delete, replay,
export) and on the selected event (hide, unhide, delete).

Keys whose capability the backend lacks are greyed out and say "not supported by <backend>";
in read-only mode the mutating ones are greyed out and labelled read-only."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import (
    DataTable,
    Input,
    OptionList,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from sessionscope.backends import Backend, BackendError, Capability, WatchState
from sessionscope.models import (
    VISIBILITY_TYPES,
    ActionStatus,
    Event,
    EventType,
    PendingAction,
    Session,
    SessionStatus,
    SessionUpdate,
)
from sessionscope.tui import clock
from sessionscope.tui.coalesce import Coalescer
from sessionscope.tui.context import console_of
from sessionscope.tui.event_rate import EventRate
from sessionscope.tui.feedback import count_of
from sessionscope.tui.keys import GatedKeys, bindings
from sessionscope.tui.messages import OpenAction
from sessionscope.tui.safe import one_line, plain_line
from sessionscope.tui.screens.dialogs import HostsDialogs
from sessionscope.tui.state.event_store import EventStore, FilteredStore, SequenceStore
from sessionscope.tui.state.live_batch import classify
from sessionscope.tui.state.search import SearchMatches
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.countdown import format_time_left
from sessionscope.tui.widgets.footer import AppFooter
from sessionscope.tui.widgets.status import AppHeader
from sessionscope.tui.widgets.timeline import Timeline
from sessionscope.tui.widgets.tool_calls import ToolCallsPane

#: Live events are applied in batches at most this often, never one refresh per event; the first
#: event after a quiet spell is applied at once. Each apply brings a frame, and at 1,000 events/s
#: a frame draws every new row (fewer than the view holds), so the rate sets the CPU: at 120 Hz
#: the console drew ~42 frames a second for 64% of a core; at 30 Hz, 48% for an event-to-screen
#: p50 of ~41 ms instead of ~31 (A/B, 3 pairs, after the rows got cheaper; before they did, 30 Hz
#: had cost 71 against 54 ms at the same CPU, frames then taking twice as long).
FLUSH_HZ = 30
ALL_TYPES = "__all__"
#: Events fetched on open to seed the rate sparkline (the live stream feeds it afterwards).
RATE_SEED_EVENTS = 200
SESSION_STYLESHEET = stylesheet("session.tcss")

TAB_TIMELINE = "tab-timeline"
TAB_ARTIFACTS = "tab-artifacts"
TAB_TOOL_CALLS = "tab-tool-calls"
TAB_VARIABLES = "tab-variables"

#: Kinds that never show in a timeline: nothing to filter on.
NOT_TIMELINE_TYPES = VISIBILITY_TYPES | {EventType.STREAM_RESET}
#: Actions about the timeline's rows: only while the timeline tab is showing.
TIMELINE_ACTIONS = frozenset(
    {
        "toggle_follow",
        "search",
        "search_next",
        "search_previous",
        "filter_type",
        "toggle_hidden",
        "event_visibility",
    }
)


class TypeFilterModal(ModalScreen[str | None]):
    """Pick one event type to show, or all of them."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("type_filter")

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


class SessionScreen(GatedKeys, HostsDialogs, Screen[None]):
    KEY_OWNER = "session"
    # No CSS_PATH: see _read_stylesheet.

    BINDINGS: ClassVar[list[BindingType]] = bindings("session")

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.session: Session | None = None
        self.type_filter: str | None = None
        self.watch_state: WatchState = WatchState.CONNECTING
        self.watch_detail: str | None = None
        self._live: Coalescer[Event] = Coalescer(
            self, self._flush, hz=FLUSH_HZ, name="timeline-flush"
        )
        self._timeline_started = False
        self._last_seen = 0
        self._meta_stale = False
        self._seen_types: set[str] = set()
        self._search_status = ""
        self._search_matches: SearchMatches | None = None
        self._rate_label_cells = 0
        self._actions: list[PendingAction] = []
        self.rate = EventRate()
        #: The sessions list's row for this session, read once the screen composes.
        self._known: Session | None = None
        #: The timeline's store built at compose, its newest page already requested.
        self._opening_store: SequenceStore | None = None
        #: The tool calls and variables tabs' contents are mounted once the timeline has shown
        #: its first rows (or when their tab is opened first): they are not on screen, and
        #: mounting them before cost the timeline's first paint a third of its time.
        self._deferred_mounted = False

    # -- layout ---------------------------------------------------------------------------------
    def _read_stylesheet(self) -> None:
        """Add session.tcss to the app's stylesheet. Textual's CSS_PATH handling re-parses
        every sheet of the app and restyles every node of every screen when a screen brings a
        new sheet (~150 ms at the first open); read here, only this sheet is parsed (the others
        come from the stylesheet's parse cache) and only the nodes about to mount are styled
        with it. Its rules are for this screen's widgets and its modals, none of which exist
        before it."""
        sheet = self.app.stylesheet
        if not sheet.has_source(str(SESSION_STYLESHEET), ""):
            sheet.read(SESSION_STYLESHEET)

    def _first_store(self) -> EventStore:
        """The timeline's store, its newest page requested right away when the sessions list
        says how many events there are (the request then overlaps mounting the screen)."""
        self._known = self._known_session()
        if not self.backend.dense_sequences:
            return FilteredStore(self.backend, self.session_id)
        if self._known is None:
            return SequenceStore(self.backend, self.session_id, 0)
        store = SequenceStore(self.backend, self.session_id, _last_sequence_of(self._known))
        tail = store.tail_page()
        if tail is not None:
            store.start_loading(tail)
        self._opening_store = store
        return store

    def compose(self) -> ComposeResult:
        self._read_stylesheet()
        yield AppHeader("Session")
        with Horizontal(id="session-title-row"):
            yield Static(Text("Loading session…"), id="session-title")
            yield Static("", id="session-rate-label")
            rate = Sparkline([0] * self.rate.buckets, id="session-rate")
            rate.tooltip = self.rate.window_label()
            yield rate
        yield Static("", id="session-header")
        yield OptionList(id="session-actions")
        with TabbedContent(initial=TAB_TIMELINE, id="session-tabs"):
            with TabPane("1 Timeline", id=TAB_TIMELINE):
                yield Timeline(self._first_store(), id="timeline")
            with TabPane("2 Artifacts", id=TAB_ARTIFACTS):
                # The pane is mounted the first time the tab is shown: no listing or preview
                # download for an operator who only watches the timeline.
                yield Static("", id="artifacts-unavailable", classes="tab-note")
            # Filled by _mount_deferred.
            yield TabPane("3 Tool calls", id=TAB_TOOL_CALLS)
            yield TabPane("4 Variables", id=TAB_VARIABLES)
        yield Input(placeholder="search the timeline (enter: find, escape: close)", id="search")
        yield Static("", id="timeline-status")
        yield AppFooter()

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#session-tabs", TabbedContent)

    def on_mount(self) -> None:
        self.query_one("#session-actions").display = False
        self.query_one("#search").display = False
        self.query_one("#artifacts-unavailable").display = False
        self._mark_unsupported_tabs()
        self.timeline.focus()
        self.set_interval(1.0, self._tick, name="session-tick")
        self._open()

    def _unsupported_text(self, capability: Capability) -> str:
        return f"{capability.value.replace('_', ' ').capitalize()}: not supported by " + one_line(
            self.backend.platform_label or self.backend.name, 40
        )

    def _mark_unsupported_tabs(self) -> None:
        for tab_id, capability in (
            (TAB_ARTIFACTS, Capability.ARTIFACTS),
            (TAB_TOOL_CALLS, Capability.TOOL_CALLS),
            (TAB_VARIABLES, Capability.VARIABLES),
        ):
            if not self.backend.supports(capability):
                self.tabs.disable_tab(tab_id)
                self.tabs.get_tab(tab_id).tooltip = self._unsupported_text(capability)

    @on(Timeline.RowCountChanged)
    def _row_count_changed(self) -> None:
        self._render_status()

    @on(Timeline.FirstRowsShown)
    def _timeline_shown(self) -> None:
        self._mount_deferred()
        # A store that discovers its rows (a type filter, sparse sequences) knows its count now.
        self._render_status()

    def _mount_deferred(self) -> None:
        if not self._deferred_mounted:
            self._deferred_mounted = True
            self._mount_deferred_widgets()

    @work(exit_on_error=False, group="session-deferred")
    async def _mount_deferred_widgets(self) -> None:
        tool_calls: Widget
        if self.backend.supports(Capability.TOOL_CALLS):
            tool_calls = ToolCallsPane(self.session_id, id="tool-calls")
        else:
            tool_calls = Static(self._unsupported_text(Capability.TOOL_CALLS), classes="tab-note")
        variables = DataTable[Text](id="variables-table", cursor_type="row", zebra_stripes=True)
        await self.query_one(f"#{TAB_TOOL_CALLS}", TabPane).mount(tool_calls)
        await self.query_one(f"#{TAB_VARIABLES}", TabPane).mount(
            variables, Static("", id="variables-note", classes="tab-note")
        )
        variables.add_column("key", key="key", width=32)
        variables.add_column("value", key="value")
        if self.session is not None:
            self._render_variables(self.session)
        if self.tabs.active in (TAB_TOOL_CALLS, TAB_VARIABLES):
            self._tab_shown(self.tabs.active)

    # -- loading --------------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="session-open")
    async def _open(self) -> None:
        known = self._known if self._known is not None else self._known_session()
        if known is not None:
            # The list's row says how many events there are: the tail page and the live stream
            # need not wait for the session fetch (anything newer arrives through the stream).
            self._start_timeline(known)
        try:
            session = await self.backend.get_session(self.session_id)
        except BackendError as error:
            self._show_header_error(f"Could not open this session: {error}. Press r to retry.")
            self._mount_deferred()
            return
        self.session = session
        self._render_header()
        self._start_timeline(session)
        self._load_actions()

    def _known_session(self) -> Session | None:
        """This session's row in the sessions list, if the list holds it (never fetches)."""
        return console_of(self).loaded_session(self.session_id)

    def _start_timeline(self, session: Session) -> None:
        if self._timeline_started:
            return
        self._timeline_started = True
        self._last_seen = _last_sequence_of(session)
        store: EventStore | None = self._opening_store
        self._opening_store = None
        if store is None or self.type_filter or store.row_count != self._last_seen:
            store = self._new_store()
        self.timeline.set_store(store)
        self._seed_rate(self._last_seen)
        self._watch()

    @work(exclusive=True, exit_on_error=False, group="session-rate")
    async def _seed_rate(self, last_sequence: int) -> None:
        if last_sequence <= 0:
            return
        store = self.timeline.store
        try:
            if isinstance(store, SequenceStore):
                # The same pages the timeline shows first: one fetch serves both.
                seed = await store.tail_events(RATE_SEED_EVENTS)
            else:
                page = await self.backend.list_events(
                    self.session_id,
                    after=max(0, last_sequence - RATE_SEED_EVENTS),
                    limit=RATE_SEED_EVENTS,
                    include_hidden=True,
                )
                seed = page.data
        except BackendError:
            return  # the sparkline starts empty and fills from the live stream
        now = clock.now()
        for event in seed:
            # Live events at or above the seed's start are counted by _flush already.
            if event.sequence <= last_sequence:
                self.rate.add(event.created_at, now)
        self._render_rate()

    def _new_store(self) -> EventStore:
        if self.type_filter or not self.backend.dense_sequences:
            return FilteredStore(
                self.backend,
                self.session_id,
                types=[self.type_filter] if self.type_filter else None,
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
                self._live.add(event)
        except BackendError as error:
            self.watch_state = WatchState.OFFLINE
            self.watch_detail = str(error)
            self._render_status()

    def _flush(self, batch: list[Event]) -> None:
        """Apply the live events gathered since the last flush in one go."""
        now = clock.now()
        for event in batch:
            self.rate.add(event.created_at, now)
        live = classify(batch, self._last_seen)
        self._last_seen = live.last_sequence
        self._seen_types |= live.types
        self._meta_stale |= live.meta_stale
        self.timeline.append(batch, live.visibility_notices)
        if live.tool_calls_changed:
            self._reload_tool_calls()
        self._render_status()

    def _reload_tool_calls(self) -> None:
        for pane in self.query(ToolCallsPane):
            pane.reload()

    def _tick(self) -> None:
        if self._meta_stale and self.session is not None:
            self._meta_stale = False
            self._refresh_meta()
        self._render_actions()
        self._render_rate()

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
    # The title and header lines have a fixed size (session.tcss): no layout pass for them.
    def _show_header_error(self, message: str) -> None:
        self.query_one("#session-title", Static).update(
            Text(one_line(message, 300), style="bold"), layout=False
        )

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
        if session.title:  # platforms without titles (Viben) would show the id twice
            header.append("  ")
            header.append_text(plain_line(session.id, style="dim", limit=40))
        # What `e` edits, beside the title it edits too (d shows the whole object).
        if session.tags:
            header.append("  tags ", style="dim")
            header.append_text(plain_line(", ".join(session.tags), limit=80))
        if session.metadata:
            pairs = (f"{key}={_compact(value)}" for key, value in session.metadata.items())
            header.append("  metadata ", style="dim")
            header.append_text(plain_line(", ".join(pairs), limit=120))
        self.query_one("#session-title", Static).update(header, layout=False)
        header = Text(end="")
        details = [
            ("agent", session.agent_id or "—"),
            ("model", session.model_id or "—"),
            ("tokens", f"{usage.input_tokens:,} in / {usage.output_tokens:,} out"),
            ("cost", f"${usage.cost_usd:,.4f}"),
            ("variables", str(len(session.context_variables))),
            ("events", f"{max(session.event_count, self._last_seen):,}"),
            ("pending", str(len(self._actions))),
        ]
        extra = session.model_extra or {}
        platform_status = extra.get("platform_status")
        if isinstance(platform_status, str) and platform_status:
            # A platform with statuses of its own (Everruns) shows its word, and the rest of its
            # session in the header's tooltip.
            details.insert(0, ("status", platform_status))
            self.query_one("#session-header", Static).tooltip = _platform_details(session)
        shown = self.backend.header_details
        details = [(label, value) for label, value in details if label in shown]
        for index, (label, value) in enumerate(details):
            if index:
                header.append(" · ", style="dim")
            header.append(f"{label} ", style="dim")
            header.append_text(plain_line(value, limit=60))
        self.query_one("#session-header", Static).update(header, layout=False)
        self._render_variables(session)

    def _render_variables(self, session: Session) -> None:
        tables = self.query("#variables-table").results(DataTable)
        table = next(tables, None)
        if table is None:
            return  # not mounted yet: _mount_deferred renders them
        table.clear()
        for key, value in sorted(session.context_variables.items()):
            table.add_row(plain_line(key, "bold", limit=60), plain_line(value, limit=500))
        count = len(session.context_variables)
        note = f"{count} context variable{'s' if count != 1 else ''}"
        if self.key_unavailable("edit_variables") is None:
            note += " · V edits them"
        self.query_one("#variables-note", Static).update(Text(note, style="dim", end=""))

    def _render_rate(self) -> None:
        series = self.rate.series(clock.now())
        self.query_one("#session-rate", Sparkline).data = series
        peak = max(series, default=0)
        label = f"{series[-1] if series else 0}/{self.rate.bucket_seconds}s · peak {peak} "
        widget = self.query_one("#session-rate-label", Static)
        # Its width follows its text: a layout pass only when the width changes (rarely).
        widget.update(Text(label, end=""), layout=len(label) != self._rate_label_cells)
        self._rate_label_cells = len(label)

    def _render_actions(self, *, rebuild: bool = False) -> None:
        option_list = self.query_one("#session-actions", OptionList)
        prompts = [self._action_prompt(action) for action in self._actions]
        if option_list.option_count != len(prompts):
            # The list's height follows its options (height: auto): its parent must lay out
            # again, or a list shown with its first action could keep the height of none.
            option_list.refresh(layout=True)
        option_list.display = bool(self._actions)
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
        decidable = action.decidable
        prompt = Text("⚑ pending action  " if decidable else "⧗ waiting  ", style="bold", end="")
        prompt.append_text(plain_line(action.tool, style="bold", limit=40))
        prompt.append("  ")
        prompt.append(format_time_left(action.expires_at), style="dim")
        prompt.append(
            "  (enter to decide)" if decidable else "  (enter to watch; cannot be decided)",
            style="dim",
        )
        return prompt

    def _render_status(self) -> None:
        store = self.timeline.store
        parts = [
            "following" if self.timeline.follow else "paused (f follows)",
            count_of(store.row_count, "row") + ("+" if store.wants_more() else ""),
            f"stream {self.watch_state.value}",
        ]
        if self.watch_detail and self.watch_state is not WatchState.LIVE:
            parts.append(one_line(self.watch_detail, 80))
        hint = self.backend.status_hint
        if hint:
            parts.append(one_line(hint, 80))
        if self.type_filter:
            parts.append(f"type {one_line(self.type_filter, 40)}")
        if self.timeline.show_hidden:
            parts.append("showing hidden")
        if self.timeline.search_term:
            parts.append(f"search “{one_line(self.timeline.search_term, 40)}”")
        if self._search_status:
            parts.append(self._search_status)
        # One line of fixed height: no layout pass (it cost a whole-screen reflow per flush).
        self.query_one("#timeline-status", Static).update(
            Text("  ·  ".join(parts), end=""), layout=False
        )

    # -- tabs -----------------------------------------------------------------------------------
    def _show_tab(self, tab_id: str) -> None:
        tabs = self.tabs
        if tabs.active != tab_id:
            tabs.active = tab_id
        else:
            self._tab_shown(tab_id)

    @on(TabbedContent.TabActivated, "#session-tabs")
    def _tab_activated(self, activated: TabbedContent.TabActivated) -> None:
        if activated.pane.id:
            self._tab_shown(activated.pane.id)

    def _tab_shown(self, tab_id: str) -> None:
        self.refresh_bindings()
        target: Widget | None = None
        if tab_id == TAB_TIMELINE:
            target = self.timeline
        elif tab_id == TAB_ARTIFACTS:
            target = self._ensure_artifacts()
        elif tab_id in (TAB_TOOL_CALLS, TAB_VARIABLES) and not self._deferred_mounted:
            self._mount_deferred()  # it focuses the tab's widget once mounted
        elif tab_id == TAB_TOOL_CALLS:
            panes = self.query(ToolCallsPane)
            target = panes.first().table if panes else None
        elif tab_id == TAB_VARIABLES:
            target = next(self.query("#variables-table").results(DataTable), None)
        if target is not None:
            target.focus()

    def _ensure_artifacts(self) -> Widget | None:
        from sessionscope.tui.widgets.artifacts import ArtifactsPane

        panes = self.query(ArtifactsPane)
        if panes:
            return panes.first().table
        if not self.backend.supports(Capability.ARTIFACTS):
            note = self.query_one("#artifacts-unavailable", Static)
            note.update(self._unsupported_text(Capability.ARTIFACTS))
            note.display = True
            return None
        self._mount_artifacts(ArtifactsPane(self.session_id, id="artifacts"))
        return None

    @work(exclusive=True, exit_on_error=False, group="artifacts-mount")
    async def _mount_artifacts(self, pane: Widget) -> None:
        # The pane is in the DOM at once (so a second press does not mount another), its
        # table only once the mount completes.
        await self.query_one(f"#{TAB_ARTIFACTS}", TabPane).mount(pane)
        if self.tabs.active == TAB_ARTIFACTS:
            pane.query_one("#artifacts-table").focus()

    def action_show_timeline(self) -> None:
        self._show_tab(TAB_TIMELINE)

    def action_show_artifacts(self) -> None:
        self._show_tab(TAB_ARTIFACTS)

    def action_show_tool_calls(self) -> None:
        self._show_tab(TAB_TOOL_CALLS)

    def action_show_variables(self) -> None:
        self._show_tab(TAB_VARIABLES)

    @on(ToolCallsPane.Changed)
    def _tool_calls_changed(self, changed: ToolCallsPane.Changed) -> None:
        label = "3 Tool calls" + (f" ({changed.count})" if changed.count else "")
        self.tabs.get_tab(TAB_TOOL_CALLS).label = label

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
            self.post_message(OpenAction(self.session_id, selected.option.id))

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

    def action_describe(self) -> None:
        if self.session is None:
            self.notify("The session has not loaded yet.", timeout=3)
            return
        from sessionscope.tui.screens.event_detail import DescribeScreen

        self.app.push_screen(DescribeScreen(self.session))

    def action_refresh(self) -> None:
        self.timeline.retry_failed()
        self._reload_tool_calls()
        if self.session is None:
            self._open()
        else:
            self._refresh_meta()

    def action_filter_type(self) -> None:
        # Only the types this session had (in the pages read or live): an empty filter helps nobody.
        kinds = self._seen_types | self.timeline.store.types_seen
        if self.type_filter:
            kinds.add(self.type_filter)
        types = sorted(kinds - NOT_TIMELINE_TYPES)

        def chosen(choice: str | None) -> None:
            if choice is None:
                return
            self.type_filter = None if choice == ALL_TYPES else choice
            self._seen_types |= self.timeline.store.types_seen
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
        self._search_status = ""
        if self.timeline.search_term:
            # Following, the rows in view are the newest: the nearest match is above the cursor.
            following = self.timeline.follow
            self._search(forward=not following, from_row=self.timeline.cursor_row)
        self._render_status()

    def action_search_next(self) -> None:
        if self.timeline.search_term:
            self._search(forward=True, from_row=self.timeline.cursor_row + 1)

    def action_search_previous(self) -> None:
        if self.timeline.search_term:
            self._search(forward=False, from_row=self.timeline.cursor_row - 1)

    @work(exclusive=True, exit_on_error=False, group="timeline-search")
    async def _search(self, *, forward: bool, from_row: int) -> None:
        """Client-side scan: find the rows whose event's type or payload contains the term
        (fetching pages the window does not hold; once per term, then only new rows), then move
        to the nearest match from ``from_row``, wrapping at either end."""
        timeline = self.timeline
        store = timeline.store
        needle = timeline.search_term
        found = self._search_matches
        if found is None or not found.is_for(store, needle):
            found = self._search_matches = SearchMatches(store, needle)

        def progress(scanned: int, total: int) -> None:
            self._search_status = f"searching… row {scanned:,} of {total:,}"
            self._render_status()

        try:
            await found.scan(progress)
        except BackendError as error:
            self._search_status = ""
            self.notify(f"Search stopped: {error}", severity="error", markup=False)
            return
        finally:
            if store is timeline.store:
                timeline.refresh()
        hit = found.next_hit(max(0, from_row), forward=forward)
        if hit is None:
            self._search_status = "no match"
            self._render_status()
            self.notify(f"No match for “{one_line(needle, 60)}”.", markup=False, timeout=3)
            return
        timeline.follow = False
        timeline.move_cursor(hit.row)
        wrapped = ""
        if hit.wrapped:
            wrapped = " (from the top)" if forward else " (from the bottom)"
        self._search_status = f"match {hit.counter}{wrapped}"
        self._render_status()

    # -- the selected event ---------------------------------------------------------------------
    def action_event_visibility(self) -> None:
        event = self.timeline.event_at_cursor()
        if event is None:
            self.notify("Select an event first.", timeout=3)
            return
        from sessionscope.tui.screens.lifecycle import decide_event_visibility

        async def decide() -> None:
            outcome = await decide_event_visibility(self.app, self.session_id, event)
            if outcome is None or not self.is_mounted:
                return
            hidden = None if outcome.event is None else outcome.event.hidden
            # The stream may announce the change too; applying it twice is harmless.
            self.timeline.apply_visibility(event.sequence, event.id, hidden)

        # On the app: the flow waits on modals pushed over this screen.
        self.app.run_worker(decide(), name="event-visibility", group="lifecycle")

    # -- the session ----------------------------------------------------------------------------
    def action_message(self) -> None:
        from sessionscope.tui.screens.message import MessageScreen

        self.app.push_screen(MessageScreen(self.session_id))

    def action_edit(self) -> None:
        from sessionscope.tui.screens.lifecycle import EditSessionScreen

        def edited(session: Session | None) -> None:
            if session is not None:
                self.session = session
                self._render_header()

        self.app.push_screen(EditSessionScreen(self.session_id), edited)

    def action_edit_variables(self) -> None:
        from sessionscope.tui.screens.variables import VariablesScreen

        def closed(_saved: dict[str, str] | None) -> None:
            # The form may have saved before it closed: show what the server now holds.
            self._after_lifecycle()

        self.app.push_screen(VariablesScreen(self.session_id), closed)

    def action_close_session(self) -> None:
        from sessionscope.tui.screens.lifecycle import close_session

        close_session(self.app, self.session_id, lambda _result: self._after_lifecycle())

    def action_complete_session(self) -> None:
        from sessionscope.tui.screens.lifecycle import complete_session

        complete_session(self.app, self.session_id, lambda _result: self._after_lifecycle())

    def action_delete_session(self) -> None:
        from sessionscope.tui.screens.lifecycle import delete_session

        def deleted(ok: bool) -> None:
            if ok and self.app.screen is self:
                self.app.pop_screen()

        delete_session(self.app, self.session_id, deleted)

    def action_pause_session(self) -> None:
        self._set_paused(True)

    def action_resume_session(self) -> None:
        self._set_paused(False)

    @work(exclusive=True, exit_on_error=False, group="session-pause")
    async def _set_paused(self, paused: bool) -> None:
        session = self.session
        if session is not None and (session.status is SessionStatus.PAUSED) is paused:
            self.notify(f"This session is already {'paused' if paused else 'running'}.", timeout=3)
            return
        if session is not None and session.status.is_terminal:
            self.notify(f"This session is {session.status.value}: nothing to pause or resume.")
            return
        status = SessionStatus.PAUSED if paused else SessionStatus.ACTIVE
        try:
            updated = await self.backend.update_session(
                self.session_id, SessionUpdate(status=status)
            )
        except BackendError as error:
            verb = "pause" if paused else "resume"
            self.notify(f"Could not {verb} the session: {error}", severity="error", markup=False)
            return
        self.session = updated
        self._render_header()
        self.notify("Session paused." if paused else "Session resumed.", timeout=3)

    def _after_lifecycle(self) -> None:
        if self.is_mounted:
            self._refresh_meta()

    def action_replay(self) -> None:
        from sessionscope.tui.screens.replay import ReplayScreen

        self.app.push_screen(ReplayScreen(self.session_id))

    def action_export(self) -> None:
        from sessionscope.tui.screens.export import ExportScreen

        self.app.push_screen(ExportScreen(self.session_id))

    # -- what is available ----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.key_unavailable(action) is not None:
            return None  # greyed out (or not offered); the tooltip and `?` say why
        if action in TIMELINE_ACTIONS and self.is_mounted:
            tabs = self.query(TabbedContent)
            if tabs and tabs.first().active not in ("", TAB_TIMELINE):
                return None
        if action in ("search_next", "search_previous"):
            timelines = self.query(Timeline)
            if not timelines or not timelines.first().search_term:
                return None
        return True

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        return self.gate_active_bindings(super().active_bindings)


def _last_sequence_of(session: Session) -> int:
    return max(session.last_sequence, session.event_count if not session.last_sequence else 0)


def _platform_details(session: Session) -> Text:
    """The platform's own session fields (Everruns: organisation, start and finish, the first
    message and the last reply), one per line, as plain text."""
    extra = session.model_extra or {}
    lines = []
    for label, value in (
        ("organisation", extra.get("organization_id")),
        ("started", session.started_at.isoformat() if session.started_at else None),
        ("finished", session.finished_at.isoformat() if session.finished_at else None),
        ("first message", session.preview),
        ("last reply", session.output_preview),
    ):
        if value:
            lines.append(f"{label}: {one_line(str(value), 200)}")
    # Server text: a Text, so nothing in it is read as markup.
    return Text("\n".join(lines), end="")


def _status_colour(session: Session) -> str:
    if session.status.value in ("failed",):
        return "red"
    if session.status.value in ("waiting", "paused"):
        return "yellow"
    if session.status.is_terminal:
        return "bright_black"
    return "green"


def _compact(value: object) -> str:
    """A metadata value on one line: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
