"""An event time far ahead of its record timestamp is not trusted (issue 14, case c20):
one event stamped 2099 must not pin the newest-event gauge, and is counted."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from detectors import DetectorConfig
from stream.config import AppConfig, KafkaConfig, LimitsConfig
from stream.loop import RunLoop
from stream.metrics import Metrics
from stream.records import RecordBatch
from tests.unit.test_run_loop import ListSource, RecordingAlertSink, RecordingDeadLetterSink

TOPIC = "model-events"
START = 1_796_040_000.0  # 2026-11-30T12:00:00Z, the first record timestamp (s)
FUTURE = "2099-01-01T00:00:00Z"
FUTURE_S = 4_070_908_800.0


def event(i: int, timestamp: Any, model: str = "m", **extra: Any) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "model_id": model, "timestamp": timestamp,
                         "features": {"x": float(i % 7)}, **extra})


LABELS = "model-labels"


class Run:
    """A RunLoop over hand-made batches (record timestamps chosen by the test)."""

    def __init__(self, **limits: Any) -> None:
        calls: list[Any] = []
        self.metrics = Metrics()
        self.alerts = RecordingAlertSink(calls)
        self.dead_letters = RecordingDeadLetterSink(calls)
        config = AppConfig(detectors=DetectorConfig(warmup=200), limits=LimitsConfig(**limits),
                           kafka=KafkaConfig(labels_topic=LABELS))
        self.loop = RunLoop(ListSource([], 1, calls), self.alerts, self.dead_letters, config,
                            self.metrics)
        self.offset = 0

    def send(self, *items: tuple[bytes | None, float | None], partition: int = 0,
             topic: str = TOPIC) -> None:
        """Records (value, record timestamp in s or None) as one batch."""
        batch = RecordBatch()
        for value, stamp in items:
            batch.append(topic, partition, self.offset,
                         None if stamp is None else round(stamp * 1000), None, value)
            self.offset += 1
        self.loop.process(batch)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def c20_records(n: int = 2000, future_at: int = 1000) -> list[tuple[bytes, float]]:
    """The case: one event a second, the event time equal to the record timestamp, except
    one event stamped 2099 (its record timestamp is right)."""
    return [(event(i, FUTURE if i == future_at else START + i), START + i) for i in range(n)]


@pytest.mark.parametrize("batch", [1, 7, 500, 2000])
def test_a_future_event_time_does_not_pin_the_newest_event_gauge(batch: int) -> None:
    run = Run()
    records = c20_records()
    for k in range(0, len(records), batch):
        run.send(*records[k:k + batch])
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == START + 1999
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") == 1
    assert run.sample("streamdrift_events_total", model_id="m") == 2000  # still processed
    assert run.dead_letters.sent == []


def test_the_gauge_stays_at_the_newest_trusted_time_when_the_model_then_goes_silent() -> None:
    run = Run()
    run.send(*c20_records(n=1001))  # the future event is the model's last
    # It counts with its record timestamp.
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == START + 1000


def test_dead_letter_policy_sends_the_event_to_the_dlq_with_reason_clock_skew() -> None:
    run = Run(clock_skew_policy="dead_letter")
    records = c20_records()
    run.send(*records)
    assert [(offset, reason) for _, offset, reason, _ in run.dead_letters.sent] == [
        (1000, "clock_skew")]
    assert run.dead_letters.sent[0][3] == records[1000][0]  # the record's own bytes
    assert run.sample("streamdrift_events_invalid_total", reason="clock_skew") == 1
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") == 1
    assert run.sample("streamdrift_events_total", model_id="m") == 1999
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == START + 1999


def test_a_batch_whose_only_event_is_dead_lettered_for_skew_is_harmless() -> None:
    run = Run(clock_skew_policy="dead_letter")
    run.send((event(0, FUTURE), START))
    run.send((event(1, START + 1), START + 1))
    assert run.sample("streamdrift_events_invalid_total", reason="clock_skew") == 1
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == START + 1


@pytest.mark.parametrize(("ahead", "trusted"), [
    (299.0, True), (300.0, True), (301.0, False), (-86400.0, True)])
def test_the_bound_is_max_clock_skew_seconds_ahead_only(ahead: float, trusted: bool) -> None:
    run = Run()
    run.send((event(0, START + ahead), START))
    newest = run.sample("streamdrift_last_event_timestamp_seconds", model_id="m")
    assert newest == (START + ahead if trusted else START)
    assert (run.sample("streamdrift_events_clock_skew_total", model_id="m") or 0) == (
        0 if trusted else 1)


def test_epoch_second_timestamps_are_checked_too() -> None:
    run = Run()
    run.send((event(0, START), START), (event(1, FUTURE_S), START + 1))
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == START + 1
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") == 1


def test_the_check_holds_on_the_record_by_record_decode_path() -> None:
    # An invalid record in the batch sends decoding down its per-record path.
    run = Run()
    run.send((event(0, START), START), (b"not json", START), (event(2, FUTURE), START + 2),
             (event(3, START + 3), START + 3))
    assert run.sample("streamdrift_events_invalid_total", reason="not_json") == 1
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") == 1
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == START + 3


def test_skew_is_counted_per_model_and_partition_independent() -> None:
    run = Run()
    run.send((event(0, FUTURE, model="a"), START), (event(1, START, model="b"), START),
             (event(2, FUTURE, model="a"), START + 1), partition=0)
    run.send((event(3, FUTURE, model="b"), START + 2), partition=1)
    assert run.sample("streamdrift_events_clock_skew_total", model_id="a") == 2
    assert run.sample("streamdrift_events_clock_skew_total", model_id="b") == 1
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="a") == START + 1
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="b") == START + 2


def test_a_record_without_timestamp_keeps_its_event_time() -> None:
    run = Run()  # a file line: nothing to compare the event time with
    run.send((event(0, FUTURE), None))
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == FUTURE_S
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") is None


def test_the_check_can_be_switched_off() -> None:
    run = Run(max_clock_skew_seconds=None)
    run.send((event(0, FUTURE), START))
    assert run.sample("streamdrift_last_event_timestamp_seconds", model_id="m") == FUTURE_S
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") is None


def test_an_untrusted_time_is_the_event_time_its_alerts_carry() -> None:
    run = Run()
    shifted = [(orjson.dumps({"event_id": f"e{i}", "model_id": "m",
                              "timestamp": FUTURE if i >= 400 else START + i,
                              "features": {"x": (i % 10) + (50.0 if i >= 400 else 0.0)}}),
                START + i) for i in range(1200)]
    run.send(*shifted)
    assert run.alerts.sent, "the shift of 50 after 400 events was not caught"
    for alert in run.alerts.sent:
        assert alert["event_time"].startswith("2026-11-30T12:"), alert["event_time"]


def test_the_first_skewed_event_of_each_model_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    run = Run()
    with caplog.at_level(logging.WARNING, logger="streamdrift.loop"):
        for i in range(3):
            run.send((event(i, FUTURE, model="a"), START + i), (event(i, FUTURE, model="b"),
                                                                 START + i))
    lines = [r.getMessage() for r in caplog.records if "max_clock_skew_seconds" in r.message]
    assert len(lines) == 2, lines
    assert "'a'" in lines[0] and "2099-01-01T00:00:00.000Z" in lines[0]
    assert "'b'" in lines[1]


def test_negative_or_zero_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="max_clock_skew_seconds"):
        LimitsConfig(max_clock_skew_seconds=0)
    with pytest.raises(ValueError, match="clock_skew_policy"):
        LimitsConfig(clock_skew_policy="drop")  # type: ignore[arg-type]


def label(i: int, timestamp: Any, model: str = "m") -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "model_id": model, "label": 1,
                         "timestamp": timestamp})


def test_a_future_label_time_does_not_move_the_label_join_clock() -> None:
    run = Run()
    run.send(*[(event(i, START + i, prediction=0.9), START + i) for i in range(10)])
    run.send((label(0, FUTURE), START + 20), (label(1, START + 21), START + 21),
             topic=LABELS)
    run.loop.tick(everything=True)
    assert run.sample("streamdrift_events_clock_skew_total", model_id="m") == 1
    assert run.loop.banks[0].join.labels_time == START + 21
    assert run.sample("streamdrift_labels_total", model_id="m", outcome="joined") == 2


def test_a_future_label_is_dead_lettered_under_that_policy() -> None:
    run = Run(clock_skew_policy="dead_letter")
    run.send(*[(event(i, START + i, prediction=0.9), START + i) for i in range(10)])
    run.send((label(0, FUTURE), START + 20), (label(1, START + 21), START + 21),
             topic=LABELS)
    run.loop.tick(everything=True)
    assert [(reason, value) for _, _, reason, value in run.dead_letters.sent] == [
        ("clock_skew", label(0, FUTURE))]
    assert run.sample("streamdrift_labels_total", model_id="m", outcome="joined") == 1
