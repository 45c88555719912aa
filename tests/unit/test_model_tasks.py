"""The task of a model decides its outcomes (issue 12, cases c07*): integer classes,
boolean predictions and count regressions are judged as what they are, whatever the
batch cuts."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.bank import DetectorBank, EventBatch
from detectors.codec import decode, encode
from detectors.config import DetectorConfig, ModelTaskSettings
from detectors.values import event_time

# Copies of ../shared/cases/c07*.jsonl.gz (the inputs issue 12 was filed with).
CASES = Path(__file__).resolve().parents[1] / "data" / "cases"
SIZES = (1, 7, 2000, 3000, None)  # None: the whole file in one batch


def _case(name: str) -> list[dict[str, Any]]:
    path = CASES / f"{name}.jsonl.gz"
    with gzip.open(path) as f:
        return [json.loads(line) for line in f]


def _run(events: list[dict[str, Any]], size: int | None, config: DetectorConfig | None = None,
         probe_at: int | None = None) -> tuple[bytes, DetectorBank, dict[str, Any]]:
    """Alerts as bytes, the bank, and its model performance after event ``probe_at``."""
    bank = DetectorBank(config)
    step = size or len(events)
    signals: list[Any] = []
    probe: dict[str, Any] = {}
    for start in range(0, len(events), step):
        batch = EventBatch()
        for i, e in enumerate(events[start:start + step], start):
            batch.append(e["model_id"], e.get("model_version"), e["features"],
                         e.get("prediction"), i, e.get("event_id"),
                         event_time(e.get("timestamp")), e.get("label"))
        signals += bank.update(batch)
        if probe_at is not None and not probe and start + step >= probe_at:
            probe = bank.model_performance()
    return orjson.dumps([[s.position, s.model_id, s.model_version, s.feature, s.kind,
                          s.detector, s.stats] for s in signals]), bank, probe


def _concept(bank_bytes: bytes) -> list[list[Any]]:
    return [s for s in orjson.loads(bank_bytes) if s[4] == "concept_drift"]


@pytest.mark.parametrize(("name", "task", "before", "after"), [
    ("c07_int_classes", "multiclass", (0.03, 0.07), (0.33, 0.41)),
    ("c07c_bool_predictions", "binary", (0.06, 0.12), (0.36, 0.46)),
    ("c07c_control_int_predictions", "binary", (0.06, 0.12), (0.36, 0.46)),
])
def test_each_case_alerts_near_3000_with_the_right_error_rate_at_every_batch_size(
        name: str, task: str, before: tuple[float, float], after: tuple[float, float]) -> None:
    events = _case(name)
    runs = {size: _run(events, size) for size in SIZES}
    whole, bank, _ = runs[None]
    assert all(data == whole for data, _, _ in runs.values()), "alerts depend on batch cuts"
    fired = _concept(whole)
    assert [(s[3], s[5]) for s in fired] == [("error_rate", "adwin")]
    assert 3000 <= fired[0][0] < 3300, fired
    assert bank.model_tasks()["m"]["task"] == task
    # the gauge: the error rate of the last 1,000 outcomes, before and after the change
    _, _, probe = _run(events, 3000, probe_at=3000)
    assert before[0] < probe["m"][0] < before[1]
    assert after[0] < bank.model_performance()["m"][0] < after[1]


def test_boolean_and_integer_predictions_give_the_same_outcomes() -> None:
    as_bool, _, _ = _run(_case("c07c_bool_predictions"), 2000)
    as_int, _, _ = _run(_case("c07c_control_int_predictions"), 2000)
    assert _concept(as_bool) == _concept(as_int)


def _counts(n: int, change_at: int, seed: int = 1) -> list[dict[str, Any]]:
    """A count regression (labels 0..6, the first one 0) whose predictions get worse."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        mean = rng.uniform(0.3, 3.0)
        label = min(6, sum(rng.random() < mean / 6 for _ in range(6)))
        if i == 0:
            label = 0
        noise = rng.gauss(0, 0.4 if i < change_at else 0.8)
        out.append({"event_id": f"e{i}", "model_id": "counts", "features": {},
                    "prediction": round(max(0.0, label + noise), 3) + 0.001, "label": label})
    return out


@pytest.mark.parametrize("size", [1, 7, 2000, 3000, None])
def test_a_count_regression_is_watched_as_a_regression_at_every_batch_size(
        size: int | None) -> None:
    events = _counts(9000, 3000)
    data, bank, _ = _run(events, size)
    assert data == _run(events, None)[0]
    assert bank.model_tasks()["counts"]["task"] == "regression"
    fired = _concept(data)
    assert fired and all(s[3] == "error" and s[0] >= 3000 for s in fired), fired
    (_, _version, metrics), = bank.realized_performance()
    assert 0.55 < metrics["mae"] < 0.75 and "accuracy" not in metrics


def test_a_configured_task_overrides_the_inference() -> None:
    events = _case("c07c_control_int_predictions")
    config = DetectorConfig(models={"m": ModelTaskSettings(task="multiclass")})
    _, bank, _ = _run(events[:500], None, config)
    assert bank.model_tasks()["m"] == {"task": "multiclass", "positive_class": None,
                                       "threshold": 0.5, "scores": False, "source": "config"}


def test_the_task_and_the_waiting_pairs_survive_a_snapshot() -> None:
    events = _case("c07_int_classes")
    whole, _, _ = _run(events, None)
    bank = DetectorBank()
    first = EventBatch()
    for i, e in enumerate(events[:50]):  # fewer than infer_task_from: still undecided
        first.append("m", None, {}, e["prediction"], i, e["event_id"], None, e["label"])
    assert bank.update(first) == [] and bank.model_tasks() == {}
    restored = decode(encode(bank), DetectorBank)
    rest = EventBatch()
    for i, e in enumerate(events[50:], 50):
        rest.append("m", None, {}, e["prediction"], i, e["event_id"], None, e["label"])
    fired = [[s.position, s.model_id, s.model_version, s.feature, s.kind, s.detector, s.stats]
             for s in restored.update(rest) if s.kind == "concept_drift"]
    assert orjson.dumps(fired) == orjson.dumps(_concept(whole))
    assert restored.model_tasks()["m"]["task"] == "multiclass"


def test_labels_carried_on_events_are_counted_as_joined() -> None:
    events = _case("c07c_bool_predictions")[:1000]
    events[5] = dict(events[5], label=None)
    _, bank, _ = _run(events, 7)
    assert bank.drain_label_counts() == {("m", "joined"): 999}


def test_a_bad_task_is_refused_with_its_path() -> None:
    with pytest.raises(ValueError, match=r"models\.m2\.task"):
        DetectorConfig.model_validate({"models": {"default": {"task": "binary"},
                                                  "m2": {"task": "bogus"}}})
    config = DetectorConfig.model_validate({"models": {"default": {"task": "regression"}}})
    assert config.for_model("any").task == "regression"
