"""stats.attribution on prediction_drift and concept_drift alerts (detectors/attribution.py)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from detectors.attribution import TOP_FEATURES, rank_features, score_shift
from detectors.bank import detect
from detectors.config import DetectorConfig

FEATURES = [f"f{i}" for i in range(10)]


def scored_events(n: int = 9000, drift_at: int = 5000, seed: int = 5) -> list[dict[str, Any]]:
    """Ten independent N(0, 1) features; the prediction is a logistic score of f2 + f7
    only; from ``drift_at`` on, f7 moves by +1.5 sd (so does the prediction)."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        x = {name: rng.gauss(0.0, 1.0) for name in FEATURES}
        if i >= drift_at:
            x["f7"] += 1.5
        score = 1.0 / (1.0 + math.exp(-(x["f2"] + x["f7"])))
        events.append({"model_id": "m", "features": x, "prediction": round(score, 4)})
    return events


@pytest.fixture(scope="module")
def signals_by_batch() -> dict[int, list[Any]]:
    events = scored_events()
    config = DetectorConfig(warmup=1000)
    return {size: detect(events, config, batch_size=size) for size in (97, 2000, 10_000)}


def test_the_drifting_input_of_the_prediction_ranks_first(
        signals_by_batch: dict[int, list[Any]]) -> None:
    signals = signals_by_batch[2000]
    predicted = [s for s in signals if s.kind == "prediction_drift"]
    assert predicted, [(s.feature, s.kind, s.position) for s in signals]
    first = predicted[0]
    assert first.position >= 5000
    ranked = first.stats["attribution"]
    assert ranked[0]["feature"] == "f7", ranked
    assert len(ranked) == TOP_FEATURES
    assert ranked[0]["jensen_shannon"] > 2 * ranked[1]["jensen_shannon"]
    assert [r["jensen_shannon"] for r in ranked] == sorted(
        (r["jensen_shannon"] for r in ranked), reverse=True)
    # Data drift alerts carry none.
    assert all("attribution" not in s.stats for s in signals if s.kind == "data_drift")


def test_attribution_does_not_depend_on_where_batches_are_cut(
        signals_by_batch: dict[int, list[Any]]) -> None:
    def attributed(signals: list[Any]) -> list[Any]:
        return [(s.position, s.stats["attribution"]) for s in signals
                if s.kind == "prediction_drift"]

    assert attributed(signals_by_batch[97]) == attributed(signals_by_batch[2000]) == \
        attributed(signals_by_batch[10_000])


def test_concept_drift_alerts_are_attributed_too() -> None:
    """Labels on the events: the model's error rate rises when f4 moves (the label follows
    a rule the score no longer tracks there)."""
    rng = random.Random(9)
    events = []
    for i in range(12_000):
        x = {name: rng.gauss(0.0, 1.0) for name in FEATURES}
        if i >= 6000:
            x["f4"] += 2.0
        predicted = int(x["f0"] > 0)
        label = predicted if x["f4"] < 1.0 else 1 - predicted
        events.append({"model_id": "m", "features": x, "prediction": predicted,
                       "label": label})
    concept = [s for s in detect(events, DetectorConfig(warmup=1000))
               if s.kind == "concept_drift"]
    assert concept
    assert concept[0].stats["attribution"][0]["feature"] == "f4", concept[0].stats


def test_ranking_is_by_the_shift_within_the_window() -> None:
    rng = random.Random(2)
    still = [rng.gauss(0, 1) for _ in range(400)]
    import numpy as np

    moved = np.asarray([rng.gauss(0, 1) for _ in range(200)]
                       + [rng.gauss(1, 1) for _ in range(200)])
    ranked = rank_features({"still": np.asarray(still), "moved": moved,
                            "short": np.asarray(still[:90])}, window=200)
    assert [r["feature"] for r in ranked] == ["moved", "still"]  # short: < 2 x 50 values
    assert ranked[0]["n"] == 200
    assert score_shift(["a", "b"] * 50, ["a", "b"] * 50)["jensen_shannon"] == 0.0
