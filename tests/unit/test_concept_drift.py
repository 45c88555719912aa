"""Concept drift without Kafka: the label join, its counts and bounds, the detectors."""

from __future__ import annotations

import random
from typing import Any

import pytest

from detectors.bank import DetectorBank, EventBatch
from detectors.codec import decode, encode
from detectors.concept_drift import LabelBatch
from detectors.config import ConceptSettings, DetectorConfig, ModelTaskSettings
from detectors.performance import ModelTask, infer_task

T0 = 1_767_225_600.0


def stream(n: int, change_at: int, before: float, after: float, seed: int = 0
           ) -> list[tuple[str, float, int, float]]:
    """(event_id, score, label, time): the score's class is wrong with the given rate."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        score = rng.random()
        wrong = rng.random() < (before if i < change_at else after)
        out.append((f"e{i}", round(score, 4), int((score >= 0.5) != wrong), T0 + i))
    return out


def events_of(rows: list[tuple[str, float, int, float]], with_labels: bool,
              model: str = "m") -> EventBatch:
    batch = EventBatch()
    for i, (event_id, score, label, when) in enumerate(rows):
        batch.append(model, "1", {"x": 1.0}, score, i, event_id, when,
                     label if with_labels else None)
    return batch


def labels_of(rows: list[tuple[str, float, int, float]], delay: float = 5.0,
              model: str = "m") -> LabelBatch:
    batch = LabelBatch()
    for i, (event_id, _score, label, when) in enumerate(rows):
        batch.append(model, event_id, label, when + delay, i)
    return batch


def concept(config: DetectorConfig, signals: list[Any]) -> list[tuple[str, str, int]]:
    """The realized detectors' alerts (the estimate's, detector ``cbpe``, are tested below)."""
    return [(s.feature, s.detector, s.position) for s in signals
            if s.kind == "concept_drift" and s.detector != "cbpe"]


@pytest.mark.parametrize("detector", ["ddm", "eddm", "hddm_a", "hddm_w", "adwin"])
def test_each_binary_detector_fires_after_an_error_rate_change_not_before(
        detector: str) -> None:
    config = DetectorConfig(concept=ConceptSettings(detector=detector))  # type: ignore[arg-type]
    rows = stream(12_000, 6000, 0.1, 0.3, seed=3)
    fired = concept(config, DetectorBank(config).update(events_of(rows, with_labels=True)))
    assert fired, f"{detector} missed a 10% -> 30% error rate"
    assert all(feature == "error_rate" and name == detector for feature, name, _ in fired)
    if detector != "eddm":  # EDDM (river's defaults) fires on stationary streams too
        assert all(position >= 6000 for *_, position in fired), fired


def test_default_fires_once_per_change_and_stays_quiet_before() -> None:
    config = DetectorConfig()
    rows = stream(20_000, 10_000, 0.1, 0.2, seed=5)
    fired = concept(config, DetectorBank(config).update(events_of(rows, with_labels=True)))
    assert [(f, d) for f, d, _ in fired] == [("error_rate", "adwin")]
    assert 10_000 <= fired[0][2] < 12_000


def test_regression_error_scale_change_is_detected() -> None:
    rng = random.Random(7)
    batch = EventBatch()
    for i in range(8000):
        truth = rng.gauss(100, 20)
        error = rng.gauss(0, 5 if i < 4000 else 7.5)
        batch.append("reg", None, {"x": 1.0}, round(truth + error, 3), i, f"e{i}", T0 + i,
                     round(truth, 3))
    fired = concept(DetectorConfig(), DetectorBank().update(batch))
    assert fired and all(f == "error" and p >= 4000 for f, _, p in fired)


def test_labels_joined_late_or_early_give_the_same_alerts() -> None:
    config = DetectorConfig()
    rows = stream(16_000, 8000, 0.1, 0.3, seed=9)
    on_events = concept(config, DetectorBank(config).update(events_of(rows, True)))

    later = DetectorBank(config, join_labels=True)  # the usual: labels after predictions
    assert later.update(events_of(rows, False)) == []
    from_labels = concept(config, later.update_labels(labels_of(rows)))
    assert from_labels == on_events
    assert later.drain_label_counts() == {("m", "joined"): 16_000}
    assert {d for _, d in later.drain_label_delays()} == {5.0}

    earlier = DetectorBank(config, join_labels=True)  # every label before its prediction
    assert earlier.update_labels(labels_of(rows)) == []
    assert concept(config, earlier.update(events_of(rows, False))) == on_events
    assert earlier.drain_label_counts() == {("m", "joined"): 16_000}
    assert earlier.join_store_size() == 0


def test_duplicate_late_and_orphan_labels_are_counted() -> None:
    settings = ConceptSettings(max_wait_seconds=100.0, max_pending=50)
    bank = DetectorBank(DetectorConfig(concept=settings), join_labels=True)
    rows = stream(300, 10**9, 0.1, 0.1)
    bank.update(events_of(rows[:10], False))
    labels = labels_of(rows[:3])
    labels.append("m", "e0", 1, T0 + 9, 3)  # twice
    labels.append("ghost-model", "x1", 1, T0 + 9, 4)  # an unknown model
    labels.append("m", "never", 0, T0 + 9, 5)  # an event that never comes
    bank.update_labels(labels)
    bank.update(events_of(rows[10:300], False))  # event time moves 290 s on: old ones expire
    late = LabelBatch()
    late.append("m", "e5", 1, T0 + 295, 0)  # its prediction expired meanwhile
    bank.update_labels(late)
    counts = bank.drain_label_counts()
    assert counts[("m", "joined")] == 3
    assert counts[("m", "duplicate")] == 1
    assert counts[("ghost-model", "orphan")] == 1 and counts[("m", "orphan")] == 1
    assert counts[("m", "late")] == 1
    assert counts[("m", "expired")] == 300 - 3 - 50  # all but the joined and the pending
    assert bank.join_store_size() == 50  # the newest predictions, under max_pending


def test_join_store_stays_bounded_under_a_flood_of_unmatched_predictions() -> None:
    settings = ConceptSettings(max_pending=1000, max_early_labels=100)
    bank = DetectorBank(DetectorConfig(concept=settings), join_labels=True)
    for start in range(0, 50_000, 5000):
        bank.update(events_of(stream(5000, 10**9, 0.1, 0.1, seed=start), False))
        assert bank.join_store_size() <= 1000
    flood = LabelBatch()
    for i in range(5000):
        flood.append("m", f"nobody-{i}", 1, T0, i)
    bank.update_labels(flood)
    assert len(bank.join.early) == 100
    assert len(encode(bank)) < 2_000_000


def test_per_version_keeps_one_detector_per_model_version() -> None:
    config = DetectorConfig(concept=ConceptSettings(per_version=True))
    batch = EventBatch()
    for i, (event_id, score, label, when) in enumerate(stream(4000, 10**9, 0.1, 0.1)):
        batch.append("m", str(i % 2), {"x": 1.0}, score, i, event_id, when, label)
    bank = DetectorBank(config)
    bank.update(batch)
    assert set(bank.outcomes) == {("m", "0"), ("m", "1")}


def test_a_restored_bank_continues_exactly_like_one_that_never_stopped() -> None:
    config = DetectorConfig()
    rows = stream(16_000, 9000, 0.1, 0.3, seed=11)
    whole = DetectorBank(config, join_labels=True)
    whole.update(events_of(rows, False))
    expected = concept(config, whole.update_labels(labels_of(rows)))
    assert expected
    first = DetectorBank(config, join_labels=True)
    first.update(events_of(rows, False))
    first.update_labels(labels_of(rows[:7000]))
    restored = decode(encode(first), DetectorBank)
    rest = labels_of(rows[7000:])
    rest.positions = list(range(7000, 16_000))
    assert concept(config, restored.update_labels(rest)) == expected


@pytest.mark.parametrize("size", [1, 137, 16_000])
def test_label_batches_of_any_size_give_the_same_alerts(size: int) -> None:
    config = DetectorConfig()
    rows = stream(16_000, 8000, 0.1, 0.3, seed=2)
    bank = DetectorBank(config, join_labels=True)
    bank.update(events_of(rows, False))
    found = []
    for start in range(0, 16_000, size):
        part = labels_of(rows[start:start + size])
        part.positions = list(range(start, start + len(part)))
        found += concept(config, bank.update_labels(part))
    reference = DetectorBank(config, join_labels=True)
    reference.update(events_of(rows, False))
    assert found == concept(config, reference.update_labels(labels_of(rows)))


def test_outcomes_of_each_prediction_type() -> None:
    binary = ModelTask("binary", "1", "0", 0.7, True, True, "config")
    assert binary.compare(0.65, 1)[0] == 1.0
    assert binary.compare(0.75, True)[0] == 0.0
    assert binary.compare({"0": 0.2, "1": 0.8}, "1")[0] == 0.0
    multiclass = ModelTask("multiclass", None, None, 0.5, False, False, "config")
    assert multiclass.compare("yes", "no")[0] == 1.0
    assert multiclass.compare(2, "2.0")[0] == 0.0
    regression = ModelTask("regression", None, None, 0.5, False, True, "config")
    assert regression.compare(3.0, 5.5)[0] == 2.5
    assert binary.compare(None, 1) is None


@pytest.mark.parametrize("spelling", [True, 1, "1", 1.0, "true", " 1.0"])
def test_true_1_and_1_0_are_one_class(spelling: object) -> None:
    binary = ModelTask("binary", "1", "0", 0.5, True, False, "config")
    multiclass = ModelTask("multiclass", None, None, 0.5, False, False, "config")
    for label in (True, 1, "1", 1.0):
        assert binary.compare(spelling, label)[0] == 0.0
        assert multiclass.compare(spelling, label)[0] == 0.0


def test_the_task_is_inferred_from_the_first_pairs() -> None:
    s = ModelTaskSettings()
    assert infer_task([(b, int(b)) for b in (True, False)], s, 0.5, 20).task == "binary"
    assert infer_task([(i % 3, i % 3) for i in range(9)], s, 0.5, 20).task == "multiclass"
    counts = [(0.4 + i / 10, i % 7) for i in range(30)]  # a count model, first label 0
    assert infer_task(counts, s, 0.5, 20).task == "regression"
    assert infer_task([(0.2, 0), (0.9, 1)], s, 0.5, 20).scores
    fraud = infer_task([("ok", "ok")] * 9 + [("fraud", "fraud")], s, 0.5, 20)
    assert (fraud.task, fraud.positive) == ("binary", "fraud")  # the rarer label


def test_a_configured_task_is_used_from_the_first_label() -> None:
    config = DetectorConfig(models={"default": ModelTaskSettings(task="multiclass")})
    batch = EventBatch()
    for i in range(3):
        batch.append("m", None, {}, i, i, f"e{i}", T0 + i, i)
    bank = DetectorBank(config)
    bank.update(batch)
    assert bank.model_tasks()["m"]["task"] == "multiclass"
    assert bank.realized_performance() == [("m", "", {"accuracy": 1.0, "error_rate": 0.0})]
