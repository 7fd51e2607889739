"""Histograms of how long things took, kept cheaply enough to sit on a worker's hot path:
a few comparisons to find the bucket and two additions an observation."""

from __future__ import annotations

__all__ = ("BOUNDS", "DeliveryTimings", "Histogram", "bucket")

BOUNDS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds of the buckets, in seconds (a last one, +Inf, takes the rest): from 10 us,
since a no-op listener runs in a few, to 5 minutes."""


def bucket(seconds: float) -> int:
    """The index of the first of :data:`BOUNDS` at or above ``seconds`` (``len(BOUNDS)`` when
    none is): ``bisect_left(BOUNDS, seconds)``, written out as a balanced tree of
    comparisons, which the interpreter runs in half the time of bisect's generic ones."""
    if seconds <= 0.005:
        if seconds <= 0.00025:
            if seconds <= 0.000025:
                return 0 if seconds <= 0.00001 else 1
            if seconds <= 0.00005:
                return 2
            return 3 if seconds <= 0.0001 else 4
        if seconds <= 0.001:
            return 5 if seconds <= 0.0005 else 6
        return 7 if seconds <= 0.0025 else 8
    if seconds <= 0.5:
        if seconds <= 0.05:
            if seconds <= 0.01:
                return 9
            return 10 if seconds <= 0.025 else 11
        if seconds <= 0.1:
            return 12
        return 13 if seconds <= 0.25 else 14
    if seconds <= 5.0:
        if seconds <= 1.0:
            return 15
        return 16 if seconds <= 2.5 else 17
    if seconds <= 30.0:
        return 18 if seconds <= 10.0 else 19
    if seconds <= 60.0:
        return 20
    return 21 if seconds <= 300.0 else 22


class Histogram:
    """Counts of observations by bucket (``counts[i]``: those <= ``BOUNDS[i]``, not
    cumulative; the last: above them all), their number and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bucket(seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


class DeliveryTimings:
    """One listener's attempts: how long each ran, and how long it waited from the emit (or
    its due time) to its start."""

    __slots__ = ("ran", "waited")

    def __init__(self) -> None:
        self.ran = Histogram()
        self.waited = Histogram()
