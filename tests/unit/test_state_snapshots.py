"""The changelog's snapshot codec and restore choice, without a broker.

Restore takes, per partition, the newest snapshot whose source offsets are not
past the committed ones; a snapshot of another format, another detectors config,
or with a chunk missing is refused, never misread.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors import codec
from detectors.bank import DetectorBank, EventBatch
from detectors.codec import encode
from detectors.config import DetectorConfig
from stream import state
from stream.config import ConfigError, KafkaConfig, load_config
from stream.state import Changelog, SnapshotError, decode_chunk, decode_state, encode_chunks

EVENTS = "model-events"


def warm_bank(events: int = 600, seed: int = 0) -> DetectorBank:
    rng = random.Random(seed)
    bank = DetectorBank(DetectorConfig(warmup=200))
    batch = EventBatch()
    for i in range(events):
        batch.append("m", None, {"x": rng.gauss(0, 1), "c": rng.choice("abc")}, None, i)
    bank.update(batch)
    return bank


def changelog() -> Changelog:
    return Changelog(KafkaConfig(), "g-state", producer=None, config_hash="h1")  # type: ignore[arg-type]


def records(partition: int, slot: int, generation: int, bank: DetectorBank, offset: int,
            config_hash: str = "h1") -> dict[bytes, bytes]:
    return dict(encode_chunks(partition, slot, generation, bank, {EVENTS: offset}, config_hash))


def test_a_snapshot_round_trips_through_its_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "CHUNK_BYTES", 1000)  # force several chunks
    bank = warm_bank()
    encoded = encode_chunks(2, 1, 7, bank, {EVENTS: 600}, "h1")
    assert len(encoded) > 3
    assert [k for k, _ in encoded][:2] == [b"2/1/0", b"2/1/1"]
    chunks = [decode_chunk(v) for _, v in encoded]
    assert {(c.partition, c.slot, c.generation, c.count) for c in chunks} == {(2, 1, 7,
                                                                             len(encoded))}
    restored = decode_state(chunks)
    nxt = EventBatch()
    rng = random.Random(5)
    for i in range(2000):
        nxt.append("m", None, {"x": rng.gauss(0 if i < 500 else 3, 1), "c": "a"}, None, i)
    expect = [(s.feature, s.detector, s.position) for s in bank.update(nxt)]
    assert expect, "the continuation must fire for the comparison to mean anything"
    assert [(s.feature, s.detector, s.position) for s in restored.update(nxt)] == expect


def test_another_format_is_refused_with_a_clear_message() -> None:
    _, value = encode_chunks(0, 0, 1, warm_bank(), {EVENTS: 1}, "h1")[0]
    newer = value[:4] + struct.pack(">H", state.STATE_FORMAT + 1) + value[6:]
    with pytest.raises(SnapshotError, match=rf"state format {state.STATE_FORMAT + 1}, "
                       rf".* reads format {state.STATE_FORMAT} only"):
        decode_chunk(newer)
    with pytest.raises(SnapshotError, match="not a streamdrift state record"):
        decode_chunk(b"something else entirely")


def test_restore_takes_the_newest_snapshot_not_past_the_committed_offset() -> None:
    old, new = warm_bank(300), warm_bank(600)
    latest = {**records(0, 0, 1, old, 300), **records(0, 1, 2, new, 600)}
    log = changelog()
    # The group committed 300: the snapshot at 600 was written, its commit never happened.
    picked = log._pick(0, latest, {EVENTS: 300})
    assert picked is not None and picked.offsets == {EVENTS: 300} and picked.slot == 0
    # The next write goes to the other slot (1), never over the committed one (0).
    assert log._slots[0].committed == 0 and log._slots[0].generation == 2
    both = log._pick(0, latest, {EVENTS: 600})
    assert both is not None and both.offsets == {EVENTS: 600} and both.slot == 1
    assert log._pick(0, latest, {EVENTS: 200}) is None  # both ahead: a new warm-up
    assert log._pick(0, latest, {EVENTS: None}) is None  # nothing committed


def test_restore_refuses_another_config_and_a_missing_chunk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bank = warm_bank()
    assert changelog()._pick(0, records(0, 0, 1, bank, 600, config_hash="other"),
                             {EVENTS: 600}) is None
    monkeypatch.setattr(state, "CHUNK_BYTES", 1000)
    whole = records(0, 0, 3, bank, 600)
    assert changelog()._pick(0, whole, {EVENTS: 600}) is not None
    missing = {k: v for k, v in whole.items() if k != b"0/0/1"}
    assert changelog()._pick(0, missing, {EVENTS: 600}) is None
    stale = {**whole, b"0/0/1": records(0, 0, 2, bank, 500)[b"0/0/1"]}  # older generation
    assert changelog()._pick(0, stale, {EVENTS: 600}) is None


# --- refused snapshots: counted by reason, the other slot used when it matches ----------

class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def counting(**kwargs: Any) -> tuple[Changelog, list[str]]:
    refused: list[str] = []
    log = Changelog(KafkaConfig(), "g-state", producer=None,  # type: ignore[arg-type]
                    config_hash="h1", on_reject=refused.append, **kwargs)
    return log, refused


def tamper(value: bytes, at: int = -20) -> bytes:
    return value[:at] + bytes([value[at] ^ 0xFF]) + value[at + 1:]


def test_a_corrupt_newest_snapshot_falls_back_to_the_slot_of_the_committed_offsets() -> None:
    old, new = warm_bank(600, seed=1), warm_bank(600, seed=2)
    # The newest (generation 2) was written at the same offsets as slot 0: e.g. an
    # unchanged state written again, then damaged.
    latest = {**records(0, 0, 1, old, 600), **records(0, 1, 2, new, 600)}
    latest[b"0/1/0"] = tamper(latest[b"0/1/0"])
    log, refused = counting()
    picked = log._pick(0, latest, {EVENTS: 600})
    assert picked is not None and picked.slot == 0 and picked.generation == 1
    assert refused == ["corrupt"]
    assert encode(picked.bank) == encode(old)
    assert log._slots[0].committed == 0 and log._slots[0].generation == 2  # next write: slot 1

    # The other slot is older than the committed offsets: it missed records, so no
    # fallback to it; the partition warms up anew.
    latest = {**records(0, 0, 1, old, 300), **records(0, 1, 2, new, 600)}
    latest[b"0/1/0"] = tamper(latest[b"0/1/0"])
    log, refused = counting()
    assert log._pick(0, latest, {EVENTS: 600}) is None
    assert refused == ["corrupt"]


def test_tampered_truncated_and_partial_snapshots_are_refused_with_their_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bank = warm_bank()
    monkeypatch.setattr(state, "CHUNK_BYTES", 1000)
    whole = records(0, 0, 3, bank, 600)
    older = records(0, 0, 2, bank, 500)
    header_end = state._PREFIX.size + struct.unpack_from(">I", whole[b"0/0/0"], 6)[0]
    cases = {
        "truncated": {**whole, b"0/0/1": whole[b"0/0/1"][:-10]},
        "missing_chunk": {k: v for k, v in whole.items() if k != b"0/0/2"},
        "stale": {**whole, b"0/0/1": older[b"0/0/1"]},
        "corrupt": {**whole, b"0/0/0": tamper(whole[b"0/0/0"], header_end - 3)},
        "format": {**whole, b"0/0/0": b"SDST" + struct.pack(">H", 1) + whole[b"0/0/0"][6:]},
        "config": records(0, 0, 3, bank, 600, config_hash="h2"),
    }
    for reason, latest in cases.items():
        log, refused = counting()
        assert log._pick(0, latest, {EVENTS: 600}) is None, reason
        assert refused == [reason]
    log, refused = counting()
    assert log._pick(0, whole, {EVENTS: 600}) is not None and refused == []
    moved = {b"0/0/0": records(0, 1, 3, bank, 600)[b"0/1/0"]}  # a chunk under another key
    log, refused = counting()
    assert log._pick(0, moved, {EVENTS: 600}) is None and refused == ["corrupt"]


def _chunk_of(payload: bytes) -> state.Chunk:
    """One chunk whose sizes and digest fit ``payload`` (its content is what is tested)."""
    return state.Chunk(0, 0, 1, 0, 1, {EVENTS: 1}, "h1",
                       hashlib.sha256(payload).hexdigest(), payload)


def test_a_compressed_state_that_is_cut_padded_or_too_large_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(warm_bank())
    frame = state.compress_state(data)
    assert len(frame) < len(data) and encode(decode_state([_chunk_of(frame)])) == data
    cases = {
        "compressed state ends early": ("truncated", frame[:-20]),
        "bytes after the compressed state": ("corrupt", frame + state.compress_state(b"x")),
        "does not decompress": ("corrupt", b"\x28\xb5\x2f\xfd" + b"\xff" * 40),
        "does not decompress: ": ("corrupt", zlib.compress(data)),  # the old format's
    }
    for says, (reason, payload) in cases.items():
        with pytest.raises(SnapshotError, match=says) as exc:
            decode_state([_chunk_of(payload)])
        assert exc.value.reason == reason, says
    monkeypatch.setattr(state, "MAX_STATE_BYTES", len(data) - 1)  # a bomb, in small
    with pytest.raises(SnapshotError, match=f"larger than {len(data) - 1} bytes") as exc:
        decode_state([_chunk_of(frame)])
    assert exc.value.reason == "corrupt"


def test_a_bank_of_another_config_than_its_header_says_is_refused() -> None:
    bank = warm_bank()  # warmup=200
    log, refused = counting(detectors=DetectorConfig(warmup=300))
    assert log._pick(0, records(0, 0, 1, bank, 600), {EVENTS: 600}) is None
    assert refused == ["config"]
    log, refused = counting(detectors=bank.config)
    assert log._pick(0, records(0, 0, 1, bank, 600), {EVENTS: 600}) is not None


def _exploit_records(marker: Path, offsets: dict[str, int]) -> dict[bytes, bytes]:
    """Today's exploit (format 1: header + pickle, empty offsets) in slot 0, and the same
    pickle in a well-formed record of the current format (right sizes and digest) in slot 1."""
    body = pickle.dumps(_Exploit(marker))
    header = orjson.dumps({"partition": 0, "slot": 0, "generation": 9, "chunk": 0,
                           "chunks": 1, "offsets": {}, "config_hash": "h1"})
    old = struct.pack(">4sHI", b"SDST", 1, len(header)) + header + zlib.compress(body)
    payload = state.compress_state(codec.MAGIC + body)
    header = orjson.dumps({"partition": 0, "slot": 1, "generation": 9, "chunk": 0,
                           "chunks": 1, "offsets": offsets, "config_hash": "h1",
                           "bytes": len(payload),
                           "digest": hashlib.sha256(payload).hexdigest()})
    new = struct.pack(">4sHI", b"SDST", state.STATE_FORMAT, len(header)) + header + payload
    return {b"0/0/0": old, b"0/1/0": new}


def test_a_pickle_in_the_changelog_is_refused_counted_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    log, refused = counting()
    assert log._pick(0, _exploit_records(marker, {EVENTS: 100}), {EVENTS: 600}) is None
    assert sorted(refused) == ["format", "format"]
    assert not marker.exists()


def test_signed_snapshots_are_refused_without_their_signature() -> None:
    key, other = b"k" * 32, b"o" * 32
    bank = warm_bank()
    signed = dict(encode_chunks(0, 0, 1, bank, {EVENTS: 600}, "h1", hmac_key=key))
    log, refused = counting(hmac_key=key)
    assert log._pick(0, signed, {EVENTS: 600}) is not None and refused == []
    log, _ = counting()  # a reader without the key still reads signed snapshots
    assert log._pick(0, signed, {EVENTS: 600}) is not None
    for name, latest in {
        "unsigned": records(0, 0, 1, bank, 600),
        "another key": dict(encode_chunks(0, 0, 1, bank, {EVENTS: 600}, "h1", other)),
        "changed": {b"0/0/0": tamper(signed[b"0/0/0"], -40)},
        "moved": {b"0/0/0": dict(encode_chunks(0, 1, 1, bank, {EVENTS: 600}, "h1",
                                               key))[b"0/1/0"]},
    }.items():
        log, refused = counting(hmac_key=key)
        assert log._pick(0, latest, {EVENTS: 600}) is None, name
        assert refused == ["signature"], name


def test_the_hmac_key_comes_from_a_file_of_at_least_32_bytes(tmp_path: Path) -> None:
    key = tmp_path / "state.key"
    key.write_bytes(b"s" * 40 + b"\n")
    config = load_config(env={"STREAMDRIFT_STATE__HMAC_KEY_FILE": str(key)})
    assert config.state.hmac_key() == b"s" * 40  # the editor's newline is not part of it
    assert load_config().state.hmac_key() is None
    key.write_bytes(b"short\n")
    with pytest.raises(ConfigError, match=r"state.hmac_key_file: .*at least 32 bytes"):
        load_config(overrides={"state.hmac_key_file": str(key)})


class _Recording:
    """A producer that keeps what is produced, in order."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, partition: int,
                on_delivery: Any = None) -> None:
        self.records.append((partition, key, value))


def test_a_pipelined_checkpoint_writes_what_one_write_per_partition_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # write_all encodes the next partition while the last one is compressed: the records,
    # their order within a partition, slots and generations must be those of plain writes.
    monkeypatch.setattr(state, "CHUNK_BYTES", 5000)  # several chunks a partition
    banks = {p: warm_bank(300 + 100 * p, seed=p) for p in (3, 0, 5)}
    producer = _Recording()
    log = Changelog(KafkaConfig(), "g-state", producer=producer,  # type: ignore[arg-type]
                    config_hash="h1")
    for generation, slot in ((1, 0), (2, 1), (3, 0)):
        producer.records.clear()
        sizes = log.write_all([(p, bank, {EVENTS: 10 * p + generation})
                               for p, bank in banks.items()])
        log.committed()
        for p, bank in banks.items():
            mine = [(k, v) for q, k, v in producer.records if q == p]
            assert mine == encode_chunks(p, slot, generation, bank,
                                         {EVENTS: 10 * p + generation}, "h1")
            assert len(mine) > 1 and sizes[p] == sum(len(v) for _, v in mine)
        assert [q for q, _, _ in producer.records] == sorted(
            (q for q, _, _ in producer.records), key=list(banks).index)  # one at a time
    assert log.write(0, banks[0], {EVENTS: 9}) == sum(
        len(v) for _, v in encode_chunks(0, 1, 4, banks[0], {EVENTS: 9}, "h1"))


def models_bank(models: int = 30) -> DetectorBank:
    """A bank of ``models`` warmed-up models of a numeric and a categorical feature."""
    rng = random.Random(3)
    bank = DetectorBank(DetectorConfig(warmup=200))
    batch = EventBatch()
    for i in range(300):
        for m in range(models):
            batch.append(f"m{m}", None, {"x": rng.gauss(0, 1), "c": rng.choice("abc")}, None, i)
    bank.update(batch)
    return bank


def test_a_snapshot_compresses_the_state_in_pieces_as_it_is_encoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``compressed_state`` never holds a bank's codec bytes whole: the compressor thread
    gets pieces of about ``codec.PIECE_BYTES``, at most ``PIECES_AHEAD`` of them queued,
    and their frame is the one Zstandard frame of the whole payload's bytes."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(codec, "PIECE_BYTES", 4096)
    bank = models_bank()
    whole = encode(bank)
    assert len(whole) > 20 * 4096
    pieces: list[int] = []
    most_ahead = 0

    class Counting(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            nonlocal most_ahead
            if args:
                pieces.append(len(args[0]))
            most_ahead = max(most_ahead, self._work_queue.qsize())
            return super().submit(fn, *args, **kwargs)

    with Counting(1) as pool:
        frame = b"".join(state.compressed_state(bank, pool))
    assert sum(pieces) == len(whole) and len(pieces) > 20
    assert max(pieces) < 2 * 4096  # a piece: 4 KiB and the entry that crossed it
    assert most_ahead <= state.PIECES_AHEAD
    assert frame == b"".join(state.compressed_state(bank))  # on this thread: the same bytes
    assert state.zstd.decompress(frame) == whole


@pytest.mark.parametrize("sizes", [[], [0], [10], [7, 0, 3], [4, 4, 2], [1] * 25, [23, 0, 0, 9]])
def test_records_cut_from_pieces_are_those_cut_from_their_bytes_joined(
        monkeypatch: pytest.MonkeyPatch, sizes: list[int]) -> None:
    monkeypatch.setattr(state, "CHUNK_BYTES", 4)
    data = bytes(range(sum(sizes)))
    pieces, at = [], 0
    for n in sizes:
        pieces.append(data[at:at + n])
        at += n
    cut = list(state.chunk_records(1, 0, 3, pieces, {EVENTS: 5}, "h1", b"k"))
    assert cut == list(state.chunk_records(1, 0, 3, data, {EVENTS: 5}, "h1", b"k"))
    assert len(cut) == max(1, -(-len(data) // 4))
    assert b"".join(decode_chunk(v, b"k", k).data for k, v in cut) == data


def test_a_restore_decodes_the_state_as_it_is_decompressed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``decode_state`` never holds a bank's codec bytes whole: its decoder reads them a
    megabyte at most at a time from the decompressor, to the frame's end."""
    bank = models_bank()
    whole = encode(bank)
    monkeypatch.setattr(codec, "READ_BYTES", 64 * 1024)  # reads of 64 KiB at most
    handed: list[int] = []
    read = state._Inflating.read

    def counted(self: Any, n: int) -> bytes:
        out = read(self, n)
        handed.append(len(out))
        return out

    monkeypatch.setattr(state._Inflating, "read", counted)
    frame = b"".join(state.compressed_state(bank))
    chunks = [_chunk_of(frame)]
    assert encode(decode_state(chunks)) == whole
    assert sum(handed) == len(whole) and handed[-1] == 0  # read to the end
    assert max(handed) <= 64 * 1024 and len(handed) > 3


def test_decode_from_reads_any_cut_and_passes_on_what_its_reader_raises() -> None:
    data = encode(warm_bank())
    stream = io.BytesIO(data)
    one_byte = codec.decode_from(lambda n: stream.read(1), DetectorBank)  # a byte a read
    assert encode(one_byte) == data

    class Gone(Exception):
        pass

    def failing(n: int) -> bytes:
        raise Gone("broker went away")

    with pytest.raises(Gone, match="went away"):
        codec.decode_from(failing, DetectorBank)
    with pytest.raises(codec.CodecError, match="bytes after the payload") as exc:
        codec.decode(data + b"\x00", DetectorBank)
    assert exc.value.reason == "corrupt"
    with pytest.raises(codec.CodecError) as exc:
        codec.decode_from(io.BytesIO(data).read, DetectorBank, max_item_bytes=64)
    assert exc.value.reason == "corrupt"


def test_a_chunk_holds_a_view_of_its_record_not_a_copy() -> None:
    """A restore decodes a partition's records as they were fetched: a chunk's data is a
    view of the record's value (a copy held the compressed state twice)."""
    for signed in (None, b"k"):
        (key, value), = encode_chunks(0, 0, 1, warm_bank(), {EVENTS: 1}, "h1", signed)
        chunk = decode_chunk(value, signed, key)
        assert isinstance(chunk.data, memoryview) and chunk.data.obj is value
        assert encode(decode_state([chunk])) == encode(warm_bank())


def test_encode_to_hands_on_the_payload_in_order_in_pieces() -> None:
    bank = models_bank()
    whole = encode(bank)
    pieces: list[bytes] = []
    assert codec.encode_to(bank, pieces.append, piece_bytes=5000) == len(whole)
    assert b"".join(pieces) == whole and len(pieces) > 10
    assert all(len(p) >= 5000 for p in pieces[:-1])
    again: list[bytes] = []
    codec.encode_to(bank, again.append, piece_bytes=5000)
    assert again == pieces  # the same pieces, byte for byte
    bank.models["m29"].model_id = object()  # type: ignore[assignment]  # written late
    handed: list[bytes] = []
    with pytest.raises(codec.CodecError, match="unsupported"):
        codec.encode_to(bank, handed.append, piece_bytes=5000)
    assert handed and b"".join(handed) == whole[:sum(map(len, handed))]


def test_a_state_the_codec_cannot_write_stops_the_checkpoint_before_its_records(
        monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = warm_bank(300, seed=1), warm_bank(300, seed=2)
    bad.models["m"].model_id = object()  # type: ignore[assignment]
    producer = _Recording()
    log = Changelog(KafkaConfig(), "g-state", producer=producer,  # type: ignore[arg-type]
                    config_hash="h1")
    with pytest.raises(codec.CodecError, match="unsupported"):
        log.write_all([(0, good, {EVENTS: 1}), (1, bad, {EVENTS: 1})])
    assert {p for p, _, _ in producer.records} <= {0}
