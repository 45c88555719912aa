"""Poison records on a real broker (issue 11): each ends in the DLQ with its reason while
the valid events around it are processed and committed, and the process never exits."""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import (
    Running,
    committed_offsets,
    end_offsets,
    metric,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.integration

NOW = int(time.time())
BIG = 1_020_047  # the record: under limits.max_record_bytes, over librdkafka's default


def valid(i: int) -> bytes:
    return orjson.dumps({"event_id": f"v-{i}", "model_id": "m", "timestamp": NOW + i,
                         "features": {"x": float(i % 13), "c": "abc"[i % 3]}})


POISON: dict[str, bytes] = {
    "deep-2000": b"[" * 2000 + b"]" * 2000,
    "deep-5000": b'{"event_id": "d", "model_id": "m", "features": {"x": '
                 + b"[" * 5000 + b"]" * 5000 + b"}}",
    "year-10000": orjson.dumps({"event_id": "t", "model_id": "m", "features": {"x": 1.0},
                                "timestamp": "9999-12-31T23:59:59-05:00"}),
    "big-not-json": b"<" + b"x" * (BIG - 2) + b">",
}
REASONS = {"deep-2000": "too_deep", "deep-5000": "too_deep", "year-10000": "bad_timestamp",
           "big-not-json": "not_json"}
VALID_BETWEEN = 125  # valid events before each poison record and after the last one


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000,
                         "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, value, key)
    assert producer.flush(60) == 0


def _create(bootstrap: str, topic: str, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                  config=config or {})])[topic].result(30)


def _run_until_done(bootstrap: str, names: Callable[[str], str],
                    spawn: Callable[..., Running], records: list[tuple[bytes, bytes]],
                    dlq_config: dict[str, str] | None = None
                    ) -> tuple[list[Message], Running, str]:
    """Produce ``records`` (key, value), run streamdrift until every record is committed
    and ``len(poison)`` dead letters are out; returns the dead letters."""
    events, dlq, group = names("events"), names("dlq"), names("group")
    _create(bootstrap, events)  # broker defaults: the records the issue measured on
    if dlq_config is not None:
        _create(bootstrap, dlq, dlq_config)
    _produce(bootstrap, events, records)
    poison = sum(not key.startswith(b"valid") for key, _ in records)
    run = spawn("--bootstrap-servers", bootstrap, "--events-topic", events, "--alerts-topic",
                names("alerts"), "--dlq-topic", dlq, "--group-id", group)
    ends = end_offsets(bootstrap, events)

    def done() -> bool:
        assert run.process.poll() is None, run.log()  # never exits on data
        return committed_offsets(bootstrap, group, events) == ends

    wait_until(done, 120, "every record's offset committed", interval=1.0)
    letters = read_topic(bootstrap, dlq)
    assert len(letters) == poison, run.log()
    return letters, run, events


def test_each_poison_record_goes_to_the_dlq_and_the_valid_ones_are_processed(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running]) -> None:
    records: list[tuple[bytes, bytes]] = []
    n = 0
    for name, value in POISON.items():
        for _ in range(VALID_BETWEEN):
            records.append((b"valid", valid(n)))
            n += 1
        records.append((name.encode(), value))
    records += [(b"valid", valid(n + i)) for i in range(VALID_BETWEEN)]
    letters, run, events = _run_until_done(bootstrap, names, spawn, records)

    by_key = {m.key().decode(): m for m in letters}
    assert set(by_key) == set(POISON)
    for name, value in POISON.items():
        headers = dict(by_key[name].headers() or [])
        assert headers["streamdrift.reason"].decode() == REASONS[name], headers
        assert headers["streamdrift.source.topic"].decode() == events
        assert by_key[name].value() == value  # whole: the DLQ producer can hold it
    valid_count = len(records) - len(POISON)
    wait_until(lambda: metric(run, "streamdrift_events_total") == valid_count, 30,
               "every valid event counted")
    assert metric(run, "streamdrift_events_invalid_total", reason="too_deep") == 2
    assert metric(run, "streamdrift_events_invalid_total", reason="bad_timestamp") == 1
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(30) == 0, run.log()


def test_a_record_larger_than_the_dlq_topic_takes_goes_there_truncated_with_its_digest(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running]) -> None:
    big = bytes(range(256)) * 1200  # 307,200 bytes, not UTF-8
    records = ([(b"valid", valid(i)) for i in range(50)] + [(b"big", big)]
               + [(b"valid", valid(50 + i)) for i in range(50)])
    letters, run, _ = _run_until_done(bootstrap, names, spawn, records,
                                      dlq_config={"max.message.bytes": "100000"})

    [letter] = letters
    headers = dict(letter.headers() or [])
    assert headers["streamdrift.reason"] == b"not_utf8"
    assert headers["streamdrift.truncated"] == b"value"
    assert headers["streamdrift.original.size"] == str(len(big)).encode()
    assert headers["streamdrift.original.sha256"] == hashlib.sha256(big).hexdigest().encode()
    value = letter.value()
    assert value is not None and 50_000 < len(value) < 100_000
    assert big.startswith(value)  # a prefix of the record
    assert letter.key() == b"big"
    assert "written truncated" in run.log()
    wait_until(lambda: metric(run, "streamdrift_events_total") == 100, 30,
               "every valid event counted")
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(30) == 0, run.log()
