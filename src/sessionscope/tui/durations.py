"""The console's one duration formatter: every span of time it shows goes through
``format_duration``, in one of four styles.

* ``"short"``: two units at most, for countdowns and ages in lists: ``1h 02m``, ``4m 05s``, ``5s``.
* ``"long"``: down to the second, for an outcome the operator reads once: ``1h 02m 03s``.
* ``"unit"``: the largest unit only, for narrow columns: ``5s``, ``3m``, ``2h``, ``4d``, ``3w``.
* ``"precise"``: sub-second spans (replay steps): ``120ms``, ``1.2s``, ``1m05s``.
"""

from __future__ import annotations

from typing import Literal

DurationStyle = Literal["short", "long", "unit", "precise"]

_MINUTE = 60
_HOUR = 3600
_DAY = 86400
#: Past this many days the "unit" style counts weeks.
_DAYS_SHOWN = 99


def format_duration(seconds: float, style: DurationStyle = "short") -> str:
    if style == "precise":
        milliseconds = seconds * 1000
        if milliseconds < 1000:
            return f"{milliseconds:.0f}ms"
        if milliseconds < 60_000:
            return f"{milliseconds / 1000:.1f}s"
        minutes, rest = divmod(milliseconds / 1000, 60)
        return f"{minutes:.0f}m{rest:02.0f}s"
    whole = max(0, int(seconds))
    if style == "unit":
        if whole < _MINUTE:
            return f"{whole}s"
        if whole < _HOUR:
            return f"{whole // _MINUTE}m"
        if whole < _DAY:
            return f"{whole // _HOUR}h"
        if whole < _DAY * _DAYS_SHOWN:
            return f"{whole // _DAY}d"
        return f"{whole // (_DAY * 7)}w"
    hours, rest = divmod(whole, _HOUR)
    minutes, secs = divmod(rest, _MINUTE)
    if hours:
        return (
            f"{hours}h {minutes:02d}m {secs:02d}s"
            if style == "long"
            else f"{hours}h {minutes:02d}m"
        )
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
