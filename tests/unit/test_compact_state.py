"""Compact numeric state: references and recent windows held as float32 where that
resolves the feature (``reference.compact_sorted``, ``monitors.compact_window``).

What must hold: the law of a reference (hence every threshold) is float64's; a rank
differs from float64's only for a value whose nearest float32 is a reference value's, and
then by at most 1 / 2n; values past float32's range are kept as they are; detections do
not depend on batches; a snapshot round trip keeps the compact arrays."""

from __future__ import annotations

import math
import random

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import codec
from detectors.attribution import values_until
from detectors.bank import DetectorBank, EventBatch
from detectors.config import (
    CategoricalSettings,
    DetectorConfig,
    FeatureSettings,
    NumericSettings,
)
from detectors.monitors import CategoricalMonitor, NumericMonitor, Policy, compact_window
from detectors.reference import (
    COMPACT_GAPS,
    FLOAT32_TINY,
    MAX_CODES,
    CategoryWindow,
    NumericReference,
    compact_sorted,
)

samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400)
keys = st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                          st.sampled_from([0.0, -0.0, 1e39, -1e39, 3.4028235e38])),
                max_size=300)


@settings(max_examples=300, deadline=None)
@given(samples, keys)
def test_compact_ranks_differ_only_at_a_float32_tie_and_by_at_most_half_a_step(
        sample: list[float], xs: list[float]) -> None:
    ref = NumericReference(sample)
    exact = np.unique(np.asarray(sample, dtype=np.float64))
    with np.errstate(over="ignore"):
        narrow = exact.astype(np.float32)
    nonzero = np.abs(exact[exact != 0.0])
    largest = float(np.abs(exact).max())
    lossy = (exact.size < 2 or np.unique(narrow).size < exact.size
             or not np.isfinite(narrow).all()
             or bool(nonzero.size and nonzero.min() < FLOAT32_TINY)
             or float(np.spacing(np.float32(largest))) * COMPACT_GAPS
             > (exact[-1] - exact[0]) / (exact.size - 1))
    assert ref.compact is not lossy
    if not ref.compact:  # values would merge or lose relative precision: float64 is kept
        assert ref._distinct.dtype == np.float64
        return
    # The exact ranks: of the float64 values the compact ones came from.
    wide = NumericReference(sample)
    wide._distinct = exact
    k = np.asarray(xs, dtype=np.float64)
    got, want = ref.ranks(k), wide.ranks(k)
    with np.errstate(over="ignore"):
        k32 = k.astype(np.float32)
    tie = np.isin(k32, ref._distinct) & ~np.isin(k, exact)
    assert (got[~tie] == want[~tie]).all()
    # At a float32 tie: the tied value's mid-rank, half its share from the exact rank.
    share = ref.law()[1][np.searchsorted(ref._distinct, k32[tie])]
    assert (np.abs(got[tie] - want[tie]) <= share / 2 + 1e-12).all()
    assert (got[tie] == ref.ranks(ref._distinct[np.searchsorted(ref._distinct, k32[tie])]
                                  .astype(np.float64))).all()
    # The law, hence every threshold, is float64's.
    for a, b in zip(ref.law(), wide.law(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_references_that_float32_would_merge_or_overflow_stay_float64() -> None:
    assert compact_sorted(np.array([0.5, 1.5])).dtype == np.float32
    assert compact_sorted(np.array([1.7e9, 1.7e9 + 1.0])).dtype == np.float64  # epoch secs
    assert compact_sorted(np.array([-1e39, 0.0])).dtype == np.float64
    assert compact_sorted(np.array([0.0, 1e-46])).dtype == np.float64  # underflows to 0
    timestamps = NumericReference(1.7e9 + np.arange(1000.0))
    assert not timestamps.compact
    assert timestamps.ranks([1.7e9 + 499.0]).tolist() == [999 / 2000]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=60),
       st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=60))
def test_a_compact_window_rounds_each_value_on_its_own(kept: list[float],
                                                       new: list[float]) -> None:
    """Each value is its nearest float32 (or itself past float32's range) whatever came
    before it, so a window's values do not depend on how the input was cut."""
    joined = compact_window(np.asarray(kept), np.asarray(new))
    one_by_one = np.zeros(0)
    for x in [*kept, *new]:
        one_by_one = compact_window(one_by_one, np.asarray([x]))
    assert joined.astype(np.float64).tobytes() == one_by_one.astype(np.float64).tobytes()
    for x, y in zip([*kept, *new], joined.tolist(), strict=True):
        assert y == (x if abs(x) > 3.4028235677973366e38 else float(np.float32(x)))
    assert joined.dtype == (np.float64 if any(abs(x) > 3.4028235677973366e38
                                              for x in [*kept, *new]) else np.float32)


def _warmed(values: list[float]) -> NumericMonitor:
    m = NumericMonitor(NumericSettings(), warmup=200, policy=Policy())
    m.update(values, range(len(values)))
    return m


def test_a_warmed_monitor_holds_float32_and_reports_float64_stats() -> None:
    rng = np.random.default_rng(3)
    m = _warmed(rng.normal(50.0, 5.0, 1500).tolist())
    assert m.reference is not None and m.reference.compact
    assert m._recent.dtype == np.float32 and m._recent.size == 1000
    scores = m.scores()
    assert scores is not None and all(math.isfinite(v) for v in scores.values())
    # A value past float32's range is kept as it is, not as infinity.
    hits = m.update([1e39] * 400, range(1500, 1900))
    assert hits and m._recent.dtype == np.float64
    assert hits[0].stats["after"]["mean"] == 1e39
    assert math.isfinite(hits[0].stats["scores"]["wasserstein"])


def test_a_feature_float32_cannot_resolve_keeps_float64_windows() -> None:
    rng = np.random.default_rng(4)
    m = _warmed((1.7e9 + rng.integers(0, 10**6, 1500)).astype(np.float64).tolist())
    assert m.reference is not None and not m.reference.compact
    assert m._recent.dtype == np.float64


def test_snapshots_keep_compact_arrays_and_their_ranks() -> None:
    rng = np.random.default_rng(5)
    bank = DetectorBank(DetectorConfig(warmup=300))
    batch = EventBatch()
    for i in range(2000):
        big = 1e39 if i == 1990 else float(rng.normal())
        batch.append("m", None, {"x": float(rng.normal()), "big": big}, None, i)
    bank.update(batch)
    again = codec.decode(codec.encode(bank), DetectorBank)
    for name in ("x", "big"):
        before = bank.models["m"].series[name].values
        after = again.models["m"].series[name].values
        assert isinstance(before, NumericMonitor) and isinstance(after, NumericMonitor)
        assert after._recent.dtype == before._recent.dtype
        assert after._recent.tobytes() == before._recent.tobytes()
        assert before.reference is not None and after.reference is not None
        assert after.reference.compact == before.reference.compact
        probe = rng.normal(size=500) * 1000
        assert after.reference.ranks(probe).tobytes() == before.reference.ranks(probe).tobytes()
    assert bank.models["m"].series["x"].values._recent.dtype == np.float32
    assert bank.models["m"].series["big"].values._recent.dtype == np.float64  # holds 1e39


def test_attribution_reads_values_as_the_monitor_stored_them() -> None:
    """A compact monitor's window: its values at float32 up to the reference's bound
    (past float32's range as they are); the batch's values up to the alert's row read the
    same way, wherever the input was cut."""
    rng = np.random.default_rng(3)
    m = NumericMonitor(NumericSettings(), warmup=200, recent_window=10, policy=Policy())
    m.update(rng.normal(size=300), range(300))
    before = m._recent
    assert before.dtype == np.float32
    m.update(np.array([0.3, 1e39, 0.4]), [5, 7, 9])
    got = values_until(before, [0.3, None, 1e39, 0.4], 3, keep=10, monitor=m,
                       positions=[5, 6, 7, 9])
    assert got.tolist() == m._window().tolist()
    assert got[-3:].tolist() == [float(np.float32(0.3)), 1e39, float(np.float32(0.4))]
    # Up to an earlier row: the values up to it only.
    upto = np.concatenate((before.astype(np.float64), [float(np.float32(0.3))]))[-10:]
    assert values_until(before, [0.3, None, 1e39, 0.4], 1, keep=10, monitor=m,
                        positions=[5, 6, 7, 9]).tolist() == upto.tolist()


def test_series_share_their_settings_and_keep_sharing_them_after_a_restore() -> None:
    """One Policy and one FeatureSettings per bank (one more per feature override), not a
    copy per series: the memory and the snapshot objects of a series do not hold them."""
    config = DetectorConfig(warmup=100, features={"y": FeatureSettings(enabled=False)})
    bank = DetectorBank(config)
    batch = EventBatch()
    for i in range(300):
        batch.append(f"m{i % 3}", None, {"x": float(i % 7), "z": float(i % 5), "y": 1.0},
                     None, i)
    bank.update(batch)
    for b in (bank, codec.decode(codec.encode(bank), DetectorBank)):
        series = [s for m in b.models.values() for s in m.series.values()]
        assert len({id(s.policy) for s in series}) == 1
        assert len({id(s.settings) for s in series if s.name != "y"}) == 1
        assert [s.enabled for s in series if s.name == "y"] == [False] * 3
        assert all(s.enabled for s in series if s.name != "y")


class _BinsKept(NumericMonitor):
    """The calibration stretch's bins kept, as before ``_bins_from_ranks``."""

    _bins_from_ranks = False


def test_calibration_keeps_ranks_only_and_detects_the_same() -> None:
    """A numeric monitor's calibration stretch holds its ranks, not its chi-square bins
    (they follow from the ranks): the same detections, stats included, as when the bins
    are kept, for changes inside the calibration stretch (re-tested at its end) and
    after it."""
    found = []
    for seed, (at, shift) in enumerate([(1400, 0.6), (2500, 0.4), (4000, 0.5), (9999, 0.0)]):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=6000)
        xs[at:] += shift
        runs = []
        for cls in (NumericMonitor, _BinsKept):
            m = cls(NumericSettings(), warmup=1000, policy=Policy())
            hits = m.update(xs[:1500], range(1500))
            if not hits:  # mid-calibration: ranks only
                assert m._calibration and all(
                    (b is None) == (cls is NumericMonitor) for _, b in m._calibration)
            hits += m.update(xs[1500:], range(1500, 6000))
            runs.append([(h.position, h.detector, h.stats) for h in hits])
        assert runs[0] == runs[1], seed
        found.append(bool(runs[0]))
    assert found == [True, True, True, False]


def _views(obj: object, path: str, seen: set[int], out: list[tuple[str, int, int]]) -> None:
    """Every array reachable from ``obj`` that is a view of a larger buffer."""
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type, type(None))):
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if base.nbytes > obj.nbytes:
            out.append((path, obj.nbytes, base.nbytes))
        return
    items: list[tuple[str, object]] = []
    if isinstance(obj, dict):
        items = [(f"[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = [(f"[{i}]", v) for i, v in enumerate(obj)]
    else:
        items = [(f".{k}", v) for k, v in getattr(obj, "__dict__", {}).items()]
        items += [(f".{s}", getattr(obj, s)) for c in type(obj).__mro__
                  for s in c.__dict__.get("__slots__", ()) if hasattr(obj, s)]
    for key, value in items:
        _views(value, path + key, seen, out)


def test_no_detector_state_keeps_a_batch_alive() -> None:
    """After a batch of 30,000 events, no array a bank keeps is a view of a larger one
    (a carried-over tail of a column held the whole column: 240 KB a series)."""
    rng = np.random.default_rng(1)
    bank = DetectorBank(DetectorConfig(warmup=500))
    for n in (3000, 30_001):
        batch = EventBatch()
        for i in range(n):
            features = {"x": float(rng.normal()), "c": str(rng.integers(5)),
                        "gaps": None if i % 7 == 0 else float(rng.normal()),
                        "k": int(rng.integers(3))}
            batch.append("m", None, features, float(rng.random()), i, event_id=str(i),
                         time=float(i), label=int(rng.integers(2)))
        bank.update(batch)
    found: list[tuple[str, int, int]] = []
    _views(bank, "bank", set(), found)
    assert found == []


def test_a_categorical_window_holds_each_category_once() -> None:
    """Every decoded event brings its own str object for "DE": the recent window keeps
    one object per category, not one per value (a window of 1,000 values held 1,000
    strings of ~50 bytes; a restored one shared them already)."""
    rng = np.random.default_rng(2)
    names = ["DE", "FR", "US", "a category name longer than a few bytes"]
    bank = DetectorBank(DetectorConfig(warmup=500))
    for start in (0, 3000):
        rows = [{"c": names[int(k)]} for k in rng.integers(0, len(names), 3000)]
        decoded = orjson.loads(orjson.dumps(rows))  # distinct objects, as a decoder makes
        assert len({id(r["c"]) for r in decoded}) > len(names)
        batch = EventBatch()
        for i, features in enumerate(decoded):
            batch.append("m", None, features, None, start + i)
        bank.update(batch)
    window = bank.models["m"].series["c"].values._recent
    assert len(window) == 1000
    assert len({id(v) for v in window}) == len(set(window))
    after = codec.decode(codec.encode(bank), DetectorBank)  # the same values, in order
    assert after.models["m"].series["c"].values._recent == window


def test_a_categorical_window_takes_str_subclasses() -> None:
    """numpy.str_ values (a DataFrame's) cannot be interned: kept as they are."""
    m = CategoricalMonitor(CategoricalSettings(), warmup=100, policy=Policy())
    assert m.update([np.str_("DE"), np.str_("FR")] * 300, range(600)) == []
    assert m._recent[-2:] == ["DE", "FR"]


def test_a_category_window_holds_what_a_list_would_whatever_the_batches() -> None:
    """``CategoryWindow`` against the list it replaces: the same values in the same order
    for any batches, a byte a value while it holds at most ``MAX_CODES`` names (a list
    past them), and a window read before an update left as it was."""
    rng = random.Random(5)
    for round_ in range(40):
        size = rng.choice([1, 7, 300, 1000])
        kinds = rng.choice([3, 40, 300, 2000])
        values = [f"v{int(rng.expovariate(1.0 / kinds))}" for _ in range(rng.randrange(1, 3000))]
        plain: list[str] = []
        window, other = CategoryWindow(), CategoryWindow()
        at = 0
        while at < len(values):
            step = rng.randrange(1, 400)
            chunk = values[at:at + step]
            before, held = window, list(window)
            window = window.then(chunk, size)
            assert list(before) == held  # immutable
            plain = (plain + chunk)[-size:]
            assert list(window) == plain and window == plain and len(window) == len(plain)
            assert window[-3:] == plain[-3:] and window[0] == plain[0]
            at += step
            if window.values is None:  # coded: at most MAX_CODES names, a byte a value
                assert set(window.names) >= set(plain) and len(window.names) <= MAX_CODES
                assert window.codes.dtype == np.uint8
            else:  # a list, once past MAX_CODES categories
                assert window.names == ()
        other = other.then(values, size)  # one batch: the same values
        assert other == window, round_


def test_a_categorical_monitor_frees_its_warm_up_counts_and_holds_a_byte_a_value() -> None:
    m = CategoricalMonitor(CategoricalSettings(), warmup=500, policy=Policy())
    m.update(["DE", "FR", "US"] * 200, range(600))
    assert m.reference is not None and m._counter is None and m._seen is None
    assert m._recent.codes.dtype == np.uint8 and len(m._recent) == 600
    m._rebaseline()  # a new warm-up counts again
    assert m._counter is not None and m._seen is not None
