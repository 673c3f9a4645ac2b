"""``?``: every key that works where the operator is, with what it does and why it may be off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sessionscope.tui.context import find_console
from sessionscope.tui.keys import KEYS_BY_ID, bindings, not_offered
from sessionscope.tui.safe import one_line


@dataclass(frozen=True)
class KeyHelp:
    key: str
    description: str
    binding_id: str
    tooltip: str
    enabled: bool
    #: Why a disabled key is off, e.g. "read-only".
    note: str = ""


def collect_keys(app: App[Any], read_only_ids: frozenset[str] = frozenset()) -> list[KeyHelp]:
    """The active bindings of the current screen and focused widget, then the app's, once each.
    A key the backend does not offer is listed as such (the footer leaves it out)."""
    console = find_console(app)
    seen: set[tuple[str, str]] = set()
    keys: list[KeyHelp] = []
    for key, active in app.screen.active_bindings.items():
        binding = active.binding
        if binding.system and not binding.description:
            continue
        marker = (binding.action, binding.id or key)
        if marker in seen:
            continue
        seen.add(marker)
        note = ""
        tooltip = active.tooltip or binding.tooltip
        entry = KEYS_BY_ID.get(binding.id or "")
        if entry is not None and console is not None and not_offered(entry, console):
            note = f"not offered by {one_line(console.platform, 40)}"
        elif binding.id in read_only_ids:
            note = "read-only"
            tooltip = binding.tooltip  # the note says why; once is enough
        elif not active.enabled:
            note = "not available here"
        keys.append(
            KeyHelp(
                key=app.get_key_display(binding),
                description=binding.description or binding.action,
                binding_id=binding.id or "",
                tooltip=tooltip,
                enabled=active.enabled and not note,
                note=note,
            )
        )
    return keys


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = bindings("help")

    def __init__(self, keys: list[KeyHelp], title: str, *, about: str | None = None) -> None:
        super().__init__()
        self._keys = keys
        self._title = title
        self._about = about

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        table.add_column("id", style="dim", no_wrap=True)
        for item in self._keys:
            description = Text(item.description, end="")
            if item.tooltip and item.tooltip != item.description:
                description.append(f" — {item.tooltip}", style="dim")
            if item.note:
                description.append(f"  ({item.note})", style="italic")
            table.add_row(
                Text(item.key, end=""),
                description,
                Text(item.binding_id, end=""),
                style="" if item.enabled else "dim",
            )
        with VerticalScroll(id="help-body"):
            if self._about:
                yield Static(Text(self._about, end=""), id="help-about")
            yield Static(Text(f"Keys — {self._title}", style="bold", end=""), id="help-title")
            yield Static(table, id="help-table")
            yield Static("escape closes", id="help-footer")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
