"""Baseline: the built-in DataTable loading every row at once (what a naive console would do).

``python -m benchmarks.apps.table_rows ROWS.json`` loads the rows in ``on_mount``; the first
frame that shows them is the figure to compare.
"""

from __future__ import annotations

import json
import sys

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header


class TableApp(App[None]):
    TITLE = "datatable-baseline"

    def __init__(self, rows_path: str) -> None:
        super().__init__()
        self.rows_path = rows_path

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        with open(self.rows_path) as source:
            data = json.load(source)
        table = self.query_one(DataTable)
        table.add_columns(*data["columns"])
        table.add_rows(data["rows"])
        table.focus()


if __name__ == "__main__":
    TableApp(sys.argv[1]).run()
