"""detectors/: monitors fire once per change and never before it, stay quiet on stationary
streams of any unit or tail, keep bounded state, and honour the config's bounds."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors import DetectorBank, DetectorConfig, DriftSignal, EventBatch, detect
from detectors.config import (
    CategoricalSettings,
    FeatureSettings,
    MissingSettings,
    NumericSettings,
)
from detectors.monitors import CategoricalMonitor, MissingMonitor, NumericMonitor
from detectors.reference import CategoryCounter

FAST = DetectorConfig(warmup=200)


def positions(hits: Sequence[Any]) -> list[int]:
    return [h.position for h in hits]


def bank_signals(columns: Mapping[str, Sequence[Any]], config: DetectorConfig = FAST,
                 model: str = "m", predictions: Sequence[Any] | None = None
                 ) -> list[DriftSignal]:
    """One DetectorBank update over columns of equal length (None = key absent)."""
    n = len(next(iter(columns.values())))
    batch = EventBatch()
    for i in range(n):
        features = {name: col[i] for name, col in columns.items()}
        batch.append(model, "1", features, None if predictions is None else predictions[i], i)
    return DetectorBank(config).update(batch)


# --- Monitors fire after a change, not before, once per change -----------------------------


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_numeric_monitor_fires_once_after_mean_shift_and_not_before(scale: float) -> None:
    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.normal(0, 1, 3000), rng.normal(1, 1, 3000)]) * scale
    monitor = NumericMonitor(NumericSettings(), warmup=200)
    hits = monitor.update(xs, range(len(xs)))
    assert len(hits) == 1
    assert 3000 <= hits[0].position < 3300
    assert hits[0].stats["after"]["mean"] > hits[0].stats["before"]["mean"]


def test_numeric_monitor_fires_once_after_spread_change() -> None:
    rng = np.random.default_rng(2)
    xs = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 3, 3000)])
    hits = NumericMonitor(NumericSettings(), warmup=200).update(xs, range(len(xs)))
    assert [h.detector for h in hits] == ["adwin_spread"]
    # The spread ADWIN sees means of 5 values (a fifth of the cost): ~300 events for 3x.
    assert 3000 <= hits[0].position < 3500
    assert hits[0].stats["after"]["std"] > 2 * hits[0].stats["before"]["std"]


def test_numeric_monitor_rebaselines_and_fires_once_per_change() -> None:
    rng = np.random.default_rng(3)
    xs = np.concatenate([rng.normal(0, 1, 3000), rng.normal(1.5, 1, 4000),
                         rng.normal(3, 1, 4000)])
    monitor = NumericMonitor(NumericSettings(), warmup=200)
    hits = monitor.update(xs, range(len(xs)))
    assert len(hits) == 2
    assert 3000 <= hits[0].position < 3300
    assert 7000 <= hits[1].position < 7300
    assert not monitor.warming_up


def test_numeric_monitor_does_not_fire_during_warmup() -> None:
    rng = np.random.default_rng(4)
    xs = np.concatenate([rng.normal(0, 1, 100), rng.normal(10, 1, 99)])  # all within warm-up
    monitor = NumericMonitor(NumericSettings(), warmup=200)
    assert monitor.update(xs, range(len(xs))) == []
    assert monitor.warming_up


def test_categorical_monitor_fires_once_after_frequency_shift() -> None:
    rng = np.random.default_rng(5)
    levels = ["a", "b", "c", "d"]
    values = (rng.choice(levels, 3000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
              + rng.choice(levels, 4000, p=[0.1, 0.2, 0.3, 0.4]).tolist())
    hits = CategoricalMonitor(CategoricalSettings(), warmup=200).update(values, range(7000))
    assert [h.detector for h in hits] == ["adwin"]
    assert 3000 <= hits[0].position < 3300


def test_categorical_monitor_fires_once_on_a_new_category() -> None:
    rng = random.Random(6)
    values = [rng.choice("abc") for _ in range(3000)]
    values += ["NEW" if rng.random() < 0.3 else rng.choice("abc") for _ in range(4000)]
    hits = CategoricalMonitor(CategoricalSettings(), warmup=200).update(values, range(7000))
    assert [h.detector for h in hits] == ["adwin_unseen"]
    assert 3000 <= hits[0].position < 3300
    assert hits[0].stats["after"]["unseen"] > 0.2


def test_missing_monitor_fires_once_per_change_in_missing_rate() -> None:
    rng = np.random.default_rng(7)
    missing = np.concatenate([rng.random(4000) < 0.02, rng.random(4000) < 0.3,
                              rng.random(4000) < 0.02])
    hits = MissingMonitor(MissingSettings()).update(missing, range(len(missing)))
    assert [h.detector for h in hits] == ["adwin_missing", "adwin_missing"]
    assert 4000 <= hits[0].position < 5000
    assert 8000 <= hits[1].position < 9000
    assert hits[0].stats["after"]["missing_rate"] > hits[0].stats["before"]["missing_rate"]


def test_bank_reports_a_missing_rate_change_as_data_quality() -> None:
    rng = random.Random(8)
    column = [None if i >= 3000 and rng.random() < 0.3 else rng.gauss(0, 1)
              for i in range(7000)]
    signals = bank_signals({"x": column})
    assert [(s.feature, s.kind, s.detector) for s in signals] == [
        ("x", "data_quality", "adwin_missing")]
    assert 3000 <= signals[0].position < 4000


def test_bank_signal_carries_model_version_and_event_position() -> None:
    rng = random.Random(9)
    column = [rng.gauss(0 if i < 3000 else 2, 1) for i in range(5000)]
    batch = EventBatch()
    for i, x in enumerate(column):
        batch.append("m", "v7", {"x": x}, None, 10_000 + i)  # positions are the caller's rows
    [signal] = DetectorBank(FAST).update(batch)
    assert signal.model_version == "v7"
    assert 13_000 <= signal.position < 13_300


# --- Stationary streams stay quiet with the default config ----------------------------------

N = 20_000


def _stationary() -> dict[str, Callable[[np.random.Generator], list[Any]]]:
    def near_constant(rng: np.random.Generator) -> list[Any]:
        odd = rng.random(N) < 0.001
        return np.where(odd, rng.normal(50.0, 10.0, N), 1.0).tolist()

    return {
        "normal_scale_1e6": lambda rng: rng.normal(0.0, 1e6, N).tolist(),
        "normal_scale_1e-3": lambda rng: rng.normal(5.0, 1e-3, N).tolist(),
        "lognormal": lambda rng: rng.lognormal(0.0, 2.0, N).tolist(),
        "student_t3": lambda rng: rng.standard_t(3, N).tolist(),
        "poisson_counts": lambda rng: rng.poisson(3.0, N).tolist(),
        "rare_poisson_counts": lambda rng: rng.poisson(0.2, N).tolist(),
        "constant": lambda rng: [7.0] * N,
        "near_constant_one_odd_in_1000": near_constant,
        "categorical_1200_levels": lambda rng: [f"l{v}" for v in rng.integers(0, 1200, N)],
        "categorical_zipf_levels": lambda rng: [f"z{v}" for v in rng.zipf(1.5, N) % 3000],
    }


STATIONARY = _stationary()


@pytest.mark.parametrize("kind", list(STATIONARY))
def test_stationary_stream_raises_no_alert_with_default_config(kind: str) -> None:
    column = STATIONARY[kind](np.random.default_rng(2026))
    assert bank_signals({"x": column}, DetectorConfig()) == []


# --- Bounded state ---------------------------------------------------------------------------


def test_categorical_feature_with_100k_distinct_values_keeps_bounded_state() -> None:
    settings = CategoricalSettings(max_categories=50)
    monitor = CategoricalMonitor(settings, warmup=2000, recent_window=1000)
    values = [f"user-{i}" for i in range(100_000)]
    for start in range(0, len(values), 10_000):
        monitor.update(values[start:start + 10_000], range(start, start + 10_000))
    assert monitor.reference is not None
    assert monitor._counter is None and monitor._seen is None  # the warm-up's, freed
    assert len(monitor.reference.frequencies) <= settings.max_categories
    assert len(monitor._recent) <= 1000


def test_category_counter_is_bounded_and_keeps_heavy_hitters() -> None:
    rng = random.Random(10)
    counter = CategoryCounter(capacity=50)
    for i in range(20_000):
        counter.add("HEAVY" if rng.random() < 0.1 else f"rare-{i}")
    assert len(counter.counts) == 50
    assert counter.total == 20_000
    assert counter.top(1)[0][0] == "HEAVY"


def test_max_features_per_model_bounds_the_series_of_a_model() -> None:
    config = DetectorConfig(warmup=50, max_features_per_model=3, monitor_predictions=False)
    bank = DetectorBank(config)
    batch = EventBatch()
    for i in range(200):
        batch.append("m", None, {f"f{k}": float(i % 5 + k) for k in range(10)}, None, i)
    bank.update(batch)
    assert list(bank.models["m"].series) == ["f0", "f1", "f2"]
    assert bank.models["m"].untracked_features == 200 * 7  # values of f3..f9
    assert bank.capacity.unmonitored() == {"max_models": 0, "max_features_per_model": 7}


def test_max_models_bounds_the_models_of_a_bank() -> None:
    bank = DetectorBank(DetectorConfig(warmup=50, max_models=2))
    batch = EventBatch()
    for i in range(500):
        batch.append(f"model-{i % 5}", None, {"x": float(i % 3)}, None, i)
    bank.update(batch)
    assert list(bank.models) == ["model-0", "model-1"]
    report = bank.capacity.drain()  # the models left out, by name, and their events
    assert report.new == [("model-2", None), ("model-3", None), ("model-4", None)]
    assert report.events == {"max_models": 300}


# --- Config switches -------------------------------------------------------------------------


def _two_drifting_features(seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    return {name: [rng.gauss(0 if i < 3000 else 2, 1) for i in range(5000)]
            for name in ("x", "y")}


def test_both_features_alert_without_overrides() -> None:
    fired = {s.feature for s in bank_signals(_two_drifting_features(11))}
    assert fired == {"x", "y"}


def test_feature_with_enabled_false_is_switched_off() -> None:
    config = DetectorConfig(warmup=200, features={"x": FeatureSettings(enabled=False)})
    fired = {s.feature for s in bank_signals(_two_drifting_features(11), config)}
    assert fired == {"y"}


def test_monitor_predictions_false_switches_prediction_drift_off() -> None:
    rng = random.Random(12)
    preds = [rng.gauss(0 if i < 3000 else 2, 1) for i in range(5000)]
    column = [rng.gauss(0, 1) for _ in range(5000)]
    on = bank_signals({"x": column}, predictions=preds)
    off = bank_signals({"x": column}, DetectorConfig(warmup=200, monitor_predictions=False),
                       predictions=preds)
    assert [(s.feature, s.kind) for s in on] == [("prediction", "prediction_drift")]
    assert off == []


def test_prediction_with_enabled_false_is_switched_off() -> None:
    rng = random.Random(12)
    preds = [rng.gauss(0 if i < 3000 else 2, 1) for i in range(5000)]
    column = [rng.gauss(0, 1) for _ in range(5000)]
    config = DetectorConfig(warmup=200, features={"prediction": FeatureSettings(enabled=False)})
    assert bank_signals({"x": column}, config, predictions=preds) == []


# --- detect() for notebooks -----------------------------------------------------------------


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A pandas DataFrame, as a notebook hands it to detect() (detectors/frames.py)."""
    return pd.DataFrame(rows)


def _drifting_rows(seed: int, nan_first: bool = False) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = [{"model_id": "credit", "income": rng.gauss(5000 if i < 3000 else 6500, 1000),
             "country": rng.choice(["DE", "FR"])} for i in range(5000)]
    if nan_first:
        rows[0]["income"] = math.nan  # how pandas marks a missing number
    return rows


def test_detect_over_a_list_of_event_dicts_returns_alerts() -> None:
    events = [{"model_id": r["model_id"], "model_version": "3",
               "features": {k: v for k, v in r.items() if k != "model_id"}}
              for r in _drifting_rows(13)]
    signals = detect(events, FAST)
    assert [(s.model_id, s.model_version, s.feature, s.kind) for s in signals] == [
        ("credit", "3", "income", "data_drift")]
    assert 3000 <= signals[0].position < 3300


def test_detect_over_a_dataframe_returns_alerts() -> None:
    signals = detect(frame(_drifting_rows(13)), FAST)
    assert [(s.model_id, s.feature, s.kind) for s in signals] == [
        ("credit", "income", "data_drift")]
    assert 3000 <= signals[0].position < 3300


def test_detect_gives_the_same_signals_for_any_batch_size() -> None:
    rng = random.Random(14)
    events = [{"model_id": "m", "prediction": rng.random() * (1 if i < 4000 else 0.5),
               "features": {"x": None if rng.random() < (0.01 if i < 4000 else 0.2)
                            else rng.gauss(0, 1),
                            "c": rng.choice("abc" if i < 4000 else "abcd")}}
              for i in range(8000)]
    whole = detect(events, FAST, batch_size=len(events))
    assert {s.kind for s in whole} >= {"data_drift", "prediction_drift"}
    for size in (1000, 137, 1):
        assert detect(events, FAST, batch_size=size) == whole


def test_detect_treats_nan_as_missing_in_a_numeric_column() -> None:
    signals = detect(frame(_drifting_rows(13, nan_first=True)), FAST)
    assert ("income", "data_drift") in [(s.feature, s.kind) for s in signals]


def test_feature_first_seen_mid_stream_gives_same_signals_for_any_batch_size() -> None:
    rng = random.Random(0)
    events = [{"model_id": "m", "features": {"x": rng.gauss(0, 1),
                                             **({"y": rng.gauss(0, 1)} if i >= 1000 else {})}}
              for i in range(4000)]
    whole = detect(events, FAST, batch_size=len(events))
    assert detect(events, FAST, batch_size=500) == whole


def test_predictions_that_stop_arriving_are_flagged_for_any_batch_size() -> None:
    rng = random.Random(1)
    events = [{"model_id": "m", "features": {"x": rng.gauss(0, 1)},
               "prediction": rng.random() if i < 3000 else None} for i in range(6000)]
    whole = detect(events, FAST, batch_size=len(events))
    assert [(s.feature, s.kind) for s in whole] == [("prediction", "data_quality")]
    assert detect(events, FAST, batch_size=500) == whole


def test_class_probabilities_are_monitored_as_class_and_confidence() -> None:
    # A classifier that grows unsure: the top class stays, its probability drops.
    rng = random.Random(21)
    preds: list[Any] = []
    for i in range(6000):
        top = rng.uniform(0.8, 0.99) if i < 3000 else rng.uniform(0.5, 0.7)
        preds.append({"yes": round(top, 4), "no": round(1 - top, 4)})
    preds[10] = 0.3  # a stray score among the objects counts as a missing confidence
    column = [rng.gauss(0, 1) for _ in range(6000)]
    signals = {}
    for size in (6000, 700, 137):
        bank, found = DetectorBank(DetectorConfig(warmup=200)), []
        for start in range(0, 6000, size):
            batch = EventBatch()
            for i in range(start, min(6000, start + size)):
                batch.append("m", "1", {"x": column[i]}, preds[i], i)
            found += [(s.feature, s.kind, s.detector, s.position) for s in bank.update(batch)]
        signals[size] = found
    assert signals[6000] == signals[700] == signals[137]
    fired = signals[6000]
    # The confidence drifts as a prediction distribution, and the estimated accuracy
    # (mean top probability, before any label) falls: a concept-drift warning, at the end
    # of its window of 1,000 predictions.
    assert sorted((f, k) for f, k, _, _ in fired) == [
        ("estimated_accuracy", "concept_drift"), ("prediction.confidence", "prediction_drift")]
    assert all(3000 <= position <= 4001 for *_, position in fired)
