"""Raw records as columns: what every source yields and the run loop consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RecordBatch:
    """Records in consumption order; row ``i`` is one record in every column.

    ``timestamp_ms`` is the Kafka record timestamp (None for a file line);
    a file source gives its path as ``topic``, partition 0, line index as offset.
    """

    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps_ms: list[int | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)

    def append(self, topic: str, partition: int, offset: int, timestamp_ms: int | None,
               key: bytes | None, value: bytes | None) -> None:
        self.topics.append(topic)
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.timestamps_ms.append(timestamp_ms)
        self.keys.append(key)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.offsets)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): the offset after the last record, i.e. what to commit."""
        out: dict[tuple[str, int], int] = {}
        for topic, partition, offset in zip(self.topics, self.partitions, self.offsets,
                                            strict=True):
            key = (topic, partition)
            if offset + 1 > out.get(key, -1):
                out[key] = offset + 1
        return out
