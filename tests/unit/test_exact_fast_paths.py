"""Fast paths that must give the very same numbers as the plain computation they replace:
a detection never depends on which path computed it."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.anchored import BinCusum, BlockFeed
from detectors.concept_drift import OutcomeMonitor
from detectors.config import AdwinSettings, AnchoredSettings, ConceptSettings, MissingSettings
from detectors.monitors import MissingMonitor
from detectors.performance import BINARY, MULTICLASS, REGRESSION, RealizedPerformance
from detectors.reference import NumericReference
from detectors.stats import cusum
from detectors.stats.search import SORT_FROM, search_sorted

finite = st.floats(allow_nan=False, width=64)
values = st.one_of(finite, st.sampled_from([math.inf, -math.inf, 0.0, -0.0, 1.0]))
# A reference's own mean and std are not what is tested: finite values keep them finite.
ref_values = st.one_of(st.floats(-1e150, 1e150), st.sampled_from([0.0, -0.0, 1.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=300), st.lists(values, min_size=0, max_size=400),
       st.sampled_from(["left", "right"]))
def test_search_sorted_is_searchsorted(ref: list[float], keys: list[float], side: str) -> None:
    a = np.sort(np.asarray(ref, dtype=np.float64))
    k = np.asarray(keys, dtype=np.float64)
    assert search_sorted(a, k, side).tolist() == np.searchsorted(a, k, side).tolist()  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(ref_values, min_size=1, max_size=300),
       st.lists(values, min_size=0, max_size=400))
def test_ranks_in_key_order_equal_ranks_one_by_one(ref: list[float], keys: list[float]) -> None:
    """Above SORT_FROM keys the ranks are looked up in sorted order; each key's rank must
    be the one it gets alone (bit for bit, ties and -0.0 included)."""
    r = NumericReference(ref)
    k = np.asarray(keys, dtype=np.float64)
    together = r.ranks(k)
    alone = np.concatenate([r.ranks(k[i:i + 1]) for i in range(k.size)]) if k.size else k
    assert together.tobytes() == alone.tobytes()


@settings(max_examples=200, deadline=None)
@given(st.lists(ref_values, min_size=1, max_size=300, unique=True),
       st.lists(values, min_size=0, max_size=400), st.booleans())
def test_tie_free_ranks_equal_the_lookup_tables(ref: list[float], keys: list[float],
                                                 summarized: bool) -> None:
    """A tie-free reference keeps no below/mid tables (``NumericReference._tables``): the
    ranks, law and sample it computes from each value's index must be, bit for bit, the
    ones read from the tables a reference with ties keeps; values and keys in the type
    the reference keeps (float32 when compact: ``reference.compact_sorted``)."""
    r = (NumericReference.summarizing(ref * 3, len(ref)) if summarized
         else NumericReference(ref))
    if r._tables is not None:  # 0.0 and -0.0 are one value: a tie
        return
    kept = r._distinct.dtype
    with np.errstate(over="ignore"):
        sample = np.sort(np.asarray(ref, dtype=np.float64)).astype(kept)
        k = np.asarray(keys, dtype=np.float64).astype(kept)
    distinct, first, counts = np.unique(sample, return_index=True, return_counts=True)
    below = np.append(first, sample.size) / sample.size
    mid = ((2.0 * first + counts) / (2.0 * sample.size)).astype(np.float64)
    i = np.searchsorted(distinct, k, side="left")
    at = np.minimum(i, distinct.size - 1)
    assert r.ranks(k).tobytes() == np.where(distinct[at] == k, mid[at], below[i]).tobytes()
    support, shares = r.law()
    assert support.tobytes() == mid.tobytes()
    assert shares.tobytes() == np.diff(below).astype(np.float64).tobytes()
    assert r.sorted_sample().tobytes() == sample.astype(np.float64).tobytes()


def test_sorted_path_is_taken_on_a_batch() -> None:
    r = NumericReference(np.random.default_rng(0).normal(size=5000))
    keys = np.random.default_rng(1).normal(size=SORT_FROM * 4)
    assert r.ranks(keys).tobytes() == r._sorted_ranks(keys).tobytes()


def test_remembered_threshold_is_the_solved_one() -> None:
    n = 5000
    support = (np.arange(n) + 0.5) / n
    probs = np.full(n, 1.0 / n)
    args = (50.0, 0.03, 4e5)
    first = cusum.threshold_for_mean(support, probs, *args)
    again = cusum.threshold_for_mean(support.copy(), probs.copy(), *args)
    solved = cusum._threshold_for_mean(support, probs, *args)
    assert first == again == solved
    # A different law or setting is solved again, not confused with the remembered one.
    assert cusum.threshold_for_mean(support, probs, 50.0, 0.04, 4e5) != first
    skewed = probs.copy()
    skewed[-1] *= 2.0
    assert cusum.threshold_for_mean(support, skewed, *args) != first


def test_memo_is_bounded() -> None:
    memo = cusum._Memo(2)
    for i in range(5):
        memo.remember(bytes([i]), float(i))
    assert memo.get(bytes([0])) is None and memo.get(bytes([4])) == 4.0
    assert len(memo._items) == 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=300),
       st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=300))
def test_search_sorted_on_category_hashes(seen: list[int], keys: list[int]) -> None:
    a = np.unique(np.asarray(seen, dtype=np.uint32))
    k = np.asarray(keys, dtype=np.uint32)
    assert search_sorted(a, k).tolist() == np.searchsorted(a, k).tolist()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 130), st.floats(0.0, 1.0)), min_size=1, max_size=40),
       st.integers(0, 2**31))
def test_missing_monitor_present_path_is_the_array_path(columns: list[tuple[int, float]],
                                                        seed: int) -> None:
    """A column with no missing value may skip the arrays (``update_present``): the same
    detections, stats included, and the same state for the columns that follow."""
    rng = np.random.default_rng(seed)
    settings_ = MissingSettings(block=7, adwin=AdwinSettings(delta=0.05))
    fast, plain = MissingMonitor(settings_), MissingMonitor(settings_)
    row = 0
    for n, rate in columns:
        missing = rng.random(n) < rate if rng.random() < 0.5 else np.zeros(n, dtype=bool)
        rows = list(range(row, row + n))
        row += n
        expected = plain.update(missing, rows)
        got = (fast.update(missing, rows) if missing.any()
               else fast.update_present(n, rows))
        assert got == expected
    assert fast._window(fast._present).tolist() == plain._window(plain._present).tolist()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 60), st.lists(st.integers(0, 130), min_size=1, max_size=30))
def test_blocks_are_the_same_whatever_the_pieces(size: int, pieces: list[int]) -> None:
    """``BlockFeed`` returns no rows without copying when no block ends in a piece; the
    blocks, their positions and the carry are those of the whole column at once."""
    column = np.random.default_rng(size).random(sum(pieces))
    feed, whole = BlockFeed(size), BlockFeed(size)
    expected, first = whole.blocks(column)
    rows, start = [], 0
    for n in pieces:
        got, first_end = feed.blocks(column[start:start + n])
        rows += [(start + first_end + j * size, row.tolist()) for j, row in enumerate(got)]
        start += n
    assert rows == [(first + j * size, row.tolist()) for j, row in enumerate(expected)]
    assert feed._carry.tolist() == whole._carry.tolist()


@settings(deadline=None)
@given(st.integers(20, 60), st.lists(st.integers(0, 400), min_size=1, max_size=25))
def test_the_chi_square_cusum_is_the_same_whatever_the_pieces(
        window: int, pieces: list[int]) -> None:
    """``BinCusum`` keeps the counts of the window under way, not its values: pieces of
    a column give the alarm of the whole column, which is that of each whole window's
    Pearson statistic in order."""
    rng = np.random.default_rng(window)
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    n = sum(pieces)
    column = np.concatenate((rng.choice(4, size=n // 2, p=shares),
                             rng.choice(4, size=n - n // 2, p=[0.1, 0.2, 0.3, 0.4])))
    made = AnchoredSettings(window=window)
    whole, fed = (BinCusum(shares, 10_000, 1.0, made, 0.1) for _ in range(2))
    want = whole.feed(column)
    got, start = None, 0
    for size in pieces:
        alarm = fed.feed(column[start:start + size])
        if alarm is not None:
            got = (start + alarm.index, alarm.detector, alarm.run_values, alarm.departure)
            break
        start += size
    assert got == (None if want is None else
                   (want.index, want.detector, want.run_values, want.departure))
    # The statistic by hand: Pearson's chi-square of every whole window, in order.
    counts = np.array([np.bincount(column[i:i + window], minlength=4)
                       for i in range(0, n - window + 1, window)]).reshape(-1, 4)
    expected = shares * window
    by_hand = BinCusum(shares, 10_000, 1.0, made, 0.1)._cusum.update(
        ((counts - expected) ** 2 / expected).sum(axis=1).tolist())
    assert (want is None) is (by_hand is None)
    if want is not None and by_hand is not None:
        assert want.index == window - 1 + by_hand.index * window
    if got is None:
        assert fed._filled == n % window
        assert fed._partial.tolist() == np.bincount(column[n - n % window:],
                                                    minlength=4).tolist()


def _bisect_100(gap: Callable[[float], float], lo: float, hi: float) -> tuple[float, float]:
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if gap(mid) > 0.0:
            hi = mid
        else:
            lo = mid
    return lo, hi


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-12, 1e6), st.floats(1e-12, 1e3), st.floats(1e-9, 1e9),
       st.integers(1, 4))
def test_bisection_stops_where_the_100_halvings_end(root: float, below: float, width: float,
                                                    noise: int) -> None:
    """Stopping once the bounds are neighbouring floats gives the bounds of all 100
    halvings, bit for bit, also where ``gap``'s float sign flickers near its root."""
    def gap(theta: float) -> float:
        return math.sin(theta * 1e15 * noise) if abs(theta - root) < 1e-13 * root else theta - root
    lo, hi = max(root - below, 1e-300), root + width
    assert cusum._bisect(gap, lo, hi) == _bisect_100(gap, lo, hi)


def _threshold_for_mean_plain(x: npt.NDArray[np.float64], p: npt.NDArray[np.float64],
                              size: float, slack: float, arl: float) -> float:
    """``cusum._threshold_for_mean`` as first written: a fresh array per step, the
    exponents' largest found by a pass over them, 100 halvings."""
    p = p / p.sum()
    mean = float(np.dot(p, x))
    if float(np.dot(p, (x - mean) ** 2)) <= 0.0:
        return 0.0
    centred = x - mean
    top = float(centred.max())
    if top <= slack:
        return math.inf

    def gap(theta: float) -> float:
        z = theta * centred / size
        m = float(z.max())
        return size * (m + math.log(float(np.dot(p, np.exp(z - m))))) - theta * slack

    lo, hi = 1e-9, 1.0
    while gap(hi) <= 0.0:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    _, hi = _bisect_100(gap, lo, hi)
    return math.log(max(arl, math.e)) / hi


def test_thresholds_are_the_plain_solves_ones() -> None:
    """The thresholds of laws like a reference's (ties, a rare value, the unseen mass at
    0 and 1), solved with the early stop and the reused buffer, equal the plain solve's
    bit for bit (the memo bypassed)."""
    rng = np.random.default_rng(3)
    cases = []
    for n in (7, 200, 1000, 2500):
        x = np.sort(np.concatenate((np.round(rng.random(n), 3), [0.0, 1.0])))
        p = rng.random(n + 2) + 0.1
        p[-1] = 1e-5
        for size, slack, arl in ((50.0, 0.02, 4e5), (12.5, 0.05, 1e7), (3.0, 0.1, 2e3),
                                 (50.0 / 3.7, 0.013, 8e6)):
            cases.append((x, p / p.sum(), size, slack, arl))
            cases.append((-x, p / p.sum(), size, slack, arl))
            cases.append((np.abs(2.0 * x - 1.0), p / p.sum(), size, slack, arl))
    assert [cusum._threshold_for_mean(*c) for c in cases] == [
        _threshold_for_mean_plain(*c) for c in cases]


def test_chi2_thresholds_are_the_100_halvings_ones() -> None:
    saved = cusum._bisect
    try:
        cusum._bisect = _bisect_100  # type: ignore[assignment]
        slow = [cusum.threshold_for_chi2(df, scale, 2.0, 1e5) for df in (1, 4, 19, 200)
                for scale in (1.0, 1.3, 7.5)]
    finally:
        cusum._bisect = saved  # type: ignore[assignment]
    assert [cusum.threshold_for_chi2(df, scale, 2.0, 1e5) for df in (1, 4, 19, 200)
            for scale in (1.0, 1.3, 7.5)] == slow


outcomes = st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0]),
                     st.one_of(st.floats(0.0, 1.0), st.just(math.nan)),
                     st.sampled_from([0.0, 1.0]))


@settings(max_examples=100, deadline=None)
@given(st.lists(outcomes, max_size=400), st.integers(10, 150), st.sampled_from(
    [BINARY, MULTICLASS, REGRESSION]))
def test_realized_performance_rows_are_the_last_outcomes(
        added: list[tuple[float, float, float, float]], window: int, task: str) -> None:
    """Outcomes kept as float64 rows (and a few pending tuples) give the array, hence the
    metrics, of a deque of the last ``window`` outcomes."""
    r = RealizedPerformance(task, window)
    plain: deque[tuple[float, float, float, float]] = deque(maxlen=window)
    for i, outcome in enumerate(added):
        r.add(outcome)
        plain.append(outcome)
        if i % 97 == 0:  # read in the middle too: a read moves the pending ones
            assert r.recent.tobytes() == np.asarray(plain, dtype=np.float64).reshape(
                -1, 4).tobytes()
    assert r.recent.tobytes() == np.asarray(plain, dtype=np.float64).reshape(-1, 4).tobytes()
    assert r.recent.base is None  # not a view of a longer array


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 1.0]), max_size=150), max_size=8))
def test_outcome_monitor_rate_is_the_deque_rate(batches: list[list[float]]) -> None:
    """An OutcomeMonitor's recent errors as float64 rows: the same rate (a Python sum in
    arrival order) as a deque of the last ``recent_window``."""
    settings_ = ConceptSettings(recent_window=50)
    m = OutcomeMonitor(settings_)
    plain: deque[float] = deque(maxlen=50)
    at = 0
    for batch in batches:
        m.update([(e, 0.0, math.nan, 0.0) for e in batch], list(range(at, at + len(batch))))
        plain.extend(batch)
        at += len(batch)
        assert m.recent == list(plain)
        assert m.rate() == (sum(plain) / len(plain) if plain else None)
