"""Where records come from: a Kafka consumer group, a Kafka time range, a JSONL file.

Every source yields ``RecordBatch`` objects from ``poll`` and returns None
once a bounded input is exhausted. Only the live source commits.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_STORED,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from stream.config import KafkaConfig
from stream.kafka import client_settings
from stream.records import RecordBatch

log = logging.getLogger("streamdrift.source")

Partition = tuple[str, int]


class PartitionListener(Protocol):
    def assigned(self, partitions: list[Partition],
                 resume_at: dict[Partition, int | None] | None = None) -> None: ...
    def revoked(self, partitions: list[Partition]) -> None: ...
    def lost(self, partitions: list[Partition]) -> None: ...


class Source(Protocol):
    def poll(self) -> RecordBatch | None: ...
    def commit(self, offsets: dict[Partition, int]) -> bool | None: ...
    def close(self) -> None: ...


class FileSource:
    """JSON lines from a file: topic is the file's name, partition 0, offset the line index."""

    def __init__(self, path: str | Path, batch_size: int) -> None:
        self.path = Path(path)
        self.topic = self.path.name
        self.batch_size = batch_size
        self._file: IO[bytes] = self.path.open("rb")
        self._line = 0

    def poll(self) -> RecordBatch | None:
        batch = RecordBatch()
        for raw in self._file:
            batch.append(self.topic, 0, self._line, None, None, raw.rstrip(b"\r\n"))
            self._line += 1
            if len(batch) >= self.batch_size:
                break
        return batch if len(batch) else None

    def commit(self, offsets: dict[Partition, int]) -> None:
        pass  # a replay never commits

    def close(self) -> None:
        self._file.close()


def _columns(messages: list[Message]) -> RecordBatch:
    """Records as columns, one pass per column (the hot path of a live run)."""
    stamps = [m.timestamp() for m in messages]
    return RecordBatch(
        topics=[m.topic() or "" for m in messages],
        partitions=[m.partition() or 0 for m in messages],
        offsets=[m.offset() or 0 for m in messages],
        timestamps_ms=[None if kind == TIMESTAMP_NOT_AVAILABLE else ts for kind, ts in stamps],
        keys=[m.key() for m in messages],
        values=[m.value() for m in messages],
        headers=[m.headers() for m in messages],  # type: ignore[misc]  # stubs: dict too
        timestamp_types=[kind for kind, _ in stamps],
    )


def _check(msg: Message) -> bool:
    """True for a record; False for an event that is not one (logged, or raised if fatal)."""
    err = msg.error()
    if err is None:
        return True
    if err.code() == KafkaError._PARTITION_EOF:
        return False
    if err.fatal() or err.code() == KafkaError._FATAL:  # e.g. a fenced static member
        raise KafkaException(err)
    log.warning("consumer: %s", err.str())
    return False


class KafkaSource:
    """The live source: a member of the consumer group on the events (and labels) topic.

    Offsets are committed only through ``commit`` (at-least-once) or by the run loop's
    transaction (exactly-once), after the alerts and the detector state they produced
    are durable. Assignment is eager with the range assignor, so partition p of every
    subscribed topic goes to the same member (co-partitioning). On assignment the
    listener gets the committed offsets before any record of the partitions is fetched,
    and the partitions are assigned at exactly those offsets.
    """

    def __init__(self, conf: KafkaConfig, topics: list[str],
                 on_stats: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.conf = conf
        self.listener: PartitionListener | None = None
        settings: dict[str, Any] = {
            **client_settings(conf),
            "group.id": conf.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": conf.auto_offset_reset,
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
        }
        if conf.group_instance_id:
            settings["group.instance.id"] = conf.group_instance_id
        if on_stats is not None and conf.statistics_interval_seconds > 0:
            settings["statistics.interval.ms"] = int(conf.statistics_interval_seconds * 1000)
            settings["stats_cb"] = lambda raw: on_stats(orjson.loads(raw))
        settings.update(conf.consumer)
        self._consumer = Consumer(settings)
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)

    def _committed(self, partitions: list[TopicPartition]) -> dict[Partition, int | None]:
        """Committed offsets, waiting out unstable ones (a transaction still open)."""
        deadline = time.monotonic() + max(self.conf.connect_timeout_seconds, 90.0)
        while True:
            try:
                found = self._consumer.committed(partitions, timeout=10)
                return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                        for tp in found}
            except KafkaException as exc:
                if time.monotonic() > deadline or exc.args[0].fatal():
                    raise
                log.warning("committed offsets not known yet (%s): retrying",
                            exc.args[0].str())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _names(partitions))
        resume_at = self._committed(partitions)
        if self.listener:
            self.listener.assigned([(tp.topic, tp.partition) for tp in partitions], resume_at)
        # Fetch from the offsets the state was restored for (none committed: the reset
        # policy decides, and the listener started those partitions afresh).
        starts = [resume_at.get((tp.topic, tp.partition)) for tp in partitions]
        consumer.assign([TopicPartition(tp.topic, tp.partition,
                                        OFFSET_STORED if start is None else start)
                         for tp, start in zip(partitions, starts, strict=True)])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", _names(partitions))
        if self.listener:  # checkpoints, so the next owner resumes where we stopped
            self.listener.revoked([(tp.topic, tp.partition) for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s (another member may own them now)", _names(partitions))
        if self.listener:
            self.listener.lost([(tp.topic, tp.partition) for tp in partitions])

    def poll(self) -> RecordBatch:
        messages = self._consumer.consume(self.conf.batch_size, self.conf.batch_timeout_seconds)
        return _columns([m for m in messages if _check(m)])

    def commit(self, offsets: dict[Partition, int]) -> bool:
        """Commit processed offsets (synchronously); False if the group refused them
        (a rebalance in progress, a broker away): the next checkpoint tries again."""
        if not offsets:
            return True
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())],
                asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].fatal():
                raise
            log.warning("offsets not committed yet: %s", exc.args[0].str())
            return False
        return True

    def group_metadata(self) -> Any:
        return self._consumer.consumer_group_metadata()

    def rewind(self) -> dict[Partition, int | None]:
        """Seek every assigned partition back to its committed offset (after an abort)."""
        assignment = self._consumer.assignment()
        resume_at = self._committed(assignment)
        for tp in assignment:
            offset = resume_at.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        return resume_at

    def close(self) -> None:
        self._consumer.close()  # revokes (the loop checkpoints), then leaves the group


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


class KafkaRangeSource:
    """Records of topics between two times, for replay: never joins a group or commits.

    Each partition starts at the first offset whose timestamp is >= ``start_ms``
    (offsets_for_times) and stops before the first whose timestamp is >= ``end_ms``,
    or at the end offset seen when the replay started. With a labels topic beside the
    events topic, both are read (the run loop holds each label until the events of its
    partition have passed its timestamp, live or replayed alike).
    """

    def __init__(self, conf: KafkaConfig, topic: str | list[str], start_ms: int | None,
                 end_ms: int | None) -> None:
        self.conf = conf
        self.listener: PartitionListener | None = None
        self._consumer = Consumer({
            **client_settings(conf),
            "group.id": f"streamdrift-replay-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        })
        timeout = conf.connect_timeout_seconds
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self._ends: dict[Partition, int] = {}
        starts: list[TopicPartition] = []
        for name in self.topics:
            meta = self._consumer.list_topics(name, timeout=timeout).topics.get(name)
            if meta is None or meta.error is not None:
                raise ValueError(f"topic {name!r} does not exist")
            for p in sorted(meta.partitions):
                low, high = self._consumer.get_watermark_offsets(TopicPartition(name, p),
                                                                 timeout)
                start = (self._offset_at(name, p, start_ms, low, high)
                         if start_ms is not None else low)
                end = self._offset_at(name, p, end_ms, low, high) if end_ms is not None else high
                if start < end:
                    self._ends[(name, p)] = end
                    starts.append(TopicPartition(name, p,
                                                 start if start >= 0 else OFFSET_BEGINNING))
        self._consumer.assign(starts)
        log.info("replaying %s", ", ".join(
            f"{tp.topic}[{tp.partition}] {tp.offset}..{self._ends[(tp.topic, tp.partition)]}"
            for tp in starts) or "nothing in range")

    def _offset_at(self, topic: str, partition: int, at_ms: int, low: int, high: int) -> int:
        found = self._consumer.offsets_for_times([TopicPartition(topic, partition, at_ms)],
                                                 timeout=self.conf.connect_timeout_seconds)[0]
        return high if found.offset < 0 else max(found.offset, low)

    def poll(self) -> RecordBatch | None:
        if not self._ends:
            return None
        messages = self._consumer.consume(self.conf.batch_size, self.conf.batch_timeout_seconds)
        ends = self._ends
        in_range = [m for m in messages  # a finished partition's end is -1: nothing passes
                    if _check(m) and (m.offset() or 0) < ends.get(
                        (m.topic() or "", m.partition() or 0), -1)]
        self._drop_finished()
        return _columns(in_range)

    def _drop_finished(self) -> None:
        positions = self._consumer.position([TopicPartition(t, p) for t, p in self._ends])
        for tp in positions:
            if tp.offset >= self._ends[(tp.topic, tp.partition)]:
                del self._ends[(tp.topic, tp.partition)]

    def commit(self, offsets: dict[Partition, int]) -> None:
        pass  # a replay never commits

    def close(self) -> None:
        self._consumer.close()
