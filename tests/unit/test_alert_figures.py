"""Alert figures a person can read (issue 14, case c14): significant digits instead of
fixed decimals, summaries finite for any finite double, no numpy warning, and every
``before``/``after`` saying how many values it rests on."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import DetectorConfig, detect
from detectors.bank import DriftSignal
from detectors.figures import SIGNIFICANT_DIGITS, mean_std, significant
from stream.alerts import build_alert, encode_alert

MAX = 1.7976931348623157e308

# feature -> (before mean, after mean, sd): c14's three, and the same kind at the edges
# of the doubles (near the largest, both signs near it, subnormal).
SHIFTS = {
    "big": (1e300, 3e300, 1e299),
    "tiny": (1e-300, 3e-300, 1e-301),
    "latency_s": (4e-7, 8e-7, 1e-7),
    "negative_huge": (-1e305, -3e305, 1e304),
    "subnormal": (1e-310, 3e-310, 1e-311),
}


def events(seed: int = 1, n: int = 4000, change: int = 2000) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features: dict[str, float] = {}
        for name, (before, after, sd) in SHIFTS.items():
            features[name] = rng.gauss(before if i < change else after, sd)
        # Near the largest double, both signs: no sum of these fits in a double.
        features["edge"] = rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.0 if i < change
                                                                 else 0.6) * MAX
        out.append({"event_id": f"e{i}", "model_id": "m", "features": features})
    return out


@pytest.fixture(scope="module")
def signals() -> list[DriftSignal]:
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise",
                                                divide="raise"):
        warnings.simplefilter("error")  # any numpy or Python warning fails the test
        return detect(events(), DetectorConfig(warmup=500))


def numbers(stats: Any) -> Iterator[float]:
    if isinstance(stats, dict):
        for value in stats.values():
            yield from numbers(value)
    elif isinstance(stats, float | int) and not isinstance(stats, bool):
        yield float(stats)


def first(signals: list[DriftSignal], feature: str) -> DriftSignal:
    return next(s for s in signals if s.feature == feature)


def test_every_shifted_feature_fires_and_every_figure_is_finite(
        signals: list[DriftSignal]) -> None:
    assert {s.feature for s in signals} >= {*SHIFTS, "edge"}
    for s in signals:
        values = list(numbers(s.stats))
        assert values and all(math.isfinite(v) for v in values), (s.feature, s.stats)
        alert = orjson.loads(encode_alert(build_alert(s, "e", None, "t", 0, s.position, "h")))
        assert None not in (alert["stats"]["before"].get("std"),
                            alert["stats"]["after"].get("std"))


@pytest.mark.parametrize("feature", sorted(SHIFTS))
def test_before_and_after_show_the_change_in_the_values_own_magnitude(
        signals: list[DriftSignal], feature: str) -> None:
    before_mean, after_mean, sd = SHIFTS[feature]
    stats = first(signals, feature).stats
    before, after = stats["before"], stats["after"]
    # The reference is the first 500 values; ``after`` the values since the change.
    assert before["mean"] == pytest.approx(before_mean, rel=0.05, abs=5 * sd / math.sqrt(500))
    assert after["mean"] == pytest.approx(after_mean, rel=0.1, abs=5 * sd)
    assert before["std"] == pytest.approx(sd, rel=0.2)
    assert after["std"] > 0  # not rounded away, not overflowed
    assert before["n"] == 500 and after["n"] >= 1


def test_figures_keep_six_significant_digits(signals: list[DriftSignal]) -> None:
    for s in signals:
        for value in numbers(s.stats):
            assert value == significant(value), (s.feature, value)
    latency = first(signals, "latency_s").stats
    assert 3e-7 < latency["before"]["mean"] < 5e-7  # was "mean 0" with fixed decimals


def test_the_edge_of_the_doubles_gives_a_finite_spread(signals: list[DriftSignal]) -> None:
    stats = first(signals, "edge").stats
    assert 0.5 * MAX < stats["before"]["std"] <= MAX
    assert abs(stats["before"]["mean"]) < 0.2 * MAX


def test_alert_bytes_are_the_same_whatever_the_batch_size() -> None:
    data = events(seed=2)
    config = DetectorConfig(warmup=500)
    runs = [[encode_alert(build_alert(s, "e", None, "t", 0, s.position, "h"))
             for s in detect(data, config, batch_size=size)] for size in (97, 4000)]
    assert runs[0] and runs[0] == runs[1]


def test_estimated_accuracy_before_and_after_say_how_many_values() -> None:
    """No labels at all: the first window of predictions is the estimate's reference; its
    size is the ``n`` of ``before``, the fallen window's that of ``after``."""
    rng = random.Random(3)
    events = []
    for i in range(8000):
        sure = rng.uniform(0.9, 0.99) if i < 4000 else rng.uniform(0.5, 0.65)
        top = "1" if rng.random() < 0.5 else "0"
        events.append({"model_id": "m", "features": {"x": rng.gauss(0, 1)},
                       "prediction": {top: sure, "01"[top == "0"]: 1 - sure}})
    found = [s for s in detect(events) if s.feature == "estimated_accuracy"]
    assert found, "a fall of the estimate"
    stats = found[0].stats
    assert stats["before"]["n"] > 0 and stats["after"]["n"] > 0
    assert stats["before"]["estimated_accuracy"] > stats["after"]["estimated_accuracy"]


# --- the helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("x", [4.123456789e-7, 0.3612345678, 123456.789, -98765.4321e-200,
                               MAX, 5e-324, 1.0, 12.0])
def test_significant_rounds_to_six_significant_digits(x: float) -> None:
    rounded = significant(x)
    assert rounded == float(f"{x:.{SIGNIFICANT_DIGITS - 1}e}")
    mantissa = repr(abs(rounded)).split("e")[0].replace(".", "").strip("0")
    assert len(mantissa) <= 6, repr(rounded)
    assert rounded == pytest.approx(x, rel=5e-6)


def test_mean_std_is_numpys_bit_for_bit_in_range_and_finite_beyond() -> None:
    rng = np.random.default_rng(7)
    for scale in (1e-100, 1e-7, 1.0, 3e5, 1e100):  # squares stay within the doubles
        xs = rng.normal(3 * scale, scale, size=1001)
        assert mean_std(xs) == (float(xs.mean()), float(xs.std()))
        assert mean_std(xs, exact_mean=True)[0] == math.fsum(xs.tolist()) / xs.size
    xs = rng.normal(3e-200, 1e-200, size=1001)  # numpy's squares underflow: std 0
    assert float(xs.std()) == 0.0 and mean_std(xs)[1] == pytest.approx(1e-200, rel=0.1)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for xs in (np.full(10, MAX), np.array([MAX, -MAX] * 5), rng.uniform(-1.0, 1.0, 999) * MAX,
                   np.array([5e-324, 1e-323, 0.0])):
            mean, std = mean_std(xs)
            assert math.isfinite(mean) and math.isfinite(std)
            assert abs(mean) <= MAX and std <= MAX
    assert mean_std(np.array([MAX, -MAX] * 5)) == (0.0, MAX)
    with pytest.raises(ValueError):
        mean_std([])
