"""Per-session event rates for the sessions list's opt-in rate column.

The organisation stream's ``session.updated`` changes carry each session's ``event_count``; the
differences between successive samples, bucketed by the time they were seen, give an approximate
events-per-bucket series without fetching anything. Samples are kept only for sessions that
change, a few per session; series are computed only for the rows on screen.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

#: Eight 30-second buckets: the last four minutes.
BUCKETS = 8
BUCKET_SECONDS = 30
#: Samples kept per session; older ones fall out of the window anyway.
MAX_SAMPLES = 32
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


class SessionRates:
    def __init__(self, buckets: int = BUCKETS, bucket_seconds: int = BUCKET_SECONDS) -> None:
        self.buckets = buckets
        self.bucket_seconds = bucket_seconds
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    @property
    def window_seconds(self) -> int:
        return self.buckets * self.bucket_seconds

    def observe(self, session_id: str, event_count: int, at: datetime) -> None:
        """Record that ``session_id`` had ``event_count`` events at ``at``."""
        samples = self._samples.get(session_id)
        if samples is None:
            samples = self._samples[session_id] = deque(maxlen=MAX_SAMPLES)
        elif samples[-1][1] == event_count:
            return  # nothing new; the bucket it would fall into gets zero anyway
        samples.append((at.timestamp(), event_count))

    def knows(self, session_id: str) -> bool:
        return session_id in self._samples

    def series(self, session_id: str, now: datetime) -> list[int]:
        """Events seen per bucket, oldest first, the last bucket ending at ``now``."""
        counts = [0] * self.buckets
        samples = self._samples.get(session_id)
        if not samples:
            return counts
        end = now.timestamp()
        start = end - self.window_seconds
        previous: tuple[float, int] | None = None
        for sample in samples:
            if previous is not None and start <= sample[0] <= end:
                added = max(0, sample[1] - previous[1])
                index = min(self.buckets - 1, int((sample[0] - start) // self.bucket_seconds))
                counts[index] += added
            previous = sample
        return counts

    def forget_quiet(self, now: datetime) -> None:
        """Drop sessions whose newest sample left the window (their series is all zeros)."""
        cutoff = now.timestamp() - self.window_seconds
        for session_id in [sid for sid, s in self._samples.items() if s[-1][0] < cutoff]:
            # One sample stays meaningful as a baseline only while it is recent.
            del self._samples[session_id]

    def clear(self) -> None:
        self._samples.clear()


def sparkline(series: list[int]) -> str:
    """``▁▃█`` blocks scaled to the series' own peak; a quiet bucket is a space."""
    peak = max(series, default=0)
    if peak <= 0:
        return " " * len(series)
    top = len(SPARK_BLOCKS) - 1
    return "".join(
        " " if value <= 0 else SPARK_BLOCKS[max(0, min(top, round(value / peak * top)))]
        for value in series
    )
