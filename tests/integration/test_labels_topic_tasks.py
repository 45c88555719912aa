"""Concept alerts from the labels topic equal those from a file with labels on the events
(issue 12): a boolean-prediction classifier (c07c's kind) and a scored binary model whose
inputs narrow (the estimate falls, CBPE), replayed from a real broker and from a file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import streamdrift

pytestmark = pytest.mark.integration

# Six hours ago, whole seconds: event and record times inside the broker's retention (24 h
# for deploy/local-kafka.sh, checked every minute), which deletes older records mid-test.
T0 = int(time.time()) - 6 * 3600
N = 9000
LABEL_DELAY = 5


def _events() -> list[dict[str, Any]]:
    rng = np.random.default_rng(12)
    out = []
    for i in range(N):  # model "flags": true/false, 90% right, then 60% from 3,000
        truth = bool(rng.random() < 0.4)
        right = rng.random() < (0.9 if i < 3000 else 0.6)
        out.append({"event_id": f"f{i}", "model_id": "flags", "timestamp": T0 + i,
                    "features": {}, "prediction": truth if right else not truth,
                    "label": int(truth)})
    x = rng.normal(0.0, 1.5, N)  # model "scores": calibrated, x narrows from 5,000 on
    x[5000:] = rng.normal(0.0, 0.5, N - 5000)
    p = 1.0 / (1.0 + np.exp(-2.0 * x))
    y = rng.random(N) < p
    for i in range(N):
        out.append({"event_id": f"s{i}", "model_id": "scores", "timestamp": T0 + i,
                    "features": {}, "prediction": round(float(p[i]), 6),
                    "label": int(y[i])})
    out.sort(key=lambda e: (e["timestamp"], e["model_id"]))
    return out


def _concept(lines: list[str]) -> list[tuple[Any, ...]]:
    alerts = [orjson.loads(line) for line in lines if line.strip()]
    # Attribution is left out: an alert raised when a label arrives on the labels topic has
    # none (docs/contracts.md), one raised on an event with its label does.
    return sorted((a["model_id"], a["feature"], a["detector"], a["event_id"],
                   orjson.dumps({k: v for k, v in a["stats"].items() if k != "attribution"},
                                option=orjson.OPT_SORT_KEYS))
                  for a in alerts if a["kind"] == "concept_drift")


def test_labels_topic_and_file_give_the_same_concept_alerts(
        bootstrap: str, names: Callable[[str], str], tmp_path: Path) -> None:
    events = _events()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    from_file = streamdrift("replay", "--input", str(path))
    assert from_file.returncode == 0, from_file.stderr
    expected = _concept(from_file.stdout.splitlines())
    features = {(m, f) for m, f, *_ in expected}
    assert {("flags", "error_rate"), ("scores", "estimated_accuracy")} <= features, expected

    topic, labels = names("events"), names("labels")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1), NewTopic(labels, 1, 1)]
                                      ).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for e in events:
        unlabelled = {k: v for k, v in e.items() if k != "label"}
        producer.produce(topic, orjson.dumps(unlabelled), e["model_id"].encode(),
                         timestamp=e["timestamp"] * 1000)
    for e in events:  # each label 5 s after its event, in event order
        when = e["timestamp"] + LABEL_DELAY
        producer.produce(labels, orjson.dumps({"event_id": e["event_id"],
                                               "model_id": e["model_id"],
                                               "label": e["label"], "timestamp": when}),
                         e["model_id"].encode(), timestamp=when * 1000)
    assert producer.flush(60) == 0

    replay = streamdrift("replay", "--bootstrap-servers", bootstrap, "--topic", topic,
                         "--labels-topic", labels)
    assert replay.returncode == 0, replay.stderr
    assert _concept(replay.stdout.splitlines()) == expected
