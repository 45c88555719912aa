"""Compact numeric state under adversarial values (``reference.compact_sorted``,
``monitors.compact_window``, ``NumericMonitor.stored_values``).

What must hold whatever the values: the same alerts for any batch cuts and any snapshot
point, byte for byte; every alert JSON-able (no inf or nan in its stats); and a feature
float32 cannot resolve is seen at its own precision. The streams switch a feature between
regimes that compact and ones that do not (float32's range, subnormals, large offsets with
a small spread, integer ties past 2**24), so references are rebuilt compact and wide after
alerts while the recent windows still hold the other regime's values."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DetectorBank, DetectorConfig, EventBatch, detect
from detectors.bank import DriftSignal
from detectors.codec import decode, encode
from detectors.config import NumericSettings, SeasonalitySettings
from detectors.monitors import NumericMonitor, Policy, compact_window
from detectors.reference import NumericReference

#: Regimes of a numeric feature; each draws ``n`` values from ``rng``.
REGIMES = {
    "normal": lambda rng, n: rng.normal(0.0, 1.0, n),
    "shifted": lambda rng, n: rng.normal(3.0, 1.0, n),
    "offset": lambda rng, n: rng.normal(1e6, 0.01, n),  # float32 spacing 0.0625
    "epoch": lambda rng, n: 1.7e9 + rng.integers(0, 3600, n).astype(np.float64),
    "past_float32": lambda rng, n: np.where(rng.random(n) < 0.5, 1e39,
                                            rng.normal(0.0, 1.0, n)),
    "float32_edge": lambda rng, n: rng.choice(
        [3.4028234663852886e38, 3.4028235677973366e38, 3.40282357e38, -3.4028235e38,
         0.0, -0.0, 1.0, 2.0], n),
    "subnormal": lambda rng, n: rng.normal(0.0, 1.0, n) * rng.choice([1e-40, 1e-300], n),
    "tiny_and_ones": lambda rng, n: rng.choice([0.0, 1e-46, 1e-39, 1.0, 1.0 + 1e-7], n),
    "big_int_ties": lambda rng, n: rng.choice([2e7, 3e7, 5e7, 1e8], n) + rng.integers(0, 2, n),
    "small_int_ties": lambda rng, n: rng.integers(0, 5, n).astype(np.float64),
    "huge_spread": lambda rng, n: rng.choice([-1.7e308, 1.7e308, 0.0], n),
}

regimes = st.lists(st.tuples(st.sampled_from(sorted(REGIMES)), st.integers(150, 1000)),
                   min_size=1, max_size=5)

#: Short warm-ups: many re-baselines within a short stream; windows long enough for
#: attribution (``attribution.MIN_WINDOW``).
CONFIG = DetectorConfig(warmup=50, rebaseline_warmup=50, recent_window=200,
                        calibration={"events": 200, "batch": 20})


def _column(plan: list[tuple[str, int]], rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([REGIMES[name](rng, n) for name, n in plan])


def _events(seed: int, plans: list[list[tuple[str, int]]]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    columns = [_column(plan, rng) for plan in plans]
    n = min(c.size for c in columns)
    # The prediction follows the first feature's regime changes (an attributed alert).
    prediction = np.tanh(np.nan_to_num(columns[0][:n], posinf=1.0, neginf=-1.0))
    return [{"model_id": "m", "timestamp": 1.7e9 + 60.0 * i,
             "features": {f"x{j}": float(c[i]) for j, c in enumerate(columns)},
             "prediction": float(prediction[i] + rng.normal(0.0, 0.1))}
            for i in range(n)]


def _as_batches(events: list[dict[str, Any]], size: int) -> list[EventBatch]:
    out = []
    for start in range(0, len(events), size):
        batch = EventBatch()
        for i in range(start, min(len(events), start + size)):
            e = events[i]
            batch.append("m", None, e["features"], e["prediction"], i, f"e{i}",
                         e["timestamp"])
        out.append(batch)
    return out


def _with_restore(events: list[dict[str, Any]], config: DetectorConfig, size: int,
                  cuts: set[int]) -> list[DriftSignal]:
    bank = DetectorBank(config)
    got: list[DriftSignal] = []
    for j, batch in enumerate(_as_batches(events, size)):
        if j in cuts:
            bank = decode(encode(bank), DetectorBank)
        got += bank.update(batch)
    return got


def _assert_json_able(signals: list[DriftSignal]) -> None:
    for s in signals:
        json.dumps(s.stats, allow_nan=False)  # ValueError on inf or nan


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(regimes, min_size=2, max_size=2),
       st.integers(7, 400), st.sets(st.integers(1, 12), max_size=3))
def test_regime_switches_give_the_same_json_alerts_for_any_cuts_and_restores(
        seed: int, plans: list[list[tuple[str, int]]], size: int, cuts: set[int]) -> None:
    events = _events(seed, plans)
    whole = detect(events, CONFIG, batch_size=len(events))
    _assert_json_able(whole)
    assert detect(events, CONFIG, batch_size=size) == whole
    assert _with_restore(events, CONFIG, size, cuts) == whole


def test_a_feature_that_leaves_and_reenters_float32_gives_the_same_alerts_anywhere() -> None:
    """compact -> past float32's range -> compact -> wide (epoch seconds) -> a large
    offset with a small spread -> compact, with the prediction following it: re-baselines
    into and out of compact references while the window holds the other regime."""
    plan = [("normal", 600), ("past_float32", 400), ("shifted", 500), ("epoch", 400),
            ("offset", 500), ("normal", 400), ("big_int_ties", 400), ("tiny_and_ones", 400)]
    events = _events(11, [plan, [("normal", 3600)]])
    whole = detect(events, CONFIG, batch_size=len(events))
    assert len({s.feature for s in whole}) >= 2 and len(whole) >= 8
    assert any(s.kind == "prediction_drift" and s.stats["attribution"] for s in whole)
    _assert_json_able(whole)
    for size in (1, 61, 500):
        assert detect(events, CONFIG, batch_size=size) == whole, size
    for size, cuts in ((61, {5, 20, 40}), (500, {1, 3, 6})):
        assert _with_restore(events, CONFIG, size, cuts) == whole, (size, cuts)


def test_seasonal_references_with_compact_and_wide_buckets_give_the_same_alerts() -> None:
    """One reference per bucket: some compact, some not (a bucket of epoch-like values),
    one past float32's range; then the feature moves."""
    config = CONFIG.model_copy(update={"seasonality": SeasonalitySettings(
        period=3600.0, buckets=4, min_values=5)})
    rng = np.random.default_rng(5)
    events = []
    for i in range(3000):
        t = 1.7e9 + 10.0 * i
        bucket = int((t % 3600.0) // 900.0)
        value = [rng.normal(0.0, 1.0), 1.7e9 + float(rng.integers(0, 100)),
                 float(rng.choice([1e39, 1.0])), rng.normal(1e6, 0.01)][bucket]
        if i >= 2000:
            value += 5.0
        events.append({"model_id": "m", "timestamp": t, "prediction": None,
                       "features": {"x": float(value)}})
    whole = detect(events, config, batch_size=len(events))
    assert [s for s in whole if s.feature == "x" and s.position >= 2000]
    _assert_json_able(whole)
    for size in (37, 700):
        assert detect(events, config, batch_size=size) == whole, size
        assert _with_restore(events, config, size, {2, 4}) == whole, size


def test_attribution_sees_a_moved_feature_that_float32_cannot_resolve() -> None:
    """1e6 + N(0, 0.01) (float32's spacing there: 0.0625) moves by 3 sd with the
    prediction; its own monitor (float64: not compact) alerts on it, and the prediction
    alert's attribution must rank it above a feature that did not move."""
    rng = np.random.default_rng(2)
    events = [{"model_id": "m", "prediction": float(rng.normal(1.0 if i >= 5000 else 0.0)),
               "features": {"a": float(rng.normal(1e6 + (0.03 if i >= 5000 else 0.0), 0.01)),
                            "b": float(rng.normal())}} for i in range(8000)]
    signals = detect(events, DetectorConfig(warmup=500))
    assert [s.feature for s in signals if s.kind == "data_drift"] == ["a"]
    predicted = [s for s in signals if s.kind == "prediction_drift"]
    assert predicted and predicted[0].position >= 5000
    ranked = predicted[0].stats["attribution"]
    assert ranked[0]["feature"] == "a", ranked


def test_scores_of_values_far_past_a_narrow_reference_stay_finite() -> None:
    """A reference of spread 0.01 then values of +-1.7e308: the Wasserstein distance in
    reference sds is past the largest float; an alert's figures must still be finite
    (``numeric_scores`` saturates at the largest float, as ``mean_std`` does)."""
    rng = np.random.default_rng(0)
    m = NumericMonitor(NumericSettings(), warmup=200, recent_window=100, policy=Policy())
    assert m.update(rng.normal(1e6, 0.01, 600), range(600)) == []
    hits = m.update(rng.choice([-1.7e308, 1.7e308, 0.0], 600), range(600, 1200))
    assert hits
    _assert_json_able([DriftSignal(h.position, "m", None, "x", "data_drift", h.detector,
                                   h.stats) for h in hits])
    assert 1e308 < hits[0].stats["scores"]["wasserstein"] < math.inf


@pytest.mark.parametrize("after", [
    pytest.param(lambda rng: rng.normal(1e6, 0.01, 2000), id="1e6+N(0,0.01)"),
    pytest.param(lambda rng: 1.7e9 + rng.uniform(0.0, 100.0, 2000), id="epoch-seconds"),
])
def test_an_alert_reports_the_spread_of_values_the_compact_reference_cannot_resolve(
        after: Any) -> None:
    """A compact reference (N(0, 1)), then values far past it with a small spread: they
    are not rounded to float32 (whose spacing there is 0.0625 and 128), so the alert's
    ``after`` figures are those of the values themselves (float32 gave std 0.0 and 56.1
    for 0.0116 and 25.8)."""
    rng = np.random.default_rng(0)
    m = NumericMonitor(NumericSettings(), warmup=500, policy=Policy())
    assert m.update(rng.normal(0.0, 1.0, 3000), range(3000)) == []
    assert m.reference is not None and m.reference.compact
    xs = after(rng)
    hits = m.update(xs, range(3000, 5000))
    assert hits
    got = hits[0].stats["after"]
    end = hits[0].position - 3000 + 1
    values = xs[end - got["n"]:end]
    assert got["std"] == pytest.approx(float(np.std(values)), rel=1e-5)
    assert got["mean"] == pytest.approx(float(np.mean(values)), rel=1e-5)  # 6 digits


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=40),
       st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=40),
       st.floats(1e-30, 1e30))
def test_a_compact_window_keeps_each_value_past_the_bound_as_it_is(
        kept: list[float], new: list[float], bound: float) -> None:
    """Each value is its nearest float32 up to ``bound`` (and within float32's range),
    else itself: decided value by value, so the same whatever the cuts."""
    joined = compact_window(np.asarray(kept), np.asarray(new), bound)
    one_by_one = np.zeros(0)
    for x in [*kept, *new]:
        one_by_one = compact_window(one_by_one, np.asarray([x]), bound)
    assert joined.astype(np.float64).tobytes() == one_by_one.astype(np.float64).tobytes()
    for x, y in zip([*kept, *new], joined.tolist(), strict=True):
        with np.errstate(over="ignore"):
            narrow = float(np.float32(x))
        assert y == (narrow if abs(x) <= bound and math.isfinite(narrow) else x)


def test_references_from_a_file_compact_or_not_give_the_same_alerts_anywhere(
        tmp_path: Path) -> None:
    """Series seeded from a reference file (``NumericReference.summarizing``): one that
    compacts, one float32 cannot resolve, one at float32's edge; the live values then
    move into the other regimes, so the re-baselined references swap kinds."""
    rng = np.random.default_rng(9)
    reference = _events(1, [[("normal", 3000)], [("offset", 3000)], [("float32_edge", 3000)]])
    path = tmp_path / "reference.jsonl"
    path.write_bytes(b"".join(orjson.dumps({**e, "event_id": f"r{i}"}) + b"\n"
                              for i, e in enumerate(reference)))
    config = CONFIG.model_copy(update={"reference_file": str(path)})
    seeded = DetectorBank(config)
    seeded.update(_as_batches(reference[:1], 1)[0])
    kinds = {name: s.values.reference.compact for name, s in seeded.models["m"].series.items()
             if isinstance(s.values, NumericMonitor) and s.values.reference is not None}
    assert kinds["x0"] and not kinds["x1"], kinds
    live = _events(int(rng.integers(1000)),
                   [[("normal", 500), ("offset", 600), ("past_float32", 500)],
                    [("offset", 500), ("normal", 600), ("epoch", 500)],
                    [("float32_edge", 500), ("subnormal", 600), ("shifted", 500)]])
    whole = detect(live, config, batch_size=len(live))
    assert {s.feature for s in whole} >= {"x0", "x1", "x2"}
    _assert_json_able(whole)
    for size, cuts in ((1, set()), (83, {3, 9}), (700, {1})):
        assert detect(live, config, batch_size=size) == whole, size
        assert _with_restore(live, config, size, cuts) == whole, (size, cuts)


def test_a_change_of_one_in_an_integer_feature_past_2_24_with_ties_is_caught() -> None:
    """Amounts in cents at a few price points (2e7 .. 1e8, integers past 2**24, where
    float32 steps by 2 to 8) that all go up by one cent: float32 would round each new
    amount onto its old price point (a tie: the same rank), float64 sees every value move
    above its point. 20 of 20 seeds caught with float64, 0 of 20 with float32 ranks.
    Small integers (exact in float32) stay compact."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        points = np.array([2e7, 3e7, 5e7, 1e8])
        m = NumericMonitor(NumericSettings(), warmup=1000, policy=Policy())
        assert m.update(rng.choice(points, 4000), range(4000)) == []
        hits = m.update(rng.choice(points, 4000) + 1.0, range(4000, 8000))
        assert hits, seed
    counts = NumericReference(np.random.default_rng(0).integers(0, 20, 1000).astype(float))
    assert counts.compact
