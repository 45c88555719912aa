"""Detector state that moves with its partition: snapshots in a compacted changelog topic.

The state of input partition ``p`` (its DetectorBank) is written to partition
``p`` of the changelog topic, which has the events topic's partition count.
Each write carries the source offsets the state covers (the next offset to
read of each input topic's partition ``p``), so a restore never takes state
that runs ahead of the committed offsets.

Two slots per partition. A checkpoint writes the slot that does *not* hold the
state of the last committed offsets; only when the offsets commit does the
written slot become the committed one. So, whatever point a process dies at,
the slot matching the group's committed offsets is still there, and
compaction (which keeps the newest record per key) cannot delete it.

A snapshot is ``MAGIC | format (u16) | header length (u32) | JSON header | chunk``;
large states are cut into chunks under the broker's default record size. A
snapshot of another format, or made under another detectors config, is refused
with a log line that says why, and the partition starts a new warm-up: it is
never misread. The payload is a pickle: the changelog topic must be writable
only by streamdrift (as its consumer group's offsets are).
"""

from __future__ import annotations

import logging
import pickle
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from detectors.bank import DetectorBank
from stream import __version__
from stream.config import KafkaConfig
from stream.kafka import client_settings
from stream.sinks import produce

log = logging.getLogger("streamdrift.state")

MAGIC = b"SDST"
#: Bump when the snapshot layout or a pickled detector class changes incompatibly.
STATE_FORMAT = 1
CHUNK_BYTES = 900_000  # under the broker's default max.message.bytes (1 MiB)
_PREFIX = struct.Struct(">4sHI")


class SnapshotError(Exception):
    """A changelog record that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Chunk:
    partition: int
    slot: int
    generation: int
    index: int
    count: int
    offsets: dict[str, int]
    config_hash: str
    data: bytes


def encode_chunks(partition: int, slot: int, generation: int, state: Any,
                  offsets: dict[str, int], config_hash: str) -> list[tuple[bytes, bytes]]:
    """(key, value) changelog records for one snapshot of a partition's state."""
    payload = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
    pieces = [payload[i:i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)] or [b""]
    records = []
    for index, piece in enumerate(pieces):
        header = orjson.dumps({
            "partition": partition, "slot": slot, "generation": generation, "chunk": index,
            "chunks": len(pieces), "offsets": offsets, "config_hash": config_hash,
            "streamdrift": __version__})
        value = _PREFIX.pack(MAGIC, STATE_FORMAT, len(header)) + header + piece
        records.append((f"{partition}/{slot}/{index}".encode(), value))
    return records


def decode_chunk(value: bytes) -> Chunk:
    if len(value) < _PREFIX.size:
        raise SnapshotError("not a streamdrift state record (too short)")
    magic, version, size = _PREFIX.unpack_from(value)
    if magic != MAGIC:
        raise SnapshotError("not a streamdrift state record (bad magic)")
    if version != STATE_FORMAT:
        raise SnapshotError(
            f"state format {version}, this streamdrift ({__version__}) reads format "
            f"{STATE_FORMAT} only")
    start = _PREFIX.size
    try:
        header = orjson.loads(value[start:start + size])
        return Chunk(int(header["partition"]), int(header["slot"]), int(header["generation"]),
                     int(header["chunk"]), int(header["chunks"]),
                     {str(k): int(v) for k, v in header["offsets"].items()},
                     str(header["config_hash"]), value[start + size:])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"unreadable state header: {exc}") from None


def decode_state(chunks: list[Chunk]) -> Any:
    try:
        return pickle.loads(zlib.decompress(b"".join(c.data for c in chunks)))
    except Exception as exc:  # any failure means the same: unusable
        raise SnapshotError(f"state does not decode: {type(exc).__name__}: {exc}") from None


@dataclass(slots=True)
class Restored:
    bank: DetectorBank
    offsets: dict[str, int]
    slot: int
    generation: int


@dataclass(slots=True)
class _Slots:
    committed: int | None = None  # slot holding the state of the committed offsets
    pending: int | None = None  # slot written since, not yet committed
    generation: int = 0


@dataclass
class Changelog:
    """Writes and restores per-partition detector state in a compacted topic."""

    conf: KafkaConfig
    topic: str
    producer: Producer
    config_hash: str
    on_delivery: Any = None
    _slots: dict[int, _Slots] = field(default_factory=dict)
    bytes_written: int = 0

    def write(self, partition: int, bank: DetectorBank, offsets: dict[str, int]) -> int:
        """Produce a snapshot into the slot that is not the committed one; bytes written."""
        slots = self._slots.setdefault(partition, _Slots())
        slot = 1 - slots.committed if slots.committed is not None else 0
        slots.generation += 1
        slots.pending = slot
        size = 0
        for key, value in encode_chunks(partition, slot, slots.generation, bank, offsets,
                                        self.config_hash):
            produce(self.producer, self.topic, value, key, partition=partition,
                    on_delivery=self.on_delivery)
            size += len(value)
        self.bytes_written += size
        return size

    def committed(self) -> None:
        """The offsets of every pending write are committed: their slots now hold them."""
        for slots in self._slots.values():
            if slots.pending is not None:
                slots.committed, slots.pending = slots.pending, None

    def forget(self, partition: int) -> None:
        self._slots.pop(partition, None)

    def restore(self, resume_at: dict[int, dict[str, int | None]]
                ) -> dict[int, Restored]:
        """The newest usable state of each partition: ``resume_at[p]`` is where the group
        resumes each input topic of partition ``p`` (None: no committed offset).

        A snapshot is usable if none of its offsets is past the committed one.
        """
        if not resume_at:
            return {}
        started = time.monotonic()
        records = self._read(sorted(resume_at))
        found: dict[int, Restored] = {}
        for partition, wanted in sorted(resume_at.items()):
            restored = self._pick(partition, records.get(partition, {}), wanted)
            if restored is not None:
                found[partition] = restored
        log.info("state of %d of %d partitions restored from %s in %.2fs", len(found),
                 len(resume_at), self.topic, time.monotonic() - started)
        return found

    def _pick(self, partition: int, latest: dict[bytes, bytes],
              wanted: dict[str, int | None]) -> Restored | None:
        slots = self._slots.setdefault(partition, _Slots())
        candidates: list[list[Chunk]] = []
        for slot in (0, 1):
            try:
                chunks = self._slot_chunks(latest, partition, slot)
            except SnapshotError as exc:
                log.error("%s[%d] slot %d: %s: refused", self.topic, partition, slot, exc)
                continue
            if chunks:
                slots.generation = max(slots.generation, chunks[0].generation)
                candidates.append(chunks)
        usable = []
        for chunks in candidates:
            head = chunks[0]
            ahead = [t for t, o in head.offsets.items()
                     if wanted.get(t) is None or o > wanted[t]]  # type: ignore[operator]
            if ahead:
                log.info("%s[%d] slot %d: covers %s past the committed offsets %s: ignored",
                         self.topic, partition, head.slot, head.offsets, wanted)
                continue
            if head.config_hash != self.config_hash:
                log.warning("%s[%d]: state made with detectors config %s, this run has %s: "
                            "refused, its detectors start a new warm-up", self.topic,
                            partition, head.config_hash, self.config_hash)
                continue
            usable.append(chunks)
        if not usable:
            return None
        best = max(usable, key=lambda chunks: chunks[0].generation)
        head = best[0]
        try:
            bank = decode_state(best)
        except SnapshotError as exc:
            log.error("%s[%d] slot %d: %s: refused", self.topic, partition, head.slot, exc)
            return None
        if not isinstance(bank, DetectorBank):
            log.error("%s[%d] slot %d: holds a %s, not a DetectorBank: refused", self.topic,
                      partition, head.slot, type(bank).__name__)
            return None
        behind = {t: (wanted[t], o) for t, o in head.offsets.items() if wanted[t] != o}
        if behind:
            log.warning("%s[%d]: state is behind the committed offsets %s: the records "
                        "between were not seen by its detectors", self.topic, partition, behind)
        slots.committed, slots.pending = head.slot, None
        return Restored(bank, head.offsets, head.slot, head.generation)

    @staticmethod
    def _slot_chunks(latest: dict[bytes, bytes], partition: int, slot: int) -> list[Chunk]:
        first = latest.get(f"{partition}/{slot}/0".encode())
        if first is None:
            return []
        head = decode_chunk(first)
        chunks = [head]
        for index in range(1, head.count):
            value = latest.get(f"{partition}/{slot}/{index}".encode())
            chunk = decode_chunk(value) if value is not None else None
            if chunk is None or chunk.generation != head.generation:
                raise SnapshotError(f"chunk {index} of generation {head.generation} is missing")
            chunks.append(chunk)
        return chunks

    def _watermarks(self, consumer: Consumer, partition: int, timeout: float
                    ) -> tuple[int, int]:
        """Low and high offsets; retried while a new topic's metadata spreads."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=min(timeout, 10.0))
                return int(low), int(high)
            except KafkaException as exc:
                err = exc.args[0]
                if time.monotonic() > deadline or not (
                        err.retriable() or err.code() in (
                            KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART,
                            KafkaError.NOT_LEADER_FOR_PARTITION,  # a leader being elected
                            KafkaError.LEADER_NOT_AVAILABLE)):
                    raise
                log.info("restore: %s[%d]: %s: retrying", self.topic, partition, err.str())
                time.sleep(0.2)

    def _read(self, partitions: list[int]) -> dict[int, dict[bytes, bytes]]:
        """Every committed record of the partitions, the newest value per key."""
        consumer = Consumer({
            **client_settings(self.conf),
            "group.id": f"streamdrift-restore-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "fetch.wait.max.ms": 20,
        })
        timeout = self.conf.connect_timeout_seconds
        latest: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        try:
            todo = set()
            assign = []
            for p in partitions:
                low, high = self._watermarks(consumer, p, timeout)
                if high > low:
                    todo.add(p)
                    assign.append(TopicPartition(self.topic, p, OFFSET_BEGINNING))
            consumer.assign(assign)
            deadline = time.monotonic() + max(timeout, 60.0)
            while todo:
                if time.monotonic() > deadline:
                    raise SnapshotError(f"restoring {self.topic} {sorted(todo)} took too long")
                for msg in consumer.consume(1000, 0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            todo.discard(msg.partition() or 0)
                        else:
                            log.warning("restore: %s", err.str())
                        continue
                    key = msg.key()
                    if key is not None:
                        latest[msg.partition() or 0][key] = msg.value() or b""
        finally:
            consumer.close()
        return latest


class Transactions:
    """Exactly-once: a checkpoint's alerts, dead letters, changelog records and source
    offsets go in one Kafka transaction (``send_offsets_to_transaction``).

    The transaction opens lazily before the first record of a checkpoint interval is
    produced. A commit that fails with an abortable error is aborted and reported as
    False: the caller rewinds to the last committed state and offsets. Retriable errors
    (a broker restarting) are retried for ``retry_seconds``; fatal ones (fenced by
    another process with our ``transactional.id``) are raised.
    """

    def __init__(self, producer: Producer, group_metadata: Any, timeout: float = 30.0,
                 retry_seconds: float = 300.0) -> None:
        self.producer = producer
        self.group_metadata = group_metadata  # callable: the consumer's current metadata
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.open = False
        self._retry(self.producer.init_transactions)

    def begin(self) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open = True

    def commit(self, offsets: dict[tuple[str, int], int],
               within: float | None = None) -> bool:
        """Commit the open transaction with ``offsets``; False if it was aborted (also
        when it could not commit ``within`` seconds, e.g. during a rebalance)."""
        self.begin()
        retry = self.retry_seconds if within is None else within
        try:
            if offsets:
                tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
                self._retry(lambda timeout: self.producer.send_offsets_to_transaction(
                    tps, self.group_metadata(), timeout), retry)
            self._retry(self.producer.commit_transaction, retry)
        except KafkaException as exc:
            err = exc.args[0]
            if not (err.txn_requires_abort() or (within is not None and err.retriable())):
                raise
            log.warning("transaction aborted (%s): rewinding to the last commit", err.str())
            self.abort()
            return False
        self.open = False
        return True

    def abort(self) -> None:
        if self.open:
            self._retry(self.producer.abort_transaction)
            self.open = False

    def _retry(self, operation: Any, seconds: float | None = None) -> None:
        deadline = time.monotonic() + (self.retry_seconds if seconds is None else seconds)
        while True:
            try:
                operation(min(self.timeout, max(1.0, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or time.monotonic() > deadline:
                    raise
                log.warning("transaction: %s: retrying", err.str())
