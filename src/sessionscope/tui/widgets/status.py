"""The always-visible top bar: product name, server name, connection state, read-only badge.

It follows the console context's connection (``connection_changed``), so any screen can compose an
``AppHeader`` and it stays in step with the organisation watch.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from sessionscope.backends import WatchState
from sessionscope.tui.context import console_of, find_console
from sessionscope.tui.safe import plain_line
from sessionscope.tui.widgets.countdown import format_time_left

STATE_LABEL: dict[WatchState, tuple[str, str]] = {
    WatchState.CONNECTING: ("◌", "connecting"),
    WatchState.LIVE: ("●", "live"),
    WatchState.RECONNECTING: ("◐", "reconnecting"),
    WatchState.POLLING: ("◍", "polling"),
    WatchState.OFFLINE: ("○", "offline"),
    WatchState.REFUSED: ("⊘", "refused"),
}


class ConnectionIndicator(Static):
    """``● live`` / ``◐ reconnecting`` / ``◍ polling`` / ``○ offline``; detail in the tooltip."""

    def on_mount(self) -> None:
        console = find_console(self)
        if console is None or not console.has_connection:
            # Hosted by an app without an organisation watch (a screen on its own): no state.
            self.display = False
            return
        console.connection_changed.subscribe(self, self._show, immediate=True)
        self._show()

    def _show(self, _value: object = None) -> None:
        console = console_of(self)
        state = console.connection_state
        glyph, label = STATE_LABEL.get(state, ("?", state.value))
        detail = console.connection_detail or ""
        if state is WatchState.POLLING and detail.startswith("polling every"):
            # How live it is: "polling every 2 s" says more than "polling".
            label = plain_line(detail, limit=30).plain
        # One restyle for the whole swap (set_class per state restyles on each change).
        self.update_classes({f"-{known.value}": known is state for known in WatchState})
        self.update(Text(f"{glyph} {label}", end=""))
        # Server text: never markup.
        self.tooltip = plain_line(console.connection_detail or label, limit=300)


class FleetWaiting(Static):
    """Several profiles at once: how many items wait across the fleet, and the soonest
    deadline (``⚑ 3 waiting · next 4m 05s``), from the app's count (``ConsoleContext.waiting``)."""

    def on_mount(self) -> None:
        console = console_of(self)
        console.waiting_changed.subscribe(self, self._show, immediate=True)
        self.set_interval(1.0, self._show, name="fleet-waiting-clock")
        self._show()

    def _show(self, _value: object = None) -> None:
        waiting = console_of(self).waiting
        if not waiting:
            self.update(Text("⚑ 0 waiting", end=""))
            self.set_class(False, "-waiting")
            return
        deadlines = [item.expires_at for item in waiting if item.expires_at is not None]
        text = f"⚑ {len(waiting)} waiting"
        if deadlines:
            text += f" · next {format_time_left(min(deadlines))}"
        self.update(Text(text, end=""))
        self.set_class(True, "-waiting")


class AppHeader(Horizontal):
    """One line: ``sessionscope  host:port  [screen]  ● live  READ-ONLY``."""

    DEFAULT_CSS = """
    AppHeader { height: 1; }
    """

    def __init__(self, screen_title: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._screen_title = screen_title

    def compose(self) -> ComposeResult:
        console = find_console(self)
        server = console.backend.display_name if console is not None else ""
        platform = console.backend.platform_label if console is not None else ""
        if platform:
            server = f"{platform} {server}"
        yield Static("sessionscope", classes="app-header--name")
        yield Static(plain_line(server, limit=80), classes="app-header--server")
        yield Static(Text(self._screen_title, end=""), classes="app-header--screen")
        if console is not None and console.fleet is not None:
            yield FleetWaiting(classes="app-header--waiting")
        if console is not None and console.read_only:
            yield Static("READ-ONLY", classes="app-header--read-only")
        yield ConnectionIndicator(classes="app-header--connection")
