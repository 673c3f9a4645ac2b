"""The reaches into Textual's private names (``tui/textual_compat.py``) were verified on one
Textual version: these fail when another is installed, or when a name they use is gone, so that
an upgrade re-verifies them (and the render-equivalence tests) before anything else."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.widgets import Footer

from sessionscope.tui import textual_compat
from sessionscope.tui.widgets.scrolling import StripScrollBar, strip_vertical_scrollbar


def test_the_installed_textual_is_the_verified_one() -> None:
    assert textual_compat.installed_textual() == textual_compat.VERIFIED_TEXTUAL, (
        "Textual changed: re-verify every reach in sessionscope/tui/textual_compat.py, then "
        "update VERIFIED_TEXTUAL"
    )


def test_every_private_name_reached_exists() -> None:
    assert textual_compat.FOOTER_KEY is not None
    assert hasattr(textual_compat.FOOTER_KEY, "compact")
    assert hasattr(Footer, "_bindings_ready")
    assert hasattr(App, "_start_widget")
    assert hasattr(App, "_unnotify")
    assert hasattr(App, "_refresh_notifications")
    assert hasattr(App(), "_notifications") and hasattr(App(), "_thread_id")


class _LineView(ScrollView):
    @property
    def vertical_scrollbar(self) -> ScrollBar:
        return strip_vertical_scrollbar(self)


class _Host(App[None]):
    def compose(self) -> ComposeResult:
        yield _LineView()


async def test_a_line_view_gets_the_strip_scrollbar_through_the_private_reach() -> None:
    app = _Host()
    async with app.run_test(size=(60, 10)):
        view = app.query_one(_LineView)
        scrollbar = view.vertical_scrollbar
        assert isinstance(scrollbar, StripScrollBar)
        assert scrollbar is view.vertical_scrollbar  # created once, started once
        assert scrollbar.parent is view
