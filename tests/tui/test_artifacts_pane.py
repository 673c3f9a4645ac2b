"""The artifacts pane against an in-memory backend: paging, each preview kind, copy, hostile names.
(Flows against the real server: test_artifacts_flow.py.)"""

from __future__ import annotations

from artifacts_support import (
    SAMPLE_CSV,
    SAMPLE_JSON,
    SAMPLE_MARKDOWN,
    SAMPLE_SOURCE,
    SESSION_ID,
    ArtifactsHost,
    MemoryArtifacts,
    binary_blob,
    gradient_png,
    pane_of,
    preview_ready,
    wait_for,
)
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Markdown, Static

from sessionscope.tui.context import ConsoleContext
from sessionscope.tui.preview.hexdump import HexView
from sessionscope.tui.preview.image import ImageView
from sessionscope.tui.preview.json_tree import JsonTree
from sessionscope.tui.preview.source import SourceView
from sessionscope.tui.preview.table import CsvTable
from sessionscope.tui.widgets.artifacts import ArtifactsPane


def _backend() -> MemoryArtifacts:
    backend = MemoryArtifacts()
    backend.add("gradient.png", gradient_png(), "image/png")
    backend.add("blob.bin", binary_blob(), "application/octet-stream")
    backend.add("result.json", SAMPLE_JSON, "application/json")
    backend.add("report.md", SAMPLE_MARKDOWN, "text/markdown")
    backend.add("towns.csv", SAMPLE_CSV, "text/csv")
    backend.add("greet.py", SAMPLE_SOURCE, "text/x-python")
    return backend


async def test_each_kind_gets_its_view() -> None:
    backend = _backend()
    app = ArtifactsHost(backend)
    expected = [ImageView, HexView, JsonTree, Markdown, CsvTable, SourceView]
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, preview_ready(pilot, "art_0000"))
        pane = pane_of(pilot)
        for index, widget_type in enumerate(expected):
            pane.table.move_cursor(row=index)
            await wait_for(pilot, preview_ready(pilot, f"art_{index:04d}"))
            body = pane.query_one("#artifact-preview-body")
            assert body.query(widget_type) or isinstance(body, widget_type), widget_type
        header = pane.query_one("#artifacts-preview-header", Static)
        assert "source" in str(header.render())


async def test_markdown_links_and_markup_stay_inert() -> None:
    backend = MemoryArtifacts()
    backend.add("report.md", SAMPLE_MARKDOWN, "text/markdown")
    app = ArtifactsHost(backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, preview_ready(pilot, "art_0000"))
        markdown = pane_of(pilot).query_one(Markdown)
        text = "\n".join(str(block.render()) for block in markdown.children)
        assert "[the docs](app.quit)" in text
        assert "[@click=app.quit]click me[/]" in text
        assert "␛[31mred?" in text
        for block in markdown.query("*"):
            for span in getattr(getattr(block, "_content", None), "spans", []):
                assert "@click" not in str(span.style)


async def test_pages_load_as_the_cursor_nears_the_end() -> None:
    backend = MemoryArtifacts()
    for index in range(120):
        backend.add(f"file-{index:03d}.txt", f"artifact {index}\n".encode(), "text/plain")
    app = ArtifactsHost(backend)
    async with app.run_test(size=(120, 36)) as pilot:
        pane = pane_of(pilot)
        pane.page_size = 50
        await wait_for(pilot, lambda: len(pane.artifacts) >= 50)
        assert len(pane.artifacts) == 50 and backend.list_calls == 1
        pane.table.move_cursor(row=45)
        await wait_for(pilot, lambda: len(pane.artifacts) == 100)
        pane.table.move_cursor(row=95)
        await wait_for(pilot, lambda: pane.exhausted)
        assert len(pane.artifacts) == 120 and pane.table.row_count == 120
        assert [a.name for a in pane.artifacts][-1] == "file-119.txt"


async def test_hostile_names_render_literally() -> None:
    backend = MemoryArtifacts()
    backend.add("[bold]x[/bold]\x1b[2J[@click=app.quit].txt", b"hi\n", "text/plain")
    app = ArtifactsHost(backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, preview_ready(pilot, "art_0000"))
        table = pane_of(pilot).query_one("#artifacts-table", DataTable)
        cell = table.get_cell_at((0, 0))
        assert cell.plain.startswith("[bold]x[/bold]␛[2J[@click")
        header = str(pane_of(pilot).query_one("#artifacts-preview-header", Static).render())
        assert "[bold]x[/bold]␛[2J" in header


async def test_copy_puts_the_previewed_text_on_the_clipboard() -> None:
    backend = MemoryArtifacts()
    backend.add("greet.py", SAMPLE_SOURCE, "text/x-python")
    backend.add("blob.bin", binary_blob(), "application/octet-stream")
    app = ArtifactsHost(backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, preview_ready(pilot, "art_0000"))
        await pilot.press("y")
        assert app.clipboard == SAMPLE_SOURCE.decode()
        pane_of(pilot).table.move_cursor(row=1)
        await wait_for(pilot, preview_ready(pilot, "art_0001"))
        await pilot.press("y")
        assert app.clipboard == SAMPLE_SOURCE.decode()  # binary: nothing copied


async def test_every_binding_has_an_id_and_a_description() -> None:
    from sessionscope.tui.screens.artifact_save import SaveArtifactScreen
    from sessionscope.tui.screens.artifacts import ArtifactsScreen

    for owner in (ArtifactsPane, ArtifactsScreen, SaveArtifactScreen):
        for binding in owner.BINDINGS:
            assert binding.id and binding.description, (owner, binding)  # type: ignore[union-attr]


class _PlainScreenHost(App[None]):
    """The pane mounted the way a session screen's tab would: no artifacts CSS on the screen."""

    def __init__(self, backend: MemoryArtifacts) -> None:
        super().__init__()
        self.backend = backend
        self.console_context = ConsoleContext.create(self, backend)

    def compose(self) -> ComposeResult:
        yield ArtifactsPane(SESSION_ID)


async def test_the_pane_brings_its_own_stylesheet_and_tab_reaches_the_preview() -> None:
    backend = MemoryArtifacts()
    backend.add("blob.bin", binary_blob(4096), "application/octet-stream")
    app = _PlainScreenHost(backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, preview_ready(pilot, "art_0000"))
        pane = app.screen.query_one(ArtifactsPane)
        assert pane.query_one("#artifacts-list-side").size.height == round(0.4 * 36)
        assert pane.table.has_focus
        await pilot.press("tab")
        assert isinstance(app.focused, HexView)
