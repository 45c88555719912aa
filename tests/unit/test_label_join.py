"""The label join's edge cases: what each label ends as, whatever the batch cuts."""

from __future__ import annotations

import random
from typing import Any

import pytest

from detectors.bank import DetectorBank, EventBatch, detect
from detectors.codec import encode
from detectors.concept_drift import LabelBatch
from detectors.config import ConceptSettings, DetectorConfig, ModelTaskSettings

T0 = 1_767_225_600.0


def bank_with(**settings: Any) -> DetectorBank:
    return DetectorBank(DetectorConfig(concept=ConceptSettings(**settings)), join_labels=True)


def events(rows: list[tuple[str, float | None]], prediction: Any = 0.9) -> EventBatch:
    batch = EventBatch()
    for i, (event_id, when) in enumerate(rows):
        # A decoded batch has one object per event: copy, or the events would share one.
        copy = dict(prediction) if isinstance(prediction, dict) else prediction
        batch.append("m", "1", {"x": 1.0}, copy, i, event_id, when)
    return batch


def labels(rows: list[tuple[str, float | None]], label: Any = 1) -> LabelBatch:
    batch = LabelBatch()
    for i, (event_id, when) in enumerate(rows):
        batch.append("m", event_id, label, when, i)
    return batch


def test_a_second_label_after_an_early_join_is_a_duplicate() -> None:
    bank = bank_with(max_wait_seconds=100.0)
    bank.update_labels(labels([("e0", T0 + 1)]))  # before its prediction
    bank.update(events([("e0", T0)]))  # joins it
    bank.update_labels(labels([("e0", T0 + 2)]))  # once more
    bank.update(events([(f"f{i}", T0 + i) for i in range(1, 400)]))  # time passes
    counts = bank.drain_label_counts()
    assert counts.get(("m", "duplicate")) == 1
    assert ("m", "orphan") not in counts
    assert counts[("m", "joined")] == 1


def test_early_labels_expire_by_event_time_whatever_the_event_batches() -> None:
    # The label for 'e150' waits longer than max_wait_seconds for its prediction: an
    # orphan, and the prediction waits in its turn, whether the events come one by one
    # or in one batch. (A label far ahead moves the labels' watermark on.)
    rows = [(f"e{i}", T0 + i) for i in range(200)]
    outcomes = []
    for size in (1, 7, 200):
        bank = bank_with(max_wait_seconds=100.0)
        bank.update_labels(labels([("e150", T0), ("ahead", T0 + 10_000)]))
        for start in range(0, 200, size):
            bank.update(events(rows[start:start + size]))
        outcomes.append((bank.drain_label_counts(), bank.join_store_size()))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0] == ({("m", "orphan"): 1, ("m", "expired"): 99}, 101 + 1)


def test_a_label_later_than_max_wait_seconds_is_late() -> None:
    bank = bank_with(max_wait_seconds=100.0)
    bank.update(events([("e0", T0), ("e1", T0 + 50), ("e2", T0 + 130)]))
    bank.update_labels(labels([("e1", T0 + 120), ("e0", T0 + 121)]))
    assert bank.drain_label_counts() == {("m", "joined"): 1, ("m", "expired"): 1,
                                         ("m", "late"): 1}
    assert bank.drain_label_delays() == [("m", 70.0)]


def test_predictions_without_event_time_do_not_hold_back_expiry() -> None:
    bank = bank_with(max_wait_seconds=10.0)
    bank.update_labels(labels([("ahead", T0 + 10_000)]))
    bank.update(events([("untimed", None)] + [(f"e{i}", T0 + i) for i in range(100)]))
    assert bank.join_store_size() == 11 + 1  # the last 11 seconds, and the label ahead


def test_stored_predictions_keep_only_what_the_outcome_needs() -> None:
    classes = {f"class-{k}": 0.01 for k in range(40)} | {"class-7": 0.6}
    bank = DetectorBank(DetectorConfig(concept=ConceptSettings(infer_task_from=1),
                                       models={"m": ModelTaskSettings(task="multiclass")}),
                        join_labels=True)
    bank.update(events([(f"event-{i:06d}", T0 + i) for i in range(5000)], classes))
    assert bank.join_store_size() == 5000
    size = len(encode(bank.join))
    assert size < 5000 * 80, size  # 40 class probabilities each would be kilobytes
    bank.update_labels(labels([("event-000001", T0 + 3)], label="class-7"))
    bank.update_labels(labels([("event-000002", T0 + 3)], label="class-8"))
    assert [round(x) for x in bank.outcomes[("m", None)].recent] == [0, 1]


def _error_stream(n: int, change_at: int, seed: int) -> list[tuple[str, float, int, float]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        score = rng.random()
        wrong = rng.random() < (0.1 if i < change_at else 0.3)
        rows.append((f"e{i}", round(score, 4), int((score >= 0.5) != wrong), T0 + i))
    return rows


@pytest.mark.parametrize("detector", ["hddm_a", "adwin"])
def test_alerts_are_identical_to_the_byte_whatever_the_batch_sizes(detector: str) -> None:
    # Positions, versions and stats: an alert's id and body must not depend on the cuts.
    config = DetectorConfig(concept=ConceptSettings(detector=detector))  # type: ignore[arg-type]
    rows = _error_stream(12_000, 6000, seed=4)
    found = {}
    for size in (1, 137, 12_000):
        bank = DetectorBank(config, join_labels=True)
        signals = []
        for start in range(0, len(rows), size):
            part = rows[start:start + size]
            batch = EventBatch()
            for i, (event_id, score, _label, when) in enumerate(part, start):
                batch.append("m", "1", {"x": 1.0}, score, i, event_id, when)
            signals += bank.update(batch)
            labels_part = LabelBatch()
            for i, (event_id, _score, label, when) in enumerate(part, start):
                labels_part.append("m", event_id, label, when + 3.0, i)
            signals += bank.update_labels(labels_part)
        found[size] = [s for s in signals if s.kind == "concept_drift"]
    assert found[1] == found[137] == found[12_000]
    assert [(s.feature, s.detector, s.model_version) for s in found[1]
            if s.detector != "cbpe"] == [
        ("error_rate", detector, "1")]
    assert found[1][0].position >= 6000
    stats = found[1][0].stats
    assert stats["before"]["error_rate"] < 0.15 < stats["after"]["error_rate"]


def test_detect_compares_labels_on_events_with_their_predictions() -> None:
    rows = _error_stream(12_000, 6000, seed=8)
    events = [{"event_id": e, "model_id": "m", "features": {}, "prediction": score,
               "label": label} for e, score, label, _ in rows]
    fired = [(s.feature, s.kind, s.position >= 6000) for s in detect(events, batch_size=999)]
    # the scores keep their law while P(y | score) changes: realized and estimated part too
    assert fired == [("error_rate", "concept_drift", True), ("calibration", "concept_drift", True)]
