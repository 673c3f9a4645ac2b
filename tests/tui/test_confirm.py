"""The confirmation modal: safe default, every way to answer, literal text, one answer only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Button, Static

from sessionscope.tui import clock
from sessionscope.tui.screens.confirm import ConfirmationModal
from sessionscope.tui.styles import stylesheet

SNAPSHOT_SIZE = (120, 36)
HOSTILE_TITLE = "[bold red]prod[/] [@click=app.quit]db\x1b[2J"


class Host(App[None]):
    """A bare app with one session-looking line underneath the modal."""

    CSS_PATH: ClassVar = [stylesheet("app.tcss")]

    def __init__(self, modal: ConfirmationModal) -> None:
        super().__init__()
        self.modal = modal
        self.answers: list[bool | None] = []
        self.read_only = False

    def compose(self) -> ComposeResult:
        yield Static("sessions · 3 open")

    def on_mount(self) -> None:
        self.push_screen(self.modal, self.answers.append)


def modal() -> ConfirmationModal:
    return ConfirmationModal(
        "Delete session?",
        f"Delete session “{HOSTILE_TITLE}” (ses_0123456789abcdef) with all its events and "
        "artifacts?\nThis cannot be undone.",
        confirm_label="Delete",
    )


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    yield
    clock.freeze(None)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(("y",), True), (("n",), False), (("escape",), False), (("enter",), False)],
)
async def test_answers(keys: tuple[str, ...], expected: bool) -> None:
    app = Host(modal())
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.screen.focused is app.screen.query_one("#confirm-no", Button)
        await pilot.press(*keys)
        await pilot.pause()
    assert app.answers == [expected]


async def test_yes_button_and_focus_switch() -> None:
    app = Host(modal())
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("left")
        assert app.screen.focused is app.screen.query_one("#confirm-yes", Button)
        await pilot.press("enter")
        await pilot.pause()
    assert app.answers == [True]


async def test_a_double_press_answers_once() -> None:
    app = Host(modal())
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("y", "y", "n")
        await pilot.pause()
        assert len(app.screen_stack) == 1, "the screen underneath was not popped"
    assert app.answers == [True]


async def test_text_is_shown_literally() -> None:
    app = Host(modal())
    async with app.run_test() as pilot:
        await pilot.pause()
        body = str(app.screen.query_one("#confirm-body", Static).render())
    assert "[bold red]prod[/] [@click=app.quit]db␛[2J" in body


def test_every_binding_has_an_id_and_a_description() -> None:
    for binding in ConfirmationModal.BINDINGS:
        assert getattr(binding, "id", None) and getattr(binding, "description", None)


def test_snapshot(snap_compare: Any, frozen_clock: None) -> None:
    assert snap_compare(Host(modal()), terminal_size=SNAPSHOT_SIZE)
