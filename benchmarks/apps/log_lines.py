"""Baseline: the built-in Log widget holding N timeline-like lines, written in one batch.

``python -m benchmarks.apps.log_lines N``: the lines look like the console's timeline rows
(time, sequence, type, summary) and are generated in process, so this side does not pay for
fetching them: the comparison flatters the baseline.
"""

from __future__ import annotations

import sys

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Log

FILLER = "x" * 80


def line(number: int) -> str:
    seconds = number // 1000
    clock = f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{clock}.{number % 1000:03d}  {number + 1:>8}  message.agent  message {number} {FILLER}"


class LogApp(App[None]):
    TITLE = "log-baseline"

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log()
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(Log)
        log.write_lines(line(number) for number in range(self.count))
        log.focus()


if __name__ == "__main__":
    LogApp(int(sys.argv[1])).run()
