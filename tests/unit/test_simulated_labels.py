"""The simulator's ground truth: a concept change moves the labels, not the events."""

from __future__ import annotations

import orjson

from detectors.bank import DetectorBank, EventBatch
from detectors.concept_drift import LabelBatch
from stream.events import format_time
from stream.simulate import Scenario, generate, generate_labels


def _wrong(scenario: Scenario) -> dict[str, bool]:
    predicted = {orjson.loads(v)["event_id"]: orjson.loads(v)["prediction"] >= 0.5
                 for _, v, _ in generate(scenario)}
    return {label["event_id"]: bool(label["label"]) != predicted[label["event_id"]]
            for label in (orjson.loads(v) for _, v, _ in generate_labels(scenario))}


def test_a_concept_change_moves_the_error_rate_and_leaves_the_events_alone() -> None:
    plain = Scenario(events=20_000, seed=3)
    changed = Scenario(events=20_000, seed=3, concept_at=10_000, error_rate=0.1,
                       concept_error_rate=0.2)
    assert list(generate(plain)) == list(generate(changed))
    wrong = _wrong(changed)
    before = [w for e, w in wrong.items() if int(e[2:]) < 10_000]
    after = [w for e, w in wrong.items() if int(e[2:]) >= 10_000]
    assert 0.08 < sum(before) / len(before) < 0.12
    assert 0.18 < sum(after) / len(after) < 0.22


def test_labels_come_in_label_time_order_after_their_event_and_some_never() -> None:
    s = Scenario(events=5000, seed=1, label_delay=60.0, unlabeled_rate=0.2)
    times = {orjson.loads(v)["event_id"]: when for _, v, when in generate(s)}
    labels = list(generate_labels(s))
    assert labels == list(generate_labels(s))  # the same seed, the same labels
    stamps = [when for _, _, when in labels]
    assert stamps == sorted(stamps)
    assert 0.75 < len(labels) / 5000 < 0.85
    delays = []
    for key, value, when in labels:
        label = orjson.loads(value)
        assert key == label["model_id"] and label["timestamp"] == format_time(when)
        delays.append(when - times[label["event_id"]])
    assert min(delays) >= 0 and 50 < sum(delays) / len(delays) < 70


def test_simulated_labels_joined_to_their_events_raise_one_concept_alert_after_the_change(
        ) -> None:
    s = Scenario(events=30_000, seed=5, concept_at=15_000, label_delay=20.0)
    bank = DetectorBank(join_labels=True)
    events = EventBatch()
    for i, (_key, value, when) in enumerate(generate(s)):
        event = orjson.loads(value)
        events.append(event["model_id"], event["model_version"], event["features"],
                      event["prediction"], i, event["event_id"], when)
    labels = LabelBatch()
    for i, (_key, value, when) in enumerate(generate_labels(s)):
        label = orjson.loads(value)
        labels.append(label["model_id"], label["event_id"], label["label"], when, i)
    assert [x for x in bank.update(events) if x.kind == "concept_drift"] == []
    fired = [x for x in bank.update_labels(labels) if x.kind == "concept_drift"]
    # the realized error rate, and the reconciliation: the probabilities no longer hold
    assert [x.feature for x in fired] == ["error_rate", "calibration"]
    joined = orjson.loads(list(generate_labels(s))[fired[0].position][1])
    assert int(joined["event_id"][2:]) >= 15_000
    assert bank.drain_label_counts() == {("credit-risk", "joined"): 30_000}
