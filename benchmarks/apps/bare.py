"""Baseline: a bare Textual app (Header, Footer, DataTable), the reference first frame."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header

TITLE = "bare-baseline"


class BareApp(App[None]):
    TITLE = TITLE

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable()
        yield Footer()


if __name__ == "__main__":
    BareApp().run()
