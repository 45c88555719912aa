"""Performance estimated before labels (CBPE) and reconciled with them, small versions of
bench/quality_concept.py's estimate section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from bench.quality_concept import _bank_run, _binary_stream, _estimate_error
from detectors.bank import DetectorBank, EventBatch
from detectors.config import DetectorConfig, EstimateSettings
from detectors.estimated import EstimatedPerformance, IsotonicCalibration, expected_roc_auc
from detectors.performance import ModelTask, roc_auc

BINARY = ModelTask("binary", "1", "0", 0.5, True, True, "config")


def test_the_estimate_of_a_calibrated_model_is_within_two_points_of_the_realized() -> None:
    error = _estimate_error(seeds=1, windows=3)
    assert np.median(error["accuracy"]) <= 0.02, error
    assert np.median(error["roc_auc"]) <= 0.02, error


def test_isotonic_calibration_is_monotone_and_keeps_the_mean() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(2000)
    truth = (rng.random(2000) < scores ** 2).astype(float)  # overconfident scores
    c = IsotonicCalibration.fit(scores, truth)
    fitted = c.predict(scores)
    assert np.all(np.diff(c.y) >= 0) and np.all(np.diff(c.x) > 0)
    assert fitted.mean() == pytest.approx(truth.mean())
    assert c.predict(np.array([0.5]))[0] == pytest.approx(0.25, abs=0.06)


def test_the_expected_roc_auc_of_labels_drawn_from_calibrated_scores() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(20_000)
    y = rng.random(20_000) < p
    expected, se = expected_roc_auc(p, p)  # type: ignore[misc]
    assert expected == pytest.approx(roc_auc(y, p), abs=3 * se + 0.005)


def test_a_covariate_shift_is_estimated_before_its_labels_come() -> None:
    rng = np.random.default_rng([8, 0])
    scores, y = _binary_stream(rng, 24_000, 12_000, "covariate")
    alerts = _bank_run(scores, y, DetectorConfig(), delay=600.0)  # labels 6,000 events late
    estimated = [(i, t) for i, f, t in alerts if f == "estimated_accuracy"]
    realized = [t for _, f, t in alerts if f == "error_rate"]
    assert estimated and 12_000 <= estimated[0][0] < 13_100, alerts
    assert not realized or estimated[0][1] < min(realized)
    assert [f for _, f, _ in alerts if f == "calibration"] == []  # still calibrated


def test_overconfident_probabilities_are_caught_by_reconciliation() -> None:
    rng = np.random.default_rng([9, 0])
    scores, y = _binary_stream(rng, 16_000, 8000, "overconfident")
    alerts = _bank_run(scores, y, DetectorConfig(), delay=60.0)
    calibration = [i for i, f, _ in alerts if f == "calibration"]
    assert calibration and all(i >= 8000 for i in calibration), alerts
    assert "estimated_accuracy" not in {f for _, f, _ in alerts if f != "calibration"} or all(
        i >= 8000 for i, _, _ in alerts)


def test_no_estimate_or_calibration_alert_on_a_calibrated_stationary_model() -> None:
    rng = np.random.default_rng([10, 0])
    scores, y = _binary_stream(rng, 100_000, None, "")
    alerts = _bank_run(scores, y, DetectorConfig(), delay=60.0, step=4000)
    assert [f for _, f, _ in alerts if f != "error_rate"] == []


@pytest.mark.parametrize("size", [1, 7, 2000, 3000])
def test_estimates_do_not_depend_on_batch_cuts(size: int) -> None:
    rng = np.random.default_rng(5)
    scores, y = _binary_stream(rng, 9000, 6000, "covariate")
    config = DetectorConfig(concept={"estimate": {"calibration_labels": 500,  # type: ignore[arg-type]
                                                  "window": 500}})

    def run(step: int) -> list[object]:
        bank, out = DetectorBank(config), []
        for start in range(0, len(scores), step):
            batch = EventBatch()
            for i in range(start, min(len(scores), start + step)):
                label = int(y[i]) if i < 3000 else None  # labels for the first 3,000 only
                batch.append("m", None, {}, float(scores[i]), i, f"e{i}", float(i), label)
            out += [(s.position, s.feature, s.stats) for s in bank.update(batch)
                    if s.kind == "concept_drift"]
        out.append(bank.estimated_performance())
        return out

    whole = run(len(scores))
    assert run(size) == whole
    assert any(f == "estimated_accuracy" for _, f, _ in whole[:-1])  # type: ignore[misc]


def test_estimated_and_realized_accuracy_agree_in_the_gauges() -> None:
    rng = np.random.default_rng(6)
    scores, y = _binary_stream(rng, 8000, None, "")
    bank = DetectorBank(DetectorConfig(concept={"estimate": {"window": 2000}}))  # type: ignore[arg-type]
    batch = EventBatch()
    for i in range(len(scores)):
        batch.append("m", "v1", {}, float(scores[i]), i, f"e{i}", float(i), int(y[i]))
    bank.update(batch)
    (_, estimated), = bank.estimated_performance()
    (_, version, realized), = bank.realized_performance()
    assert version == "v1"
    assert estimated["accuracy"] == pytest.approx(realized["accuracy"], abs=0.04)
    assert estimated["roc_auc"] == pytest.approx(realized["roc_auc"], abs=0.04)
    assert 0 < estimated["accuracy_band"] < 0.05
    assert {"precision", "recall"} <= realized.keys()


def test_a_model_without_probabilities_is_not_estimated() -> None:
    estimate = EstimatedPerformance(BINARY, EstimateSettings())
    assert estimate.observe_prediction(0.7, 0) == []  # not calibrated yet: nothing
    bank = DetectorBank()
    batch = EventBatch()
    for i in range(3000):
        batch.append("m", None, {}, i % 2, i, f"e{i}", float(i), i % 2)
    bank.update(batch)
    assert bank.estimates == {} and bank.estimated_performance() == []


def test_a_labelled_reference_file_calibrates_the_estimate_from_the_first_prediction(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    scores, y = _binary_stream(rng, 3000, None, "")
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(orjson.dumps({
        "event_id": f"r{i}", "model_id": "m", "features": {}, "prediction": float(scores[i]),
        "label": int(y[i])}) for i in range(3000)))
    bank = DetectorBank(DetectorConfig(reference_file=str(reference)))
    shifted, _ = _binary_stream(np.random.default_rng(12), 3000, 0, "covariate")
    batch = EventBatch()
    for i in range(3000):  # no label at all: the estimate stands on the reference's
        batch.append("m", None, {}, float(shifted[i]), i, f"e{i}", float(i))
    fired = [(s.feature, s.position) for s in bank.update(batch) if s.kind == "concept_drift"]
    assert bank.model_tasks()["m"]["task"] == "binary"
    assert fired and fired[0] == ("estimated_accuracy", 999)
    (_, estimated), = bank.estimated_performance()
    assert 0.66 < estimated["accuracy"] < 0.76


def test_a_multiclass_estimate_follows_the_realized_accuracy() -> None:
    rng = np.random.default_rng(13)
    bank = DetectorBank()
    batch = EventBatch()
    for i in range(8000):
        logits = rng.normal(0.0, 2.0, 3)
        p = np.exp(logits) / np.exp(logits).sum()
        truth = int(rng.choice(3, p=p))
        probabilities = {str(k): round(float(p[k]), 4) for k in range(3)}
        batch.append("m", None, {}, probabilities, i, f"e{i}", float(i), truth)
    bank.update(batch)
    assert bank.model_tasks()["m"]["task"] == "multiclass"
    (_, estimated), = bank.estimated_performance()
    (_, _, realized), = bank.realized_performance()
    assert estimated["accuracy"] == pytest.approx(realized["accuracy"], abs=0.05)
    assert "roc_auc" not in estimated
