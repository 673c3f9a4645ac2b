"""A session's replay as a waterfall: one row per step, a bar offset by the step's start and as
long as its duration, and the selected step's input and output below."""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from sessionscope.backends.base import Backend
from sessionscope.models import Replay, ReplayStep
from sessionscope.tui.context import console_of
from sessionscope.tui.durations import format_duration
from sessionscope.tui.feedback import describe_error
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import plain, plain_line, pretty_json
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.footer import AppFooter
from sessionscope.tui.widgets.status import AppHeader

#: Rows drawn at most; a longer replay says how many were left out.
MAX_STEPS = 2000
_LABEL_WIDTH = 22
_BAR_COLOURS = ("cyan", "green", "magenta", "yellow", "blue", "red", "bright_cyan", "bright_green")


def format_ms(milliseconds: float) -> str:
    return format_duration(milliseconds / 1000, "precise")


def _colour(action: str) -> str:
    # crc32, not hash(): the same action gets the same colour in every run (and snapshot).
    return _BAR_COLOURS[zlib.crc32(action.encode()) % len(_BAR_COLOURS)]


def waterfall_geometry(steps: list[ReplayStep], width: int) -> list[tuple[int, int]]:
    """(offset, length) in cells for each step's bar within ``width`` cells."""
    if not steps or width <= 0:
        return []
    origin = min(step.timestamp for step in steps)
    starts = [(step.timestamp - origin).total_seconds() * 1000 for step in steps]
    span = max(start + step.duration_ms for start, step in zip(starts, steps, strict=True)) or 1
    geometry = []
    for start, step in zip(starts, steps, strict=True):
        offset = min(width - 1, int(start / span * width))
        length = max(1, round(step.duration_ms / span * width))
        geometry.append((offset, min(length, width - offset)))
    return geometry


def waterfall_row(step: ReplayStep, offset: int, length: int, width: int) -> Text:
    row = Text(no_wrap=True, overflow="ellipsis", end="")
    row.append(f"{step.index:>4} ", style="dim")
    label = plain_line(step.action, limit=_LABEL_WIDTH)
    label.pad_right(_LABEL_WIDTH - label.cell_len)
    row.append_text(label)
    row.append(f" {format_ms(step.duration_ms):>7} ", style="dim")
    row.append("│", style="dim")
    row.append(" " * offset)
    row.append("█" * length, style=_colour(step.action))
    row.append(" " * max(0, width - offset - length))
    row.append("│", style="dim")
    return row


def _detail_value(value: Any) -> Text:
    if value is None:
        return Text("(none)", style="dim", end="")
    if isinstance(value, str):
        return plain(value)
    return plain(pretty_json(value))


class ReplayScreen(Screen[None]):
    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("replay")

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.replay: Replay | None = None
        self.steps: list[ReplayStep] = []

    def compose(self) -> ComposeResult:
        yield AppHeader("Replay")
        yield Static(plain(f"Replay · {self.session_id}"), id="replay-summary")
        yield OptionList(id="replay-waterfall")
        with VerticalScroll(id="replay-detail"):
            yield Static("", id="replay-detail-text")
        yield AppFooter()

    def on_mount(self) -> None:
        self.action_reload()

    @property
    def backend(self) -> Backend:
        backend: Backend = console_of(self).backend
        return backend

    def action_reload(self) -> None:
        self.query_one("#replay-summary", Static).update(
            plain(f"Replay · {self.session_id} · loading…")
        )
        self.run_worker(self._load(), group="load", exclusive=True)

    async def _load(self) -> None:
        try:
            replay = await self.backend.replay(self.session_id)
        except Exception as error:
            self.query_one("#replay-summary", Static).update(
                plain(f"Replay · {self.session_id} · {describe_error(error)}", "red")
            )
            return
        self.replay = replay
        self.steps = sorted(replay.steps, key=lambda step: (step.timestamp, step.index))[:MAX_STEPS]
        self._render_summary()
        self._render_rows()
        if self.steps:
            waterfall = self.query_one("#replay-waterfall", OptionList)
            waterfall.highlighted = 0
            waterfall.focus()
        else:
            self.query_one("#replay-detail-text", Static).update(
                "This session has no replay steps."
            )

    def _render_summary(self) -> None:
        total = len(self.replay.steps) if self.replay else 0
        summary = f"Replay · {self.session_id} · {total:,} step{'s' if total != 1 else ''}"
        if self.steps:
            origin = self.steps[0].timestamp
            span = max(
                (step.timestamp - origin).total_seconds() * 1000 + step.duration_ms
                for step in self.steps
            )
            summary += f" · spans {format_ms(span)}"
        if total > len(self.steps):
            summary += f" · showing the first {len(self.steps):,}"
        self.query_one("#replay-summary", Static).update(plain(summary))

    def _bar_width(self) -> int:
        waterfall = self.query_one("#replay-waterfall", OptionList)
        # index + label + duration + two rails + scrollbar and padding
        used = 5 + _LABEL_WIDTH + 9 + 2 + 4
        return max(10, waterfall.content_size.width - used)

    def _render_rows(self) -> None:
        waterfall = self.query_one("#replay-waterfall", OptionList)
        highlighted = waterfall.highlighted
        width = self._bar_width()
        geometry = waterfall_geometry(self.steps, width)
        waterfall.clear_options()
        waterfall.add_options(
            Option(waterfall_row(step, offset, length, width), id=f"step-{position}")
            for position, (step, (offset, length)) in enumerate(
                zip(self.steps, geometry, strict=True)
            )
        )
        if highlighted is not None and self.steps:
            waterfall.highlighted = min(highlighted, len(self.steps) - 1)

    def on_resize(self) -> None:
        if self.steps:
            self._render_rows()

    @on(OptionList.OptionHighlighted, "#replay-waterfall")
    def _show_step(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index >= len(self.steps):
            return
        step = self.steps[event.option_index]
        detail = Text(end="")
        detail.append(f"Step {step.index} · ", style="bold")
        detail.append_text(plain_line(step.action, "bold", limit=80))
        detail.append(
            f" · {step.timestamp.isoformat()} · {format_ms(step.duration_ms)}\n\n", style="dim"
        )
        detail.append("Input\n", style="bold underline")
        detail.append_text(_detail_value(step.input))
        detail.append("\n\nOutput\n", style="bold underline")
        detail.append_text(_detail_value(step.output))
        self.query_one("#replay-detail-text", Static).update(detail)

    def action_back(self) -> None:
        self.app.pop_screen()
