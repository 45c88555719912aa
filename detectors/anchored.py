"""Tests of a live stream against its reference's in-control law.

While nothing drifted, a value's mid-rank ``u`` in the reference (a probability
integral transform) follows a law known from the reference alone: its support is
the reference's distinct mid-ranks with their shares (so ``E[u] = 1/2`` exactly and,
with ties, ``Var[u] = (1 - sum p^3) / 12``), and the share of values in each bin of
``u`` is known too. The change detectors of ``monitors.py`` look for a change *within*
the stream; the tests here compare the stream with that law, so a stream that
differs from its reference from its first value (training-serving skew) is caught.

Three statistics per series, each a CUSUM (``stats/cusum.py``) on block statistics:

- location: block means of ``u`` against 1/2;
- spread: block means of ``|2u - 1|`` against their in-control mean;
- shape / category mix: Pearson's chi-square of the bin counts of a window against
  the reference's shares (numeric: bins of ``u``, i.e. of the reference's quantiles;
  categorical: the frequent categories, the rest seen in the reference, and unseen
  values), against its in-control mean (one-sided).

What they assume, and how each assumption is paid for:

- *A finite reference.* Ranks against ``n`` reference values are uniform only up to
  the reference's own sampling error: the in-control mean of a block statistic is off
  its nominal value by up to ``bias_z`` standard errors ``sqrt(L Var / n)``, and by up
  to the mass the reference cannot have seen (``3 / n``, the rule of three) times the
  largest departure. The CUSUM's slack is that bound plus the effect floor, so a
  stream that matches the law up to the reference's error drifts down, whichever
  reference was drawn. The chi-square's in-control mean grows by ``window / n`` (the
  reference shares' own variance).
- *Dependence.* Block statistics of a dependent stream vary ``L`` times more than of
  independent values (``stats/lrv.py``); ``L`` is estimated on a calibration stretch
  of the live stream and multiplies every variance, the bias bound's included.
- *An effect worth a page.* ``min_effect`` (reference standard deviations of a normal
  location shift) becomes a floor in each statistic's units (``effect_floor``,
  ``chi2_floor``): departures below it never accumulate.

Thresholds come from Wald's identity with each statistic's own in-control law
(``stats/cusum.threshold_for_mean``, ``threshold_for_chi2``: the tails of a skewed law
or of a chi-square are not normal) for
``false_alarms_per_million`` per series, split over the three statistics and, with
the false-alarm budget, over the model's series.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from detectors.config import AnchoredSettings
from detectors.stats.cusum import Alarm, Cusum, threshold_for_chi2, threshold_for_mean

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NORMAL = NormalDist()
#: Statistics per series that share its false-alarm rate (location, spread, chi-square).
STATISTICS = 3
#: Bins of the chi-square test on numeric series (reference deciles).
RANK_BINS = 10
#: Fewest expected values of a chi-square bin per window (Cochran's rule); rarer bins merge.
MIN_EXPECTED = 5.0


def effect_floor(min_effect: float) -> float:
    """The departure of a mean rank from 1/2 that a shift of ``min_effect`` standard
    deviations gives a normal feature: ``Phi(d / sqrt 2) - 1/2`` (the rank of
    ``X + d`` among draws of ``X`` is ``Phi`` of a N(d, 2) variable's standardised value).

    >>> round(effect_floor(0.1), 4), round(effect_floor(0.5), 4)
    (0.0282, 0.1382)
    """
    return _NORMAL.cdf(min_effect / math.sqrt(2.0)) - 0.5


def chi2_floor(min_effect: float, bins: int = RANK_BINS) -> float:
    """Cohen's ``w^2 = sum (p1 - p0)^2 / p0`` of a ``min_effect`` sd shift of a normal
    feature over ``bins`` equiprobable bins: the chi-square's noncentrality per value
    that the floor allows (Cohen 1988, ch. 7).

    >>> round(chi2_floor(0.1), 5), round(chi2_floor(0.5), 4)
    (0.00961, 0.254)
    """
    edges = [-math.inf] + [_NORMAL.inv_cdf(i / bins) for i in range(1, bins)] + [math.inf]
    p0 = 1.0 / bins
    w2 = 0.0
    for lo, hi in itertools.pairwise(edges):
        p1 = _NORMAL.cdf(hi - min_effect) - _NORMAL.cdf(lo - min_effect)
        w2 += (p1 - p0) ** 2 / p0
    return w2


def slack_margin(floor: float, sigma2: float) -> float:
    """A CUSUM's slack beyond the reference's bias bound: the effect floor, or half a
    block's standard deviation if that is larger (the usual design ``k = delta / 2``
    for a shift of one standard deviation; a slack much smaller than the noise would
    need a threshold many standard deviations high, and slow every detection).

    >>> slack_margin(0.028, 1 / 600), round(slack_margin(0.028, 25 / 600), 3)
    (0.028, 0.102)
    """
    return max(floor, 0.5 * math.sqrt(sigma2))


def chi2_quantile(df: int, z: float) -> float:
    """The chi-square(df) quantile ``z`` standard normal deviates up (Wilson & Hilferty 1931).

    >>> round(chi2_quantile(9, 3.0), 1), round(chi2_quantile(1, 3.0), 1)
    (27.3, 10.5)
    """
    c = 2.0 / (9.0 * df)
    return float(df * max(0.0, 1.0 - c + z * math.sqrt(c)) ** 3)


@dataclass(frozen=True, slots=True)
class RankLaw:
    """The in-control law of ``u``: distinct values ``support`` with shares ``probs``,
    from a reference of ``n`` values.

    >>> law = RankLaw.of(np.array([0.25, 0.75]), np.array([0.5, 0.5]), n=1000)
    >>> law.mean_u, law.var_u, law.mean_s, law.var_s
    (0.5, 0.0625, 0.5, 0.0)
    """

    support: FloatArray
    probs: FloatArray
    n: int
    mean_u: float
    var_u: float
    mean_s: float
    var_s: float

    @classmethod
    def of(cls, support: FloatArray, probs: FloatArray, n: int) -> RankLaw:
        p = probs / probs.sum()
        mean_u = float(np.dot(p, support))
        var_u = max(0.0, float(np.dot(p, (support - mean_u) ** 2)))
        s = np.abs(2.0 * support - 1.0)
        mean_s = float(np.dot(p, s))
        var_s = max(0.0, float(np.dot(p, (s - mean_s) ** 2)))
        return cls(support, p, n, mean_u, var_u, mean_s, var_s)

    @property
    def unseen(self) -> float:
        """Mass the reference may have missed (the rule of three: 3 / n)."""
        return min(1.0, 3.0 / self.n)

    def rank_bins(self, window: int) -> tuple[IntArray, FloatArray]:
        """Chi-square bins of ``u``: for each of ``RANK_BINS`` equal slices of [0, 1], the
        merged bin it belongs to, and each merged bin's in-control share (``merge_small``).

        >>> law = RankLaw.of(np.array([0.25, 0.75]), np.array([0.5, 0.5]), n=1000)
        >>> group, shares = law.rank_bins(250)
        >>> group.tolist(), shares.tolist()
        ([0, 0, 0, 1, 1, 1, 1, 1, 1, 1], [0.5, 0.5])
        """
        slice_of = np.minimum((self.support * RANK_BINS).astype(np.int64), RANK_BINS - 1)
        shares = np.bincount(slice_of, weights=self.probs, minlength=RANK_BINS)
        return merge_small(shares.astype(np.float64), MIN_EXPECTED / window)


def merge_small(shares: FloatArray, least: float) -> tuple[IntArray, FloatArray]:
    """Adjacent bins merged, in order, until each holds at least ``least`` (the last
    remainder joins the bin before it): the merged bin of each bin, and merged shares.

    >>> group, merged = merge_small(np.array([0.01, 0.5, 0.0, 0.48, 0.01]), 0.05)
    >>> group.tolist(), merged.round(2).tolist()
    ([0, 0, 1, 1, 1], [0.51, 0.49])
    """
    group = np.zeros(shares.size, dtype=np.int64)
    merged: list[float] = []
    acc = 0.0
    for i, share in enumerate(shares.tolist()):
        group[i] = len(merged)
        acc += share
        if acc >= least:
            merged.append(acc)
            acc = 0.0
    if not merged:
        merged.append(acc)
    elif (group == len(merged)).any():  # a remainder after the last full bin
        group[group == len(merged)] = len(merged) - 1
        merged[-1] += acc
    return group, np.asarray(merged, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class AnchoredAlarm:
    """An alarm of one anchored statistic: the index of the value whose block or window
    crossed, the detector's name, the run's length in values and its mean departure."""

    index: int
    detector: str
    run_values: int
    departure: float


class BlockFeed:
    """Consecutive blocks of ``size`` values, the last partial block carried over: the
    same values give the same blocks whatever the column boundaries."""

    __slots__ = ("_carry", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._carry: FloatArray = np.empty(0)

    def blocks(self, values: FloatArray) -> tuple[FloatArray, int]:
        """The blocks ``values`` completes, as rows, and the index in ``values`` of the
        first one's last value (the others end every ``size`` values after it)."""
        carry, size = self._carry, self.size
        first_end = size - carry.size - 1
        total = carry.size + values.size
        if total < size:  # no block ends here (often, with many models): no rows to build
            if values.size:
                self._carry = np.concatenate((carry, values))
            return _NO_ROWS, first_end
        data = np.concatenate((carry, values)) if carry.size else values
        full = total // size * size
        self._carry = data[full:].copy()  # not a view that keeps the caller's array alive
        return data[:full].reshape(-1, size), first_end


_NO_ROWS: FloatArray = np.empty((0, 1))


class RankCusums:
    """Location and spread CUSUMs of block means of ``u`` against a ``RankLaw``.

    ``inflation`` is the long-run variance factor ``L`` (1: independent values);
    ``split`` divides the false-alarm rate (the model's budget).
    """

    __slots__ = ("_blocks", "_location", "_spread", "spread_enabled")

    def __init__(self, law: RankLaw, inflation: float, settings: AnchoredSettings,
                 min_effect: float, split: float = 1.0) -> None:
        block = settings.block
        floor = effect_floor(min_effect)
        arl = 2.0 * split * STATISTICS * 1e6 / settings.false_alarms_per_million / block
        q = law.unseen
        var_u = law.var_u + q * 0.25
        var_s = law.var_s + q * (1.0 - law.mean_s) ** 2
        z = settings.bias_z
        bias_u = z * math.sqrt(inflation * var_u / law.n) + q * 0.5
        bias_s = z * math.sqrt(inflation * var_s / law.n) + q * (1.0 - law.mean_s)
        sigma2_u, sigma2_s = inflation * var_u / block, inflation * var_s / block
        margin_u, margin_s = slack_margin(floor, sigma2_u), slack_margin(floor, sigma2_s)
        # Thresholds from the law itself (its skew: a rare flag's block means have a long
        # tail), with the mass the reference may have missed at the extremes, and the
        # block counted as block / L independent values under dependence.
        u = np.concatenate((law.support, [0.0, 1.0]))
        pu = np.concatenate((law.probs * (1.0 - q), [q / 2.0, q / 2.0]))
        spread = np.abs(2.0 * u - 1.0)
        size = block / max(1.0, inflation)
        self._location = Cusum(law.mean_u, bias_u + margin_u, _two_sided(
            threshold_for_mean(u, pu, size, margin_u, arl),
            threshold_for_mean(-u, pu, size, margin_u, arl)))
        self._spread = Cusum(law.mean_s, bias_s + margin_s, _two_sided(
            threshold_for_mean(spread, pu, size, margin_s, arl),
            threshold_for_mean(-spread, pu, size, margin_s, arl)))
        self._blocks = BlockFeed(block)

    def feed(self, ranks: FloatArray) -> AnchoredAlarm | None:
        """The first alarm among ``ranks`` (fed in order), or None."""
        rows, first = self._blocks.blocks(ranks)
        if not rows.size:
            return None
        size = self._blocks.size
        found: list[tuple[Alarm, str]] = []
        loc = self._location.update((rows.sum(axis=1) / size).tolist())
        if loc is not None:
            found.append((loc, "cusum_location"))
        end = rows.shape[0] if loc is None else loc.index + 1
        spread = self._spread.update((np.abs(2.0 * rows[:end] - 1.0).sum(axis=1) / size).tolist())
        if spread is not None:
            found.append((spread, "cusum_spread"))
        if not found:
            return None
        alarm, name = min(found, key=lambda f: f[0].index)  # stable: location first on a tie
        return AnchoredAlarm(first + alarm.index * size, name, alarm.run_blocks * size,
                             alarm.departure)


def _two_sided(upward: float, downward: float) -> float:
    """One threshold for both sums: the larger, but a side that can never exceed its slack
    (an infinite threshold: its sum stays 0) does not count.

    >>> _two_sided(0.2, math.inf), _two_sided(0.2, 0.3)
    (0.2, 0.3)
    """
    finite = [h for h in (upward, downward) if math.isfinite(h)]
    return max(finite) if finite else math.inf


class BinCusum:
    """One-sided CUSUM of Pearson's chi-square of window counts against bin ``shares``.

    Under the in-control law, with independent values and exact shares, the
    statistic of a window of ``w`` values has mean ``K - 1`` and variance ``2 (K - 1)``
    (Pearson 1900). Shares estimated from ``n`` reference values add about ``w / n``
    to each (the two-sample chi-square); dependence multiplies both by ``L``: the
    statistic is read as ``L (1 + w / n)`` times a chi-square, whose exponential tail
    sets the threshold (``threshold_for_chi2``). The reference shares' error is one
    draw that every window shares, so the slack bounds it (``w / n`` times the
    ``bias_z`` quantile excess of a chi-square) and adds ``w`` times Cohen's ``w^2`` of
    the effect floor (or half the statistic's standard deviation).

    >>> from detectors.config import AnchoredSettings
    >>> b = BinCusum(np.array([0.5, 0.5]), 10_000, 1.0, AnchoredSettings(), 0.1)
    >>> b.feed(np.zeros(250, dtype=np.int64)).detector  # every value in one bin
    'chi2'
    """

    __slots__ = ("_cusum", "_expected", "_filled", "_partial", "bins", "window")

    def __init__(self, shares: FloatArray, n: int, inflation: float,
                 settings: AnchoredSettings, min_effect: float, split: float = 1.0) -> None:
        self.window = w = settings.window
        self.bins = k = int(shares.size)
        self._expected = shares * w
        factor = inflation * (1.0 + w / n)
        mean0 = (k - 1) * factor
        var0 = 2.0 * (k - 1) * factor * factor
        margin = slack_margin(w * chi2_floor(min_effect), var0)
        # The reference's shares are off by a draw that every window shares: its excess
        # over the mean is up to w / n times a chi2(K - 1) beyond its mean (bias_z).
        bias = (inflation * w / n * (chi2_quantile(k - 1, settings.bias_z) - (k - 1))
                if k > 1 else 0.0)  # one bin: nothing to test (``feed`` returns None)
        arl = split * STATISTICS * 1e6 / settings.false_alarms_per_million / w
        self._cusum = Cusum(mean0, bias + margin,
                            threshold_for_chi2(k - 1, factor, margin, arl), two_sided=False)
        # The window under way: how many of its values have come, and their count per bin
        # (the statistic needs the counts only, so the values themselves are not kept).
        self._filled = 0
        self._partial: IntArray = np.zeros(max(k, 1), dtype=np.int64)

    def feed(self, bins: IntArray) -> AnchoredAlarm | None:
        """Bin index of each value, in order; the first alarm, or None."""
        if self.bins < 2:
            return None
        w, k, filled = self.window, self.bins, self._filled
        first_end = w - filled - 1
        windows, rest = divmod(filled + bins.size, w)
        if not windows:
            self._partial += np.bincount(bins, minlength=k)
            self._filled += bins.size
            return None
        # Rows: the window under way completed by the first values, then whole windows.
        head = bins[:w - filled]
        if windows == 1:  # the usual column (a few hundred values): one count, no layout
            counts = (np.bincount(head, minlength=k) + self._partial).reshape(1, k)
        else:
            ids = np.concatenate((head, bins[w - filled:windows * w - filled]
                                  + np.repeat(np.arange(1, windows, dtype=np.int64) * k, w)))
            counts = np.bincount(ids, minlength=windows * k).reshape(windows, k)
            counts[0] += self._partial
        tail = bins[bins.size - rest:] if rest else bins[:0]
        self._partial = np.bincount(tail, minlength=k)
        self._filled = rest
        chi2 = ((counts - self._expected) ** 2 / self._expected).sum(axis=1)
        alarm = self._cusum.update(chi2.tolist())
        if alarm is None:
            return None
        return AnchoredAlarm(first_end + alarm.index * w, "chi2", alarm.run_blocks * w,
                             alarm.departure)
