"""The console application. Talks only to a ``Backend``.

The app owns what every screen shares: the backend, read-only mode, the organisation watch (which
feeds the connection indicator, the pending-action toasts and the sessions list) and navigation.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, ClassVar

from textual import events, on, work
from textual.app import App
from textual.binding import BindingType
from textual.notifications import Notification, Notify, SeverityLevel
from textual.worker import Worker, WorkerState

from sessionscope.backends import (
    AuthError,
    Backend,
    BackendError,
    NotFound,
    Unsupported,
    ValidationFailed,
    WatchState,
)
from sessionscope.models import ActionStatus, EventType, OrgChange, Session, SessionStatus
from sessionscope.tui import collector
from sessionscope.tui.attention import BELL, desktop_notification
from sessionscope.tui.coalesce import Coalescer
from sessionscope.tui.commands import SessionScopeCommands
from sessionscope.tui.context import ConsoleContext
from sessionscope.tui.feedback import READ_ONLY_MESSAGE
from sessionscope.tui.keys import (
    KEYS_BY_ID,
    MUTATING_BINDING_IDS,
    READ_ONLY_REASON,
    bindings,
    unavailable,
)
from sessionscope.tui.messages import (
    FirstPageShown,
    ListStarted,
    OpenAction,
    OpenInbox,
    OpenSession,
    Retry,
)
from sessionscope.tui.preview.files import remove_temp_copies
from sessionscope.tui.safe import one_line
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.textual_compat import (
    drop_notification,
    notification_showing,
    show_notification_now,
    write_to_terminal,
)

if TYPE_CHECKING:
    from sessionscope.backends.fleet import FleetBackend
    from sessionscope.tui.screens.sessions import FirstPage

log = logging.getLogger("sessionscope.tui")

#: Imported in the background once the sessions list has painted (see ``warm_up``).
WARM_UP_MODULES = ("sessionscope.tui.screens.session",)

#: Live changes are applied at most this often, each batch after waiting this long for the rest
#: of its burst, so a burst becomes one repaint.
FLUSH_INTERVAL = 0.15

#: The fleet's waiting count is fetched again this often even when every stream is quiet.
WAITING_REFRESH_SECONDS = 15.0

#: The collector resumes this long after mount even if the first page has not painted by then
#: (see ``collector``): a start stuck on a slow server must not run without it for long.
STARTUP_COLLECTOR_LIMIT = 3.0

#: Past this many notices remembered, those whose toast is gone are forgotten.
MAX_TRACKED_NOTICES = 64


class SessionScopeApp(App[None]):
    TITLE = "sessionscope"
    CSS_PATH: ClassVar = [stylesheet("app.tcss"), stylesheet("sessions.tcss")]
    COMMANDS: ClassVar = App.COMMANDS | {SessionScopeCommands}
    BINDINGS: ClassVar[list[BindingType]] = bindings("app")

    def __init__(
        self,
        backend: Backend,
        *,
        read_only: bool = False,
        bell: bool = False,
        notify_desktop: bool = False,
        watch: bool = True,
        about: str | None = None,
        loading_note: str | None = None,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        if keymap:
            unknown = sorted(set(keymap) - set(KEYS_BY_ID))
            # Told once the app runs (a toast needs a screen); the known ids apply regardless.
            self._unknown_keymap_ids = unknown
            self.set_keymap({name: keys for name, keys in keymap.items() if name in KEYS_BY_ID})
        else:
            self._unknown_keymap_ids = []
        self.console_context = ConsoleContext.create(
            self, backend, read_only=read_only, has_connection=True
        )
        #: Shown at the top of ``?`` help: e.g. the demo server's URL and key, for other commands.
        self.about = about
        #: What the sessions list says until its first page arrives.
        self.console_context.loading_note = loading_note or "loading…"
        self.bell_on_pending = bell
        #: Opt-in (``--notify`` or the profile file's ``notify = true``): a new waiting item also
        #: writes a desktop notification (OSC 9 and OSC 777).
        self.notify_on_pending = notify_desktop
        #: Each notice's toast and how many times it was given while up (see ``notify``).
        self._notices: dict[tuple[str, str, str, bool], tuple[Notification, int]] = {}
        #: The last item ``J`` opened: the next ``J`` opens the one after it.
        self._last_jumped: str | None = None
        self._watch_enabled = watch
        self._watch_started = False
        #: Where the organisation watch resumes: the last change it delivered, or the position
        #: it started from.
        self._org_position: int | None = None
        self._org_live: Coalescer[OrgChange] = Coalescer(
            self, self._apply_changes, hz=1 / FLUSH_INTERVAL, name="org-flush", leading=False
        )
        self._titles: dict[str, str] = {}
        self._first_page: FirstPage | None = None
        self.sub_title = backend.display_name + ("  READ-ONLY" if read_only else "")

    @property
    def backend(self) -> Backend:
        return self.console_context.backend

    @property
    def read_only(self) -> bool:
        return self.console_context.read_only

    @property
    def connection_state(self) -> WatchState:
        return self.console_context.connection_state

    @connection_state.setter
    def connection_state(self, state: WatchState) -> None:
        self.console_context.set_connection(state)

    # -- lifecycle -------------------------------------------------------------------------------
    def on_load(self) -> None:
        from sessionscope.tui.screens.sessions import FirstPage

        # Before any screen is built: the server answers while Textual composes and lays out.
        self._first_page = FirstPage.request(self.backend)

    def on_mount(self) -> None:
        from sessionscope.tui.screens.sessions import SessionsScreen

        self.sessions_screen = SessionsScreen(first_page=self._first_page)
        self.push_screen(self.sessions_screen)
        self.set_timer(STARTUP_COLLECTOR_LIMIT, collector.end_startup, name="end-startup")
        if self._unknown_keymap_ids:
            self.notify(
                "The profile file's [keymap] names no such binding: "
                + ", ".join(self._unknown_keymap_ids)
                + " (? lists every binding id)",
                severity="warning",
                markup=False,
            )
        for notice in self.backend.notices:
            self.notify(one_line(notice, 300), title="Note", timeout=8, markup=False)
        self.backend.set_retry_listener(self._request_retrying)
        if not self.read_only:
            self.learn_key_role()
        fleet = self.console_context.fleet
        if fleet is not None:
            fleet.on_health = self.console_context.health_changed.publish
            self.refresh_waiting()
            self.set_interval(WAITING_REFRESH_SECONDS, self.refresh_waiting, name="fleet-waiting")
        # The organisation watch starts once the sessions list has its first page (see
        # ``follow_org_from``): started now, from "now", it could begin after the page's
        # snapshot and a change committed in between would never be shown.

    def warm_up(self) -> None:
        """Called once the sessions list's first page has painted: end the collector's startup
        pause (see ``collector``), and import the session screen now, so that opening the first
        session does not pay for it. In a thread rather than on
        the event loop, so a key pressed meanwhile waits for at most a GIL switch interval
        (5 ms) instead of the whole import."""
        collector.end_startup()
        self.run_worker(_import_quietly, thread=True, exit_on_error=False, group="warm-up")

    async def on_unmount(self) -> None:
        if self._first_page is not None:
            self._first_page.cancel()  # still unused when the app quits that early
        remove_temp_copies()
        try:
            await self.backend.aclose()
        except Exception:
            pass  # closing must never mask how the app ended

    @work(exclusive=True, exit_on_error=False, group="key-role")
    async def learn_key_role(self) -> None:
        """A key the server says is a viewer's makes the console read-only, saying why, rather
        than offer keys whose every use would be refused."""
        try:
            identity = await self.backend.identity()
        except BackendError:
            return  # the sessions list reports an unreachable server or a refused key itself
        if identity is None or not identity.read_only:
            return
        self.console_context.read_only = True
        self.sub_title = f"{self.backend.display_name}  READ-ONLY ({identity.role} key)"
        self.refresh_bindings()
        self.notify(
            one_line(
                f"Read-only: this key's role is {identity.role}; it cannot change anything.", 300
            ),
            title="Read-only",
            timeout=8,
            markup=False,
        )

    # -- organisation watch ----------------------------------------------------------------------
    def follow_org_from(self, position: int | None) -> None:
        """The sessions list has a first page whose snapshot includes the organisation stream up
        to ``position`` (None: the page did not say, or there is no page): the watch starts
        there, so that what happens after the snapshot reaches the list."""
        if not self._watch_enabled:
            return
        if self._watch_started:
            if position is None or self._org_position is not None:
                # It goes on from where it is; what it delivers after a reload's page is applied
                # on top of that page (the list skips what the page already includes).
                return
            # Started from "now" (the first page had failed) and delivered nothing yet: "now"
            # may be after this snapshot. Start again from the snapshot.
        self._org_position = position
        self._watch_started = True
        self.watch_org_changes()

    def _request_retrying(self, detail: str) -> None:
        """A request waits out a 429 (or a gateway failure) before its retry: say so, briefly."""
        self.notify(one_line(detail, 200), title="Waiting", timeout=4, markup=False)

    def _on_watch_state(self, state: WatchState, detail: str | None) -> None:
        self.console_context.set_connection(state, detail or "")

    @work(exclusive=True, exit_on_error=False, group="org-watch")
    async def watch_org_changes(self) -> None:
        try:
            async for change in self.backend.watch_org(
                after=self._org_position, on_state=self._on_watch_state
            ):
                self._org_position = change.id
                self._org_live.add(change)
        except Unsupported:
            self._on_watch_state(
                WatchState.OFFLINE, "this backend has no live updates; r refreshes"
            )
        except (AuthError, NotFound, ValidationFailed) as error:
            state = WatchState.REFUSED if isinstance(error, AuthError) else WatchState.OFFLINE
            self._on_watch_state(state, f"{error.message}; press r to retry")
        except BackendError as error:
            self._on_watch_state(WatchState.OFFLINE, f"{error.message}; press r to retry")
        except asyncio.CancelledError:
            raise

    def _apply_changes(self, batch: list[OrgChange]) -> None:
        if self.console_context.fleet is not None and any(
            change.kind.startswith("action.") or change.kind == EventType.STREAM_RESET
            for change in batch
        ):
            self.refresh_waiting()
        for change in batch:
            if change.session is not None:
                self._titles[change.session_id] = change.session.title
            if change.kind == "action.pending":
                self._announce_pending(change)
        with self.batch_update():
            self.console_context.org_changes.publish(batch)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Textual's toast, except that a notice given again while its toast is up folds into
        it with a count ("… (3 times)") instead of stacking another toast over the screen."""
        key = (message, title, severity, markup)
        count = 1
        shown = self._notices.get(key)
        if shown is not None and notification_showing(self, shown[0]):
            count = shown[1] + 1
            drop_notification(self, shown[0])
        if len(self._notices) > MAX_TRACKED_NOTICES:
            self._notices = {
                known: entry
                for known, entry in self._notices.items()
                if notification_showing(self, entry[0])
            }
        notification = Notification(
            message if count == 1 else f"{message} ({count} times)",
            title,
            severity,
            self.NOTIFICATION_TIMEOUT if timeout is None else timeout,
            markup=markup,
        )
        self._notices[key] = (notification, count)
        if not show_notification_now(self, notification):
            self.post_message(Notify(notification))

    def _inbox_key(self) -> str | None:
        """The key that opens the inbox on the screen shown now, if any does."""
        for key, active in self.screen.active_bindings.items():
            if active.binding.action == "inbox" and active.enabled:
                return self.get_key_display(active.binding) or key
        return None

    def _announce_pending(self, change: OrgChange) -> None:
        action = change.action
        loaded = self.loaded_session(change.session_id)
        title = (
            (change.session.title if change.session else None)
            or (action.session_title if action else None)
            or self._titles.get(change.session_id)
            or (loaded.title if loaded else None)
        )
        tool = action.tool if action else "an action"
        where = one_line(title or change.session_id, 80)
        # Only where a key opens the inbox (the sessions list), say which.
        inbox_key = self._inbox_key()
        hint = f" Press {inbox_key} for the inbox." if inbox_key else ""
        # Agent-chosen text: markup=False so "[bold]" or "[@click=…]" shows literally.
        self.notify(
            f"{one_line(tool, 40)} waits for a decision in “{where}”.{hint}",
            title="Pending action",
            severity="warning",
            timeout=8,
            markup=False,
        )
        if self.bell_on_pending:
            # Through the driver rather than ``App.bell`` (which writes nothing headless), so
            # the sequence a terminal gets is the one a test captures.
            write_to_terminal(self, BELL)
        if self.notify_on_pending:
            profile = getattr(action, "profile", None) if action else None
            title = f"sessionscope: {profile}" if profile else "sessionscope"
            write_to_terminal(
                self, desktop_notification(title, f"{tool} waits for a decision in {where}")
            )

    # -- the fleet's waiting items -----------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="fleet-waiting")
    async def refresh_waiting(self) -> None:
        """Every waiting item across the fleet, for the header's count and ``J``. A member that
        fails is left out (its health row says why); the others are counted."""
        try:
            items = await self.backend.list_pending_actions()
        except BackendError:
            return
        self.console_context.set_waiting(
            [item for item in items if item.status is ActionStatus.PENDING]
        )

    def action_next_waiting(self) -> None:
        self._jump_to_next_waiting()

    @work(exclusive=True, exit_on_error=False, group="next-waiting")
    async def _jump_to_next_waiting(self) -> None:
        """``J``: the item after the one ``J`` opened last, soonest deadline first."""
        try:
            items = await self.backend.list_pending_actions()
        except BackendError as error:
            self.notify(one_line(error.message, 200), severity="error", markup=False)
            return
        waiting = [i for i in items if i.status is ActionStatus.PENDING and i.decidable]
        if self.console_context.fleet is not None:
            self.console_context.set_waiting(waiting)
        if not waiting:
            self.notify("Nothing waits for a decision.", timeout=3)
            return
        ids = [item.id for item in waiting]
        after = ids.index(self._last_jumped) + 1 if self._last_jumped in ids else 0
        chosen = waiting[after % len(waiting)]
        self._last_jumped = chosen.id
        self.open_action(chosen.session_id, chosen.id)

    # -- the command line (``:``) ------------------------------------------------------------------
    def action_command_line(self) -> None:
        from sessionscope.tui.screens.command_line import CommandLine

        if isinstance(self.screen, CommandLine):
            return
        self.push_screen(CommandLine(), self._command_entered)

    def _command_entered(self, line: str | None) -> None:
        if line:
            self.run_command(line)

    def run_command(self, line: str) -> None:
        """``ctx [NAME|all]``, ``inbox``, ``sessions [status=S]``; anything else says so."""
        from sessionscope.tui.screens.command_line import COMMANDS_HELP

        words = line.strip().lstrip(":").split()
        if not words:
            return
        command, arguments = words[0].lower(), words[1:]
        if command in ("ctx", "context"):
            self._command_ctx(arguments)
        elif command in ("inbox", "actions") and not arguments:
            self.open_inbox()
        elif command in ("sessions", "ses", "s"):
            self._command_sessions(arguments)
        else:
            self.notify(
                one_line(f"Unknown command: {line.strip()} (try {COMMANDS_HELP})", 200),
                severity="warning",
                timeout=4,
                markup=False,
            )

    def _command_sessions(self, arguments: list[str]) -> None:
        status: SessionStatus | None = None
        for argument in arguments:
            key, _, value = argument.partition("=")
            if key != "status":
                self.notify(
                    one_line(f"sessions takes status=STATUS, not {argument}", 200),
                    severity="warning",
                    markup=False,
                )
                return
            if value in ("", "all"):
                continue
            try:
                status = SessionStatus(value)
            except ValueError:
                known = ", ".join(s.value for s in SessionStatus)
                self.notify(
                    one_line(f"No status {value!r}: one of {known}, or all", 200),
                    severity="warning",
                    markup=False,
                )
                return
        self.action_status_filter(status)

    def _command_ctx(self, arguments: list[str]) -> None:
        """Switching a profile filters the one list (and keeps the inbox, the header count and
        every live stream on the whole fleet): nothing reconnects, and ``:ctx all`` is instant."""
        fleet = self.console_context.fleet
        if fleet is None:
            self.notify(
                "One profile is open: start with --all-profiles or --profiles a,b for :ctx.",
                timeout=4,
            )
            return
        if not arguments:
            from sessionscope.tui.screens.confirm import InfoModal

            self.push_screen(InfoModal("Profiles", describe_fleet(fleet)))
            return
        name = arguments[0]
        if name in ("all", "*", "-"):
            fleet.shown_profile = None
        elif name in fleet.members:
            fleet.shown_profile = name
        else:
            self.notify(
                one_line(f"No profile {name!r} here: " + ", ".join(fleet.members), 200),
                severity="warning",
                markup=False,
            )
            return
        self.action_home()
        self.sessions_screen.refresh_list()

    def on_key(self, event: events.Key) -> None:
        """A key that reached the app unhandled: if read-only mode or the platform turned it off,
        say why in one line instead of doing nothing."""
        active = self.screen.active_bindings.get(event.key)
        if active is None or active.enabled:
            return
        key = KEYS_BY_ID.get(active.binding.id or "")
        reason = None if key is None else unavailable(key, self.console_context)
        if reason is None:
            return
        why = READ_ONLY_MESSAGE if reason == READ_ONLY_REASON else f"{reason}."
        self.notify(
            f"{active.binding.description}: {why}", severity="warning", timeout=3, markup=False
        )

    # -- errors from any worker: shown, never a crash --------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, BackendError):
            message = error.message
        else:
            message = f"{type(error).__name__}: {error}"
        self.notify(
            one_line(message, 300), title="Something failed", severity="error", markup=False
        )

    # -- navigation shared by every screen, the command palette and notifications ----------------
    def open_session(self, session_id: str) -> None:
        from sessionscope.tui.screens.session import SessionScreen

        self.push_screen(SessionScreen(session_id))

    def open_action(self, session_id: str, action_id: str) -> None:
        if self._decides_in_batches(session_id):
            from sessionscope.tui.screens.decision import DecisionScreen

            self.push_screen(DecisionScreen(session_id, action_id))
            return
        from sessionscope.tui.screens.action import ActionModal

        self.push_screen(ActionModal(session_id, action_id))

    def _decides_in_batches(self, session_id: str) -> bool:
        """In a fleet, the platform that owns the session decides (a native item of a fleet that
        also holds Everruns gets the native modal)."""
        fleet = self.console_context.fleet
        if fleet is None:
            return self.backend.decides_in_batches
        try:
            member, _ = fleet.member_of(session_id)
        except NotFound:
            return self.backend.decides_in_batches
        return member.backend.decides_in_batches

    def open_inbox(self) -> None:
        from sessionscope.tui.screens.inbox import InboxScreen

        self.push_screen(InboxScreen())

    def loaded_session(self, session_id: str) -> Session | None:
        return self.console_context.loaded_session(session_id)

    @on(OpenSession)
    def _open_session(self, message: OpenSession) -> None:
        message.stop()
        self.open_session(message.session_id)

    @on(OpenAction)
    def _open_action(self, message: OpenAction) -> None:
        message.stop()
        self.open_action(message.session_id, message.action_id)

    @on(OpenInbox)
    def _open_inbox(self, message: OpenInbox) -> None:
        message.stop()
        self.open_inbox()

    @on(ListStarted)
    def _list_started(self, message: ListStarted) -> None:
        message.stop()
        self.follow_org_from(message.position)

    @on(FirstPageShown)
    def _first_page_shown(self, message: FirstPageShown) -> None:
        message.stop()
        self.warm_up()

    @on(Retry)
    def _retry(self, message: Retry) -> None:
        message.stop()
        self.action_retry()

    # -- actions ---------------------------------------------------------------------------------
    def action_home(self) -> None:
        while len(self.screen_stack) > 2 and self.screen is not self.sessions_screen:
            self.pop_screen()

    def action_retry(self) -> None:
        """`r`: reload the list and restart the live watch if it stopped."""
        if self._watch_started and self._org_position is None:
            # It has delivered nothing and has no position: from "now" it could begin after the
            # reloaded page's snapshot. That page (or its failure) starts it again.
            self.workers.cancel_group(self, "org-watch")
            self._watch_started = False
            self.connection_state = WatchState.CONNECTING
        elif self._watch_started and self.connection_state in (
            WatchState.OFFLINE,
            WatchState.REFUSED,
        ):
            self.connection_state = WatchState.CONNECTING
            self.watch_org_changes()
        self.sessions_screen.refresh_list()

    def action_status_filter(self, status: SessionStatus | None) -> None:
        self.action_home()
        self.sessions_screen.set_status_filter(status)

    def action_cycle_sort(self) -> None:
        self.action_home()
        self.sessions_screen.action_cycle_sort()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_help(self) -> None:
        from sessionscope.tui.help import HelpScreen, collect_keys

        if type(self.screen).__name__ == "HelpScreen":
            return
        read_only_ids = MUTATING_BINDING_IDS if self.read_only else frozenset()
        keys = collect_keys(self, read_only_ids)
        title = getattr(self.screen, "help_title", None) or human_screen_name(self.screen)
        self.push_screen(HelpScreen(keys, str(title), about=self.about))

    def iter_mutating(self) -> Iterable[str]:
        """The ids of the bindings that change something on the server."""
        return sorted(MUTATING_BINDING_IDS)


def human_screen_name(screen: object) -> str:
    """``SessionsScreen`` → "Sessions", ``TypeFilterModal`` → "Type filter": the help's title
    for a screen without a ``help_title`` of its own."""
    name = type(screen).__name__
    for suffix in ("Screen", "Modal", "Dialog"):
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
            break
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", name)
    text = " ".join(words).capitalize()
    return text or type(screen).__name__


def describe_fleet(fleet: FleetBackend) -> str:
    """``:ctx``: one line per profile (its platform, state and any error), the shown one
    starred. Server text: shown with ``safe.plain``."""
    lines = []
    for name, member in fleet.members.items():
        health = fleet.member_health[name]
        platform = member.backend.platform_label or member.backend.name
        shown = "*" if fleet.shown_profile == name else " "
        line = f"{shown} {name}  {platform}  {health.state.value}"
        if member.read_only:
            line += "  read-only"
        if health.error or health.detail:
            line += f"  {one_line(health.error or health.detail, 120)}"
        lines.append(line)
    lines.append("")
    lines.append(":ctx NAME shows one profile's sessions; :ctx all shows every profile.")
    return "\n".join(lines)


def _import_quietly() -> None:
    for name in WARM_UP_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            # Only a head start: opening a session imports it again and shows any error then.
            log.debug("background import of %s failed", name, exc_info=True)
