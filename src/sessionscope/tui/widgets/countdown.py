"""A live countdown to a pending action's expiry, on the console's clock (frozen in snapshots)."""

from __future__ import annotations

from datetime import datetime

from textual.message import Message
from textual.widgets import Static

from sessionscope.tui import clock
from sessionscope.tui.durations import format_duration


def seconds_left(expires_at: datetime | None) -> float | None:
    if expires_at is None:
        return None
    return (expires_at - clock.now()).total_seconds()


def format_time_left(expires_at: datetime | None) -> str:
    """ "4m 05s", "1h 02m", "expired" or "no expiry"."""
    left = seconds_left(expires_at)
    if left is None:
        return "no expiry"
    if left <= 0:
        return "expired"
    # Rounded up: "1s" until it has expired, never "0s" while it still runs.
    return format_duration(int(left + 0.999))


class Countdown(Static):
    """Shows the time left until ``expires_at`` and posts ``Expired`` once when it runs out."""

    DEFAULT_CSS = """
    Countdown { width: auto; }
    Countdown.-urgent { color: $warning; text-style: bold; }
    Countdown.-expired { color: $error; text-style: bold; }
    """

    class Expired(Message):
        pass

    def __init__(
        self,
        expires_at: datetime | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self.expires_at = expires_at
        self._announced = False

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(1.0, self.tick, name="countdown")

    def set_expiry(self, expires_at: datetime | None) -> None:
        self.expires_at = expires_at
        self._announced = False
        self.tick()

    def tick(self) -> None:
        left = seconds_left(self.expires_at)
        label = format_time_left(self.expires_at)
        self.update(label if left is None or left <= 0 else f"expires in {label}")
        self.set_class(left is not None and 0 < left <= 30, "-urgent")
        self.set_class(left is not None and left <= 0, "-expired")
        if left is not None and left <= 0 and not self._announced:
            self._announced = True
            self.post_message(self.Expired())
