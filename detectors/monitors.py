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
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift

from detectors.anchored import (
    MIN_EXPECTED,
    RANK_BINS,
    AnchoredAlarm,
    BinCusum,
    BlockFeed,
    RankCusums,
    RankLaw,
    effect_floor,
    merge_small,
)
from detectors.config import (
    AdwinSettings,
    AnchoredSettings,
    CalibrationSettings,
    CategoricalSettings,
    MissingSettings,
    NumericSettings,
    PageHinkleySettings,
    SeasonalitySettings,
)
from detectors.figures import mean_std, significant
from detectors.reference import (
    FLOAT32_MAX,
    CategoricalReference,
    CategoryCounter,
    CategoryWindow,
    NumericReference,
    SeenCategories,
    change_point,
    nearest_float32,
)
from detectors.seasonal import SeasonalReference, SeasonalSample
from detectors.stats.lrv import variance_inflation
from detectors.stats.scores import bin_shares, jensen_shannon, psi, wasserstein1_sd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Batch row -> how many times to divide the configured false-alarm rate of a series
#: whose detectors start at that row (see ``BudgetSplit``); None: not at all.
Split = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector firing at one position of the input column."""

    position: int
    detector: str
    stats: dict[str, Any] = field(default_factory=dict)


#: river's compiled ADWIN core (``drift.ADWIN()._helper``), the state of an ``Adwin``.
_ADWIN_CORE = type(drift.ADWIN()._helper)  # type: ignore[no-untyped-call]


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

    def __init__(self, settings: AdwinSettings, split: float = 1.0,
                 inflation: float = 1.0) -> None:
        # ADWIN's delta bounds its false-alarm probability (a union bound over its cuts):
        # dividing it by ``split`` divides that bound by ``split`` (Bonferroni).
        detector: Any = drift.ADWIN(delta=inflated_delta(settings.delta / split, inflation),  # type: ignore[no-untyped-call]
                                    clock=settings.clock)
        self._core: Any = detector._helper
        self.update: Callable[[float], bool] = self._core.update

    def scan(self, values: list[float], floor: float = 0.0) -> int | None:
        """Index of the first value at which ADWIN cut its window with a change of the
        mean that may be ``floor`` or more between the part it dropped and the part it
        kept: cuts whose change is below ``floor`` even at its upper confidence bound
        (two standard errors, the variance of a [0, 1] stream bounded by ``m (1 - m)``)
        are passed over (ADWIN has moved on to the kept part). A cut early in a change
        keeps few values, so its bound is wide and it fires.
        """
        if not values:
            return None
        core, start = self._core, 0
        while True:
            width, total = core.get_width(), core.get_total()
            k = first_true(map(self.update, values[start:]))
            if k is None:
                return None
            kept_width, kept_total = core.get_width(), core.get_total()
            dropped = width + k + 1 - kept_width
            if floor <= 0.0 or dropped <= 0 or not kept_width:
                return start + k
            dropped_total = total + math.fsum(values[start : start + k + 1]) - kept_total
            change = abs(kept_total / kept_width - dropped_total / dropped)
            mean = (kept_total + dropped_total) / (kept_width + dropped)
            spread = max(mean * (1.0 - mean), 0.0)
            if change + 2.0 * math.sqrt(spread / kept_width + spread / dropped) >= floor:
                return start + k
            start += k + 1

    def __getstate__(self) -> dict[str, Any]:
        # A snapshot holds the core alone; ``update`` is its method, bound again on decode.
        return {"_core": self._core}

    def __setstate__(self, state: dict[str, Any]) -> None:
        core = state.get("_core")
        if set(state) != {"_core"} or type(core) is not _ADWIN_CORE:
            raise ValueError("Adwin: its state is not one river ADWIN core")
        self._core = core
        self.update = core.update

    @property
    def width(self) -> int:
        return int(self._core.get_width())

    @property
    def estimation(self) -> float:
        width = self._core.get_width()
        return float(self._core.get_total() / width) if width else 0.0


class BlockMeans(BlockFeed):
    """Means of consecutive blocks of ``size`` values, the last partial block carried over.

    Each block's mean is computed from the same values in the same order
    whatever the column boundaries, so detections do not depend on batch sizes.

    >>> b = BlockMeans(2)
    >>> b.feed([1.0, 2.0, 3.0])
    ([1.5], 1)
    >>> b.feed([5.0, 7.0, 9.0])
    ([4.0, 8.0], 0)
    """

    __slots__ = ()

    def feed(self, values: FloatArray | list[float]) -> tuple[list[float], int]:
        """Means of the blocks that ``values`` completes, and the index in ``values`` of
        the first one's last value (the others end every ``size`` values after it)."""
        rows, first_end = self.blocks(np.asarray(values, dtype=np.float64))
        if not rows.size:
            return [], first_end
        means: list[float] = (rows.sum(axis=1) / self.size).tolist()
        return means, first_end


def compact_window(kept: npt.NDArray[np.floating[Any]], new: FloatArray,
                   bound: float = math.inf) -> npt.NDArray[np.floating[Any]]:
    """``kept`` then ``new``, every value of magnitude up to ``bound`` rounded to its
    nearest float32: a float32 array, or a float64 one that keeps the values past
    ``bound`` or past float32's range as they are.

    A numeric monitor keeps its recent values this way while its reference is compact
    (``reference.compact_sorted``: float32 resolves the feature), for half the memory
    and changelog bytes, with ``bound`` the reference's ``float32_bound`` (past it,
    float32's spacing is coarser than the reference resolves: 1e6 + N(0, 0.01) after a
    reference of N(0, 1) would become one value). Each value is stored the same whatever
    the batches (the rounding of a value does not depend on the others), so alerts stay
    byte for byte.

    >>> compact_window(np.zeros(0), np.array([0.1, 2.0])).dtype
    dtype('float32')
    >>> compact_window(np.zeros(0), np.array([0.1, 1e39])).tolist()
    [0.10000000149011612, 1e+39]
    >>> compact_window(np.zeros(0), np.array([0.1, 1e6 + 0.01]), bound=64.0).tolist()
    [0.10000000149011612, 1000000.01]
    """
    limit = min(bound, FLOAT32_MAX)
    if kept.dtype == np.float32 and (not new.size or np.abs(new).max() <= limit):
        return np.concatenate((kept, new), dtype=np.float32)  # the usual case, no overflow
    wide = np.concatenate((kept, new), dtype=np.float64)
    joined, exact = _rounded(wide, bound)
    if not exact.any():
        return joined
    out: FloatArray = np.where(exact, wide, joined)
    return out


def _rounded(xs: FloatArray, bound: float
             ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Each value's nearest float32, and where the value stays as it is instead (past
    ``bound`` or past float32's range): ``compact_window``'s one rule."""
    joined = nearest_float32(xs)
    return joined, ~np.isfinite(joined) | (np.abs(xs) > bound)


def round_within(values: FloatArray, bound: float) -> FloatArray:
    """``values`` (float64) as ``compact_window`` stores them with ``bound``: those of
    magnitude up to ``bound`` at their nearest float32, the others as they are; float64.
    A ``bound`` of 0.0 changes nothing. Rounding twice with one bound is rounding once.

    >>> round_within(np.array([0.1, 1e6 + 0.01]), 64.0).tolist()
    [0.10000000149011612, 1000000.01]
    """
    if not values.size or bound <= 0.0:
        return values
    joined, exact = _rounded(values, bound)
    out: FloatArray = np.where(exact, values, joined)
    return out


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

    def __init__(self, free: float, before: int, starts: list[int]) -> None:
        self._free = free
        self._before = before
        self._starts = sorted(starts)

    def __call__(self, position: int) -> float:
        series = self._before + bisect_right(self._starts, position)
        return max(1.0, series / self._free)


def _adwin(settings: AdwinSettings, split: float = 1.0, inflation: float = 1.0
           ) -> Adwin | None:
    return Adwin(settings, split, inflation) if settings.enabled else None


def inflated_delta(delta: float, inflation: float) -> float:
    """ADWIN's confidence for a stream whose means vary ``inflation`` times more than
    independent values' (``stats/lrv.py``).

    ADWIN cuts when two sub-window means differ by more than a bound of the form
    ``sqrt(2 sigma2 ln(2 / delta') / m) + 2 ln(2 / delta') / (3 m)`` (Bifet & Gavalda
    2007, Thm. 3.1, Bernstein form): replacing ``sigma2`` by ``L sigma2`` is replacing
    ``ln(2 / delta')`` by ``L ln(2 / delta')``, i.e. ``delta`` by ``2 (delta / 2)^L``
    (the second term grows too, which only makes it safer).

    >>> inflated_delta(1e-5, 1.0), f"{inflated_delta(1e-5, 3.0):.1e}"
    (1e-05, '2.5e-16')
    """
    if inflation <= 1.0:
        return delta
    return max(2.0 * float((delta / 2.0) ** inflation), 1e-300)


def tightened_threshold(settings: PageHinkleySettings, split: float,
                        inflation: float = 1.0) -> float:
    """Page-Hinkley's threshold for about ``split`` times fewer false alarms.

    On means of ``block`` ranks (variance at most 1 / (12 block)), Page-Hinkley is a
    CUSUM whose mean run between false alarms grows as exp(2 delta h / variance)
    (Siegmund's approximation): raising h by variance ln(split) / (2 delta) multiplies
    it by ``split``. Without a drift allowance the run grows as h^2: h x sqrt(split).

    >>> s = PageHinkleySettings()
    >>> tightened_threshold(s, 1.0), round(tightened_threshold(s, 10.0), 3)
    (0.2, 0.238)
    """
    # ``inflation`` (a dependent stream's long-run variance factor) multiplies the
    # variance of the block means, so the threshold that keeps exp(2 delta h / variance).
    base = settings.threshold * max(1.0, inflation)
    if split <= 1.0:
        return base
    if settings.delta == 0.0:
        return base * math.sqrt(split)
    variance = max(1.0, inflation) / (12.0 * settings.block)
    return base + variance * math.log(split) / (2.0 * settings.delta)


def _page_hinkley(settings: PageHinkleySettings, split: float = 1.0,
                  inflation: float = 1.0) -> Any:
    if not settings.enabled:
        return None
    return drift.PageHinkley(
        min_instances=settings.min_instances,
        delta=settings.delta,
        threshold=tightened_threshold(settings, split, inflation),
        alpha=settings.alpha,
        mode="both",
    )


def _round(x: float) -> float:
    # Alerts are compared byte for byte: a fixed number of significant digits keeps them
    # short and stable, and a latency of 4e-7 s readable (``detectors.figures``).
    return significant(x)


#: Quantile bins of a numeric reference for PSI and Jensen-Shannon.
SCORE_BINS = 10


def numeric_scores(reference: NumericReference | SeasonalReference, window: FloatArray
                   ) -> dict[str, float]:
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


@dataclass(frozen=True, slots=True)
class Policy:
    """What a feature's monitor runs besides its change detectors: the tests against
    the reference's in-control law (``anchored.py``), their calibration for dependence,
    the effect floor and seasonality. A monitor without a policy (the concept monitors'
    regression errors) runs its change detectors only and assumes independent values.
    """

    anchored: AnchoredSettings = field(default_factory=AnchoredSettings)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    min_effect: float = 0.1
    seasonality: SeasonalitySettings | None = None


#: A hit in a column: its index, the detector, and for an anchored test the length of
#: the run of values that fired and its mean departure (None for a change detector).
Hit = tuple[int, str, AnchoredAlarm | None]


class _SeriesValues:
    """The lifecycle every value monitor shares, one phase at a time.

    warming up (collecting a reference) -> calibrating (the first time only: the long-run
    variance factor ``inflation`` of the ranks is estimated while the anchored tests run
    with a provisional one) -> watching (anchored tests and change detectors) -> after a
    detection, warming up on the values that follow (a re-baseline; ``inflation`` stays).
    Subclasses say how values become ranks and chi-square bins, and run their change
    detectors.
    """

    def __init__(self, warmup: int, warmup_after_alert: int | None, recent_window: int,
                 policy: Policy | None) -> None:
        self.warmup = warmup
        self.warmup_after_alert = warmup_after_alert or warmup
        self.recent_window = recent_window
        self.policy = policy
        self._target = warmup
        self._armed = False  # detectors built for the current reference
        self._split = 1.0
        calibrate = policy is not None and policy.calibration.enabled
        #: The long-run variance factor of the ranks: None until calibrated.
        self.inflation: float | None = None if calibrate else 1.0
        # The calibration stretch's ranks and chi-square bins (None where the bins follow
        # from the ranks: ``_bins_from_ranks``).
        self._calibration: list[tuple[FloatArray, IntArray | None]] = []
        self._calibration_left = 0
        self._rank_cusums: RankCusums | None = None
        self._bin_cusum: BinCusum | None = None
        self._bin_group: IntArray = np.zeros(0, dtype=np.int64)
        self._floor = effect_floor(policy.min_effect) if policy else 0.0

    reference: Any

    @property
    def warming_up(self) -> bool:
        return self.reference is None

    @property
    def calibrating(self) -> bool:
        return self.inflation is None and self.reference is not None

    # --- subclasses ---------------------------------------------------------------------

    def _law(self) -> tuple[FloatArray, FloatArray, int]:
        raise NotImplementedError

    def _raw_bins(self, values: Any, ranks: FloatArray) -> IntArray:
        raise NotImplementedError

    def _bin_shares(self, window: int) -> tuple[IntArray, FloatArray]:
        raise NotImplementedError

    def _start_change_detectors(self, split: float, inflation: float) -> None:
        raise NotImplementedError

    def _change_scan(self, ranks: FloatArray, values: Any) -> Hit | None:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------

    def _arm(self, split: float) -> None:
        self._split = split
        self._armed = True
        policy = self.policy
        if policy is None:
            self._start_change_detectors(split, 1.0)
            return
        if self.inflation is None:
            self._calibration = []
            self._calibration_left = policy.calibration.events
            self._build_anchored(policy.calibration.provisional)
            return
        self._build_anchored(self.inflation)
        self._start_change_detectors(split, self.inflation)

    def _build_anchored(self, inflation: float) -> None:
        policy = self.policy
        assert policy is not None
        if not policy.anchored.enabled:
            self._rank_cusums = self._bin_cusum = None
            return
        support, probs, n = self._law()
        if self._rank_tests:
            self._rank_cusums = RankCusums(RankLaw.of(support, probs, n), inflation,
                                           policy.anchored, policy.min_effect, self._split)
        self._bin_group, shares = self._bin_shares(policy.anchored.window)
        self._bin_cusum = BinCusum(shares, n, inflation, policy.anchored, policy.min_effect,
                                   self._split)

    _rank_tests = True

    def _feed_anchored(self, ranks: FloatArray, bins: IntArray) -> AnchoredAlarm | None:
        found = []
        if self._rank_cusums is not None:
            alarm = self._rank_cusums.feed(ranks)
            if alarm is not None:
                found.append(alarm)
        if self._bin_cusum is not None:
            alarm = self._bin_cusum.feed(bins)
            if alarm is not None:
                found.append(alarm)
        return min(found, key=attrgetter("index")) if found else None

    def _finish_calibration(self) -> None:
        policy = self.policy
        assert policy is not None
        ranks = np.concatenate([r for r, _ in self._calibration])
        settings = policy.calibration
        estimate = variance_inflation(ranks, settings.batch)
        if estimate is None or estimate < settings.independent_below:
            self.inflation = 1.0
        else:
            self.inflation = estimate * settings.safety
        if isinstance(self.reference, SeasonalReference):
            self.inflation = max(self.inflation, self.reference.inflation_floor())

    #: Are a value's chi-square bins a function of its rank alone (then the calibration
    #: stretch keeps no bins: 8 bytes a value less, up to 16 KB a series)?
    _bins_from_ranks = False

    def _calibration_bins(self, stored: list[tuple[FloatArray, IntArray | None]],
                          ranks: FloatArray) -> IntArray:
        """The bins of the calibration stretch (``ranks``, all of it), as ``_scan`` made
        them: the same reference, so the same bin groups."""
        if self._bin_cusum is None:
            return np.zeros(0, dtype=np.int64)
        if self._bins_from_ranks:
            return self._bin_group[self._raw_bins(None, ranks)]
        return np.concatenate([b for _, b in stored if b is not None])

    def _scan(self, ranks: FloatArray, values: Any) -> Hit | None:
        """The first detection among ``ranks`` (of ``values``): index, detector, alarm."""
        bins = (self._bin_group[self._raw_bins(values, ranks)] if self._bin_cusum is not None
                else np.zeros(0, dtype=np.int64))
        offset = 0
        if self.inflation is None:  # calibrating: anchored tests with a provisional factor
            take = min(self._calibration_left, ranks.size)
            alarm = self._feed_anchored(ranks[:take], bins[:take])
            if alarm is not None:
                return alarm.index, alarm.detector, alarm
            # Copies: views of the first values would keep the whole column alive.
            self._calibration.append((ranks[:take].copy(),
                                      None if self._bins_from_ranks else bins[:take].copy()))
            self._calibration_left -= take
            if self._calibration_left:
                return None
            self._finish_calibration()
            assert self.inflation is not None
            # The calibration stretch is tested again with the factor it gave; an alarm
            # there is raised at its last value, where the evidence was weighed.
            self._build_anchored(self.inflation)
            stored = self._calibration
            self._calibration = []
            past = np.concatenate([r for r, _ in stored])
            alarm = self._feed_anchored(past, self._calibration_bins(stored, past))
            if alarm is not None:
                return take - 1, alarm.detector, alarm
            self._start_change_detectors(self._split, self.inflation)
            offset = take
            ranks, bins, values = ranks[take:], bins[take:], values[take:]
        alarm = self._feed_anchored(ranks, bins) if self.policy is not None else None
        end = ranks.size if alarm is None else alarm.index
        hit = self._change_scan(ranks[:end], values[:end])
        if hit is not None:
            return offset + hit[0], hit[1], None
        if alarm is not None:
            return offset + alarm.index, alarm.detector, alarm
        return None

    def _after(self, detector: str, alarm: AnchoredAlarm | None, recent: Any) -> Any:
        """The recent values after the change: for an anchored alarm its run (at most
        the recent window), for a change detector the split of ``change_point``."""
        if alarm is not None:
            return recent[-min(alarm.run_values, len(recent)):]
        return recent[change_point(self._watched(detector, recent)):]

    def _watched(self, detector: str, recent: Any) -> FloatArray:
        raise NotImplementedError

    def _effect(self, alarm: AnchoredAlarm | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if alarm is not None:
            out["departure"] = _round(alarm.departure)
        if self.inflation is not None and self.inflation != 1.0:
            out["variance_inflation"] = _round(self.inflation)
        return out


class NumericMonitor(_SeriesValues):
    """Location, spread and shape of a numeric series, in ranks of a reference.

    The first ``warmup`` values build the reference (with seasonality: the values of
    the first full period, one reference per bucket of time); each later value becomes
    its mid-rank ``u`` in [0, 1]. With a ``Policy``, ``u`` is tested against the
    reference's in-control law (``anchored.py``: location, spread, shape), with bounds
    calibrated on the stream's own dependence; ADWIN watches ``u`` and Page-Hinkley the
    means of blocks of ``u`` (changes in location within the stream), a second ADWIN
    ``|2u - 1|`` (spread). After a detection the monitor re-baselines: it collects a
    new reference from the values that follow. A ``reference`` given at construction
    (e.g. from a reference file) replaces the first warm-up.

    >>> import random
    >>> rng = random.Random(7)
    >>> m = NumericMonitor(NumericSettings(), warmup=500, policy=Policy())
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
                 reference: NumericReference | SeasonalReference | None = None,
                 policy: Policy | None = None) -> None:
        super().__init__(warmup, warmup_after_alert, recent_window, policy)
        self.settings = settings
        self._recent: npt.NDArray[np.floating[Any]] = np.empty(0)
        self._sample: list[FloatArray] = []
        self._sampled = 0
        self._seasonal: SeasonalSample | None = None
        self.reference = reference
        # How the last update stored its values (``stored_values``): (batch position,
        # float32 bound from that value on, False) and (position, bound, True) where a
        # new reference rounded the whole window after the value at that position.
        self._rounding: list[tuple[int, float, bool]] = []

    @property
    def seasonality(self) -> SeasonalitySettings | None:
        return self.policy.seasonality if self.policy else None

    def _start_change_detectors(self, split: float, inflation: float) -> None:
        self._location = _adwin(self.settings.adwin, split, inflation)
        self._spread = _adwin(self.settings.spread, split, inflation)
        self._ph = _page_hinkley(self.settings.page_hinkley, split, inflation)
        self._ph_blocks = BlockMeans(self.settings.page_hinkley.block)
        self._spread_blocks = BlockMeans(self.settings.spread_block)

    def _rebaseline(self) -> None:
        self.reference = None
        self._target = self.warmup_after_alert
        self._armed = False

    def _remember(self, xs: FloatArray) -> None:
        # The last ``recent_window`` values, in an array of their own (a slice of the
        # joined arrays would keep all of them alive).
        w = self.recent_window
        kept = self._recent[max(self._recent.size + xs.size - w, 0):]
        bound = self._bound()
        if bound:
            self._recent = compact_window(kept, xs[-w:], bound)
        else:
            self._recent = np.concatenate((kept, xs[-w:]))

    def _bound(self) -> float:
        """Values up to this magnitude are stored at float32 (``compact_window``): the
        reference's ``float32_bound`` while it is compact, else 0.0 (none)."""
        ref = self.reference
        return ref.float32_bound() if isinstance(ref, NumericReference) and ref.compact else 0.0

    def _window(self) -> FloatArray:
        """The recent values as float64 (``compact_window``)."""
        return self._recent.astype(np.float64)

    def stored_values(self, before: Any, values: FloatArray, positions: Sequence[int],
                      until: int) -> FloatArray:
        """``before`` then ``values`` as this monitor held them right after batch position
        ``until``: ``before`` is its recent values when the batch began; ``values`` are
        the batch's present values it took, at ``positions`` (increasing, at most
        ``until``), in the last update. Each value is rounded as the monitor rounded it
        (``round_within`` with the bound in force when it came, then with the bound of
        any reference built after it up to ``until``): float64, whatever the batches.
        Raises nothing; with no ``values`` the log is not read (it may be an older
        batch's)."""
        old = np.asarray(before, dtype=np.float64)
        xs = np.asarray(values, dtype=np.float64)
        if not xs.size:
            return old
        at = np.asarray(positions)
        log = self._rounding
        own = [(p, b) for p, b, retro in log if not retro]
        for j, (start, bound) in enumerate(own):
            if not bound:
                continue
            end = own[j + 1][0] if j + 1 < len(own) else None
            part = (at >= start) if end is None else (at >= start) & (at < end)
            xs = np.where(part, round_within(xs, bound), xs)
        for p, bound, retro in log:
            if retro and p <= until:  # the window was rounded as a whole after p
                old = round_within(old, bound)
                xs = np.where(at <= p, round_within(xs, bound), xs)
        return np.concatenate((old, xs))

    def _law(self) -> tuple[FloatArray, FloatArray, int]:
        assert self.reference is not None
        support, probs = self.reference.law()
        return support, probs, self.reference.n

    def _bin_shares(self, window: int) -> tuple[IntArray, FloatArray]:
        support, probs, n = self._law()
        return RankLaw.of(support, probs, n).rank_bins(window)

    _bins_from_ranks = True

    def _raw_bins(self, values: Any, ranks: FloatArray) -> IntArray:
        return np.minimum((ranks * RANK_BINS).astype(np.int64), RANK_BINS - 1)

    def _warm(self, xs: FloatArray, ts: FloatArray | None) -> int:
        """Take values into the reference sample; how many were taken."""
        season = self.seasonality
        if season is not None and ts is not None:
            if self._seasonal is None:
                self._seasonal = SeasonalSample()
            taken, done = self._seasonal.take(xs, ts, season.period)
            self._remember(xs[:taken])
            if done:
                values, times = self._seasonal.data()
                self._seasonal = None
                self.reference = SeasonalReference.fit(values, times, season, self.warmup)
            return taken
        take = min(self._target - self._sampled, xs.size)
        chunk = xs[:take]
        self._sample.append(chunk)
        self._sampled += take
        self._remember(chunk)
        if self._sampled >= self._target:
            self.reference = NumericReference(np.concatenate(self._sample))
            self._sample, self._sampled = [], 0
            bound = self._bound()
            if bound:  # the window as the new reference stores it, now (not at a batch's cut)
                self._recent = compact_window(np.zeros(0), self._window(), bound)
        return take

    def _ranks(self, xs: FloatArray, ts: FloatArray | None) -> FloatArray:
        ref = self.reference
        if isinstance(ref, SeasonalReference):
            assert ts is not None
            return ref.ranks(xs, ts)
        assert ref is not None
        ranks: FloatArray = ref.ranks(xs)
        return ranks

    def update(self, values: Sequence[float] | FloatArray, positions: Sequence[int],
               split: Split | None = None,
               times: Sequence[float | None] | FloatArray | None = None) -> list[Detection]:
        """Detections in ``values`` (at batch rows ``positions``, event ``times`` in epoch
        seconds); ``split`` divides the false-alarm rate of detectors that start in this
        column (``BudgetSplit``). With seasonality, values without a time are skipped."""
        xs = np.asarray(values, dtype=np.float64)
        ts: FloatArray | None = None
        if self.seasonality is not None:
            ts = np.asarray([math.nan if t is None else t for t in times] if times is not None
                            else np.full(xs.size, math.nan), dtype=np.float64)
            timed = ~np.isnan(ts)
            if not timed.all():
                xs, ts = xs[timed], ts[timed]
                positions = np.asarray(positions)[timed].tolist()
        detections: list[Detection] = []
        i, n = 0, len(xs)
        log = self._rounding = [(positions[0], self._bound(), False)] if n else []
        while i < n:
            if self.reference is None:
                i += self._warm(xs[i:], None if ts is None else ts[i:])
                bound = self._bound()
                if bound:  # a compact reference was built at value i - 1
                    log.append((positions[i - 1], bound, True))
                    if i < n:
                        log.append((positions[i], bound, False))
                continue
            if not self._armed:
                self._arm(split(positions[i]) if split else 1.0)
            rest = xs[i:]
            ranks = self._ranks(rest, None if ts is None else ts[i:])
            hit = self._scan(ranks, rest)
            if hit is None:
                self._remember(rest)
                break
            k, name, alarm = hit
            self._remember(rest[: k + 1])
            detections.append(Detection(positions[i + k], name, self._stats(name, alarm)))
            i += k + 1
            self._rebaseline()
            if i < n and log[-1][1]:
                log.append((positions[i], 0.0, False))  # warming up: values as they are
        return detections

    def _change_scan(self, ranks: FloatArray, values: Any) -> Hit | None:
        """The first change detection in ``ranks``: its index and detector, or None.

        Each detector runs over the column on its own, up to the earliest hit so
        far; on a tie the one listed first wins. Feeding a detector past another's
        hit is harmless: every detector restarts after a detection.
        """
        hit: Hit | None = None
        floor = self._floor
        if self._location is not None:
            k = self._location.scan(ranks.tolist(), floor)
            hit = None if k is None else (k, "adwin", None)
        end = len(ranks) if hit is None else hit[0]
        if self._spread is not None:
            means, first = self._spread_blocks.feed(np.abs(2.0 * ranks[:end] - 1.0))
            j = self._spread.scan(means, floor)
            if j is not None:
                hit = (first + j * self._spread_blocks.size, "adwin_spread", None)
                end = hit[0]
        if self._ph is not None:
            means, first = self._ph_blocks.feed(ranks[:end])
            for j, mean in enumerate(means):
                self._ph.update(mean)
                if self._ph.drift_detected:
                    hit = (first + j * self._ph_blocks.size, "page_hinkley", None)
                    break
        return hit

    def _watched(self, detector: str, recent: Any) -> FloatArray:
        assert self.reference is not None
        ranks = self.reference.ranks(recent) if not isinstance(
            self.reference, SeasonalReference) else np.full(len(recent), 0.5)
        return np.abs(2.0 * ranks - 1.0) if detector.endswith("spread") else ranks

    def scores(self) -> dict[str, float] | None:
        """Drift scores of the last ``recent_window`` values against the reference
        (``numeric_scores``: psi, jensen_shannon, wasserstein); None while warming up and
        until the window is full (on a few values the scores are mostly noise)."""
        if self.reference is None or len(self._recent) < self.recent_window:
            return None
        return numeric_scores(self.reference, self._window())

    def _stats(self, detector: str, alarm: AnchoredAlarm | None = None) -> dict[str, Any]:
        ref = self.reference
        assert ref is not None
        after = self._after(detector, alarm, self._window())
        mean, std = mean_std(after, exact_mean=True)  # finite for any finite values
        return {
            "before": {"mean": _round(ref.mean), "std": _round(ref.std), "n": ref.n},
            "after": {"mean": _round(mean), "std": _round(std), "n": int(after.size)},
            # Of the values since the change, as ``after``: over the whole window the
            # scores of a change caught early would be mostly the reference's own values.
            "scores": _score_stats(numeric_scores(ref, after), int(after.size)),
            **self._effect(alarm),
        }


class CategoricalMonitor(_SeriesValues):
    """Category frequencies and the rate of categories unseen in the reference.

    The reference keeps the ``max_categories`` most frequent categories of the
    warm-up (counted in bounded memory; everything else is 'other') and the hashes of
    every category it saw. With a ``Policy``, the category mix is tested against the
    reference's shares (a chi-square of the frequent categories, the other seen ones
    and unseen ones: a 5,000-code feature is tested on its whole distribution) and the
    mean frequency rank against its in-control law. ADWIN watches each value's rank in
    the reference distribution (frequency shift) and a second ADWIN the indicator 'not
    a top category' (unseen rate).

    >>> m = CategoricalMonitor(CategoricalSettings(), warmup=200, policy=Policy())
    >>> m.update(["DE", "FR", "DE", "US"] * 500, range(2000))
    []
    >>> hits = m.update(["BR"] * 2000, range(2000, 4000))
    >>> len(hits), "BR" in hits[0].stats["after"]["top"]
    (1, True)
    """

    # Ranks of categories ordered by their reference frequency carry the winner's curse
    # of that order (the top of a 1,200-level warm-up is there by luck, so its shares are
    # overstated); the chi-square of shares tests the mix without ranking it.
    _rank_tests = False

    def __init__(self, settings: CategoricalSettings, warmup: int,
                 warmup_after_alert: int | None = None, recent_window: int = 1000,
                 reference: CategoricalReference | None = None,
                 policy: Policy | None = None) -> None:
        super().__init__(warmup, warmup_after_alert, recent_window, policy)
        self.settings = settings
        self._recent = CategoryWindow()
        # The warm-up's counts, until its reference is built (then freed: it copies them).
        self._counter: CategoryCounter | None = None
        self._seen: SeenCategories | None = None
        if reference is None:
            self._counter = CategoryCounter(capacity=4 * settings.max_categories)
            self._seen = SeenCategories()
        self._frequent: dict[str, int] = {}
        self.reference = reference

    def _start_change_detectors(self, split: float, inflation: float) -> None:
        self._frequency = _adwin(self.settings.adwin, split, inflation)
        self._unseen = _adwin(self.settings.unseen, split, inflation)

    def _rebaseline(self) -> None:
        self.reference = None
        self._counter = CategoryCounter(capacity=4 * self.settings.max_categories)
        self._seen = SeenCategories()
        self._target = self.warmup_after_alert
        self._armed = False

    def _remember(self, values: Sequence[str]) -> None:
        # A code a value into the window's distinct categories (``CategoryWindow``): a
        # list held an 8-byte pointer a value, 8 KB of the ~18 KB of a monitor.
        self._recent = self._recent.then(values, self.recent_window)

    def _law(self) -> tuple[FloatArray, FloatArray, int]:
        assert self.reference is not None
        support, probs = self.reference.law()
        return support, probs, self.reference.n

    def _bin_shares(self, window: int) -> tuple[IntArray, FloatArray]:
        """Bins: each category expected ``MIN_EXPECTED`` times a window, then the other
        categories the reference saw, then unseen ones (Good-Turing); rare bins merge."""
        ref = self.reference
        assert ref is not None
        least = MIN_EXPECTED / window
        frequent = [name for name, f in ref.frequencies.items() if f >= least][:MAX_BINS]
        self._frequent = {name: i for i, name in enumerate(frequent)}
        top = sum(ref.frequencies[name] for name in frequent)
        unseen = max(ref.unseen_share, 3.0 / ref.n)
        other = max(0.0, 1.0 - top - unseen)
        shares = np.asarray([ref.frequencies[name] for name in frequent] + [other, unseen])
        return merge_small(shares / shares.sum(), least)

    def _raw_bins(self, values: Any, ranks: FloatArray) -> IntArray:
        ref = self.reference
        assert ref is not None
        k = len(self._frequent)
        get = self._frequent.get
        raw = np.fromiter((get(v, -1) for v in values), dtype=np.int64, count=len(values))
        rare = raw < 0
        if rare.any():
            seen = ref.was_seen([v for v, r in zip(values, rare.tolist(), strict=True) if r])
            raw[rare] = np.where(seen, k, k + 1)
        return raw

    def update(self, values: Sequence[str], positions: Sequence[int],
               split: Split | None = None,
               times: Sequence[float | None] | None = None) -> list[Detection]:
        detections: list[Detection] = []
        i, n = 0, len(values)
        while i < n:
            if self.reference is None:
                counter, seen = self._counter, self._seen
                assert counter is not None and seen is not None  # set while warming up
                take = min(self._target - counter.total, n - i)
                chunk = values[i : i + take]
                for v in chunk:
                    counter.add(v)
                seen.add_many(chunk)
                self._remember(chunk)
                i += take
                if counter.total >= self._target:
                    self.reference = CategoricalReference(
                        counter.counts, counter.total, self.settings.max_categories, seen)
                    self._counter = self._seen = None
                continue
            if not self._armed:
                self._arm(split(positions[i]) if split else 1.0)
            rest = values[i:]
            ranks = np.asarray(self.reference.ranks(rest), dtype=np.float64)
            hit = self._scan(ranks, rest)
            if hit is None:
                self._remember(rest)
                break
            k, name, alarm = hit
            self._remember(rest[: k + 1])
            detections.append(Detection(positions[i + k], name, self._stats(name, alarm)))
            i += k + 1
            self._rebaseline()
        return detections

    def _change_scan(self, ranks: FloatArray, values: Any) -> Hit | None:
        ref = self.reference
        assert ref is not None
        hit: Hit | None = None
        floor = self._floor
        if self._frequency is not None:
            k = self._frequency.scan(ranks.tolist(), floor)
            hit = None if k is None else (k, "adwin", None)
        end = len(ranks) if hit is None else hit[0]
        if self._unseen is not None:
            known = ref.is_known
            flags = [0.0 if known(v) else 1.0 for v in values[:end]]
            k = self._unseen.scan(flags, floor)
            if k is not None:
                hit = (k, "adwin_unseen", None)
        return hit

    def scores(self) -> dict[str, float] | None:
        """Drift scores of the last ``recent_window`` values against the reference
        (``categorical_scores``: psi, jensen_shannon); None while warming up and until
        the window is full."""
        if self.reference is None or len(self._recent) < self.recent_window:
            return None
        return categorical_scores(self.reference, self._recent)

    def _watched(self, detector: str, recent: Any) -> FloatArray:
        ref = self.reference
        assert ref is not None
        if detector == "adwin_unseen":
            return np.asarray([0.0 if ref.is_known(v) else 1.0 for v in recent])
        return np.asarray(ref.ranks(recent), dtype=np.float64)

    def _stats(self, detector: str, alarm: AnchoredAlarm | None = None) -> dict[str, Any]:
        ref = self.reference
        assert ref is not None
        recent = self._after(detector, alarm, self._recent)
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
            **self._effect(alarm),
        }


#: Most categories with a chi-square bin of their own (the rest share 'other').
MAX_BINS = 20


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
        self._present = 0  # present values after ``_recent`` (kept as a count, not an array)
        self._recent_window = 1000

    def _window(self, present: int) -> npt.NDArray[np.bool_]:
        """The last ``_recent_window`` flags: ``_recent`` then ``present`` present values."""
        tail = np.zeros(min(present, self._recent_window), dtype=bool)
        return np.concatenate((self._recent, tail))[-self._recent_window :]

    def update_present(self, n: int, positions: Sequence[int], split: Split | None = None
                       ) -> list[Detection]:
        """``update`` for ``n`` values that are all present (the usual column), without
        its arrays: the same blocks, the same ADWIN inputs, the same detections."""
        if not self.settings.adwin.enabled or not n:
            return []
        if self._adwin is None:
            self._adwin = Adwin(self.settings.adwin, split(positions[0]) if split else 1.0)
        size = self.settings.block
        total = self._fill + n
        before = self._present
        self._present = min(before + n, self._recent_window)
        if self._present == self._recent_window and self._recent.size:
            self._recent = self._recent[:0]  # all of the window is present values
        if total < size:
            self._fill = total
            return []
        # Blocks end at indices first_end + j size; only the first holds missing values
        # (those of the unfinished block carried over), so its share, then zeros.
        first_end = size - self._fill - 1
        blocks = (n - 1 - first_end) // size + 1
        shares = [self._count / size] + [0.0] * (blocks - 1)
        detections: list[Detection] = []
        j = 0
        while (k := first_true(map(self._adwin.update, shares[j:]))) is not None:
            end = first_end + (j + k) * size
            seen = self._window(before + end + 1)
            detections.append(Detection(positions[end], "adwin_missing", _rate_stats(seen)))
            self._adwin = Adwin(self.settings.adwin, split(positions[end]) if split else 1.0)
            j += k + 1
        last = first_end + (blocks - 1) * size
        self._fill = n - last - 1
        self._count = 0
        return detections

    def update(self, missing: npt.NDArray[np.bool_], positions: Sequence[int],
               split: Split | None = None) -> list[Detection]:
        if not self.settings.adwin.enabled or not len(missing):
            return []
        if self._adwin is None:
            self._adwin = Adwin(self.settings.adwin, split(positions[0]) if split else 1.0)
        size = self.settings.block
        n = len(missing)
        total = self._fill + n
        recent = np.concatenate((self._window(self._present), missing))
        self._present = 0
        self._recent = recent[-self._recent_window :].copy()  # not a view of all of it
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
