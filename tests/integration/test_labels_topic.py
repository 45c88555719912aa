"""Concept drift on a real broker: labels on their own topic, joined to predictions.

The simulated model's features keep their distribution; from event 15,000 its
predictions are wrong 30% of the time instead of 10%. `streamdrift run` with
`--labels-topic` must raise a `concept_drift` alert per model after the change and
no `data_drift` one; odd labels (twice, for an unknown model, for an event that
never existed) are counted; a replay of both topics gives the same alerts.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from tests.integration.conftest import Running, metric, read_topic, streamdrift, wait_until

pytestmark = pytest.mark.integration

EVENTS = 30_000
CHANGE = 15_000
MODELS = ("credit", "fraud", "ads")  # partitions 0, 1, 2 (crc32 of the key)
CONFIG = "detectors:\n  concept:\n    max_wait_seconds: 60\n"


def test_a_changed_relation_to_the_label_raises_concept_drift_only(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running],
        tmp_path: Path) -> None:
    events, labels, alerts = names("events"), names("labels"), names("alerts")
    made = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", events,
                       "--labels-topic", labels, "--partitions", "3", "--events", str(EVENTS),
                       "--seed", "4", "--models", ",".join(MODELS), "--concept-at",
                       str(CHANGE), "--error-rate", "0.1", "--concept-error-rate", "0.3",
                       "--label-delay", "5", "--missing-rate", "0.01")
    assert made.returncode == 0, made.stderr
    odd = read_topic(bootstrap, labels)[:5]  # the first five labels, sent again
    producer = Producer({"bootstrap.servers": bootstrap})
    first_ms = odd[0].timestamp()[1]
    for msg in odd:
        producer.produce(labels, msg.value(), msg.key(), timestamp=msg.timestamp()[1])
    for i in range(3):
        producer.produce(labels, orjson.dumps({"event_id": f"x{i}", "model_id": "ghost",
                                               "label": 1}), b"credit", timestamp=first_ms)
        producer.produce(labels, orjson.dumps({"event_id": f"never-{i}", "model_id": "credit",
                                               "label": 0}), b"credit", timestamp=first_ms)
    assert producer.flush(30) == 0
    config = tmp_path / "streamdrift.yaml"
    config.write_text(CONFIG)

    run = spawn("--config", str(config), "--bootstrap-servers", bootstrap, "--events-topic",
                events, "--labels-topic", labels, "--alerts-topic", alerts, "--dlq-topic",
                names("dlq"), "--group-id", names("group"))

    def concept_alerts() -> list[dict[str, object]]:
        assert run.process.poll() is None, run.log()[-3000:]
        return [orjson.loads(m.value()) for m in read_topic(bootstrap, alerts)]

    def events_seen() -> float:
        return metric(run, "streamdrift_events_total")

    wait_until(lambda: {a["model_id"] for a in concept_alerts()
                        if a["kind"] == "concept_drift"} >= set(MODELS), 120,
               "a concept_drift alert for every model", interval=1.0, progress=events_seen)
    # Event time moves on (later events, no labels): the odd labels, last in their
    # partitions, are released and the ones no prediction came for expire as orphans.
    later = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", events,
                        "--events", "3000", "--seed", "5", "--models", ",".join(MODELS),
                        "--start", str(time.time() + 1000), "--missing-rate", "0.01")
    assert later.returncode == 0, later.stderr
    wait_until(lambda: metric(run, "streamdrift_labels_total", outcome="orphan") >= 6, 60,
               "the labels of no prediction to be counted as orphans", progress=events_seen)
    assert metric(run, "streamdrift_labels_total", outcome="duplicate") >= 5
    assert metric(run, "streamdrift_labels_total", outcome="joined") > EVENTS * 0.8
    assert 0.2 < metric(run, "streamdrift_model_error_rate", model_id="credit") < 0.4
    assert 0.6 < metric(run, "streamdrift_model_performance", model_id="credit",
                        model_version="1", metric="accuracy") < 0.8
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(120) == 0, run.log()[-3000:]

    live = [orjson.loads(m.value()) for m in read_topic(bootstrap, alerts)]
    live = [a for a in live if a["kind"] != "data_quality"]
    assert {a["kind"] for a in live} == {"concept_drift"}, "the features did not drift"
    for alert in live:
        # the realized error rate; the reconciliation too (the scores keep their law while
        # P(label | score) changes: the estimate's calibration no longer holds)
        assert (alert["feature"], alert["detector"]) in {("error_rate", "adwin"),
                                                         ("calibration", "cbpe")}
        assert alert["source"]["topic"] == labels  # the label whose outcome fired it
        assert int(str(alert["event_id"]).split("-")[1]) >= CHANGE

    replay = streamdrift("replay", "--config", str(config), "--bootstrap-servers", bootstrap,
                         "--topic", events, "--labels-topic", labels)
    assert replay.returncode == 0, replay.stderr
    replayed = [orjson.loads(line) for line in replay.stdout.splitlines()]
    assert {a["alert_id"] for a in replayed if a["kind"] == "concept_drift"} == {
        a["alert_id"] for a in live}
