"""No code from Kafka bytes: a crafted changelog record is refused, counted, and runs nothing.

Issue 11's exploit: a record produced to ``<group>-state`` with a valid-looking header
and a pickled object whose ``__reduce__`` runs a command ran it when ``streamdrift run``
restarted and restored. Here one run processes a stream and stops; the changelog then
gets crafted records (today's format-1 pickle with an empty offsets map, and a
well-formed record of the current format whose state is that pickle, written as the newest
generation); a second run restores. Nothing runs, each crafted snapshot is refused and
counted in ``streamdrift_state_rejected_total``, a partition whose other slot matches
the committed offsets keeps its state, one with no valid slot warms up anew, and the
run goes on to commit the rest of the stream.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import struct
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from detectors import codec
from stream.state import STATE_FORMAT, compress_state, decode_chunk
from tests.integration.conftest import (
    Running,
    committed_offsets,
    end_offsets,
    metric,
    read_topic,
    streamdrift,
    wait_until,
)

pytestmark = pytest.mark.integration

MODELS = "credit,fraud,ads,churn"  # partitions 0, 1, 2, 0 (librdkafka: crc32 of the key)
CONFIG = """
kafka:
  batch_size: 150
  checkpoint_interval_seconds: 0
detectors:
  warmup: 200
"""


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def _format1(partition: int, slot: int, body: bytes, config_hash: str) -> bytes:
    """Today's (format 1) record: header with an empty offsets map, zlib(pickle)."""
    header = orjson.dumps({"partition": partition, "slot": slot, "generation": 10**6,
                           "chunk": 0, "chunks": 1, "offsets": {},
                           "config_hash": config_hash, "streamdrift": "0.1.0"})
    return struct.pack(">4sHI", b"SDST", 1, len(header)) + header + zlib.compress(body)


def _current_format(partition: int, slot: int, generation: int, body: bytes, config_hash: str,
             events: str) -> bytes:
    """A well-formed record of the current format (sizes, digest, offsets behind the committed ones)
    whose state is the pickle behind the codec's magic."""
    payload = compress_state(codec.MAGIC + body)
    header = orjson.dumps({"partition": partition, "slot": slot, "generation": generation,
                           "chunk": 0, "chunks": 1, "offsets": {events: 0},
                           "config_hash": config_hash, "bytes": len(payload),
                           "digest": hashlib.sha256(payload).hexdigest(),
                           "streamdrift": "0.1.0"})
    return struct.pack(">4sHI", b"SDST", STATE_FORMAT, len(header)) + header + payload


def _simulate(bootstrap: str, topic: str, seed: int, events: int) -> None:
    done = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", topic,
                       "--partitions", "3", "--events", str(events), "--seed", str(seed),
                       "--models", MODELS)
    assert done.returncode == 0, done.stderr


def _stop(run: Running) -> None:
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(120) == 0, run.log()[-3000:]


def test_a_pickle_in_the_changelog_is_refused_counted_and_runs_nothing(
        bootstrap: str, names: Any, spawn: Any, tmp_path: Path) -> None:
    events, group = names("tamper-events"), names("tamper")
    state_topic = f"{group}-state"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    args = ("--config", str(config), "--bootstrap-servers", bootstrap, "--events-topic", events,
            "--alerts-topic", f"{group}-alerts", "--dlq-topic", f"{group}-dlq",
            "--group-id", group)

    def caught_up() -> bool:
        ends = {p: o for p, o in end_offsets(bootstrap, events).items() if o}
        done = committed_offsets(bootstrap, group, events)
        return bool(ends) and all(done.get(p) == o for p, o in ends.items())

    def committed_records() -> int:
        return sum(committed_offsets(bootstrap, group, events).values())

    _simulate(bootstrap, events, seed=5, events=3000)
    first = spawn(*args)
    wait_until(lambda: first.process.poll() is not None or caught_up(), 180,
               "the first run to commit the stream", interval=0.5, progress=committed_records)
    _stop(first)

    # Each partition's newest snapshot per slot; the committed slot is the newer one.
    latest: dict[bytes, bytes] = {}
    for msg in read_topic(bootstrap, state_topic):
        latest[msg.key()] = msg.value()
    slots: dict[int, dict[int, int]] = {0: {}, 1: {}, 2: {}}
    for p in (0, 1, 2):
        for slot in (0, 1):
            value = latest.get(f"{p}/{slot}/0".encode())
            if value is not None:
                slots[p][slot] = decode_chunk(value).generation
        assert slots[p], f"partition {p}: no snapshot after the first run"
    config_hash = orjson.loads(latest[b"0/0/0"][10:10 + struct.unpack_from(
        ">I", latest[b"0/0/0"], 6)[0]])["config_hash"]

    marker = tmp_path / "pwned"
    body = pickle.dumps(_Exploit(marker))
    crafted: list[tuple[int, bytes, bytes]] = []
    for p in (0, 1, 2):
        committed = max(slots[p], key=lambda s: slots[p][s])
        other = 1 - committed
        newest = slots[p][committed] + 1
        if p == 0:  # the newest generation, refused: slot `committed` takes over
            crafted.append((p, f"0/{other}/0".encode(),
                            _current_format(p, other, newest, body, config_hash, events)))
        elif p == 1:  # today's exploit in the other slot
            crafted.append((p, f"1/{other}/0".encode(), _format1(p, other, body, config_hash)))
        else:  # both slots crafted: nothing valid is left, a new warm-up
            crafted.append((p, f"2/{other}/0".encode(),
                            _current_format(p, other, newest, body, config_hash, events)))
            crafted.append((p, f"2/{committed}/0".encode(),
                            _format1(p, committed, body, config_hash)))
    producer = Producer({"bootstrap.servers": bootstrap})
    for p, key, value in crafted:
        producer.produce(state_topic, value, key, partition=p)
    assert producer.flush(30) == 0

    _simulate(bootstrap, events, seed=6, events=3000)  # more events after the restart
    second = spawn(*args)
    wait_until(lambda: second.process.poll() is not None or caught_up(), 180,
               "the second run to commit the rest of the stream", interval=0.5,
               progress=committed_records)
    assert second.process.poll() is None, second.log()[-3000:]
    wait_until(lambda: metric(second, "streamdrift_state_rejected_total") >= 4, 30,
               "the refused snapshots to be counted")
    assert metric(second, "streamdrift_state_rejected_total", reason="format") == 4
    log = second.log()
    _stop(second)

    assert not marker.exists(), "the crafted snapshot ran code"
    assert "state of 2 of 3 partitions restored" in log, log[-3000:]
    assert "which matches the committed offsets" in log  # partition 0 fell back
    # Repeated warnings of one kind are held back (one line, then a count every 30 s):
    # the metric above counts every refusal, the log names the reason.
    assert "refused (format)" in log
