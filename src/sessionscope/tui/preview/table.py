"""CSV as a bounded table: the first rows of the preview, every cell plain text."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from sessionscope.tui.preview.sniff import CSV_PREVIEW_COLUMNS, CSV_PREVIEW_ROWS
from sessionscope.tui.safe import one_line

CELL_CHARS = 60


@dataclass(frozen=True)
class CsvPreview:
    header: list[str]
    rows: list[list[str]]
    #: Rows in the previewed text beyond those kept (a lower bound when the text was cut).
    more_rows: int
    more_columns: int


def parse_csv(
    text: str,
    dialect: type[csv.Dialect],
    *,
    truncated: bool,
    max_rows: int = CSV_PREVIEW_ROWS,
    max_columns: int = CSV_PREVIEW_COLUMNS,
) -> CsvPreview:
    if truncated and "\n" in text:
        # The last line of a cut read is probably a partial row.
        text = text[: text.rindex("\n") + 1]
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return CsvPreview([], [], 0, 0)
    rows: list[list[str]] = []
    more_rows = 0
    width = len(header)
    try:
        for row in reader:
            if len(rows) < max_rows:
                rows.append(row)
                width = max(width, len(row))
            else:
                more_rows += 1
    except csv.Error:
        pass
    more_columns = max(0, width - max_columns)
    header = (header + [f"column {index + 1}" for index in range(len(header), width)])[:max_columns]
    return CsvPreview(header, [row[:max_columns] for row in rows], more_rows, more_columns)


class CsvTable(DataTable[Text]):
    DEFAULT_CSS = """
    CsvTable {
        height: 1fr;
    }
    """

    def __init__(self, preview: CsvPreview, *, id: str | None = None) -> None:
        super().__init__(id=id, zebra_stripes=True, cursor_type="row")
        self.preview = preview

    def on_mount(self) -> None:
        width = len(self.preview.header)
        for index, name in enumerate(self.preview.header):
            self.add_column(Text(one_line(name, CELL_CHARS), style="bold"), key=f"c{index}")
        for row in self.preview.rows:
            cells = [Text(one_line(cell, CELL_CHARS)) for cell in row]
            cells += [Text("")] * (width - len(cells))
            self.add_row(*cells)
