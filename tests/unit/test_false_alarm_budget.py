"""detectors.false_alarm_budget: a model's series share one false-alarm budget, split by
their number, and the split never depends on where batches are cut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from detectors import DetectorBank, DetectorConfig, DriftSignal, EventBatch, detect
from detectors.config import FalseAlarmBudget, FeatureSettings, NumericSettings, PageHinkleySettings
from detectors.monitors import Adwin, BudgetSplit, tightened_threshold
from stream.config import ConfigError, load_config

# Page-Hinkley far too eager, so that false alarms are frequent enough to count quickly.
LOOSE = NumericSettings(page_hinkley=PageHinkleySettings(delta=0.03, threshold=0.12))


def _config(series: int | None, **kw: Any) -> DetectorConfig:
    budget = FalseAlarmBudget(enabled=series is not None, series=series or 1)
    return DetectorConfig(warmup=200, numeric=LOOSE, false_alarm_budget=budget, **kw)


def _stationary(features: int, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    cols = rng.normal(0, 1, (n, features)).tolist()
    names = [f"f{j}" for j in range(features)]
    return [{"model_id": "m", "features": dict(zip(names, row, strict=True))} for row in cols]


def test_split_divides_adwin_delta_and_raises_page_hinkley_threshold() -> None:
    settings = NumericSettings()
    rng = np.random.default_rng(0)
    xs = (rng.random(6000) < np.where(np.arange(6000) < 3000, 0.3, 0.45)).astype(float).tolist()

    def first_hit(split: float) -> int:
        adwin = Adwin(settings.adwin, split)
        return next(i for i, x in enumerate(xs) if adwin.update(x))

    assert 3000 < first_hit(1.0) < first_hit(1000.0)  # a smaller delta needs more evidence
    ph = settings.page_hinkley
    assert tightened_threshold(ph, 1.0) == ph.threshold
    assert tightened_threshold(ph, 10.0) > tightened_threshold(ph, 2.0) > ph.threshold
    no_allowance = PageHinkleySettings(delta=0.0)
    assert tightened_threshold(no_allowance, 4.0) == pytest.approx(2 * no_allowance.threshold)


def test_budget_split_counts_series_started_at_or_before_a_row() -> None:
    split = BudgetSplit(free=2, before=1, starts=[5, 0, 9])
    assert [split(0), split(4), split(5), split(100)] == [1.0, 1.0, 1.5, 2.0]


def test_a_model_of_many_series_raises_fewer_false_alarms_with_the_budget() -> None:
    events = _stationary(features=40, n=15_000, seed=1)
    without = detect(events, _config(None))
    within = detect(events, _config(4))  # 40 series share the budget of 4: a tenth each
    assert len(without) >= 30, len(without)  # the loose setting does fire on noise
    assert len(within) <= len(without) / 4, (len(within), len(without))


def test_a_model_at_or_under_the_free_series_runs_the_settings_as_configured() -> None:
    events = _stationary(features=4, n=15_000, seed=2)
    assert detect(events, _config(4)) == detect(events, _config(None))


def test_models_are_split_on_their_own_series_only() -> None:
    small = _stationary(features=2, n=8000, seed=3)
    big = [{"model_id": "big", "features": e["features"]}
           for e in _stationary(features=60, n=8000, seed=4)]
    mixed = [e for pair in zip(small, big, strict=True) for e in pair]
    alone = [(s.feature, s.detector) for s in detect(small, _config(2))]
    together = [(s.feature, s.detector) for s in detect(mixed, _config(2)) if s.model_id == "m"]
    assert together == alone


def test_disabled_features_do_not_count_toward_the_split() -> None:
    events = _stationary(features=4, n=10_000, seed=5)
    off = {f"x{j}": FeatureSettings(enabled=False) for j in range(30)}
    with_disabled = [{"model_id": "m", "features": {**e["features"], **dict.fromkeys(off, 1.0)}}
                     for e in events]
    assert detect(with_disabled, _config(4, features=off)) == detect(events, _config(4))


def _signals(events: Sequence[dict[str, Any]], config: DetectorConfig, batch: int
             ) -> list[DriftSignal]:
    return detect(events, config, batch_size=batch)


def test_split_is_the_same_for_any_batch_size_when_series_start_mid_batch() -> None:
    rng = np.random.default_rng(6)
    events: list[dict[str, Any]] = []
    for i in range(12_000):
        feats = {f"f{j}": float(rng.normal(i >= 6000, 1)) for j in range(3)}
        for j in range(3, 12):  # a new feature every 137 events
            if i >= 137 * j:
                feats[f"f{j}"] = float(rng.normal(0, 1))
        events.append({"model_id": "m", "features": feats,
                       "prediction": float(rng.random()) if i >= 333 else None})
    config = _config(1)  # every series counts: the split changes as series arrive
    expected = _signals(events, config, 10_000)
    assert any(s.position >= 6000 for s in expected)
    for size in (1, 97, 1000):
        assert _signals(events, config, size) == expected, size


def test_restored_bank_keeps_the_split_of_its_detectors() -> None:
    from detectors.codec import decode, encode

    events = _stationary(features=30, n=9000, seed=7)
    config = _config(3)
    batches = []
    for start in range(0, len(events), 1500):
        b = EventBatch()
        for i in range(start, start + 1500):
            b.append("m", None, events[i]["features"], None, i)
        batches.append(b)
    bank = DetectorBank(config)
    expected = [s for b in batches for s in bank.update(b)]
    bank = DetectorBank(config)
    got = [s for b in batches[:2] for s in bank.update(b)]
    bank = decode(encode(bank), DetectorBank)
    got += [s for b in batches[2:] for s in bank.update(b)]
    assert got == expected


def test_budget_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"detectors\.false_alarm_budget\.series: "):
        load_config(overrides={"detectors.false_alarm_budget.series": 0})
    with pytest.raises(ConfigError, match=r"detectors\.false_alarm_budget\.split: unknown key"):
        load_config(overrides={"detectors.false_alarm_budget.split": 2})
