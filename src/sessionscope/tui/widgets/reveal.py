"""Secret values shown for a few seconds on request, then masked again: the reveal key of the
tool-call views (the tool calls tab and the form that answers a call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from textual.timer import Timer


class _RevealHost(Protocol):
    REVEAL_SECONDS: ClassVar[float]
    revealed: bool
    _mask_timer: Timer | None

    def can_reveal(self) -> bool: ...

    def render_secrets(self) -> None: ...

    def mask_secrets(self) -> None: ...

    def set_timer(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class TimedReveal:
    """Mix into a widget or screen that renders secret values masked unless ``revealed``; it
    binds a key to the ``reveal`` action and supplies ``can_reveal`` and ``render_secrets``."""

    #: How long a reveal leaves secret values visible. A class attribute so tests can shorten it.
    REVEAL_SECONDS: ClassVar[float] = 10.0

    revealed: bool = False
    _mask_timer: Timer | None = None

    def can_reveal(self) -> bool:
        """Whether there is anything secret to show; tells the operator when there is not."""
        raise NotImplementedError

    def render_secrets(self) -> None:
        """Redraw whatever shows secret values, masked or not as ``revealed`` says."""
        raise NotImplementedError

    def action_reveal(self: _RevealHost) -> None:
        if not self.can_reveal():
            return
        self.revealed = True
        self.render_secrets()
        # Counted from the latest press: the operator pressed again because they still need
        # the values.
        if self._mask_timer is not None:
            self._mask_timer.stop()
        self._mask_timer = self.set_timer(self.REVEAL_SECONDS, self.mask_secrets)

    def mask_secrets(self: _RevealHost) -> None:
        self.revealed = False
        self._mask_timer = None
        self.render_secrets()
