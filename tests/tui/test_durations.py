"""The console's one duration formatter, in each of its styles."""

from __future__ import annotations

import pytest

from sessionscope.tui.durations import format_duration


@pytest.mark.parametrize(
    ("seconds", "style", "shown"),
    [
        (5, "short", "5s"),
        (125, "short", "2m 05s"),
        (3725, "short", "1h 02m"),
        (-3, "short", "0s"),
        (3725, "long", "1h 02m 05s"),
        (125, "long", "2m 05s"),
        (59, "unit", "59s"),
        (61, "unit", "1m"),
        (7200, "unit", "2h"),
        (86400 * 4, "unit", "4d"),
        (86400 * 100, "unit", "14w"),
        (-10, "unit", "0s"),
        (0.12, "precise", "120ms"),
        (1.25, "precise", "1.2s"),
        (65, "precise", "1m05s"),
    ],
)
def test_format_duration(seconds: float, style: str, shown: str) -> None:
    assert format_duration(seconds, style) == shown  # type: ignore[arg-type]
