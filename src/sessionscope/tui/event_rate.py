"""Event rate of a session for its header sparkline: counts per fixed time bucket.

Counts, not timestamps, are kept, so a thousand events a second for five minutes costs a few dozen
integers. Buckets are aligned to the epoch, so the series is the same whoever asks.
"""

from __future__ import annotations

from datetime import datetime

BUCKET_SECONDS = 10
#: Five minutes of 10 s buckets.
WINDOW_BUCKETS = 30


class EventRate:
    def __init__(
        self, *, bucket_seconds: int = BUCKET_SECONDS, buckets: int = WINDOW_BUCKETS
    ) -> None:
        self.bucket_seconds = bucket_seconds
        self.buckets = buckets
        self._counts: dict[int, int] = {}

    def _bucket(self, stamp: datetime) -> int:
        return int(stamp.timestamp() // self.bucket_seconds)

    def add(self, stamp: datetime, now: datetime) -> None:
        bucket = self._bucket(stamp)
        last = self._bucket(now)
        # Outside the window (or from a skewed clock far ahead): nothing to draw, nothing kept.
        if bucket <= last - self.buckets or bucket > last + self.buckets:
            return
        self._counts[bucket] = self._counts.get(bucket, 0) + 1

    def series(self, now: datetime) -> list[int]:
        """Counts per bucket, oldest first, ending with the bucket that holds ``now``."""
        last = self._bucket(now)
        first = last - self.buckets + 1
        for bucket in [bucket for bucket in self._counts if bucket < first]:
            del self._counts[bucket]
        return [self._counts.get(bucket, 0) for bucket in range(first, last + 1)]

    def window_label(self) -> str:
        minutes, seconds = divmod(self.bucket_seconds * self.buckets, 60)
        span = f"{minutes} min" if not seconds else f"{minutes * 60 + seconds} s"
        return f"events per {self.bucket_seconds} s, last {span}"
