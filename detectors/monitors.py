"""Monitors of one series: river detectors over bounded streams.

A monitor takes a column of values (with their positions in the batch) and
returns the detections it made. Processing a column at once or in pieces
gives the same detections: batch boundaries never change what fires.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, count
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift

from detectors.config import (
    AdwinSettings,
    CategoricalSettings,
    MissingSettings,
    NumericSettings,
    PageHinkleySettings,
)
from detectors.reference import (
    CategoricalReference,
    CategoryCounter,
    NumericReference,
    change_point,
)
from detectors.stats.scores import bin_shares, jensen_shannon, psi, wasserstein1_sd

FloatArray = npt.NDArray[np.float64]
#: Batch row -> how many times to divide the configured false-alarm rate of a series
#: whose detectors start at that row (see ``BudgetSplit``); None: not at all.
Split = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector firing at one position of the input column."""

    position: int
    detector: str
    stats: dict[str, Any] = field(default_factory=dict)


class Adwin:
    """river's ADWIN, updated through its compiled core.

    ``ADWIN.update`` wraps the Rust ``AdaptiveWindowing.update`` in Python that
    costs 4x the update itself (measured); the run loop calls it for every value.
    A fresh ``Adwin`` replaces one that fired, so the wrapper's reset is not needed.
    river is pinned below 0.27 for this private ``_helper``; the doctest breaks if it moves.

    >>> a = Adwin(AdwinSettings(delta=0.002))
    >>> fired = [i for i, x in enumerate([0.0] * 500 + [1.0] * 100) if a.update(x)]
    >>> fired[0] > 500, a.width < 600
    (True, True)
    """

    __slots__ = ("_core", "update")

    def __init__(self, settings: AdwinSettings, split: float = 1.0) -> None:
        # ADWIN's delta bounds its false-alarm probability (a union bound over its cuts):
        # dividing it by ``split`` divides that bound by ``split`` (Bonferroni).
        detector: Any = drift.ADWIN(delta=settings.delta / split, clock=settings.clock)  # type: ignore[no-untyped-call]
        self._core: Any = detector._helper
        self.update: Callable[[float], bool] = self._core.update

    @property
    def width(self) -> int:
        return int(self._core.get_width())

    @property
    def estimation(self) -> float:
        width = self._core.get_width()
        return float(self._core.get_total() / width) if width else 0.0


class BlockMeans:
    """Means of consecutive blocks of ``size`` values, the last partial block carried over.

    Each block's mean is computed from the same values in the same order
    whatever the column boundaries, so detections do not depend on batch sizes.

    >>> b = BlockMeans(2)
    >>> b.feed([1.0, 2.0, 3.0])
    ([1.5], 1)
    >>> b.feed([5.0, 7.0, 9.0])
    ([4.0, 8.0], 0)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._carry: FloatArray = np.empty(0)

    def feed(self, values: FloatArray | list[float]) -> tuple[list[float], int]:
        """Means of the blocks that ``values`` completes, and the index in ``values`` of
        the first one's last value (the others end every ``size`` values after it)."""
        size = self.size
        first_end = size - len(self._carry) - 1
        data = np.concatenate((self._carry, np.asarray(values, dtype=np.float64)))
        full = len(data) // size * size
        self._carry = data[full:]
        if not full:
            return [], first_end
        return (data[:full].reshape(-1, size).sum(axis=1) / size).tolist(), first_end


def first_true(flags: Iterator[bool]) -> int | None:
    """Index of the first true flag, or None; the loop runs in C, not in bytecode.

    >>> first_true(iter([False, False, True, True])), first_true(iter([False]))
    (2, None)
    """
    return next(compress(count(), flags), None)


class BudgetSplit:
    """How many times a model's series divide their configured false-alarm rates.

    ``free`` series run their settings as configured; a model of ``S > free`` series
    divides each series' rate by ``S / free``, so the whole model raises about as many
    false alarms as ``free`` series would (a Bonferroni split). S counts the series
    that started at or before a batch row (``before`` the batch, then ``starts``), so
    where batches are cut never changes the split a detector gets.

    >>> split = BudgetSplit(free=10, before=8, starts=[3, 3, 7, 9])
    >>> split(0), split(3), split(9)
    (1.0, 1.0, 1.2)
    """

    __slots__ = ("_before", "_free", "_starts")

    def __init__(self, free: int, before: int, starts: list[int]) -> None:
        self._free = free
        self._before = before
        self._starts = sorted(starts)

    def __call__(self, position: int) -> float:
        series = self._before + bisect_right(self._starts, position)
        return max(1.0, series / self._free)


def _adwin(settings: AdwinSettings, split: float = 1.0) -> Adwin | None:
    return Adwin(settings, split) if settings.enabled else None


def tightened_threshold(settings: PageHinkleySettings, split: float) -> float:
    """Page-Hinkley's threshold for about ``split`` times fewer false alarms.

    On means of ``block`` ranks (variance at most 1 / (12 block)), Page-Hinkley is a
    CUSUM whose mean run between false alarms grows as exp(2 delta h / variance)
    (Siegmund's approximation): raising h by variance ln(split) / (2 delta) multiplies
    it by ``split``. Without a drift allowance the run grows as h^2: h x sqrt(split).

    >>> s = PageHinkleySettings()
    >>> tightened_threshold(s, 1.0), round(tightened_threshold(s, 10.0), 3)
    (0.2, 0.238)
    """
    if split <= 1.0:
        return settings.threshold
    if settings.delta == 0.0:
        return settings.threshold * math.sqrt(split)
    variance = 1.0 / (12.0 * settings.block)
    return settings.threshold + variance * math.log(split) / (2.0 * settings.delta)


def _page_hinkley(settings: PageHinkleySettings, split: float = 1.0) -> Any:
    if not settings.enabled:
        return None
    return drift.PageHinkley(
        min_instances=settings.min_instances,
        delta=settings.delta,
        threshold=tightened_threshold(settings, split),
        alpha=settings.alpha,
        mode="both",
    )


def _round(x: float) -> float:
    # Alerts are compared byte for byte: a fixed precision keeps them short and stable.
    return round(x, 6)


#: Quantile bins of a numeric reference for PSI and Jensen-Shannon.
SCORE_BINS = 10


def numeric_scores(reference: NumericReference, window: FloatArray) -> dict[str, float]:
    """PSI and Jensen-Shannon distance of ``window`` on the reference's ``SCORE_BINS``
    quantile bins, and its Wasserstein-1 distance from the reference sample in reference
    standard deviations (``detectors.stats.scores``)."""
    edges, expected = reference.quantile_bins(SCORE_BINS)
    observed = bin_shares(edges, window)
    return {"psi": psi(expected, observed),
            "jensen_shannon": jensen_shannon(expected, observed),
            "wasserstein": wasserstein1_sd(reference.sorted_sample(), window, reference.std)}


def categorical_scores(reference: CategoricalReference, window: Sequence[str]
                       ) -> dict[str, float]:
    """PSI and Jensen-Shannon distance of ``window``'s shares of the reference's categories
    and of 'other' (every category the reference does not keep) against the reference's."""
    counts = Counter(window)
    seen = [counts.get(name, 0) for name in reference.frequencies]
    expected = [*reference.frequencies.values(), reference.other_frequency]
    observed = [*seen, len(window) - sum(seen)]
    return {"psi": psi(expected, observed), "jensen_shannon": jensen_shannon(expected, observed)}


def _score_stats(scores: dict[str, float], n: int) -> dict[str, Any]:
    return {**{k: _round(v) for k, v in scores.items()}, "n": n}


class NumericMonitor:
    """Location and spread of a numeric series, in ranks of a warm-up reference.

    The first ``warmup`` values build the reference; each later value becomes
    its mid-rank ``u`` in [0, 1]. ADWIN watches ``u`` and Page-Hinkley the means
    of blocks of ``u`` (location); a second ADWIN watches ``|2u - 1|`` (spread).
    After a detection the monitor re-baselines: it collects a new reference
    from the values that follow. A ``reference`` given at construction (e.g. from
    a reference file) replaces the first warm-up.

    >>> import random
    >>> rng = random.Random(7)
    >>> m = NumericMonitor(NumericSettings(), warmup=500)
    >>> before = [rng.gauss(100.0, 10.0) for _ in range(3000)]
    >>> m.update(before, range(3000))
    []
    >>> after = [rng.gauss(110.0, 10.0) for _ in range(3000)]
    >>> hits = m.update(after, range(3000, 6000))
    >>> len(hits), hits[0].position < 3300
    (1, True)
    """

    def __init__(self, settings: NumericSettings, warmup: int,
                 warmup_after_alert: int | None = None, recent_window: int = 1000,
                 reference: NumericReference | None = None) -> None:
        self.settings = settings
        self.warmup = warmup
        self.warmup_after_alert = warmup_after_alert or warmup
        self.recent_window = recent_window
        self._recent: FloatArray = np.empty(0)
        self._sample: list[FloatArray] = []
        self._sampled = 0
        self._target = warmup
        self.reference = reference
        self._armed = False  # detectors built for the current reference

    @property
    def warming_up(self) -> bool:
        return self.reference is None

    def _reset_detectors(self, split: float) -> None:
        self._location = _adwin(self.settings.adwin, split)
        self._spread = _adwin(self.settings.spread, split)
        self._ph = _page_hinkley(self.settings.page_hinkley, split)
        self._ph_blocks = BlockMeans(self.settings.page_hinkley.block)
        self._spread_blocks = BlockMeans(self.settings.spread_block)
        self._armed = True

    def _rebaseline(self) -> None:
        self.reference = None
        self._target = self.warmup_after_alert
        self._armed = False

    def _remember(self, xs: FloatArray) -> None:
        self._recent = np.concatenate((self._recent, xs))[-self.recent_window :]

    def update(self, values: Sequence[float] | FloatArray, positions: Sequence[int],
               split: Split | None = None) -> list[Detection]:
        """Detections in ``values`` (at batch rows ``positions``); ``split`` divides the
        false-alarm rate of detectors that start in this column (``BudgetSplit``)."""
        xs = np.asarray(values, dtype=np.float64)
        detections: list[Detection] = []
        i, n = 0, len(xs)
        while i < n:
            if self.reference is None:
                take = min(self._target - self._sampled, n - i)
                chunk = xs[i : i + take]
                self._sample.append(chunk)
                self._sampled += take
                self._remember(chunk)
                i += take
                if self._sampled >= self._target:
                    self.reference = NumericReference(np.concatenate(self._sample))
                    self._sample, self._sampled = [], 0
                continue
            if not self._armed:
                self._reset_detectors(split(positions[i]) if split else 1.0)
            rest = xs[i:]
            ranks = self.reference.ranks(rest)
            hit = self._scan(ranks)
            if hit is None:
                self._remember(rest)
                break
            k, name = hit
            self._remember(rest[: k + 1])
            detections.append(Detection(positions[i + k], name, self._stats(name)))
            i += k + 1
            self._rebaseline()
        return detections

    def _scan(self, ranks: FloatArray) -> tuple[int, str] | None:
        """The first detection in ``ranks``: its index and detector, or None.

        Each detector runs over the column on its own, up to the earliest hit so
        far; on a tie the one listed first wins. Feeding a detector past another's
        hit is harmless: every detector restarts after a detection.
        """
        values = ranks.tolist()
        hit: tuple[int, str] | None = None
        if self._location is not None:
            k = first_true(map(self._location.update, values))
            hit = None if k is None else (k, "adwin")
        end = len(values) if hit is None else hit[0]
        if self._spread is not None:
            means, first = self._spread_blocks.feed(np.abs(2.0 * ranks[:end] - 1.0))
            j = first_true(map(self._spread.update, means))
            if j is not None:
                hit = (first + j * self._spread_blocks.size, "adwin_spread")
                end = hit[0]
        if self._ph is not None:
            means, first = self._ph_blocks.feed(ranks[:end])
            for j, mean in enumerate(means):
                self._ph.update(mean)
                if self._ph.drift_detected:
                    hit = (first + j * self._ph_blocks.size, "page_hinkley")
                    break
        return hit

    def scores(self) -> dict[str, float] | None:
        """Drift scores of the last ``recent_window`` values against the reference
        (``numeric_scores``: psi, jensen_shannon, wasserstein); None while warming up and
        until the window is full (on a few values the scores are mostly noise)."""
        if self.reference is None or len(self._recent) < self.recent_window:
            return None
        return numeric_scores(self.reference, self._recent)

    def _stats(self, detector: str) -> dict[str, Any]:
        ref = self.reference
        assert ref is not None
        ranks = ref.ranks(self._recent)
        watched = np.abs(2.0 * ranks - 1.0) if detector == "adwin_spread" else ranks
        after = self._recent[change_point(watched) :]
        return {
            "before": {"mean": _round(ref.mean), "std": _round(ref.std), "n": ref.n},
            "after": {
                "mean": _round(math.fsum(after.tolist()) / after.size),
                "std": _round(float(after.std())),
                "n": int(after.size),
            },
            # Of the values since the change, as ``after``: over the whole window the
            # scores of a change caught early would be mostly the reference's own values.
            "scores": _score_stats(numeric_scores(ref, after), int(after.size)),
        }


class CategoricalMonitor:
    """Category frequencies and the rate of categories unseen in the reference.

    The reference keeps the ``max_categories`` most frequent categories of the
    warm-up (counted in bounded memory); everything else is 'other'. ADWIN
    watches each value's rank in the reference distribution (frequency shift)
    and a second ADWIN the indicator 'not a reference category' (unseen rate).

    >>> m = CategoricalMonitor(CategoricalSettings(), warmup=200)
    >>> m.update(["DE", "FR", "DE", "US"] * 500, range(2000))
    []
    >>> hits = m.update(["BR"] * 2000, range(2000, 4000))
    >>> len(hits), hits[0].detector, "BR" in hits[0].stats["after"]["top"]
    (1, 'adwin_unseen', True)
    """

    def __init__(self, settings: CategoricalSettings, warmup: int,
                 warmup_after_alert: int | None = None, recent_window: int = 1000,
                 reference: CategoricalReference | None = None) -> None:
        self.settings = settings
        self.warmup = warmup
        self.warmup_after_alert = warmup_after_alert or warmup
        self.recent_window = recent_window
        self._recent: list[str] = []
        self._target = warmup
        self._counter = CategoryCounter(capacity=4 * settings.max_categories)
        self.reference = reference
        self._armed = False  # detectors built for the current reference

    @property
    def warming_up(self) -> bool:
        return self.reference is None

    def _reset_detectors(self, split: float) -> None:
        self._frequency = _adwin(self.settings.adwin, split)
        self._unseen = _adwin(self.settings.unseen, split)
        self._armed = True

    def _rebaseline(self) -> None:
        self.reference = None
        self._counter = CategoryCounter(capacity=4 * self.settings.max_categories)
        self._target = self.warmup_after_alert
        self._armed = False

    def _remember(self, values: Sequence[str]) -> None:
        self._recent = (self._recent + list(values))[-self.recent_window :]

    def update(self, values: Sequence[str], positions: Sequence[int],
               split: Split | None = None) -> list[Detection]:
        detections: list[Detection] = []
        i, n = 0, len(values)
        while i < n:
            if self.reference is None:
                counter = self._counter
                take = min(self._target - counter.total, n - i)
                chunk = values[i : i + take]
                for v in chunk:
                    counter.add(v)
                self._remember(chunk)
                i += take
                if counter.total >= self._target:
                    self.reference = CategoricalReference(
                        counter.counts, counter.total, self.settings.max_categories
                    )
                continue
            if not self._armed:
                self._reset_detectors(split(positions[i]) if split else 1.0)
            rest = values[i:]
            hit = self._scan(rest, self.reference)
            if hit is None:
                self._remember(rest)
                break
            k, name = hit
            self._remember(rest[: k + 1])
            detections.append(Detection(positions[i + k], name, self._stats(name)))
            i += k + 1
            self._rebaseline()
        return detections

    def _scan(self, values: Sequence[str], ref: CategoricalReference
              ) -> tuple[int, str] | None:
        ranks = ref.ranks(values)
        hit: tuple[int, str] | None = None
        if self._frequency is not None:
            k = first_true(map(self._frequency.update, ranks))
            hit = None if k is None else (k, "adwin")
        end = len(ranks) if hit is None else hit[0]
        if self._unseen is not None:
            known = ref.is_known
            flags = [0.0 if known(v) else 1.0 for v in values[:end]]
            k = first_true(map(self._unseen.update, flags))
            if k is not None:
                hit = (k, "adwin_unseen")
        return hit

    def scores(self) -> dict[str, float] | None:
        """Drift scores of the last ``recent_window`` values against the reference
        (``categorical_scores``: psi, jensen_shannon); None while warming up and until
        the window is full."""
        if self.reference is None or len(self._recent) < self.recent_window:
            return None
        return categorical_scores(self.reference, self._recent)

    def _stats(self, detector: str) -> dict[str, Any]:
        ref = self.reference
        assert ref is not None
        if detector == "adwin_unseen":
            watched = [0.0 if ref.is_known(v) else 1.0 for v in self._recent]
        else:
            watched = ref.ranks(self._recent)
        recent = self._recent[change_point(watched) :]
        counts = CategoryCounter(capacity=4 * self.settings.max_categories)
        for v in recent:
            counts.add(v)
        top_n = 5
        return {
            "before": {
                "top": {k: _round(f) for k, f in list(ref.frequencies.items())[:top_n]},
                "other": _round(ref.other_frequency),
                "n": ref.n,
            },
            "after": {
                "top": {k: _round(c / len(recent)) for k, c in counts.top(top_n)},
                "unseen": _round(sum(not ref.is_known(v) for v in recent) / len(recent)),
                "n": len(recent),
            },
            "scores": _score_stats(categorical_scores(ref, recent), len(recent)),
        }


class MissingMonitor:
    """ADWIN on the missing share of consecutive blocks of values.

    >>> m = MissingMonitor(MissingSettings())
    >>> m.update(np.zeros(5000, dtype=bool), range(5000))
    []
    >>> hits = m.update(np.arange(3000) % 5 == 0, range(5000, 8000))
    >>> hits[0].detector, hits[0].stats["before"]["missing_rate"]
    ('adwin_missing', 0.0)
    >>> 0.15 < hits[0].stats["after"]["missing_rate"] < 0.25
    True
    """

    def __init__(self, settings: MissingSettings) -> None:
        self.settings = settings
        self._adwin: Adwin | None = None  # built at the first value, with its split
        self._fill = 0  # values in the current, unfinished block
        self._count = 0  # missing values among them
        self._recent: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._recent_window = 1000

    def update(self, missing: npt.NDArray[np.bool_], positions: Sequence[int],
               split: Split | None = None) -> list[Detection]:
        if not self.settings.adwin.enabled or not len(missing):
            return []
        if self._adwin is None:
            self._adwin = Adwin(self.settings.adwin, split(positions[0]) if split else 1.0)
        size = self.settings.block
        n = len(missing)
        total = self._fill + n
        recent = np.concatenate((self._recent, missing))
        self._recent = recent[-self._recent_window :]
        if total < size:
            self._fill, self._count = total, self._count + int(missing.sum())
            return []
        # Block j ends at index ends[j] of this column; integer counts keep it exact.
        ends = np.arange(size - self._fill - 1, n, size)
        cumulative = np.cumsum(missing, dtype=np.int64)
        counts = np.diff(cumulative[ends], prepend=0)
        counts[0] += self._count
        detections: list[Detection] = []
        shares = (counts / size).tolist()
        j = 0
        while (k := first_true(map(self._adwin.update, shares[j:]))) is not None:
            end = int(ends[j + k])
            seen = recent[: len(recent) - n + end + 1][-self._recent_window :]
            detections.append(Detection(positions[end], "adwin_missing", _rate_stats(seen)))
            self._adwin = Adwin(self.settings.adwin, split(positions[end]) if split else 1.0)
            j += k + 1
        last = int(ends[-1])
        self._fill = n - last - 1
        self._count = int(cumulative[-1] - cumulative[last])
        return detections


def _rate_stats(missing: npt.NDArray[np.bool_]) -> dict[str, Any]:
    split = change_point(missing.astype(np.float64))
    before, after = missing[:split], missing[split:]
    return {
        "before": {"missing_rate": _round(float(before.mean())) if before.size else None,
                   "n": int(before.size)},
        "after": {"missing_rate": _round(float(after.mean())), "n": int(after.size)},
    }
