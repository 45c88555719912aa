"""A reference per bucket of event time within a period (daily, weekly cycles).

A feature with a daily cycle is not drifting when it is high at noon and low at
night; against one reference for the whole day, its ranks cycle and every detector
sees change. ``SeasonalReference`` keeps one ``NumericReference`` per bucket of
``period`` (e.g. 96 quarter-hours of a day) and ranks each value in its own bucket's
reference, so the ranks of a stream that repeats its cycle are Uniform(0, 1) again
and every test downstream applies unchanged; a shift on top of the cycle moves them.

A bucket with fewer than ``min_values`` reference values uses the pooled reference
(all buckets together), so a bucket without traffic in the reference period does not
block the rest.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.config import SeasonalitySettings
from detectors.reference import NumericReference

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The buckets' reference error counted twice: a bucket also leaves the trend of the
#: cycle within it (its first values low, its last high, every day alike), which a run
#: of values shares as it shares the offset (bench/quality.py, daily cycle).
SEASONAL_MARGIN = 2.0


def buckets_of(times: FloatArray, settings: SeasonalitySettings) -> IntArray:
    """The bucket of each event time (epoch seconds) within the period.

    >>> s = SeasonalitySettings(period=86400, buckets=24)
    >>> buckets_of(np.array([0.0, 3599.0, 3600.0, 86399.0, 86400.0 + 7200.0]), s).tolist()
    [0, 0, 1, 23, 2]
    """
    phase = np.mod(times, settings.period) / settings.period
    return np.minimum((phase * settings.buckets).astype(np.int64), settings.buckets - 1)


class SeasonalReference:
    """Per-bucket references, with the pooled one's summary for alerts.

    >>> s = SeasonalitySettings(period=100, buckets=2, min_values=5)
    >>> t = np.arange(200.0) % 100
    >>> x = np.where(t < 50, 0.0, 10.0) + (np.arange(200) % 7)
    >>> ref = SeasonalReference.fit(x, t, s, size=1000)
    >>> ref.ranks(np.array([3.0, 13.0]), np.array([10.0, 60.0])).round(2).tolist()
    [0.51, 0.5]
    """

    def __init__(self, settings: SeasonalitySettings, buckets: list[NumericReference | None],
                 pooled: NumericReference, weights: FloatArray) -> None:
        self.settings = settings
        self.buckets = buckets
        self.pooled = pooled
        self.weights = weights  # each bucket's share of the reference values
        self.mean, self.std = pooled.mean, pooled.std
        sizes = sorted(b.n for b in buckets if b is not None)
        # The reference error a run of values sees is mostly its own bucket's.
        self.n = sizes[len(sizes) // 2] if sizes else pooled.n
        #: Reference values per visit of a bucket (a one-day reference visits each once).
        self.run = 1.0

    @classmethod
    def fit(cls, values: FloatArray, times: FloatArray, settings: SeasonalitySettings,
            size: int) -> SeasonalReference:
        """From reference values and their event times (both without NaN)."""
        which = buckets_of(times, settings)
        refs: list[NumericReference | None] = []
        counts = np.bincount(which, minlength=settings.buckets)
        for b in range(settings.buckets):
            refs.append(NumericReference.summarizing(values[which == b], size)
                        if counts[b] >= settings.min_values else None)
        pooled = NumericReference.summarizing(values, size)
        ref = cls(settings, refs, pooled, counts / max(int(counts.sum()), 1))
        in_order = which[np.argsort(times, kind="stable")]
        visits = 1 + int(np.count_nonzero(np.diff(in_order)))
        ref.run = in_order.size / visits
        return ref

    def inflation_floor(self) -> float:
        """The long-run variance factor that the buckets' own reference error gives ranks:
        a run of ``r`` live values in a bucket of ``n`` reference values shares an offset
        of variance ``Var(u) / n``, which adds ``r / n`` to the factor (counted
        ``SEASONAL_MARGIN`` times). ``r`` is taken as the reference's own values per visit
        of a bucket (live traffic at the reference's rate): ``n`` for a one-day reference
        of a daily period, ``n / d`` for ``d`` days. A batch-means estimate sees this only
        when its batches are longer than a run.

        >>> s = SeasonalitySettings(period=100, buckets=2, min_values=5)
        >>> t = np.arange(400.0)  # four periods: each bucket visited four times
        >>> ref = SeasonalReference.fit(np.arange(400.0) % 9, t, s, size=1000)
        >>> ref.n, ref.run, ref.inflation_floor()
        (200, 50.0, 1.5)
        """
        return 1.0 + SEASONAL_MARGIN * self.run / self.n

    def ranks(self, values: FloatArray, times: FloatArray) -> FloatArray:
        out = np.empty(values.size)
        which = buckets_of(times, self.settings)
        for b in np.unique(which).tolist():
            at = which == b
            out[at] = (self.buckets[b] or self.pooled).ranks(values[at])
        return out

    def sorted_sample(self) -> FloatArray:
        """The pooled reference's sample: drift scores of a seasonal series compare the
        recent values with all buckets together (the cycle itself shows in them)."""
        return self.pooled.sorted_sample()

    def quantile_bins(self, bins: int = 10) -> tuple[FloatArray, FloatArray]:
        """The pooled reference's quantile bins (see ``sorted_sample``)."""
        return self.pooled.quantile_bins(bins)

    def law(self) -> tuple[FloatArray, FloatArray]:
        """The mixture of the buckets' laws, weighted by their reference shares."""
        supports, shares = [], []
        for ref, weight in zip(self.buckets, self.weights.tolist(), strict=True):
            support, probs = (ref or self.pooled).law()
            supports.append(support)
            shares.append(probs * weight)
        return np.concatenate(supports), np.concatenate(shares)


class SeasonalSample:
    """Live values and times collected until a full period has passed since the first.

    The value that completes the period (the first whose time is a period or more
    after the first value's) is not taken: it is the first to be ranked, whatever
    the batches the values came in.
    """

    def __init__(self) -> None:
        self._values: list[FloatArray] = []
        self._times: list[FloatArray] = []
        self._start: float | None = None

    def take(self, values: FloatArray, times: FloatArray, period: float) -> tuple[int, bool]:
        """How many of ``values`` were taken, and whether the period is complete."""
        if self._start is None and values.size:
            self._start = float(times[0])
        if self._start is None:
            return 0, False
        past = np.flatnonzero(times >= self._start + period)
        end = int(past[0]) if past.size else values.size
        self._values.append(values[:end])
        self._times.append(times[:end])
        return end, bool(past.size)

    def data(self) -> tuple[FloatArray, FloatArray]:
        return np.concatenate(self._values), np.concatenate(self._times)
