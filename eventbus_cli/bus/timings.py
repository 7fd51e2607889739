"""Histograms of how long things took, kept cheaply enough to sit on a worker's hot path:
one ``bisect`` into fixed bucket bounds and two additions an observation."""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .delivery import Delivery

__all__ = ("BOUNDS", "DeliveryTimings", "Histogram")

BOUNDS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds of the buckets, in seconds (a last one, +Inf, takes the rest): from 10 us,
since a no-op listener runs in a few, to 5 minutes."""


class Histogram:
    """Counts of observations by bucket (``counts[i]``: those <= ``BOUNDS[i]``, not
    cumulative; the last: above them all), their number and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
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

    def observe(self, ran: float, delivery: Delivery) -> None:
        """One attempt of ``delivery`` that ran ``ran`` seconds; it waited from its emit (or
        its due time) to its start, both stamped by the broker. Histogram.observe written
        out twice, since this runs once a delivery."""
        ran_histogram, waited_histogram = self.ran, self.waited
        ran_histogram.counts[bisect_left(BOUNDS, ran)] += 1
        ran_histogram.sum += ran
        started = delivery.started_at or 0.0
        waited = started - (delivery.due_at or delivery.created_at or started)
        waited_histogram.counts[bisect_left(BOUNDS, waited)] += 1
        waited_histogram.sum += waited
