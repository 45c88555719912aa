"""Detection against the reference's in-control law, calibrated for dependence and
seasonality (issue: drift measured against the reference). Small versions of the
bench rows in bench/quality.py: each pins the value the product got wrong before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors import DetectorConfig, detect
from detectors.config import SeasonalitySettings
from detectors.stats.lrv import variance_inflation

DAY = 86_400.0


def _events(columns: dict[str, list[Any]], times: list[float] | None = None
            ) -> list[dict[str, Any]]:
    n = len(next(iter(columns.values())))
    return [{"event_id": str(i), "model_id": "m",
             **({} if times is None else {"timestamp": times[i]}),
             "features": {name: column[i] for name, column in columns.items()}}
            for i in range(n)]


def _reference(tmp_path: Path, columns: dict[str, list[Any]],
               times: list[float] | None = None) -> str:
    path = tmp_path / "reference.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events(columns, times)))
    return str(path)


def _first(signals: list[Any], feature: str) -> int | None:
    return next((s.position for s in signals if s.feature == feature), None)


@pytest.fixture(scope="module")
def skew_reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = np.random.default_rng(10)
    return _reference(tmp_path_factory.mktemp("skew"), {
        "x": rng.normal(0.0, 1.0, 5000).tolist(),
        "c": rng.choice(["a", "b", "c"], 5000, p=[0.6, 0.3, 0.1]).tolist(),
        "ctl": rng.normal(0.0, 1.0, 5000).tolist()})


@pytest.mark.parametrize("skew", ["location", "scale", "mix"])
def test_skew_from_the_first_event_is_caught_within_3000_events(skew_reference: str,
                                                                 skew: str) -> None:
    rng = np.random.default_rng(11)
    n = 6000
    x = rng.normal(0.5 if skew == "location" else 0.0, 1.5 if skew == "scale" else 1.0, n)
    p = [0.2, 0.3, 0.5] if skew == "mix" else [0.6, 0.3, 0.1]
    columns = {"x": x.tolist(), "c": rng.choice(["a", "b", "c"], n, p=p).tolist(),
               "ctl": rng.normal(0.0, 1.0, n).tolist()}
    signals = detect(_events(columns), DetectorConfig(reference_file=skew_reference))
    skewed = "c" if skew == "mix" else "x"
    first = _first(signals, skewed)
    assert first is not None and first < 3000
    assert {s.feature for s in signals} == {skewed}  # features that match stay quiet
    # Without the reference the stream is its own baseline: nothing to see.
    assert _first(detect(_events(columns)), skewed) is None


def test_a_feature_constant_through_the_warm_up_is_caught_when_it_starts_to_vary() -> None:
    rng = np.random.default_rng(12)
    n = 6000
    f = np.concatenate((np.zeros(1000), rng.normal(size=n - 1000)))  # ../shared/cases/c02
    g = np.concatenate((np.zeros(3000), rng.normal(size=n - 3000)))
    signals = detect(_events({"f": f.tolist(), "g": g.tolist(), "k": [0.0] * n}))
    first_f, first_g = _first(signals, "f"), _first(signals, "g")
    assert first_f is not None and 1000 <= first_f < 1500
    assert first_g is not None and 3000 <= first_g < 3500
    assert _first(signals, "k") is None


def test_one_stray_string_does_not_turn_a_numeric_feature_categorical() -> None:
    rng = np.random.default_rng(13)
    n = 6000
    amount: list[Any] = rng.normal(100.0, 10.0, n).tolist()
    amount[3000:] = (np.asarray(amount[3000:]) + 100.0).tolist()
    amount[0] = "n/a"  # ../shared/cases/c01: the first event
    first = _first(detect(_events({"amount": amount})), "amount")
    assert first is not None and 3000 <= first < 3300


def test_a_5000_code_categorical_whose_codes_all_change_is_caught_within_1000_events() -> None:
    rng = np.random.default_rng(14)
    codes = [f"z{v}" for v in rng.integers(0, 5000, 14_000)]
    codes[10_000:] = [f"n{v}" for v in rng.integers(0, 5000, 4000)]
    signals = detect(_events({"zip": codes}))
    assert [s.feature for s in signals] == ["zip"]
    assert 10_000 <= signals[0].position < 11_000


def _ar1(rng: np.random.Generator, phi: float, n: int) -> list[float]:
    noise = rng.normal(0.0, np.sqrt(1.0 - phi * phi), n)
    x = np.empty(n)
    x[0] = rng.normal()
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x.tolist()


def test_a_stationary_autocorrelated_stream_raises_nothing() -> None:
    rng = np.random.default_rng(15)
    n = 60_000
    offsets = np.repeat(rng.normal(0.0, 0.7, n // 20), 20)  # sessions of 20 events
    columns = {"ar_05": _ar1(rng, 0.5, n), "ar_09": _ar1(rng, 0.9, n),
               "sessions": (offsets + rng.normal(0.0, 0.71, n)).tolist()}
    assert detect(_events(columns)) == []
    # The same streams under the independence assumption page (the calibration matters).
    off = DetectorConfig(calibration={"enabled": False})
    assert {s.feature for s in detect(_events(columns), off)} >= {"ar_09"}


def test_the_long_run_variance_factor_of_an_ar1_stream() -> None:
    rng = np.random.default_rng(16)
    factor = variance_inflation(np.asarray(_ar1(rng, 0.9, 20_000)), 100)
    assert factor is not None and 13.0 < factor < 25.0  # (1 + 0.9) / (1 - 0.9) = 19


def test_a_small_shift_is_not_worth_an_alert_and_a_quarter_sd_is() -> None:
    rng = np.random.default_rng(17)
    x = rng.normal(0.0, 1.0, 60_000)
    small = (x + np.where(np.arange(x.size) >= 10_000, 0.03, 0.0)).tolist()
    assert detect(_events({"x": small})) == []
    quarter = (x[:20_000] + np.where(np.arange(20_000) >= 10_000, 0.25, 0.0)).tolist()
    first = _first(detect(_events({"x": quarter})), "x")
    assert first is not None and 10_000 <= first < 15_000


def _daily(rng: np.random.Generator, days: float, start: float) -> tuple[list[float],
                                                                         list[float]]:
    times = start + np.arange(0.0, days * DAY, 20.0)  # three events a minute
    load = 2.0 * np.sin(2 * np.pi * times / DAY) + rng.normal(0.0, 1.0, times.size)
    return load.tolist(), times.tolist()


def test_a_daily_cycle_is_quiet_with_seasonality_and_a_shift_on_top_is_caught(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    ref_load, ref_times = _daily(rng, 1.0, 0.0)
    season = SeasonalitySettings(period=DAY, buckets=48)
    load, times = _daily(rng, 3.0, DAY)
    events = _events({"load": load}, times)
    config = DetectorConfig(seasonality=season,
                            reference_file=_reference(tmp_path, {"load": ref_load}, ref_times))
    assert detect(events, config) == []
    assert detect(events, DetectorConfig(seasonality=season)) == []  # a warm-up of one day
    assert detect(events, DetectorConfig()) != []  # without seasonality the cycle pages
    at = 6000  # day 2, 9:20
    shifted = [dict(e, features={"load": e["features"]["load"] + (0.5 if i >= at else 0.0)})
               for i, e in enumerate(events)]
    first = _first(detect(shifted, config), "load")
    assert first is not None and at <= first < at + 3000


def test_alerts_are_the_same_for_any_batch_size_with_calibration_and_seasonality() -> None:
    rng = np.random.default_rng(19)
    load, times = _daily(rng, 2.0, 0.0)
    x = _ar1(rng, 0.8, len(load))
    shift = np.where(np.arange(len(load)) >= 8000, 1.0, 0.0)
    events = _events({"load": (np.asarray(load) + shift).tolist(),
                      "x": (np.asarray(x) + 2 * shift).tolist()}, times)
    config = DetectorConfig(seasonality=SeasonalitySettings(period=DAY, buckets=24),
                            warmup=300)
    whole = detect(events, config, batch_size=len(events))
    assert {s.feature for s in whole} == {"load", "x"}
    for size in (7, 2000, 3000):
        assert detect(events, config, batch_size=size) == whole


def test_the_kind_vote_gives_the_same_alerts_for_any_batch_size() -> None:
    rng = np.random.default_rng(20)
    amount: list[Any] = rng.normal(100.0, 10.0, 6000).tolist()
    amount[3000:] = (np.asarray(amount[3000:]) + 100.0).tolist()
    amount[0], amount[7], amount[4100] = "n/a", None, "oops"  # a stray string after the vote
    code: list[Any] = rng.choice(["a", "b"], 6000).tolist()
    code[2] = 5  # a number in a categorical feature
    events = _events({"amount": amount, "code": code})
    whole = detect(events, batch_size=len(events))
    assert [s.feature for s in whole] == ["amount"]
    for size in (1, 7, 19, 2000):
        assert detect(events, batch_size=size) == whole


def test_alerts_on_a_slow_ramp_point_up_and_rest_on_many_values() -> None:
    """../shared/cases/c16: the mean ramps 0 -> +2 sd over events 5,000-25,000; every alert's
    figures point up (the second alert once read 'mean 0.361 -> -0.450 (n 5)')."""
    rng = np.random.default_rng(21)
    n = 30_000
    ramp = np.clip((np.arange(n) - 5000) / 20_000, 0.0, 1.0) * 2.0
    signals = detect(_events({"ramp": (rng.normal(0.0, 1.0, n) + ramp).tolist()}))
    assert len(signals) >= 3
    for s in signals:
        assert s.stats["after"]["mean"] > s.stats["before"]["mean"], s.stats
        assert s.stats["after"]["n"] >= 50, s.stats
