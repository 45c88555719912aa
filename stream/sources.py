"""Where records come from: a Kafka consumer group, a Kafka time range, a JSON-lines file
(plain or gzip) or standard input.

Every source yields ``RecordBatch`` objects from ``poll`` and returns None
once a bounded input is exhausted. Only the live source commits.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import stat
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import IO, Any, Protocol, cast

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
from stream.events import parse_rfc3339
from stream.kafka import client_settings
from stream.records import ORIGINAL_SHA256, ORIGINAL_SIZE, TRUNCATED, Headers, RecordBatch

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


#: The first two bytes of a gzip member (RFC 1952, section 2.3.1).
GZIP_MAGIC = b"\x1f\x8b"
#: The path that means standard input.
STDIN = "-"


class FileSource:
    """JSON lines from a file, gzip-compressed or not, or from standard input (``-``).

    The topic of each record is the file's name (``stdin`` for ``-``), its partition 0,
    its offset the line's index in the input (lines skipped by the time range keep
    their index, so an alert's ``source.offset`` is the line number counted from 0).
    Gzip (RFC 1952) is recognised by its first two bytes, whatever the name says.

    ``start``/``end`` (epoch seconds) keep the events whose ``timestamp`` (RFC 3339 or
    epoch seconds, the event contract's) is in ``[start, end)``, as ``--from/--to`` do
    on a topic with the record timestamps. A line whose time cannot be read (not JSON,
    no or a bad ``timestamp``) is passed on, so that the run loop rejects or keeps it
    as it would without a range; ``outside`` counts the lines left out.

    ``size`` is the input's size in bytes (None for standard input or a pipe) and
    ``position()`` how much of it was read, compressed bytes for gzip: a progress
    display's ETA. Raises ``OSError`` if the file cannot be opened.

    With ``max_line_bytes`` (``limits.max_record_bytes``), a longer line is never held
    whole: its first ``max_line_bytes + 1`` bytes are its record's value (rejected as
    ``oversized``), the rest is read a MiB at a time, counted and hashed, and the record
    says so in the dead-letter contract's headers: ``streamdrift.truncated`` (``value``),
    ``streamdrift.original.size`` and ``streamdrift.original.sha256`` of the whole line
    (without its line end). A 300 MB line took ~730 MB before it was rejected; a file
    without a line end (a binary file given by mistake) took all of itself. The time
    of a line cut short cannot be read: with ``start``/``end`` it is passed on (and
    dead-lettered as ``oversized``), as any line whose time cannot be read.

    >>> import gzip, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "e.jsonl.gz")
    >>> with gzip.open(path, "wb") as out:
    ...     for t in (10, 20, 30):
    ...         _ = out.write(b'{"timestamp": %d}' % t + bytes([10]))
    >>> source = FileSource(path, batch_size=100, start=15, end=30)
    >>> batch = source.poll()
    >>> batch.offsets, batch.values, source.outside, source.poll()
    ([1], [b'{"timestamp": 20}'], 2, None)
    """

    def __init__(self, path: str | Path, batch_size: int, start: float | None = None,
                 end: float | None = None, max_line_bytes: int | None = None) -> None:
        self.batch_size = batch_size
        self.max_line_bytes = max_line_bytes
        self.start = start
        self.end = end
        self.outside = 0
        self._line = 0
        self.size: int | None = None
        raw: IO[bytes]
        if str(path) == STDIN:
            self.topic = "stdin"
            raw = sys.stdin.buffer
            self._owned = False
        else:
            self.topic = Path(path).name
            raw = Path(path).open("rb")  # noqa: SIM115 -- closed by close()
            self._owned = True
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                    self.size = os.fstat(raw.fileno()).st_size
        self._raw = raw
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(
            cast(io.RawIOBase, raw))
        self._file: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb")
                                     if buffered.peek(2)[:2] == GZIP_MAGIC else buffered)

    def position(self) -> int:
        """Bytes of the input read so far (0 where that cannot be told)."""
        try:
            return self._raw.tell()
        except OSError:
            return 0

    def poll(self) -> RecordBatch | None:
        batch = RecordBatch()
        ranged = self.start is not None or self.end is not None
        try:
            while (read := self._next_line()) is not None:
                value, headers = read
                line = self._line
                self._line += 1
                if ranged and not self._in_range(value):
                    self.outside += 1
                    continue
                batch.append(self.topic, 0, line, None, None, value, headers)
                if len(batch) >= self.batch_size:
                    break
        except (EOFError, gzip.BadGzipFile) as exc:  # a truncated or corrupt gzip stream
            raise ValueError(f"{self.topic}: gzip input ends early or is corrupt "
                             f"after line {self._line}: {exc}") from None
        return batch if len(batch) else None

    def resize(self, records: int) -> None:
        """Ask for ``records`` records per poll from now on (``KafkaConfig.poll_size``)."""
        self.batch_size = records

    def _next_line(self) -> tuple[bytes, Headers | None] | None:
        """The next line without its line end, and the headers of one cut short (see
        the class); None at the end of the input."""
        limit = self.max_line_bytes
        raw = self._file.readline() if limit is None else self._file.readline(limit + 2)
        if not raw:
            return None
        if limit is None or raw.endswith(b"\n") or len(raw) < limit + 2:
            return raw.rstrip(b"\r\n"), None
        # Longer than a value the limit lets through and its line end: the rest is only
        # counted and hashed. A line's trailing CRs are not its value (``rstrip``): they
        # are held back until what follows them is known.
        digest, size, held = hashlib.sha256(), 0, b""
        chunk = raw
        while True:
            ends = chunk.endswith(b"\n")
            data = held + chunk
            kept = data.rstrip(b"\r\n") if ends or not chunk else data.rstrip(b"\r")
            held = data[len(kept):]
            digest.update(kept)
            size += len(kept)
            if ends or not chunk:
                break
            chunk = self._file.readline(1 << 20)
        if size <= limit + 1:  # CRs filled the window: the value itself is in ``raw``, whole
            return raw[:size], None
        return raw[:limit + 1], [(TRUNCATED, b"value"), (ORIGINAL_SIZE, str(size).encode()),
                                 (ORIGINAL_SHA256, digest.hexdigest().encode())]

    def _in_range(self, value: bytes) -> bool:
        when = event_seconds(value)
        if when is None:
            return True
        return ((self.start is None or when >= self.start)
                and (self.end is None or when < self.end))

    def commit(self, offsets: dict[Partition, int]) -> None:
        pass  # a replay never commits

    def close(self) -> None:
        if self._owned:
            self._file.close()
            self._raw.close()


def event_seconds(value: bytes) -> float | None:
    """Epoch seconds of a JSON event's ``timestamp`` (RFC 3339, naive read as UTC, or
    epoch seconds); None if the line is no JSON object or its time cannot be read.

    >>> event_seconds(b'{"timestamp": "1970-01-01T00:01:00Z"}'), event_seconds(b'{}')
    (60.0, None)
    """
    try:
        stamp = orjson.loads(value).get("timestamp")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(stamp, bool):
        return None
    if isinstance(stamp, int | float):
        return float(stamp)
    if isinstance(stamp, str):
        try:
            moment = parse_rfc3339(stamp)
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return None


def replay_source(conf: KafkaConfig, *, path: str | Path | None = None,
                  topic: str | None = None, start: float | None = None,
                  end: float | None = None, max_line_bytes: int | None = None
                  ) -> FileSource | KafkaRangeSource:
    """The source ``replay`` reads (and a backtest can): a JSON-lines file (``path``;
    ``-`` for standard input; gzip or not) or a topic (``topic``, with
    ``conf.labels_topic`` beside it if set), limited to event times in ``[start, end)``
    (epoch seconds; None: unbounded). On a topic the time is the record timestamp
    (``offsets_for_times``); in a file, each event's ``timestamp``. A file's lines
    longer than ``max_line_bytes`` are cut (``FileSource``).

    Raises ``OSError`` if the file cannot be opened, ``ValueError`` if the topic does
    not exist or neither or both of ``path`` and ``topic`` are given."""
    if (path is None) == (topic is None):
        raise ValueError("give one of path and topic")
    if path is not None:
        return FileSource(path, conf.poll_size(), start, end, max_line_bytes)
    assert topic is not None
    topics = [topic] + ([conf.labels_topic] if conf.labels_topic else [])
    return KafkaRangeSource(conf, topics, None if start is None else int(start * 1000),
                            None if end is None else int(end * 1000))


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
        self.batch_size = conf.poll_size()  # records per poll; see ``resize``
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
        messages = self._consumer.consume(self.batch_size, self.conf.batch_timeout_seconds)
        return _columns([m for m in messages if _check(m)])

    def resize(self, records: int) -> None:
        """Ask for ``records`` records per poll from now on (``KafkaConfig.poll_size``)."""
        self.batch_size = records

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
        self.batch_size = conf.poll_size()  # records per poll; see ``resize``
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

    def resize(self, records: int) -> None:
        """Ask for ``records`` records per poll from now on (``KafkaConfig.poll_size``)."""
        self.batch_size = records

    def _offset_at(self, topic: str, partition: int, at_ms: int, low: int, high: int) -> int:
        found = self._consumer.offsets_for_times([TopicPartition(topic, partition, at_ms)],
                                                 timeout=self.conf.connect_timeout_seconds)[0]
        return high if found.offset < 0 else max(found.offset, low)

    def poll(self) -> RecordBatch | None:
        if not self._ends:
            return None
        messages = self._consumer.consume(self.batch_size, self.conf.batch_timeout_seconds)
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
