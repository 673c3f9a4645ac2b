"""The fleet's health strip: one row per profile (name, platform, live state, and the error of
the request that failed for it), so one profile's trouble is visible without stopping the rest."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sessionscope.backends import WatchState
from sessionscope.backends.fleet import FleetBackend
from sessionscope.tui.context import console_of
from sessionscope.tui.safe import one_line

_STATE_STYLE = {
    WatchState.LIVE: "green",
    WatchState.POLLING: "yellow",
    WatchState.CONNECTING: "dim",
    WatchState.RECONNECTING: "yellow",
    WatchState.OFFLINE: "bold red",
    WatchState.REFUSED: "bold red",
}


def health_rows(fleet: FleetBackend) -> Text:
    """Profile and platform names come from the operator's file, the error from a server:
    all plain text."""
    text = Text(end="")
    width = max(len(name) for name in fleet.members)
    for index, (name, member) in enumerate(fleet.members.items()):
        health = fleet.member_health[name]
        platform = member.backend.platform_label or member.backend.name
        if index:
            text.append("\n")
        shown = "▸" if fleet.shown_profile == name else " "
        text.append(f"{shown} {one_line(name, 24):<{width}}  ", style="bold")
        text.append(f"{one_line(platform, 12):<12} ", style="dim")
        state_style = "bold red" if health.error else _STATE_STYLE.get(health.state, "")
        text.append(f"{health.state.value:<12}", style=state_style)
        if member.read_only:
            text.append(" read-only", style="yellow")
        if health.error:
            text.append(f"  {one_line(health.error, 160)}", style="red")
        elif health.detail and health.state is not WatchState.LIVE:
            text.append(f"  {one_line(health.detail, 160)}", style="dim")
    return text


class FleetHealth(Static):
    DEFAULT_CSS = """
    FleetHealth {
        height: auto; max-height: 8; padding: 0 1; border-bottom: solid $primary-background;
    }
    """

    def __init__(self, fleet: FleetBackend, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._fleet = fleet

    def on_mount(self) -> None:
        console_of(self).health_changed.subscribe(self, self._show)
        self._show()

    def _show(self, _name: object = None) -> None:
        self.update(health_rows(self._fleet))
