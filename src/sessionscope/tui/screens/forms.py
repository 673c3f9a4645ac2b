"""The one base of the console's forms (create, edit, variables, message, tool result)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from textual.screen import ModalScreen
from textual.widgets import Static

from sessionscope.backends.base import Backend
from sessionscope.tui.context import console_of
from sessionscope.tui.feedback import READ_ONLY_MESSAGE, describe_error
from sessionscope.tui.safe import plain
from sessionscope.tui.styles import stylesheet

T = TypeVar("T")


class FormScreen(ModalScreen[T]):
    """Every form of the console: a status line for the server's answer, read-only refusal, one
    submission at a time, and load-then-fill: a form that edits something overrides ``load``
    (fetch it; "Loading…" meanwhile, a failure in the status line) and ``fill`` (put it in the
    fields). Buttons are wired with ``@on(Button.Pressed, "#id")`` in each form."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    mutating: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._submitting = False

    def read_only_notice(self) -> Static:
        notice = Static(READ_ONLY_MESSAGE, classes="read-only-notice", id="read-only-notice")
        notice.display = self.mutating and console_of(self).read_only
        return notice

    def status_line(self) -> Static:
        return Static("", id="form-status", classes="form-status")

    def show_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#form-status", Static)
        status.update(plain(text))
        status.set_class(error, "-error")

    def refuse_if_read_only(self) -> bool:
        if self.mutating and console_of(self).read_only:
            self.show_status(READ_ONLY_MESSAGE, error=True)
            return True
        return False

    @property
    def backend(self) -> Backend:
        return console_of(self).backend

    async def load(self) -> Any:
        """What the form edits, fetched once it is mounted; a form that loads overrides it."""
        return None

    async def fill(self, loaded: Any) -> None:
        """Put what ``load`` returned in the fields."""

    def on_mount(self) -> None:
        if type(self).load is not FormScreen.load:
            self.show_status("Loading…")
            self.run_worker(self._load_then_fill(), group="load", exclusive=True)

    async def _load_then_fill(self) -> None:
        try:
            loaded = await self.load()
        except Exception as error:  # every failure becomes words, never a traceback
            self.show_status(describe_error(error), error=True)
            return
        self.show_status("")
        await self.fill(loaded)

    def submit(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._submitting or self.refuse_if_read_only():
            return
        self._submitting = True

        async def guarded() -> None:
            try:
                await work()
            except Exception as error:  # every failure becomes words, never a traceback
                self.show_status(describe_error(error), error=True)
            finally:
                self._submitting = False

        self.run_worker(guarded(), group="submit", exclusive=False)
