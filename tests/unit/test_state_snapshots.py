"""The changelog's snapshot codec and restore choice, without a broker.

Restore takes, per partition, the newest snapshot whose source offsets are not
past the committed ones; a snapshot of another format, another detectors config,
or with a chunk missing is refused, never misread.
"""

from __future__ import annotations

import random
import struct

import pytest

from detectors.bank import DetectorBank, EventBatch
from detectors.config import DetectorConfig
from stream import state
from stream.config import KafkaConfig
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
    with pytest.raises(SnapshotError, match=rf"state format {state.STATE_FORMAT + 1}, .* "
                       rf"reads format {state.STATE_FORMAT} only"):
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
