"""Where alerts and rejected records go: Kafka topics, JSONL files, stdout.

``flush`` is the durability point: when it returns, everything sent before
is acknowledged (Kafka) or written (file). The run loop commits source
offsets only after it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.alerts import encode_alert
from stream.events import Rejected
from stream.records import (
    ORIGINAL_SHA256,
    ORIGINAL_SIZE,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TRUNCATED,
    RecordBatch,
)

log = logging.getLogger("streamdrift.sinks")

#: librdkafka's default message.max.bytes, and what a broker with defaults accepts per
#: record batch (its message.max.bytes, 1 MiB + 12).
CLIENT_DEFAULT_MESSAGE_BYTES = 1_000_000
BROKER_DEFAULT_MESSAGE_BYTES = 1_048_588
CLIENT_MAX_MESSAGE_BYTES = 1_000_000_000  # librdkafka's upper bound for message.max.bytes
#: Room for a dead letter's headers and key beside a value of limits.max_record_bytes.
DLQ_HEADER_ROOM = 64 * 1024
#: A record batch's framing around one record (Kafka protocol, RecordBatch v2: 61 bytes
#: of batch header, then varints per record and per header), rounded up generously.
_FRAMING = 512
_MAX_DETAIL = 1000  # bytes of streamdrift.error


#: KiB of records a producer holds before the broker acknowledges them
#: (``queue.buffering.max.kbytes``). librdkafka's default, 1 GiB, let a checkpoint's
#: whole snapshot (833 MB at 100,000 monitors) wait there as a copy beside the state.
PRODUCER_QUEUE_KBYTES = 64 * 1024


def producer_queue_kbytes(message_bytes: int) -> int:
    """``queue.buffering.max.kbytes`` for a producer of ``message.max.bytes`` =
    ``message_bytes``: ``PRODUCER_QUEUE_KBYTES``, or room for two of its largest records
    (librdkafka refuses a record larger than the whole queue for ever, and ``produce``
    would wait for room without end)."""
    return max(PRODUCER_QUEUE_KBYTES, -(-2 * message_bytes // 1024))


def producer_message_bytes(max_record_bytes: int) -> int:
    """``message.max.bytes`` for the producer that writes dead letters: a record the
    events topic could hold (``limits.max_record_bytes``) fits with its headers."""
    return min(max(CLIENT_DEFAULT_MESSAGE_BYTES, max_record_bytes + DLQ_HEADER_ROOM),
               CLIENT_MAX_MESSAGE_BYTES)


def producer_limits(producer: Mapping[str, Any], max_record_bytes: int) -> dict[str, int]:
    """The producer's ``message.max.bytes`` and ``queue.buffering.max.kbytes``: each as
    ``kafka.producer`` (``producer``) sets it, else streamdrift's default
    (``producer_message_bytes`` of ``limits.max_record_bytes``, ``producer_queue_kbytes``
    of the message size). Raises ValueError for a setting that is not an integer.

    >>> producer_limits({}, 1_000_000)
    {'message.max.bytes': 1065536, 'queue.buffering.max.kbytes': 65536}
    >>> producer_limits({"message.max.bytes": "50000000"}, 1_000_000)["queue.buffering.max.kbytes"]
    97657
    """
    message = int(producer.get("message.max.bytes", producer_message_bytes(max_record_bytes)))
    queue = int(producer.get("queue.buffering.max.kbytes", producer_queue_kbytes(message)))
    return {"message.max.bytes": message, "queue.buffering.max.kbytes": queue}


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
            *, stop: threading.Event | None = None, **kwargs: Any) -> bool:
    """``producer.produce``, waiting for room while librdkafka's local queue is full (a
    broker away fills it until librdkafka's ``message.timeout.ms`` expires its records):
    True once the record is queued, False if ``stop`` was set first (it is not)."""
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return True
        except BufferError:
            if stop is not None and stop.is_set():
                return False
            producer.poll(0.1)  # let deliveries drain; a signal's handler runs meanwhile


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
        produce(self.producer, self.topic, encode_alert(alert), alert["model_id"].encode(),
                on_delivery=self.tracker)
        self.producer.poll(0)


Headers = list[tuple[str, str | bytes | None]]

_TIMESTAMP_TYPES = {TIMESTAMP_CREATE_TIME: b"CreateTime",
                    TIMESTAMP_LOG_APPEND_TIME: b"LogAppendTime"}


class KafkaDeadLetterSink(_KafkaSink):
    """The source record whole: its key, its value and its own headers (in order, binary
    and null values as they were) and its timestamp, with streamdrift's headers after
    them: ``streamdrift.reason``, ``.error``, ``.source.topic``, ``.source.partition``,
    ``.source.offset``, ``.source.timestamp`` (ms) and ``.source.timestamp_type``
    (``CreateTime`` or ``LogAppendTime``, Kafka's names). A DLQ topic with
    ``message.timestamp.type=LogAppendTime`` (or one that refuses the time as too old
    or too new: it is then sent again without it) stamps its own time; the headers
    keep the source's.

    A record too large for the DLQ topic (``max_bytes``: the smaller of the topic's
    ``max.message.bytes`` and the producer's ``message.max.bytes``) goes there
    truncated to fit, with headers ``streamdrift.truncated`` (``value`` or
    ``key,value``), ``streamdrift.original.size`` (value bytes) and
    ``streamdrift.original.sha256`` (hex SHA-256 of the whole value, FIPS 180-4), so
    that it can be matched with the source record. A broker that still refuses one
    as too large (``MSG_SIZE_TOO_LARGE``: the topic's limit was lowered since) gets
    it again at half the size, at-least-once; in a transaction that error aborts it.
    """

    def __init__(self, producer: Producer, topic: str, tracker: DeliveryTracker,
                 flush_timeout: float = 330.0,
                 max_bytes: int = BROKER_DEFAULT_MESSAGE_BYTES) -> None:
        super().__init__(producer, topic, tracker, flush_timeout)
        self.max_bytes = max_bytes

    def send(self, records: RecordBatch, rejected: Rejected) -> None:
        row = rejected.row
        detail = rejected.detail.encode("utf-8", "replace")[:_MAX_DETAIL]
        stamp = records.timestamps_ms[row]
        own: Headers = list(records.header_list(row))
        own_bytes = sum(len(name) + len(v or b"") for name, v in own)
        if own_bytes > self.max_bytes // 4:  # no room for them: said so instead
            own = [("streamdrift.original.headers_dropped",
                    f"{len(own)} headers, {own_bytes} bytes".encode())]
        headers: Headers = [
            *own,
            ("streamdrift.reason", rejected.reason.encode()),
            ("streamdrift.error", detail),
            ("streamdrift.source.topic", records.topics[row].encode()),
            ("streamdrift.source.partition", str(records.partitions[row]).encode()),
            ("streamdrift.source.offset", str(records.offsets[row]).encode()),
        ]
        kind = _TIMESTAMP_TYPES.get(records.timestamp_type(row))
        if stamp is not None and kind is not None:
            headers += [("streamdrift.source.timestamp", str(stamp).encode()),
                        ("streamdrift.source.timestamp_type", kind)]
        self._send(records.keys[row], records.values[row], headers, self.max_bytes,
                   stamp if kind is not None else None, cut=False)

    def _send(self, key: bytes | None, value: bytes | None, headers: Headers, limit: int,
              timestamp: int | None, cut: bool) -> None:
        fitted_key, fitted, fitted_headers = _fit(key, value, headers, limit, cut)
        if not cut and fitted_headers is not headers:
            source = dict(headers)
            log.warning("dead letter of %s[%s]@%s: %d bytes, more than the DLQ topic takes "
                        "(%d): written truncated, its size and SHA-256 in headers",
                        _text(source.get("streamdrift.source.topic")),
                        _text(source.get("streamdrift.source.partition")),
                        _text(source.get("streamdrift.source.offset")),
                        _size(key, value, headers), limit)
        cut = cut or fitted_headers is not headers

        def delivered(err: KafkaError | None, msg: Message) -> None:
            code = None if err is None else err.code()
            if code == KafkaError.MSG_SIZE_TOO_LARGE and limit > 1024:
                log.warning("dead letter refused by the broker as too large (%d bytes): "
                            "sent again at half that size", _size(fitted_key, fitted,
                                                                   fitted_headers))
                self._send(fitted_key, fitted, fitted_headers, limit // 2, timestamp, cut)
            elif code == KafkaError.INVALID_TIMESTAMP and timestamp is not None:
                log.warning("dead letter refused with the source's timestamp (%d ms): sent "
                            "again with the time of writing (the source's is in headers)",
                            timestamp)
                self._send(fitted_key, fitted, fitted_headers, limit, None, cut)
            else:
                self.tracker(err, msg)

        stamp: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
        try:
            produce(self.producer, self.topic, fitted, fitted_key, headers=fitted_headers,
                    on_delivery=delivered, **stamp)
        except KafkaException as exc:  # larger than this producer's message.max.bytes
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE or limit <= 1024:
                raise
            self._send(fitted_key, fitted, fitted_headers, limit // 2, timestamp, cut)
            return
        self.producer.poll(0)


def _line_text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "backslashreplace")


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of the bytes of one record batch holding only this record."""
    return (_FRAMING + len(key or b"") + len(value or b"")
            + sum(len(name) + len(h or b"") + 10 for name, h in headers))


def _fit(key: bytes | None, value: bytes | None, headers: Headers, limit: int,
         cut: bool = False) -> tuple[bytes | None, bytes | None, Headers]:
    """Key, value and headers cut to fit one record batch of ``limit`` bytes; the first
    cut (not ``cut`` yet) adds the original size and digest to the headers, which are
    returned as a new list then (a later cut keeps them)."""
    if _size(key, value, headers) <= limit:
        return key, value, headers
    if not cut:
        whole = value or b""
        extra: Headers = [
            (TRUNCATED, b"value"),
            (ORIGINAL_SIZE, str(len(whole)).encode()),
            (ORIGINAL_SHA256, hashlib.sha256(whole).hexdigest().encode())]
        if key is not None and len(key) > limit // 4:
            extra[0] = (TRUNCATED, b"key,value")
            extra.append(("streamdrift.original.key_size", str(len(key)).encode()))
            key = key[:limit // 4]
        headers = headers + extra
    room = max(0, limit - _size(key, None, headers))
    return key, (value or b"")[:room], headers


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
        """One JSON line with what the Kafka DLQ keeps: reason, error, source (with the
        record's timestamp and its type, when it has one), key, headers in order and
        value; bytes as UTF-8 text, invalid bytes as ``\\xNN`` escapes."""
        row = rejected.row
        stamp = records.timestamps_ms[row]
        kind = _TIMESTAMP_TYPES.get(records.timestamp_type(row))
        source: dict[str, Any] = {"topic": records.topics[row],
                                  "partition": records.partitions[row],
                                  "offset": records.offsets[row]}
        if stamp is not None and kind is not None:
            source.update(timestamp=stamp, timestamp_type=kind.decode())
        self._out.write(orjson.dumps({
            "reason": rejected.reason,
            "error": rejected.detail,
            "source": source,
            "key": _line_text(records.keys[row]),
            "headers": [[name, _line_text(v)] for name, v in records.header_list(row)],
            "value": _line_text(records.values[row]),
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
