"""Where alerts and rejected records go: Kafka topics, JSONL files, stdout.

``flush`` is the durability point: when it returns, everything sent before
is acknowledged (Kafka) or written (file). The run loop commits source
offsets only after it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from confluent_kafka import KafkaError, Message, Producer

from stream.alerts import encode_alert
from stream.events import Rejected
from stream.records import RecordBatch


class SinkError(Exception):
    """Records could not be made durable; offsets must not be committed."""


class AlertSink(Protocol):
    def send(self, alert: dict[str, Any]) -> None: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    def send(self, records: RecordBatch, rejected: Rejected) -> None: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self) -> None: ...


class DeliveryTracker:
    """Collects failed deliveries from librdkafka's callbacks until ``flush``."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()}: {err.str()}")

    def flush(self, producer: Producer, timeout: float) -> None:
        remaining = producer.flush(timeout)
        if remaining:
            raise SinkError(f"{remaining} records not acknowledged within {timeout:.0f}s")
        if self.failures:
            failures, self.failures = self.failures, []
            raise SinkError(f"{len(failures)} deliveries failed, first: {failures[0]}")


def produce(producer: Producer, topic: str, value: bytes | None, key: bytes | None,
            **kwargs: Any) -> None:
    """``producer.produce``, waiting for room while librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)  # let deliveries drain


class _KafkaSink:
    """A topic written through a shared producer; durable once ``flush`` returns."""

    def __init__(self, producer: Producer, topic: str, tracker: DeliveryTracker,
                 flush_timeout: float = 330.0) -> None:  # librdkafka gives up at 300 s
        self.producer, self.topic, self.tracker = producer, topic, tracker
        self.flush_timeout = flush_timeout

    def flush(self, timeout: float | None = None) -> None:
        self.tracker.flush(self.producer, self.flush_timeout if timeout is None else timeout)

    def close(self) -> None:
        self.flush()


class KafkaAlertSink(_KafkaSink):
    """Alerts to a topic, keyed by model_id."""

    def send(self, alert: dict[str, Any]) -> None:
        self.producer.produce(self.topic, encode_alert(alert), alert["model_id"].encode(),
                              on_delivery=self.tracker)
        self.producer.poll(0)


class KafkaDeadLetterSink(_KafkaSink):
    """The original record, untouched, with the reason and its origin in headers."""

    def send(self, records: RecordBatch, rejected: Rejected) -> None:
        row = rejected.row
        headers: list[tuple[str, str | bytes | None]] = [
            ("streamdrift.reason", rejected.reason.encode()),
            ("streamdrift.error", rejected.detail.encode("utf-8", "replace")),
            ("streamdrift.source.topic", records.topics[row].encode()),
            ("streamdrift.source.partition", str(records.partitions[row]).encode()),
            ("streamdrift.source.offset", str(records.offsets[row]).encode()),
        ]
        self.producer.produce(self.topic, records.values[row], records.keys[row],
                              headers=headers, on_delivery=self.tracker)
        self.producer.poll(0)


class JsonLinesSink:
    """Alerts or dead letters as JSON lines, to a file or stdout."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._own = path is not None and str(path) != "-"
        self._out: IO[bytes] = (
            open(str(path), "wb") if self._own else sys.stdout.buffer  # noqa: SIM115
        )

    def send(self, alert: dict[str, Any]) -> None:
        self._out.write(encode_alert(alert) + b"\n")

    def send_rejected(self, records: RecordBatch, rejected: Rejected) -> None:
        row = rejected.row
        value = records.values[row]
        self._out.write(orjson.dumps({
            "reason": rejected.reason,
            "error": rejected.detail,
            "source": {"topic": records.topics[row], "partition": records.partitions[row],
                       "offset": records.offsets[row]},
            "value": None if value is None else value.decode("utf-8", "backslashreplace"),
        }) + b"\n")

    def flush(self, timeout: float | None = None) -> None:
        self._out.flush()

    def close(self) -> None:
        self.flush()
        if self._own:
            self._out.close()


class JsonLinesDeadLetterSink:
    """Dead letters as JSON lines (replay of a file has no DLQ topic)."""

    def __init__(self, path: str | Path | None) -> None:
        self._lines = JsonLinesSink(path)

    def send(self, records: RecordBatch, rejected: Rejected) -> None:
        self._lines.send_rejected(records, rejected)

    def flush(self, timeout: float | None = None) -> None:
        self._lines.flush()

    def close(self) -> None:
        self._lines.close()
