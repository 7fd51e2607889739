"""Histograms of how long things took, kept cheaply enough to sit on a worker's hot path.

A worker only appends each attempt's two figures to its listener's samples; they are
counted into the histograms in bulk (sorted once, then cut at the bounds in C) when read,
and by the workers once a listener has gathered :data:`FOLD_AT` of them, which keeps the
samples few.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

__all__ = ("BOUNDS", "FOLD_AT", "DeliveryTimings", "Histogram", "Timings", "bucket", "fold_full")

BOUNDS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds of the buckets, in seconds (a last one, +Inf, takes the rest): from 10 us,
since a no-op listener runs in a few, to 5 minutes."""

FOLD_AT = 512
"""Samples (two an attempt) a listener gathers before a worker counts them. A count costs a
part for each batch besides its part for each figure, so bigger batches cost less an attempt
(the README's *Decisions* give the measured figures)."""


def bucket(seconds: float) -> int:
    """The index of the first of :data:`BOUNDS` at or above ``seconds`` (``len(BOUNDS)`` when
    none is)."""
    return bisect_left(BOUNDS, seconds)


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

    def observe_all(self, values: list[float]) -> None:
        """:meth:`observe` each of ``values``, which this sorts in place."""
        if not values:
            return
        values.sort()  # list.sort compares floats much faster than min() and max() do
        counts, counted, high = self.counts, 0, bucket(values[-1])
        for index in range(bucket(values[0]), high):  # none in the usual case, one bucket
            upto = bisect_right(values, BOUNDS[index], counted)  # those <= the bound
            counts[index] += upto - counted
            counted = upto
        counts[high] += len(values) - counted
        self.sum += sum(values)

    @property
    def count(self) -> int:
        return sum(self.counts)


class DeliveryTimings:
    """One listener's attempts: how long each ran, and how long it waited from the emit (or
    its due time) to its start."""

    __slots__ = ("_ran", "_waited", "listed", "samples")

    def __init__(self) -> None:
        self._ran = Histogram()
        self._waited = Histogram()
        self.samples: list[float] = []
        """Attempts not yet counted, two figures each: how long it ran, how long it waited.
        A worker appends them; one that finds the list empty and this not :attr:`listed`
        adds this to :attr:`Timings.unfolded`."""
        self.listed = False
        """Whether this stands in :attr:`Timings.unfolded` (once at most)."""

    @property
    def ran(self) -> Histogram:
        self.fold()
        return self._ran

    @property
    def waited(self) -> Histogram:
        self.fold()
        return self._waited

    def fold(self) -> None:
        """Count the samples into the histograms."""
        if samples := self.samples:
            self._ran.observe_all(samples[0::2])
            self._waited.observe_all(samples[1::2])
            samples.clear()


class Timings:
    """Each listener's :class:`DeliveryTimings`, by listener name (kept across reloads)."""

    __slots__ = ("_by_listener", "unfolded")

    def __init__(self) -> None:
        self._by_listener: dict[str, DeliveryTimings] = {}
        self.unfolded: list[DeliveryTimings] = []
        """Those whose samples may not have been counted yet, each once: the workers
        :func:`fold_full` them every hundred deliveries, and reading a histogram folds its
        own."""

    def of(self, listener: str) -> DeliveryTimings:
        """``listener``'s timings, new if it has none yet."""
        return self._by_listener.setdefault(listener, DeliveryTimings())

    def __getitem__(self, listener: str) -> DeliveryTimings:
        return self._by_listener[listener]

    def items(self) -> list[tuple[str, DeliveryTimings]]:
        """``(listener, timings)`` pairs, by listener name."""
        return sorted(self._by_listener.items())


def fold_full(unfolded: list[DeliveryTimings]) -> None:
    """Fold those of ``unfolded`` that hold :data:`FOLD_AT` samples or more, and unlist them."""
    kept = []
    for timings in unfolded:
        if len(timings.samples) >= FOLD_AT:
            timings.fold()
            timings.listed = False
        else:
            kept.append(timings)
    if len(kept) < len(unfolded):
        unfolded[:] = kept
