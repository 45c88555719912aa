"""Nothing unmonitored in silence (issue 14, case c13): models past detectors.max_models
and features past max_features_per_model are named in the log once, counted in metrics,
and idle models make room for new ones (detectors.retire_idle_models_seconds)."""

from __future__ import annotations

import logging
import random
from typing import Any

import orjson
import pytest

from detectors import DetectorBank, DetectorConfig, EventBatch
from detectors.codec import decode, encode
from stream.alerts import build_alert, encode_alert
from stream.config import AppConfig
from stream.loop import RunLoop
from stream.metrics import Metrics
from stream.records import RecordBatch
from tests.unit.test_run_loop import ListSource, RecordingAlertSink, RecordingDeadLetterSink

TOPIC = "model-events"
START = 1_796_040_000.0
DAY = 86400.0


def event(i: int, model: str, x: float, time: float | None = None,
          features: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"event_id": f"e{i}", "model_id": model,
                            "features": features if features is not None else {"x": x}}
    if time is not None:
        body["timestamp"] = time
    return orjson.dumps(body)


def many_models(models: int, late: int = 1200, seed: int = 1) -> list[bytes]:
    """c13's kind: ``models`` models with two events each, then ``late-model`` whose
    values shift by 3 sd after 600 events."""
    rng = random.Random(seed)
    values = [event(i, f"model-{i // 2:04d}", rng.gauss(0, 1)) for i in range(2 * models)]
    values += [event(len(values) + i, "late-model", rng.gauss(3.0 if i >= 600 else 0.0, 1))
               for i in range(late)]
    return values


class Run:
    def __init__(self, detectors: DetectorConfig) -> None:
        calls: list[Any] = []
        self.metrics = Metrics()
        self.alerts = RecordingAlertSink(calls)
        self.loop = RunLoop(ListSource([], 1, calls), self.alerts,
                            RecordingDeadLetterSink(calls), AppConfig(detectors=detectors),
                            self.metrics)
        self.offset = 0

    def send(self, values: list[bytes], batch_size: int = 250) -> Run:
        for k in range(0, len(values), batch_size):
            batch = RecordBatch()
            for value in values[k:k + batch_size]:
                batch.append(TOPIC, 0, self.offset, None, None, value)
                self.offset += 1
            self.loop.process(batch)
        return self

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def unmonitored_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is not monitored" in r.getMessage()]


def test_a_model_past_max_models_is_counted_logged_once_and_warned_about(
        caplog: pytest.LogCaptureFixture) -> None:
    config = DetectorConfig(warmup=100, max_models=20)
    with caplog.at_level(logging.WARNING, logger="streamdrift.loop"):
        run = Run(config).send(many_models(20))
    assert run.alerts.sent == []  # the late model's shift is not seen...
    # ...but said: one model left out, all of its events counted, one log line.
    assert run.sample("streamdrift_series_unmonitored", reason="max_models") == 1
    assert run.sample("streamdrift_series_unmonitored", reason="max_features_per_model") == 0
    assert run.sample("streamdrift_events_unmonitored_total", reason="max_models") == 1200
    [line] = unmonitored_lines(caplog)
    assert "'late-model'" in line and "detectors.max_models (20)" in line


def test_within_the_bound_the_late_model_is_caught() -> None:
    run = Run(DetectorConfig(warmup=100, max_models=21)).send(many_models(20))
    assert {a["model_id"] for a in run.alerts.sent} == {"late-model"}
    assert run.sample("streamdrift_series_unmonitored", reason="max_models") == 0


def test_features_past_max_features_per_model_are_counted_and_each_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(2)
    values = [event(i, "wide", 0.0, features={f"f{k}": rng.gauss(0, 1) for k in range(8)})
              for i in range(400)]
    with caplog.at_level(logging.WARNING, logger="streamdrift.loop"):
        run = Run(DetectorConfig(warmup=100, max_features_per_model=5,
                                 monitor_predictions=False)).send(values, batch_size=37)
    assert run.sample("streamdrift_series_unmonitored", reason="max_features_per_model") == 3
    assert run.sample("streamdrift_events_unmonitored_total",
                      reason="max_features_per_model") == 3 * 400
    lines = unmonitored_lines(caplog)
    assert len(lines) == 3
    for name, line in zip(("f5", "f6", "f7"), lines, strict=True):
        assert f"feature '{name}' of model 'wide'" in line
        assert "detectors.max_features_per_model (5)" in line


def two_old_models_then_a_newcomer() -> list[bytes]:
    """Models b and a from day 0 to day 1, then b alone; c arrives at day 1.2, has room
    once a is idle for 1.5 days (day 2.5, its 1,300th event) and shifts by 3 sd on
    day 3.5 (its 2,300th event)."""
    rng = random.Random(4)
    out: list[bytes] = []
    t = START
    for i in range(400):
        out.append(event(len(out), "a" if i % 2 else "b", rng.gauss(0, 1), time=t))
        t += DAY / 400
    for i in range(4000):
        if i >= 200:
            out.append(event(len(out), "c", rng.gauss(3.0 if i >= 2500 else 0.0, 1), time=t))
        out.append(event(len(out), "b", rng.gauss(0, 1), time=t))
        t += DAY / 1000
    return out


def test_an_idle_model_makes_room_for_a_new_one(caplog: pytest.LogCaptureFixture) -> None:
    config = DetectorConfig(warmup=100, max_models=2, retire_idle_models_seconds=1.5 * DAY)
    with caplog.at_level(logging.WARNING, logger="streamdrift.loop"):
        run = Run(config).send(two_old_models_then_a_newcomer())
    bank = run.loop.banks[0]
    assert list(bank.models) == ["b", "c"]
    assert run.sample("streamdrift_models_retired_total") == 1
    assert {a["model_id"] for a in run.alerts.sent} == {"c"}  # c's shift is caught
    assert run.sample("streamdrift_series_unmonitored", reason="max_models") == 0
    # c waited until a had been idle for 1.5 days: those events were counted.
    waited = run.sample("streamdrift_events_unmonitored_total", reason="max_models")
    assert waited is not None and 1250 < waited < 1350
    retired = [r.getMessage() for r in caplog.records if "retired" in r.getMessage()]
    assert len(retired) == 1 and "'a'" in retired[0] and "'c'" in retired[0]


def test_without_retirement_the_newcomer_stays_unmonitored() -> None:
    config = DetectorConfig(warmup=100, max_models=2, retire_idle_models_seconds=None)
    run = Run(config).send(two_old_models_then_a_newcomer())
    assert list(run.loop.banks[0].models) == ["b", "a"]
    assert run.alerts.sent == []
    assert run.sample("streamdrift_events_unmonitored_total", reason="max_models") == 3800
    assert run.sample("streamdrift_models_retired_total") == 0


def bank_run(values: list[bytes], config: DetectorConfig, batch_size: int
             ) -> tuple[list[bytes], DetectorBank]:
    bank = DetectorBank(config)
    alerts = []
    events = [orjson.loads(v) for v in values]
    for k in range(0, len(events), batch_size):
        batch = EventBatch()
        for i, e in enumerate(events[k:k + batch_size], start=k):
            batch.append(e["model_id"], None, e["features"], None, i, e["event_id"],
                         e.get("timestamp"))
        alerts += [encode_alert(build_alert(s, "e", None, TOPIC, 0, s.position, "h"))
                   for s in bank.update(batch)]
    return alerts, bank


def test_which_model_retires_and_when_does_not_depend_on_batch_sizes() -> None:
    config = DetectorConfig(warmup=100, max_models=2, retire_idle_models_seconds=1.5 * DAY)
    values = two_old_models_then_a_newcomer()
    runs = [bank_run(values, config, size) for size in (1, 7, 250, len(values))]
    first_alerts, first_bank = runs[0]
    assert first_alerts
    for alerts, bank in runs[1:]:
        assert alerts == first_alerts
        assert list(bank.models) == list(first_bank.models)
        assert bank.capacity.retired == first_bank.capacity.retired == 1
        assert bank.capacity.last_seen == first_bank.capacity.last_seen


def test_a_retired_model_that_comes_back_needs_room_again() -> None:
    config = DetectorConfig(warmup=100, max_models=1, retire_idle_models_seconds=DAY)
    bank = DetectorBank(config)

    def send(model: str, time: float) -> None:
        batch = EventBatch()
        batch.append(model, None, {"x": 1.0}, None, 0, time=time)
        bank.update(batch)

    send("a", START)
    send("b", START + 2 * DAY)  # a idle for 2 days: retired for b
    send("a", START + 2 * DAY + 60)  # b is not idle: a waits, counted
    assert list(bank.models) == ["b"]
    report = bank.capacity.drain()
    assert report.retired == [("a", 2 * DAY, "b")]
    assert report.new == [("a", None)] and report.events == {"max_models": 1}
    assert bank.capacity.unmonitored()["max_models"] == 1
    send("a", START + 4 * DAY)  # now b is idle
    assert list(bank.models) == ["a"]
    assert bank.capacity.unmonitored()["max_models"] == 0  # a is in, b is out (retired)
    assert bank.capacity.drain().retired == [("b", 2 * DAY, "a")]


def test_the_bank_with_its_bounds_survives_a_snapshot() -> None:
    config = DetectorConfig(warmup=100, max_models=2, max_features_per_model=1,
                            retire_idle_models_seconds=1.5 * DAY)
    values = two_old_models_then_a_newcomer()
    half = len(values) // 2
    _, bank = bank_run(values[:half], config, 250)
    copy = decode(encode(bank), DetectorBank)
    assert encode(copy) == encode(bank)
    assert copy.capacity.last_seen == bank.capacity.last_seen
    assert copy.capacity.models == bank.capacity.models
