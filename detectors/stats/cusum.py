"""Two-sided CUSUM on block statistics with a known in-control mean (Page 1954).

The one-sided sums ``S+ = max(0, S+ + x - target - k)`` and
``S- = max(0, S- - x + target - k)`` accumulate departures of the block statistic
``x`` from its in-control ``target`` beyond the slack ``k``; an alarm is raised when
either exceeds ``h``. With independent blocks of variance ``sigma2`` and a true mean
``target + mu`` with ``|mu| < k``, the sums drift down by ``k - |mu|`` per block and
Siegmund's approximation gives an average run length (ARL) between false alarms of
about ``exp(2 (k - |mu|) h / sigma2)`` blocks for normal block statistics (Siegmund
1985, ch. II; Montgomery, *Introduction to Statistical Quality Control*, 9.1); the
thresholds here come from the same identity (Wald's) with each statistic's own law
(``threshold_for_mean``, ``threshold_for_chi2``), whose tails need not be normal.

The sums are updated one block at a time in a plain loop: the same blocks give the
same alarms and the same floating-point sums whatever the batches they came in.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def threshold_for_chi2(df: int, scale: float, slack: float, arl: float) -> float:
    """The decision interval for a CUSUM of ``scale * chi2(df)`` statistics against their
    mean ``df * scale`` with slack ``slack``, for an ARL of ``arl`` statistics.

    A chi-square's right tail is exponential, not normal, so the normal formula
    (``sigma2 ln(ARL) / (2 slack)``) understates how often few-df sums cross. Wald's identity gives
    the CUSUM's ARL as about ``exp(theta h)``, ``theta`` the positive root of
    ``E exp(theta Y) = 1`` for the increment ``Y`` (Siegmund 1985, ch. II;
    Lorden 1971): here ``-(df / 2) ln(1 - 2 scale theta) = theta (df scale + slack)``.

    >>> round(threshold_for_chi2(2, 1.0, 2.4, 1e5), 1)
    27.3
    """
    if df < 1 or scale <= 0.0:
        return 0.0
    mean = df * scale + slack

    def gap(theta: float) -> float:
        return -0.5 * df * math.log1p(-2.0 * scale * theta) - theta * mean

    lo, hi = 1e-12, 1.0 / (2.0 * scale)
    hi_inner = hi * (1.0 - 1e-12)
    if gap(hi_inner) <= 0.0:
        return math.inf
    lo = hi_inner / 2.0
    while gap(lo) > 0.0:  # the root lies above the minimum of ``gap``: start below it
        lo /= 2.0
    lo, _ = _bisect(gap, lo, hi_inner)
    return math.log(max(arl, math.e)) / lo


def threshold_for_mean(support: npt.ArrayLike, probs: npt.ArrayLike, size: float,
                       slack: float, arl: float) -> float:
    """The decision interval for an upward CUSUM of means of ``size`` independent draws
    from a discrete law (``support`` with ``probs``) against its mean, with slack
    ``slack``, for an ARL of ``arl`` means.

    Block means of a skewed law (a rare 0/1 flag, a near-constant feature) have a long
    right tail that the normal formula (``sigma2 ln(ARL) / (2 slack)``) understates. Wald's identity
    gives the ARL as about ``exp(theta h)`` with ``theta`` the positive root of
    ``E exp(theta Y) = 1`` for the increment ``Y = mean - E mean - slack`` (Siegmund
    1985, ch. II): ``size ln E exp(theta X / size) = theta (E X + slack)``, solved here
    with the law's exact moment generating function. ``size`` may be fractional (an
    effective block size under dependence). Downward departures: pass the negated
    support.

    >>> round(threshold_for_mean([0.0, 1.0], [0.5, 0.5], 50, 0.05, 4e5), 3)  # normal: 0.645
    0.641
    >>> round(threshold_for_mean([0.0, 1.0], [0.99, 0.01], 50, 0.05, 4e5), 3)  # normal: 0.0003
    0.085
    """
    x = np.ascontiguousarray(support, dtype=np.float64)
    p = np.ascontiguousarray(probs, dtype=np.float64)
    key = _law_key(x, p, size, slack, arl)
    known = _THRESHOLDS.get(key)
    if known is None:
        known = _THRESHOLDS.remember(key, _threshold_for_mean(x, p, size, slack, arl))
    return known


def _threshold_for_mean(x: npt.NDArray[np.float64], p: npt.NDArray[np.float64], size: float,
                        slack: float, arl: float) -> float:
    p = p / p.sum()
    mean = float(np.dot(p, x))
    if float(np.dot(p, (x - mean) ** 2)) <= 0.0:
        return 0.0
    centred = x - mean
    top = float(centred.max())
    if top <= slack:  # the statistic cannot exceed its slack: never alarms
        return math.inf

    z = np.empty_like(centred)

    def gap(theta: float) -> float:
        # size * ln E exp(theta (X - mean) / size) - theta * slack, computed stably: the
        # exponents less their largest, theta * top / size (theta > 0 and rounding is
        # monotone, so it is the largest of theta * centred / size, to the bit).
        np.multiply(centred, theta, out=z)
        np.divide(z, size, out=z)
        m = theta * top / size
        np.subtract(z, m, out=z)
        return size * (m + math.log(float(np.dot(p, np.exp(z))))) - theta * slack

    lo, hi = 1e-9, 1.0
    while gap(hi) <= 0.0:  # grows like theta * (top - slack) for large theta
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    _, hi = _bisect(gap, lo, hi)
    return math.log(max(arl, math.e)) / hi


class _Memo:
    """The last ``capacity`` thresholds by the digest of their exact inputs (oldest dropped).

    A threshold is a pure function of its inputs, so a hit returns the very float a
    solve would: every numeric feature whose reference has no ties has the same rank
    law (mid-ranks ``(i - 1/2) / n``), and a model's features calibrated alike share
    their thresholds instead of each solving them with 100 halvings over ``n`` points.
    """

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, float] = OrderedDict()

    def get(self, key: bytes) -> float | None:
        return self._items.get(key)

    def remember(self, key: bytes, value: float) -> float:
        self._items[key] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value


_THRESHOLDS = _Memo(1024)


def _law_key(x: npt.NDArray[np.float64], p: npt.NDArray[np.float64], *scalars: float) -> bytes:
    digest = hashlib.blake2b(x.tobytes(), digest_size=20)
    digest.update(p.tobytes())
    digest.update(np.asarray(scalars, dtype=np.float64).tobytes())
    digest.update(np.asarray(x.shape, dtype=np.int64).tobytes())
    return digest.digest()


def _bisect(gap: Callable[[float], float], lo: float, hi: float) -> tuple[float, float]:
    """100 halvings of [lo, hi] around the root of ``gap`` (at most ``lo``, above ``hi``).

    Once ``lo`` and ``hi`` are neighbouring floats the midpoint is one of them, and a
    bound that a halving has set keeps its side (``gap`` is a pure function): every
    halving left would change nothing, so they are skipped (about half of the 100, each
    a pass over the law's support), with the very bounds the 100 halvings give.
    """
    lo_set = hi_set = False  # a bound set by a halving: gap's sign there is known
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if (mid == lo and lo_set) or (mid == hi and hi_set):
            break
        if gap(mid) > 0.0:
            hi, hi_set = mid, True
        else:
            lo, lo_set = mid, True
    return lo, hi


@dataclass(frozen=True, slots=True)
class Alarm:
    """The block (index in the input) whose update crossed ``h``, the side, and the
    mean departure (statistic minus target) over the run that crossed: the blocks
    since that side's sum was last 0 (the CUSUM's change-point estimate)."""

    index: int
    upward: bool
    run_blocks: int
    departure: float


class Cusum:
    """Two-sided CUSUM of block statistics against ``target``.

    >>> c = Cusum(target=0.5, slack=0.05, threshold=0.3)
    >>> c.update([0.5, 0.52, 0.49]) is None
    True
    >>> alarm = c.update([0.7, 0.7, 0.7])
    >>> alarm.index, alarm.upward, alarm.run_blocks, round(alarm.departure, 3)
    (2, True, 3, 0.2)
    """

    __slots__ = ("_neg", "_neg_run", "_neg_sum", "_pos", "_pos_run", "_pos_sum", "slack",
                 "target", "threshold", "two_sided")

    def __init__(self, target: float, slack: float, threshold: float,
                 two_sided: bool = True) -> None:
        self.target = target
        self.slack = slack
        self.threshold = threshold
        self.two_sided = two_sided  # False: upward departures only (e.g. a chi-square)
        self.reset()

    def reset(self) -> None:
        self._pos = self._neg = 0.0
        self._pos_run = self._neg_run = 0
        self._pos_sum = self._neg_sum = 0.0

    @property
    def run_blocks(self) -> int:
        """Blocks in the longer of the two current runs (0 when both sums are 0)."""
        return max(self._pos_run, self._neg_run)

    def update(self, stats: Sequence[float]) -> Alarm | None:
        """Feed block statistics in order; the first alarm among them, or None.

        After an alarm the sums are reset; the caller decides what follows.
        """
        target, k, h = self.target, self.slack, self.threshold
        pos, neg = self._pos, self._neg
        pos_run, neg_run = self._pos_run, self._neg_run
        pos_sum, neg_sum = self._pos_sum, self._neg_sum
        for i, x in enumerate(stats):
            d = x - target
            pos += d - k
            if pos > 0.0:
                pos_run += 1
                pos_sum += d
            else:
                pos, pos_run, pos_sum = 0.0, 0, 0.0
            neg += -d - k if self.two_sided else -math.inf
            if neg > 0.0:
                neg_run += 1
                neg_sum += d
            else:
                neg, neg_run, neg_sum = 0.0, 0, 0.0
            if pos > h or neg > h:
                upward = pos - h >= neg - h
                run, total = (pos_run, pos_sum) if upward else (neg_run, neg_sum)
                self.reset()
                return Alarm(i, upward, run, total / run)
        self._pos, self._neg = pos, neg
        self._pos_run, self._neg_run = pos_run, neg_run
        self._pos_sum, self._neg_sum = pos_sum, neg_sum
        return None
