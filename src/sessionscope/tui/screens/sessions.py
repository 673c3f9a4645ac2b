"""The home screen: every session of the organisation, live, at any size."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import ActiveBinding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from sessionscope.backends import (
    AuthError,
    Backend,
    BackendError,
    Capability,
    ConnectError,
    SessionQuery,
    Unsupported,
)
from sessionscope.backends.fleet import SEPARATOR
from sessionscope.models import EventType, OrgChange, Page, Session, SessionStatus
from sessionscope.tui import clock, collector
from sessionscope.tui.context import ConsoleContext, console_of
from sessionscope.tui.keys import GatedKeys, bindings
from sessionscope.tui.messages import FirstPageShown, ListStarted, OpenInbox, OpenSession, Retry
from sessionscope.tui.safe import plain_line
from sessionscope.tui.session_rates import SessionRates
from sessionscope.tui.state.session_pages import SortOrder, matches
from sessionscope.tui.widgets.fleet_health import FleetHealth
from sessionscope.tui.widgets.footer import AppFooter
from sessionscope.tui.widgets.rate_column import RateColumn
from sessionscope.tui.widgets.session_table import SessionTable
from sessionscope.tui.widgets.status import AppHeader

#: `s` cycles through these; ``None`` shows every status.
STATUS_CYCLE: tuple[SessionStatus | None, ...] = (
    None,
    SessionStatus.ACTIVE,
    SessionStatus.WAITING,
    SessionStatus.IDLE,
    SessionStatus.PAUSED,
    SessionStatus.CREATED,
    SessionStatus.COMPLETED,
    SessionStatus.FAILED,
    SessionStatus.CLOSED,
)
SORT_CYCLE: tuple[SortOrder, ...] = tuple(SortOrder)
#: The filter applies this long after the last keystroke, so typing does not flood the server.
FILTER_DEBOUNCE = 0.3
#: Rows per request of the sessions table (and of the page asked for at startup).
PAGE_SIZE = 100


class FirstPage:
    """The sessions list's first page, asked for as the app starts (``FirstPage.request``), so
    that the server answers while Textual builds and lays out the screen, and the first frame can
    already show the rows instead of ``loading…`` followed by a second full paint.

    The table gets it through ``_FirstPageBackend``: its first ``list_sessions`` call, if it asks
    for exactly this page, awaits the request already on its way; any other call (or a second
    one) goes to the server as usual. Errors surface there, exactly as a request of its own."""

    def __init__(self, task: asyncio.Task[Page[Session]], query: SessionQuery, limit: int) -> None:
        self._task: asyncio.Task[Page[Session]] | None = task
        self._query = query
        self._limit = limit

    @classmethod
    def request(cls, backend: Backend, *, limit: int = PAGE_SIZE) -> FirstPage:
        """Start the request (needs a running event loop)."""
        query = SessionQuery()
        task = asyncio.ensure_future(backend.list_sessions(query, limit=limit))
        # Never awaited if the table asks for something else: its error is dropped then (the
        # table's own request reports any problem), without "exception was never retrieved".
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return cls(task, query, limit)

    def take(
        self, query: SessionQuery | None, cursor: str | None, limit: int
    ) -> asyncio.Task[Page[Session]] | None:
        """The request if it is the one asked for; either way it is used up (a later call must
        see the list as it is then, not as it was at startup)."""
        task, self._task = self._task, None
        if task is None:
            return None
        if cursor is None and limit == self._limit and (query or SessionQuery()) == self._query:
            return task
        task.cancel()
        return None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class ListStarts(Protocol):
    """Told about the page that starts the list (the first one after a reload)."""

    def starting_generation(self) -> int | None:
        """The list's generation while it has no page yet, else None."""

    def list_started(self, page: Page[Session], generation: int) -> None:
        """``page`` starts the list of ``generation``: called before the table applies it."""


class _ListingBackend:
    """The backend as the sessions table sees it: the same, except that its first
    ``list_sessions`` is answered by the ``FirstPage`` asked for at startup when it matches,
    and that the page starting the list is shown to ``starts``: live changes apply on top of
    its snapshot."""

    def __init__(
        self,
        backend: Backend,
        first_page: FirstPage | None = None,
        starts: ListStarts | None = None,
    ) -> None:
        self._backend = backend
        self._first_page = first_page
        self._starts = starts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        generation = None
        if (
            self._starts is not None
            and cursor is None
            and (query is None or query.order == "newest")
        ):
            generation = self._starts.starting_generation()
        first, self._first_page = self._first_page, None
        task = first.take(query, cursor, limit) if first is not None else None
        if task is not None:
            page = await task
        else:
            page = await self._backend.list_sessions(query, cursor=cursor, limit=limit)
        if generation is not None and self._starts is not None:
            self._starts.list_started(page, generation)
        return page


def describe_error(error: BackendError, server: str) -> str:
    """Plain words for the operator; ``error.message`` never holds a credential."""
    if isinstance(error, AuthError):
        return (
            f"{server} refused the API key ({error.message}). Check --api-key, "
            "SESSIONSCOPE_API_KEY or the profile's key, then press r to retry."
        )
    if isinstance(error, ConnectError):
        return (
            f"{error.message.rstrip('.')}. Is {server} running and the URL right? Press r to retry."
        )
    return f"{server}: {error.message}. Press r to retry."


class SessionsScreen(GatedKeys, Screen[None]):
    KEY_OWNER = "sessions"
    BINDINGS: ClassVar[list[BindingType]] = bindings("sessions")
    #: Focused as the screen is composed: the default (first focusable widget) is the hidden
    #: filter input, whose focus then moved to the table in on_mount, and the footer built its
    #: keys twice (for the input, then for the table).
    AUTO_FOCUS = "#sessions-table"

    def __init__(self, first_page: FirstPage | None = None) -> None:
        super().__init__(id="sessions-screen")
        self._first_page = first_page
        self._warmed_up = False
        self.status_filter: SessionStatus | None = None
        self.text_filter = ""
        self._filter_timer: Timer | None = None
        self.rates = SessionRates()
        self._rate_timer: Timer | None = None
        #: The organisation stream position the list's first page includes (None: unknown):
        #: live changes up to it are already in the list.
        self._list_position: int | None = None
        #: Live changes that arrived while the list waited for its first page (a reload).
        self._held: list[OrgChange] = []

    @property
    def console(self) -> ConsoleContext:
        return console_of(self)

    @property
    def table(self) -> SessionTable:
        # Held from compose: read on every live change batch and key, no query needed.
        return self._table

    def compose(self) -> ComposeResult:
        yield AppHeader("Sessions")
        with Horizontal(id="sessions-bar"):
            yield Static(id="sessions-summary")
            yield Input(
                placeholder="filter: title or preview (enter applies)", id="sessions-filter"
            )
        fleet = self.console.fleet
        if fleet is not None:
            yield FleetHealth(fleet, id="sessions-health")
        yield Static(id="sessions-message")
        with Horizontal(id="sessions-body"):
            backend = cast(Backend, _ListingBackend(self.console.backend, self._first_page, self))
            self._first_page = None
            table = SessionTable(
                backend,
                page_size=PAGE_SIZE,
                id="sessions-table",
                profile_column=fleet is not None,
            )
            self._table = table
            self.console.sessions = table.pages
            yield table
            self.rate_column = RateColumn(table, self.rates, id="sessions-rate")
            yield self.rate_column
        yield AppFooter()

    def on_mount(self) -> None:
        # Immediate: a batch is applied inside the app's batch update, in one repaint.
        self.console.org_changes.subscribe(self, self.apply_changes, immediate=True)
        # The filter, the message and the rate column start hidden by the stylesheet.
        self._restart_list(self._query())
        self._show_summary()

    def _restart_list(
        self, query: SessionQuery | None = None, sort: SortOrder | None = None
    ) -> None:
        # Changes held for an earlier first page were delivered before this one is asked for:
        # its snapshot includes them.
        self._held = []
        self._list_position = None
        self.table.reload(query, sort)

    # -- the page that starts the list (``ListStarts``) --------------------------------------------
    def starting_generation(self) -> int | None:
        pages = self.table.pages
        return None if pages.started else pages.generation

    def list_started(self, page: Page[Session], generation: int) -> None:
        if self.table.pages.generation != generation:
            return  # reloaded meanwhile: the table drops this page and asks again
        self._list_position = page.stream_position
        self.post_message(ListStarted(page.stream_position))

    # -- filters ---------------------------------------------------------------------------------
    def _query(self) -> SessionQuery:
        return SessionQuery(status=self.status_filter, text=self.text_filter or None)

    def _show_summary(self) -> None:
        table = self.table
        text = Text(end="")
        # Complete: every row is loaded, from the top walk and (after `end`) the bottom one.
        total = table.pages.row_count if table.pages.complete else table.pages.total
        if table.pages.started and total is not None:
            text.append(f"{total:,} session{'' if total == 1 else 's'}", style="bold")
        elif table.load_error is None:
            text.append(self.console.loading_note, style="italic")
        text.append(f"  status: {self.status_filter.value if self.status_filter else 'all'}")
        text.append(f"  order: {table.sort.label}")
        fleet = self.console.fleet
        if fleet is not None:
            text.append("  profile: ")
            text.append_text(plain_line(fleet.shown_profile or "all", limit=30))
        if self.text_filter:
            text.append("  filter: ")
            text.append_text(plain_line(self.text_filter, limit=40))
        # The summary's size is fixed by the stylesheet (1fr x 1 row): repaint it, no layout pass.
        self.query_one("#sessions-summary", Static).update(text, layout=False)

    def _reload(self) -> None:
        self._hide_message()
        self._restart_list(self._query())
        self._show_summary()

    def action_filter(self) -> None:
        filter_input = self.query_one("#sessions-filter", Input)
        filter_input.display = True
        filter_input.focus()

    def action_clear_filter(self) -> None:
        filter_input = self.query_one("#sessions-filter", Input)
        if self.text_filter or filter_input.value:
            filter_input.value = ""
            self.text_filter = ""
            self._reload()
        filter_input.display = False
        self.table.focus()

    @on(Input.Changed, "#sessions-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE, self._apply_filter)

    @on(Input.Submitted, "#sessions-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._apply_filter()
        if not event.value:
            event.input.display = False
        self.table.focus()

    def _apply_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        value = self.query_one("#sessions-filter", Input).value.strip()
        if value != self.text_filter:
            self.text_filter = value
            self._reload()

    def set_status_filter(self, status: SessionStatus | None) -> None:
        self.status_filter = status
        self._reload()

    def action_cycle_status(self) -> None:
        position = STATUS_CYCLE.index(self.status_filter)
        self.set_status_filter(STATUS_CYCLE[(position + 1) % len(STATUS_CYCLE)])

    def action_cycle_sort(self) -> None:
        position = SORT_CYCLE.index(self.table.sort)
        self.hide_message()
        self._restart_list(sort=SORT_CYCLE[(position + 1) % len(SORT_CYCLE)])
        self._show_summary()

    def action_refresh(self) -> None:
        self.post_message(Retry())

    def refresh_list(self) -> None:
        self._reload()

    def action_inbox(self) -> None:
        self.post_message(OpenInbox())

    @property
    def rate_shown(self) -> bool:
        return bool(self.rate_column.display)

    def action_toggle_rate(self) -> None:
        column = self.rate_column
        column.display = not column.display
        if column.display:
            self._rate_timer = self.set_interval(5.0, self._refresh_rate, name="sessions-rate")
        elif self._rate_timer is not None:
            self._rate_timer.stop()
            self._rate_timer = None
            # Off means no sampling: a later toggle starts from fresh baselines.
            self.rates.clear()

    def _refresh_rate(self) -> None:
        self.rates.forget_quiet(clock.now())
        self.rate_column.refresh()

    # -- close -----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.key_unavailable(action) is not None:
            return None  # greyed out (or not offered); `?` says why
        return True

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        return self.gate_active_bindings(super().active_bindings)

    def action_close_session(self) -> None:
        if self.console.read_only:
            self.notify("Read-only mode: closing sessions is disabled.", severity="warning")
            return
        session = self.table.cursor_session
        if session is None:
            return
        from sessionscope.tui.screens.lifecycle import close_session

        close_session(self.app, session.id)

    def action_new_session(self) -> None:
        if self.console.read_only:
            self.notify("Read-only mode: creating sessions is disabled.", severity="warning")
            return
        from sessionscope.tui.screens.lifecycle import CreateSessionScreen

        def created(session: Session | None) -> None:
            if session is not None:
                self.post_message(OpenSession(session.id))

        self.app.push_screen(CreateSessionScreen(), created)

    # -- table events ----------------------------------------------------------------------------
    @on(SessionTable.Selected)
    def _open(self, event: SessionTable.Selected) -> None:
        self.post_message(OpenSession(event.session.id))

    @on(SessionTable.LoadFailed)
    def _load_failed(self, event: SessionTable.LoadFailed) -> None:
        error = event.error
        if isinstance(error, Unsupported) and error.capability is Capability.OLDEST_FIRST:
            # The server ignored order=oldest (the backend found out from the first such page,
            # which the table has not used): reach the end by walking from the top instead.
            table = self.table
            table.pages.oldest_first = False
            table.load_error = None
            table.ensure_loaded()
            return
        self._held = []  # nothing to apply them to; the next reload's snapshot includes them
        collector.end_startup()  # no first page to wait for
        self.show_message(describe_error(event.error, self.console.backend.display_name))
        self._show_summary()
        # Without a page there is no position to start the live watch from: it starts from
        # "now" (if it has not started) and reports the connection meanwhile.
        self.post_message(ListStarted(None))

    @on(SessionTable.Loaded)
    def _loaded(self) -> None:
        if self._held and self.table.pages.started:
            self.apply_changes(())
        self._hide_message()
        self._show_summary()
        if not self._warmed_up:
            self._warmed_up = True
            # Once the first page is on screen, not before: it must not wait for this.
            self.call_after_refresh(self.post_message, FirstPageShown())

    def show_message(self, message: str) -> None:
        panel = self.query_one("#sessions-message", Static)
        panel.update(plain_line(message, limit=600))
        panel.display = True

    def hide_message(self) -> None:
        self._hide_message()

    def _hide_message(self) -> None:
        self.query_one("#sessions-message").display = False

    # -- live ------------------------------------------------------------------------------------
    def apply_changes(self, changes: Sequence[OrgChange]) -> None:
        """Apply a coalesced batch of organisation changes, keeping the cursor on its session."""
        table = self.table
        pages = table.pages
        if not pages.started:
            if table.load_error is None:
                # The first page is on its way and its snapshot may be older than these: they
                # are applied on top of it when it arrives.
                self._held.extend(changes)
            return
        if self._held:
            changes, self._held = [*self._held, *changes], []
        position = self._list_position
        if position is not None:
            # The first page includes these already; applied again they could show a row's
            # older state until its newer change arrives. That includes a stream.reset at or
            # below it: the changes the watch missed are in the list.
            changes = [change for change in changes if change.id > position]
        if any(change.kind == EventType.STREAM_RESET for change in changes):
            # The server pruned changes this console never saw: patching the list could leave it
            # wrong, so start over (the cursor stays on its session when it comes back).
            self._reload()
            return
        if self.rate_shown:
            now = clock.now()
            for change in changes:
                if change.session is not None:
                    self.rates.observe(change.session_id, change.session.event_count, now)
            self.rate_column.refresh()
        anchor = table.cursor_session
        old_row = table.cursor_row
        query = self._query()
        fleet = self.console.fleet
        if fleet is not None and fleet.shown_profile is not None:
            # ``:ctx NAME`` shows one profile: the others' changes stay out of the list.
            prefix = f"{fleet.shown_profile}{SEPARATOR}"
            changes = [change for change in changes if change.session_id.startswith(prefix)]
        changed = False
        for change in changes:
            session = change.session
            if change.kind == "session.deleted":
                changed |= pages.remove(change.session_id)
            elif session is None:
                continue
            elif change.kind == "session.created":
                if matches(query, session):
                    if pages.local_sort is None:
                        changed |= pages.insert_top(session)
                    else:
                        changed |= pages.insert_top(session) or pages.update(session)
            elif matches(query, session):
                changed |= pages.update(session)
            else:
                changed |= pages.remove(session.id)
        if changed:
            with self.app.batch_update():
                table.move_with_shift(anchor.id if anchor else None, old_row)
                self._show_summary()
