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

A snapshot is ``MAGIC | format (u16) | header length (u32) | JSON header | chunk
[| HMAC-SHA256 (32 bytes)]``; large states are cut into chunks under the broker's
default record size. The chunks joined are one Zstandard frame (RFC 8878) of ``detectors.codec``
bytes: plain data and objects of allowed classes only, never a pickle, so a record
cannot run code. The header holds each chunk's size and the sha256 of the whole
compressed state; with ``state.hmac_key_file`` every record is signed (over its key
and value) and unsigned or badly signed ones are refused.

A snapshot of another format, made under another detectors config or by other
detectors code, truncated, corrupt, with a chunk missing or from another
generation is refused with a log line that says why and counted
(``REJECT_REASONS``); the other slot is used if it is valid and matches the
committed offsets, else the partition starts a new warm-up: state is never misread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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

from detectors import codec
from detectors.bank import DetectorBank
from detectors.config import DetectorConfig
from stream import __version__
from stream.config import KafkaConfig
from stream.kafka import client_settings
from stream.sinks import produce

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

log = logging.getLogger("streamdrift.state")

MAGIC = b"SDST"
#: Bump when the snapshot layout changes incompatibly (2: detectors.codec, no pickle;
#: 3: Zstandard instead of zlib).
STATE_FORMAT = 3
#: Zstandard's fastest positive level. The codec writes float arrays byte-shuffled, so
#: level 1 makes 12 % fewer bytes than level 3 did unshuffled, in about half its time
#: (bench/state.py's banks: 7,585 against 8,614 bytes and 19.5 against 36 us per
#: monitor); level 3 on shuffled arrays saves 5 % more bytes for 75 % more time.
ZSTD_LEVEL = 1
CHUNK_BYTES = 900_000  # under the broker's default max.message.bytes (1 MiB)
#: A restore's consumer: bytes per partition per fetch, and kilobytes prefetched.
RESTORE_PARTITION_FETCH_BYTES = 16 * 1024 * 1024
RESTORE_PREFETCH_KBYTES = 256 * 1024
#: A state larger than this once decompressed is refused (a compression bomb cannot fill
#: memory).
MAX_STATE_BYTES = 1 << 30
MAC_BYTES = 32
_PREFIX = struct.Struct(">4sHI")
#: Why a snapshot was refused: the label values of ``streamdrift_state_rejected_total``.
REJECT_REASONS = ("format", "config", "truncated", "corrupt", "schema", "missing_chunk",
                  "stale", "signature")


# A partition that is still being created or whose leader is being elected: librdkafka's
# watermark request fails with one of these and does not mark it retriable.
_NO_LEADER_YET = frozenset({
    KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH,
})


class SnapshotError(Exception):
    """A changelog record that cannot be used; the message says why, ``reason`` is one of
    ``REJECT_REASONS``."""

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Chunk:
    partition: int
    slot: int
    generation: int
    index: int
    count: int
    offsets: dict[str, int]
    config_hash: str
    digest: str  # sha256 of the whole compressed state, the same in every chunk
    data: bytes | memoryview  # a view of its record's value: not a copy of it


def _mac(key: bytes, record_key: bytes, signed: bytes) -> bytes:
    # The record key is signed too: a valid chunk cannot be moved to another partition/slot.
    return hmac.new(key, record_key + b"\n" + signed, hashlib.sha256).digest()


def encode_chunks(partition: int, slot: int, generation: int, state: DetectorBank,
                  offsets: dict[str, int], config_hash: str,
                  hmac_key: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """(key, value) changelog records for one snapshot of a partition's state.

    Raises ``detectors.codec.CodecError`` if the state holds what the codec cannot write.
    """
    payload = compressed_state(state)
    return list(chunk_records(partition, slot, generation, payload, offsets, config_hash,
                              hmac_key))


def chunk_records(partition: int, slot: int, generation: int, payload: bytes | list[bytes],
                  offsets: dict[str, int], config_hash: str,
                  hmac_key: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) records of one snapshot whose state is already ``payload``
    (``compress_state`` of ``detectors.codec`` bytes, or ``compressed_state``'s pieces of
    it: never joined), one at a time: a writer that produces each one holds a single
    record beside the compressed state."""
    parts = [payload] if isinstance(payload, bytes) else payload
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part)
    digest = hashed.hexdigest()
    pieces = _cut(parts, CHUNK_BYTES) or [[]]
    for index, piece in enumerate(pieces):
        head: dict[str, Any] = {
            "partition": partition, "slot": slot, "generation": generation, "chunk": index,
            "chunks": len(pieces), "offsets": offsets, "config_hash": config_hash,
            "bytes": sum(map(len, piece)), "digest": digest,
            "streamdrift": __version__}
        if hmac_key is not None:
            head["mac"] = "hmac-sha256"
        header = orjson.dumps(head)
        key = f"{partition}/{slot}/{index}".encode()
        value = b"".join([_PREFIX.pack(MAGIC, STATE_FORMAT, len(header)), header, *piece])
        if hmac_key is not None:
            value += _mac(hmac_key, key, value)
        yield key, value


def _cut(parts: list[bytes], size: int) -> list[list[memoryview]]:
    """``parts`` joined, cut every ``size`` bytes (the last cut shorter), each cut as the
    views of the parts it spans: no byte is copied."""
    cuts: list[list[memoryview]] = []
    views: list[memoryview] = []
    held = 0
    for part in parts:
        view, at = memoryview(part), 0
        while at < len(view):
            take = min(size - held, len(view) - at)
            views.append(view[at:at + take])
            held += take
            at += take
            if held == size:
                cuts.append(views)
                views, held = [], 0
    if views:
        cuts.append(views)
    return cuts


def compress_state(data: bytes) -> bytes:
    """``detectors.codec`` bytes as one Zstandard frame (RFC 8878), as a snapshot holds them
    (``compressed_state`` makes a snapshot's from the bank, in pieces)."""
    return zstd.compress(data, ZSTD_LEVEL)


#: Pieces of a bank's codec bytes (``codec.PIECE_BYTES`` each) waiting for the compressor
#: thread at most: the encoder waits beyond (it is ~5x slower than Zstandard at level 1).
PIECES_AHEAD = 4


def compressed_state(bank: DetectorBank, pool: ThreadPoolExecutor | None = None
                     ) -> list[bytes]:
    """One Zstandard frame of ``codec.encode(bank)``, in pieces (``chunk_records`` cuts
    records from them; joined, they decompress to the codec bytes), made without ever
    holding the codec bytes whole: the codec's pieces (``codec.encode_to``) go to one
    Zstandard stream as they are written, on ``pool``'s thread if given (Zstandard
    releases the GIL: on two cores the state is compressed while it is encoded), else
    on this one. The same bank gives the same bytes either way. Before, a bank's codec
    bytes were whole, then joined, then waiting for the compressor: at 100,000 monitors
    in 6 partitions (~200 MB of codec bytes each) a checkpoint's peak RSS was +806 MiB
    over the RSS before it, now +280 (bench/state.py, 2026-12-02).

    Raises ``detectors.codec.CodecError`` if the bank holds what the codec cannot write.
    """
    compressor = zstd.ZstdCompressor(ZSTD_LEVEL)
    if pool is None:
        out: list[bytes] = []
        codec.encode_to(bank, lambda piece: out.append(compressor.compress(piece)))
        out.append(compressor.flush())
        return out
    done: list[bytes] = []
    ahead: deque[Future[bytes]] = deque()

    def write(piece: bytes) -> None:
        ahead.append(pool.submit(compressor.compress, piece))
        while len(ahead) > PIECES_AHEAD:
            done.append(ahead.popleft().result())

    try:
        codec.encode_to(bank, write)
    finally:  # on CodecError too: the compressor is not left to the thread mid-stream
        done.extend(f.result() for f in ahead)
    done.append(pool.submit(compressor.flush).result())
    return done


def decode_chunk(value: bytes, hmac_key: bytes | None = None, key: bytes = b"") -> Chunk:
    """One record's header and piece of state; with ``hmac_key``, only if ``key`` and
    ``value`` carry its signature. Raises ``SnapshotError``."""
    if len(value) < _PREFIX.size:
        raise SnapshotError("not a streamdrift state record (too short)", "format")
    magic, version, size = _PREFIX.unpack_from(value)
    if magic != MAGIC:
        raise SnapshotError("not a streamdrift state record (bad magic)", "format")
    if version != STATE_FORMAT:
        raise SnapshotError(
            f"state format {version}, this streamdrift ({__version__}) reads format "
            f"{STATE_FORMAT} only", "format")
    start = _PREFIX.size
    if start + size > len(value):
        raise SnapshotError("record shorter than its header", "truncated")
    try:
        header = orjson.loads(value[start:start + size])
        signed = header.get("mac") == "hmac-sha256"
        end = len(value) - MAC_BYTES if signed else len(value)
        chunk = Chunk(int(header["partition"]), int(header["slot"]),
                      int(header["generation"]), int(header["chunk"]), int(header["chunks"]),
                      {str(k): int(v) for k, v in header["offsets"].items()},
                      str(header["config_hash"]), str(header["digest"]),
                      memoryview(value)[start + size:end])
        expected = int(header["bytes"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"unreadable state header: {exc}") from None
    if hmac_key is not None:
        if not signed:
            raise SnapshotError("not signed, and state.hmac_key_file is set", "signature")
        if not hmac.compare_digest(value[end:], _mac(hmac_key, key, value[:end])):
            raise SnapshotError("bad signature (another key, or the record was changed)",
                                "signature")
    if len(chunk.data) != expected or end < start + size:
        raise SnapshotError(f"chunk holds {len(chunk.data)} bytes of {expected}", "truncated")
    return chunk


def decode_state(chunks: list[Chunk]) -> DetectorBank:
    """The bank of a snapshot's chunks (in order), decompressed into the decoder as it
    reads (``_Inflating``): the codec bytes are never whole in memory. Raises
    ``SnapshotError``."""
    digest = hashlib.sha256()
    for c in chunks:
        digest.update(c.data)
    if digest.hexdigest() != chunks[0].digest:
        raise SnapshotError("state does not match its digest", "corrupt")
    try:
        return codec.decode_from(_Inflating([c.data for c in chunks]).read, DetectorBank,
                                 MAX_STATE_BYTES)  # an item is bounded by the whole state
    except codec.CodecError as exc:
        reason = exc.reason if exc.reason in REJECT_REASONS else "corrupt"
        raise SnapshotError(f"state does not decode: {exc}", reason) from None


class _Inflating:
    """The codec bytes of one Zstandard frame given in pieces, read ``n`` bytes at most
    at a time (``read``, ``b""`` at the frame's end): what ``decode_state``'s decoder
    reads. Raises ``SnapshotError``: for a frame that does not decompress, ends early,
    is followed by other bytes, or holds more than ``MAX_STATE_BYTES`` (a compression
    bomb cannot fill memory)."""

    def __init__(self, pieces: list[bytes | memoryview]) -> None:
        self._pieces = iter(pieces)
        self._inflate = zstd.ZstdDecompressor()
        self._made = 0

    def read(self, n: int) -> bytes:
        inflate = self._inflate
        while True:
            if inflate.eof:
                if inflate.unused_data or any(self._pieces):
                    raise SnapshotError("bytes after the compressed state", "corrupt")
                return b""
            data = b""
            if inflate.needs_input:
                data = next(self._pieces, None)  # type: ignore[assignment]
                if data is None:
                    raise SnapshotError("compressed state ends early", "truncated")
            try:
                out = inflate.decompress(data, max(n, 1))
            except zstd.ZstdError as exc:
                raise SnapshotError(f"state does not decompress: {exc}", "corrupt") from None
            self._made += len(out)
            if self._made > MAX_STATE_BYTES:
                raise SnapshotError(f"state larger than {MAX_STATE_BYTES} bytes", "corrupt")
            if out:
                return out


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
    """Writes and restores per-partition detector state in a compacted topic.

    ``detectors``: the running detectors config; a restored bank must carry the same.
    ``hmac_key``: sign what is written, refuse what is not signed with it.
    ``on_reject``: called with the reason (``REJECT_REASONS``) of each refused snapshot.
    """

    conf: KafkaConfig
    topic: str
    producer: Producer
    config_hash: str
    on_delivery: Any = None
    detectors: DetectorConfig | None = None
    hmac_key: bytes | None = None
    on_reject: Callable[[str], None] | None = None
    _slots: dict[int, _Slots] = field(default_factory=dict)
    bytes_written: int = 0

    def write(self, partition: int, bank: DetectorBank, offsets: dict[str, int]) -> int:
        """Produce a snapshot into the slot that is not the committed one; bytes written."""
        return self.write_all([(partition, bank, offsets)])[partition]

    def write_all(self, snapshots: Iterable[tuple[int, DetectorBank, dict[str, int]]]
                  ) -> dict[int, int]:
        """``write`` each (partition, bank, offsets) in turn; the bytes written of each.

        Pipelined: a partition's state is compressed on another thread while it is encoded
        (``compressed_state``: Zstandard releases the GIL), so on two cores a checkpoint
        takes about its encoding time alone, and holds each state compressed only. A
        partition's records are produced in order once its state is compressed.
        ``CodecError`` (a state the codec cannot write) is raised before any record of
        that partition is produced; the partitions before it may have been produced,
        which is harmless: a slot only counts once its offsets commit.
        """
        sizes: dict[int, int] = {}
        with ThreadPoolExecutor(1, thread_name_prefix="streamdrift-zstd") as pool:
            for partition, bank, offsets in snapshots:
                sizes[partition] = self._produce(partition, offsets,
                                                 compressed_state(bank, pool))
        return sizes

    def _produce(self, partition: int, offsets: dict[str, int], payload: list[bytes]) -> int:
        slots = self._slots.setdefault(partition, _Slots())
        slot = 1 - slots.committed if slots.committed is not None else 0
        slots.generation += 1
        slots.pending = slot
        size = 0
        for key, value in chunk_records(partition, slot, slots.generation, payload, offsets,
                                        self.config_hash, self.hmac_key):
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
            # A partition's records are let go once it is restored: the changelog read
            # is not held whole beside all the banks built from it.
            restored = self._pick(partition, records.pop(partition, {}), wanted)
            if restored is not None:
                found[partition] = restored
        log.info("state of %d of %d partitions restored from %s in %.2fs", len(found),
                 len(resume_at), self.topic, time.monotonic() - started)
        return found

    def _refuse(self, partition: int, slot: int, exc: SnapshotError) -> None:
        log.error("%s[%d] slot %d: %s: refused (%s)", self.topic, partition, slot, exc,
                  exc.reason)
        if self.on_reject is not None:
            self.on_reject(exc.reason)

    def _pick(self, partition: int, latest: dict[bytes, bytes],
              wanted: dict[str, int | None]) -> Restored | None:
        slots = self._slots.setdefault(partition, _Slots())
        candidates: list[list[Chunk]] = []
        for slot in (0, 1):
            try:
                chunks = self._slot_chunks(latest, partition, slot)
            except SnapshotError as exc:
                self._refuse(partition, slot, exc)
                continue
            if chunks:
                slots.generation = max(slots.generation, chunks[0].generation)
                candidates.append(chunks)
        usable = []
        for chunks in candidates:
            head = chunks[0]
            ahead = [t for t, o in head.offsets.items()
                     if wanted.get(t) is None or o > wanted[t]]  # type: ignore[operator]
            if ahead or not head.offsets:
                log.info("%s[%d] slot %d: covers %s past the committed offsets %s: ignored",
                         self.topic, partition, head.slot, head.offsets, wanted)
                continue
            if head.config_hash != self.config_hash:
                self._refuse(partition, head.slot, SnapshotError(
                    f"state made with detectors config {head.config_hash}, this run has "
                    f"{self.config_hash}: its detectors start a new warm-up", "config"))
                continue
            usable.append(chunks)
        usable.sort(key=lambda chunks: chunks[0].generation, reverse=True)
        for rank, chunks in enumerate(usable):
            head = chunks[0]
            behind = {t: (wanted[t], o) for t, o in head.offsets.items() if wanted[t] != o}
            if rank and behind:
                # The newest was refused; an older state that missed records since would
                # fire elsewhere than an uninterrupted run: a new warm-up instead.
                log.warning("%s[%d] slot %d: behind the committed offsets %s: not used",
                            self.topic, partition, head.slot, behind)
                continue
            try:
                bank = decode_state(chunks)
                if self.detectors is not None and bank.config != self.detectors:
                    raise SnapshotError("holds another detectors config than its header "
                                        "says", "config")
            except SnapshotError as exc:
                self._refuse(partition, head.slot, exc)
                continue
            if rank:
                log.warning("%s[%d]: using slot %d (generation %d), which matches the "
                            "committed offsets", self.topic, partition, head.slot,
                            head.generation)
            elif behind:
                log.warning("%s[%d]: state is behind the committed offsets %s: the records "
                            "between were not seen by its detectors", self.topic, partition,
                            behind)
            slots.committed, slots.pending = head.slot, None
            return Restored(bank, head.offsets, head.slot, head.generation)
        return None

    def _slot_chunks(self, latest: dict[bytes, bytes], partition: int, slot: int
                     ) -> list[Chunk]:
        key = f"{partition}/{slot}/0".encode()
        first = latest.get(key)
        if first is None:
            return []
        head = decode_chunk(first, self.hmac_key, key)
        if (head.partition, head.slot, head.index) != (partition, slot, 0) or head.count < 1:
            raise SnapshotError(f"header of {key.decode()} names another record", "corrupt")
        if head.count > len(latest):  # checked first: a forged count costs no loop
            raise SnapshotError(f"{head.count} chunks, {len(latest)} records in the "
                                "partition", "missing_chunk")
        chunks = [head]
        for index in range(1, head.count):
            key = f"{partition}/{slot}/{index}".encode()
            value = latest.get(key)
            if value is None:
                raise SnapshotError(f"chunk {index} of generation {head.generation} is "
                                    "missing", "missing_chunk")
            chunk = decode_chunk(value, self.hmac_key, key)
            if chunk.generation != head.generation or chunk.digest != head.digest:
                raise SnapshotError(f"chunk {index} is of generation {chunk.generation}, not "
                                    f"{head.generation}", "stale")
            if (chunk.partition, chunk.slot, chunk.index, chunk.count) != (
                    partition, slot, index, head.count):
                raise SnapshotError(f"header of {key.decode()} names another record",
                                    "corrupt")
            chunks.append(chunk)
        return chunks

    def _watermarks(self, consumer: Consumer, partition: int, timeout: float
                    ) -> tuple[int, int]:
        """Low and high offsets; retried while a new topic's metadata spreads and its
        partitions get a leader (a changelog created a moment ago, a broker restart)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=min(timeout, 10.0))
                return int(low), int(high)
            except KafkaException as exc:
                err = exc.args[0]
                if time.monotonic() > deadline or not (
                        err.retriable() or err.code() in _NO_LEADER_YET):
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
            # A restore is one bulk read of whole partitions: with the default 1 MiB per
            # partition per fetch and 64 MiB of prefetch it read 854 MB of changelog
            # (100,000 monitors) in 2.2 s, with these in 1.2 s (2026-12-02).
            "max.partition.fetch.bytes": RESTORE_PARTITION_FETCH_BYTES,
            "queued.max.messages.kbytes": RESTORE_PREFETCH_KBYTES,
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
