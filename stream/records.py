"""Raw records as columns: what every source yields and the run loop consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Kafka's timestamp types (confluent_kafka's TIMESTAMP_* values).
TIMESTAMP_NOT_AVAILABLE, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME = 0, 1, 2

Headers = list[tuple[str, bytes | None]]
#: Headers of a value cut short (the dead-letter contract's names, docs/contracts.md).
TRUNCATED, ORIGINAL_SIZE, ORIGINAL_SHA256 = (
    "streamdrift.truncated", "streamdrift.original.size", "streamdrift.original.sha256")


@dataclass(slots=True)
class RecordBatch:
    """Records in consumption order; row ``i`` is one record in every column.

    ``timestamp_ms`` is the Kafka record timestamp (None for a file line) and
    ``timestamp_types`` its type (``TIMESTAMP_*``); ``headers`` are the record's
    own, in order (None without any). A file source gives its path as ``topic``,
    partition 0, line index as offset.
    """

    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps_ms: list[int | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    headers: list[Headers | None] = field(default_factory=list)
    timestamp_types: list[int] = field(default_factory=list)

    def append(self, topic: str, partition: int, offset: int, timestamp_ms: int | None,
               key: bytes | None, value: bytes | None, headers: Headers | None = None,
               timestamp_type: int | None = None) -> None:
        self.topics.append(topic)
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.timestamps_ms.append(timestamp_ms)
        self.keys.append(key)
        self.values.append(value)
        self.headers.append(headers)
        self.timestamp_types.append(
            timestamp_type if timestamp_type is not None
            else TIMESTAMP_NOT_AVAILABLE if timestamp_ms is None else TIMESTAMP_CREATE_TIME)

    def __len__(self) -> int:
        return len(self.offsets)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): the offset after the last record, i.e. what to commit."""
        # A partition's records come in offset order, so its last record is its highest.
        last = dict(zip(zip(self.topics, self.partitions, strict=True), self.offsets,
                        strict=True))
        return {key: offset + 1 for key, offset in last.items()}

    def header_list(self, row: int) -> Headers:
        """The record's own headers, in order ([] if it has none, or the source none)."""
        return (self.headers[row] or []) if row < len(self.headers) else []

    def value_size(self, row: int) -> int:
        """Bytes of the record's value at its source: its length, or the whole value's
        ``streamdrift.original.size`` when the value was cut short (its headers say
        ``streamdrift.truncated``, as a file source's over-long line and a dead letter
        cut to fit its topic do)."""
        value = self.values[row]
        headers = self.header_list(row)
        if headers and any(name == TRUNCATED for name, _ in headers):
            for name, size in headers:
                if name == ORIGINAL_SIZE and size is not None and size.isdigit():
                    return int(size)
        return len(value or b"")

    def timestamp_type(self, row: int) -> int:
        if row < len(self.timestamp_types):
            return self.timestamp_types[row]
        return TIMESTAMP_NOT_AVAILABLE if self.timestamps_ms[row] is None else (
            TIMESTAMP_CREATE_TIME)

    def take(self, rows: list[int]) -> RecordBatch:
        """The given rows, in that order, as a batch of their own."""
        return RecordBatch(
            topics=[self.topics[i] for i in rows],
            partitions=[self.partitions[i] for i in rows],
            offsets=[self.offsets[i] for i in rows],
            timestamps_ms=[self.timestamps_ms[i] for i in rows],
            keys=[self.keys[i] for i in rows],
            values=[self.values[i] for i in rows],
            headers=[self.headers[i] for i in rows] if self.headers else [],
            timestamp_types=([self.timestamp_types[i] for i in rows] if self.timestamp_types
                             else []),
        )
