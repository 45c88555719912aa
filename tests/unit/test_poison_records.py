"""Poison records and bounds (issue 11): each kind ends in the DLQ with its reason or is
processed within bounds; a bug in detection dead-letters its batch instead of stopping
the loop."""

from __future__ import annotations

import orjson
import pytest

from detectors import DetectorConfig
from stream.alerts import build_alert
from stream.events import Rejected, capped_category, decode_batch, decode_labels, format_time
from stream.metrics import OTHER, Metrics
from stream.records import RecordBatch
from tests.unit.test_run_loop import TOPIC, Harness, one_partition, valid_event

RECORD_MS = 1_767_225_600_000


def decode_one(value: bytes, record_ms: int | None = RECORD_MS, **limits: int
               ) -> tuple[str | None, RecordBatch]:
    records = RecordBatch()
    records.append(TOPIC, 0, 0, record_ms, None, value)
    decoded = decode_batch(records, 1 << 20, **limits)
    return (decoded.rejected[0].reason if decoded.rejected else None), records


def event(**fields: object) -> bytes:
    return orjson.dumps({"event_id": "e", "model_id": "m", "features": {"x": 1.0}, **fields})


@pytest.mark.parametrize("value", [
    b"[" * 2000 + b"]" * 2000,
    b"[" * 5000 + b"]" * 5000,
    b'{"event_id": "e", "model_id": "m", "features": {"x": ' + b"[" * 2000 + b"]" * 2000
    + b"}}",
    b'{"a": NaN, "b": ' + b"[" * 990 + b"]" * 990 + b"}",  # stdlib-deep, orjson-shallow
], ids=["2000", "5000", "in-a-feature", "deep-and-nan"])
def test_json_nested_past_the_limit_is_too_deep(value: bytes) -> None:
    assert decode_one(value)[0] == "too_deep"


@pytest.mark.parametrize("timestamp", [
    "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
    "0001-01-01T00:00:00+05:00",  # year 0 in UTC
    "9999-12-31T23:59:59.999999Z",  # rounds to year 10000 as a double
    1e300, -1.0, 253_402_300_800,
])
def test_times_that_cannot_be_written_in_an_alert_are_bad_timestamps(
        timestamp: object) -> None:
    assert decode_one(event(timestamp=timestamp))[0] == "bad_timestamp"


@pytest.mark.parametrize("record_ms", [-5, 2**62])
def test_a_record_timestamp_out_of_range_is_a_bad_timestamp(record_ms: int) -> None:
    assert decode_one(event(), record_ms=record_ms)[0] == "bad_timestamp"


@pytest.mark.parametrize("timestamp", [
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.9Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-05:00", 253_402_300_799.99997, 0,
])
def test_every_accepted_time_at_the_edges_formats_in_an_alert(timestamp: object) -> None:
    reason, records = decode_one(event(timestamp=timestamp))
    assert reason is None
    decoded = decode_batch(records, 1 << 20)
    when = decoded.event_times[0]
    assert when is not None
    assert format_time(when).endswith("Z")  # type: ignore[union-attr]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"features": {"": 1.0}}, "empty_field"),
    ({"features": {"n" * 257: 1.0}}, "name_too_long"),
    ({"features": {"é" * 129: 1.0}}, "name_too_long"),  # 258 bytes in UTF-8
    ({"model_id": "m" * 257}, "name_too_long"),
    ({"event_id": "e" * 257}, "name_too_long"),
    ({"model_version": "v" * 257}, "name_too_long"),
])
def test_names_that_are_empty_or_too_long_are_refused(fields: dict[str, object],
                                                      reason: str) -> None:
    assert decode_one(event(**fields))[0] == reason


def test_names_at_the_bound_are_accepted() -> None:
    assert decode_one(event(model_id="m" * 256, features={"é" * 128: 1.0}))[0] is None
    assert decode_one(event(model_id="m" * 40), max_name_bytes=32)[0] == "name_too_long"


def test_long_categorical_values_are_replaced_by_a_stable_digest_and_counted() -> None:
    long_value = "v" * 300
    records = RecordBatch()
    for i, fields in enumerate([
            {"features": {"c": long_value, "d": "short"}},
            {"features": {"c": long_value}, "prediction": long_value, "label": long_value},
            {"features": {"c": "w" * 256}, "prediction": {long_value: 0.9, "b": 0.1}}]):
        records.append(TOPIC, 0, i, RECORD_MS, None, event(**fields))
    decoded = decode_batch(records, 1 << 20)
    batch = decoded.events[(TOPIC, 0)]
    digest = capped_category(long_value)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 16
    assert [f["c"] for f in batch.features] == [digest, digest, "w" * 256]  # 256: kept
    assert batch.features[0]["d"] == "short"
    assert batch.predictions[1] == digest and batch.labels[1] == digest
    assert batch.predictions[2] == {digest: 0.9, "b": 0.1}
    assert decoded.capped == 5


def test_labels_get_the_same_bounds_as_events() -> None:
    records = RecordBatch()
    for i, body in enumerate([{"event_id": "e", "model_id": "m", "label": "v" * 300},
                              {"event_id": "e" * 300, "model_id": "m", "label": 1},
                              {"event_id": "e", "model_id": "m", "label": 1,
                               "timestamp": "9999-12-31T23:59:59-05:00"}]):
        records.append("labels", 0, i, RECORD_MS, None, orjson.dumps(body))
    decoded = decode_labels(records, 1 << 20)
    assert [(r.row, r.reason) for r in decoded.rejected] == [(1, "name_too_long"),
                                                             (2, "bad_timestamp")]
    assert decoded.labels[("labels", 0)].labels == [capped_category("v" * 300)]
    assert decoded.capped == 1


def test_capped_values_are_counted_in_a_metric() -> None:
    values = [event(features={"c": "v" * 1000}) for _ in range(3)] + [valid_event(1)]
    h = Harness(one_partition(values)).run()
    assert h.sample("streamdrift_category_values_capped_total") == 3
    assert h.loop.stats.events == 4


def test_feature_label_of_a_model_past_the_bound_is_other_too() -> None:
    metrics = Metrics(max_models=2, max_features=3)
    assert metrics.feature("a", "x") == "x"
    assert metrics.model("b") == "b"
    for i in range(50):  # fifty models past the bound, each with its own feature
        assert metrics.model(f"late-{i}") == OTHER
        assert metrics.feature(f"late-{i}", f"f{i}") == OTHER
    assert metrics.feature("b", "y") == "y"  # admitted models keep their own bound


class ExplodingBank:
    """A detector bank with a bug: raises on any batch that holds model ``boom``."""

    def __init__(self, real: object) -> None:
        self.real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def update(self, batch: object) -> object:
        if "boom" in batch.model_ids:  # type: ignore[attr-defined]
            raise ZeroDivisionError("a bug in a detector")
        return self.real.update(batch)  # type: ignore[attr-defined]


def test_a_detection_bug_dead_letters_its_batch_and_the_loop_goes_on() -> None:
    values = ([valid_event(i) for i in range(10)] + [valid_event(10, model="boom")]
              + [valid_event(11 + i) for i in range(10)])
    h = Harness(one_partition(values), batch_size=5,
                detectors=DetectorConfig(warmup=50))
    real_bank = h.loop._bank

    def exploding(number: int) -> object:
        return ExplodingBank(real_bank(number))

    h.loop._bank = exploding  # type: ignore[assignment,method-assign]
    h.run()
    # The batch of rows 10..14 (the bug's) is in the DLQ, in order; the rest processed.
    assert [(offset, reason) for _, offset, reason, _ in h.dead_letters.sent] == [
        (offset, "detection_failed") for offset in range(10, 15)]
    assert h.loop.stats.events == len(values) - 5
    assert h.sample("streamdrift_events_invalid_total", reason="detection_failed") == 5
    assert h.source.commits[-1] == {(TOPIC, 0): len(values)}


def test_alerts_build_for_any_accepted_time() -> None:
    from detectors.bank import DriftSignal

    signal = DriftSignal(0, "m", None, "x", "data_drift", "adwin", {})
    for when in (0.0, 253_402_300_799.99997, -62_135_596_800.0, None):
        alert = build_alert(signal, "e", when, TOPIC, 0, 0, "h")
        assert alert["event_time"] is None or alert["event_time"].endswith("Z")


def test_a_dead_letter_too_large_for_its_topic_is_cut_with_size_and_digest() -> None:
    import hashlib

    from stream.sinks import _fit, _size, producer_message_bytes

    headers: list[tuple[str, str | bytes | None]] = [("streamdrift.reason", b"not_json")]
    value = b"v" * 300_000
    key, cut, out = _fit(b"k", value, headers, 100_000)
    assert _size(key, cut, out) <= 100_000 and cut is not None and value.startswith(cut)
    assert len(cut) > 90_000 and key == b"k"
    assert dict(out)["streamdrift.original.size"] == b"300000"
    assert dict(out)["streamdrift.original.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert dict(out)["streamdrift.truncated"] == b"value"
    # A retry at a smaller limit cuts further and keeps the first cut's headers.
    key2, cut2, out2 = _fit(key, cut, out, 50_000, cut=True)
    assert out2 == out and cut2 is not None and len(cut2) < 50_000 and key2 == b"k"
    # A huge key is cut too; a record that fits is untouched.
    key3, _, out3 = _fit(b"k" * 80_000, value, headers, 100_000)
    assert key3 is not None and len(key3) == 25_000
    assert dict(out3)["streamdrift.truncated"] == b"key,value"
    assert _fit(b"k", b"v", headers, 100_000) == (b"k", b"v", headers)
    assert _fit(None, None, headers, 1000) == (None, None, headers)  # a tombstone
    # The producer holds a record of limits.max_record_bytes with its headers.
    assert producer_message_bytes(1_048_576) > 1_048_576 + 1000
    assert producer_message_bytes(1000) == 1_000_000
    assert producer_message_bytes(2_000_000_000) == 1_000_000_000  # librdkafka's maximum


@pytest.mark.parametrize("max_record_bytes", [1000, 50_000_000])
def test_the_producer_queue_is_bounded_and_still_takes_its_largest_record(
        max_record_bytes: int) -> None:
    # librdkafka itself, no broker: what is produced waits in its queue. A snapshot's
    # records must not all be copied there at once, yet a record of message.max.bytes
    # must always fit (one larger than the whole queue is refused for ever).
    from confluent_kafka import Producer

    from stream.cli import _producer_settings
    from stream.config import load_config

    config = load_config(overrides={"kafka.bootstrap_servers": "127.0.0.1:9",
                                    "limits.max_record_bytes": max_record_bytes})
    settings = _producer_settings(config)
    bound = settings["queue.buffering.max.kbytes"] * 1024
    largest = settings["message.max.bytes"] - 1000
    assert 64 << 20 <= bound < 1 << 30 and bound >= 2 * largest
    producer = Producer({**settings, "message.timeout.ms": 1000})
    producer.produce("t", b"x" * largest, partition=0)  # the largest record fits
    queued = largest
    with pytest.raises(BufferError):
        for _ in range(bound // 900_000 + 2):
            producer.produce("t", b"x" * 900_000, partition=0)
            queued += 900_000
    assert bound - 900_000 < queued <= bound  # librdkafka stopped at the bound
    producer.purge()
    producer.flush(5)


def test_a_producer_queue_too_small_for_its_largest_record_is_refused() -> None:
    from stream.cli import _producer_settings
    from stream.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"^kafka.producer.queue.buffering.max.kbytes: 1000 "
                       r"KiB cannot hold one record of message.max.bytes \(1,114,112 bytes\); "
                       r"give at least 1088$"):
        load_config(overrides={"kafka.producer": {"queue.buffering.max.kbytes": 1000}})
    with pytest.raises(ConfigError, match=r"queue.buffering.max.kbytes: 2000 KiB .*4,000,000"):
        load_config(overrides={"kafka.producer": {"queue.buffering.max.kbytes": "2000",
                                                  "message.max.bytes": 4_000_000}})
    # The user's own message.max.bytes gets a queue that holds it too.
    config = load_config(overrides={"kafka.producer": {"message.max.bytes": 200_000_000}})
    assert _producer_settings(config)["queue.buffering.max.kbytes"] * 1024 >= 400_000_000
    config = load_config(overrides={"kafka.producer": {"queue.buffering.max.kbytes": 1088}})
    assert _producer_settings(config)["queue.buffering.max.kbytes"] == 1088  # theirs wins


@pytest.mark.parametrize(("section", "settings", "path"), [
    ("producer", "{foo.bar: 1, linger.ms: 3}", "kafka.producer.foo.bar"),
    ("consumer", "{session.timeout.ms: soon}", "kafka.consumer.session.timeout.ms"),
])
def test_a_librdkafka_setting_it_refuses_is_a_config_error_with_its_path(
        tmp_path: object, capsys: pytest.CaptureFixture[str], section: str, settings: str,
        path: str) -> None:
    from pathlib import Path

    from stream.cli import EXIT_CONFIG, main

    config = Path(str(tmp_path)) / "bad.yaml"
    # A broker nobody listens on: the error must come before any connection attempt.
    config.write_text(f"kafka:\n  bootstrap_servers: 127.0.0.1:1\n  {section}: {settings}\n")
    assert main(["check-config", str(config)]) == EXIT_CONFIG
    assert main(["run", "--config", str(config), "--metrics-port", "0"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{path}:" in err and "cannot reach" not in err


def test_repeated_warnings_are_held_back_but_each_rejected_record_of_a_replay_is_logged(
        tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    events = Path(str(tmp_path)) / "bad.jsonl"
    events.write_bytes(b"not json\n" * 40)
    done = subprocess.run([sys.executable, "-m", "stream.cli", "replay", "--input",
                           str(events)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 5, done.stderr  # every record rejected (stream/cli.py)
    assert done.stderr.count(": not_json: ") == 40  # a report line each: never held back

    import logging

    from stream.logs import RepeatFilter

    now = [0.0]
    repeat = RepeatFilter(every=30.0, clock=lambda: now[0])
    passed = []
    for second in range(90):  # 90 s of a broker away, 20 reconnect warnings a second
        now[0] = float(second)
        for attempt in range(20):
            record = logging.LogRecord("streamdrift.kafka", logging.WARNING, "", 0,
                                       "kafka: localhost:%d/bootstrap: Connect failed "
                                       "(after %dms)", (19192, attempt), None)
            if repeat.filter(record):
                passed.append(record.getMessage())
    assert len(passed) == 3  # the first, then one per 30 s with its count
    assert passed[1].endswith("(and 599 more like it in the last 30 s)")


def test_the_file_dlq_carries_what_the_kafka_dlq_keeps(tmp_path: object) -> None:
    from pathlib import Path

    from stream.records import TIMESTAMP_LOG_APPEND_TIME
    from stream.sinks import JsonLinesDeadLetterSink

    path = Path(str(tmp_path)) / "dlq.jsonl"
    records = RecordBatch()
    headers: list[tuple[str, bytes | None]] = [("trace-id", b"t-1"), ("bin", b"\xc3\x28"),
                                               ("empty", None)]
    records.append(TOPIC, 2, 7, RECORD_MS, b"\xc3\x28", b"{nope", headers,
                   TIMESTAMP_LOG_APPEND_TIME)
    records.append("events.jsonl", 0, 3, None, None, b"[]")  # a file line: no key or time
    sink = JsonLinesDeadLetterSink(path)
    sink.send(records, Rejected(0, "not_json", "x"))
    sink.send(records, Rejected(1, "not_object", "y"))
    sink.close()
    first, second = map(orjson.loads, path.read_bytes().splitlines())
    assert first["source"] == {"topic": TOPIC, "partition": 2, "offset": 7,
                               "timestamp": RECORD_MS, "timestamp_type": "LogAppendTime"}
    assert first["key"] == "\\xc3("
    assert first["headers"] == [["trace-id", "t-1"], ["bin", "\\xc3("], ["empty", None]]
    assert first["value"] == "{nope"
    assert second["source"] == {"topic": "events.jsonl", "partition": 0, "offset": 3}
    assert (second["key"], second["headers"], second["value"]) == (None, [], "[]")


class CapturingProducer:
    """Stands in for confluent_kafka.Producer: keeps what is produced."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    def produce(self, topic: str, value: bytes | None, key: bytes | None,
                **kwargs: object) -> None:
        self.sent.append({"topic": topic, "value": value, "key": key, **kwargs})

    def poll(self, timeout: float) -> int:
        return 0


def test_a_dead_letter_keeps_its_own_headers_first_unless_they_cannot_fit() -> None:
    from stream.records import TIMESTAMP_CREATE_TIME
    from stream.sinks import DeliveryTracker, KafkaDeadLetterSink, _size

    producer = CapturingProducer()
    sink = KafkaDeadLetterSink(producer, "dlq", DeliveryTracker(),  # type: ignore[arg-type]
                               max_bytes=100_000)
    records = RecordBatch()
    small: list[tuple[str, bytes | None]] = [("a", b"\xff"), ("b", None), ("a", b"2")]
    huge: list[tuple[str, bytes | None]] = [("blob", b"h" * 60_000)]
    records.append(TOPIC, 1, 5, RECORD_MS, b"k", b"{bad", small, TIMESTAMP_CREATE_TIME)
    records.append(TOPIC, 1, 6, RECORD_MS, b"k", b"{bad", huge, TIMESTAMP_CREATE_TIME)
    sink.send(records, Rejected(0, "not_json", "x"))
    sink.send(records, Rejected(1, "not_json", "x"))
    first, second = producer.sent
    headers = first["headers"]
    assert isinstance(headers, list) and headers[:3] == small
    assert dict(headers)["streamdrift.source.timestamp_type"] == b"CreateTime"
    assert first["timestamp"] == RECORD_MS and first["value"] == b"{bad"
    dropped = second["headers"]
    assert isinstance(dropped, list)
    assert dropped[0] == ("streamdrift.original.headers_dropped", b"1 headers, 60004 bytes")
    assert _size(b"k", b"{bad", dropped) < 100_000
