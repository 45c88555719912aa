"""Records that no producer should send still reach the DLQ with their reason, on a real broker."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from tests.integration.conftest import Running, read_topic, wait_until

pytestmark = pytest.mark.integration

GOOD = b'{"event_id": "e-1", "model_id": "m", "features": {"x": 1.0}}'
BAD: dict[str, bytes | None] = {
    "empty_value": None,  # a tombstone
    "oversized": b'{"event_id": "e-2", "model_id": "m", "features": {"x": "' + b"y" * 3000
                 + b'"}}',
    "not_utf8": b'{"event_id": "\xff"}',
    "bad_timestamp": b'{"event_id": "e-3", "model_id": "m", "features": {}, '
                     b'"timestamp": "last tuesday"}',
    "non_finite_number": b'{"event_id": "e-4", "model_id": "m", "features": {"x": Infinity}}',
    "wrong_type": b'{"event_id": "e-5", "model_id": "m", "features": {"x": {"nested": 1}}}',
}


def test_each_kind_of_bad_record_goes_to_the_dlq_with_its_reason(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running]) -> None:
    events, alerts, dlq = names("events"), names("alerts"), names("dlq")
    producer = Producer({"bootstrap.servers": bootstrap})
    sent = []
    for reason, value in BAD.items():
        producer.produce(events, value, key=reason.encode())
        producer.produce(events, GOOD, key=reason.encode())  # good records around bad ones
        sent.append(reason)
    assert producer.flush(30) == 0

    run = spawn("--bootstrap-servers", bootstrap, "--events-topic", events, "--alerts-topic",
                alerts, "--dlq-topic", dlq, "--group-id", names("group"),
                env_extra={"STREAMDRIFT_LIMITS__MAX_RECORD_BYTES": "2048"})

    def all_dead_letters_out() -> bool:
        assert run.process.poll() is None, run.log()  # never dies on data
        return len(read_topic(bootstrap, dlq, timeout=30)) >= len(BAD)

    wait_until(all_dead_letters_out, 90, "every bad record in the DLQ", interval=1.0)
    letters = read_topic(bootstrap, dlq)
    by_key = {m.key().decode(): m for m in letters}
    assert len(letters) == len(BAD)
    for reason, value in BAD.items():
        msg = by_key[reason]
        headers = dict(msg.headers() or [])
        assert headers["streamdrift.reason"].decode() == reason
        assert headers["streamdrift.source.topic"].decode() == events
        assert msg.value() == value  # the record itself, untouched (None for the tombstone)
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(30) == 0, run.log()


KEY = b"\xc3\x28"  # not UTF-8
HEADERS = [("trace-id", b"trace-0001"), ("bin", b"\xc3\x28\xff"), ("empty", None),
           ("content-type", b"application/json"), ("trace-id", b"again")]  # repeats kept


@pytest.mark.parametrize("timestamp_type", ["CreateTime", "LogAppendTime"])
def test_dead_letters_keep_the_source_record_whole(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running],
        timestamp_type: str) -> None:
    """issue 14 (c12): key, value, the record's own headers in order (binary and null
    values too) and its timestamp with its type; streamdrift's headers come after."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
    from confluent_kafka.admin import AdminClient, NewTopic

    events, dlq = names("events"), names("dlq")
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until created
    admin.create_topics([NewTopic(events, 1, 1, config={
        "message.timestamp.type": timestamp_type})])[events].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    # A minute ago, kept as is by CreateTime. A time older than the broker's retention (24 h
    # for deploy/local-kafka.sh, checked every minute) lets the broker delete the records
    # before they are read: 2026-01-01 did so once in a `make test`.
    stamp = int(time.time() * 1000) - 60_000
    bad = [b"{not json", b'{"event_id":"bad","model_id":"m","features":{"x":"\xff"}}', None]
    for i, value in enumerate([GOOD, *bad, GOOD]):
        producer.produce(events, value, KEY, headers=HEADERS, timestamp=stamp + i)
    assert producer.flush(30) == 0
    sources = {m.offset(): m for m in read_topic(bootstrap, events)}

    run = spawn("--bootstrap-servers", bootstrap, "--events-topic", events, "--alerts-topic",
                names("alerts"), "--dlq-topic", dlq, "--group-id", names("group"))

    def dead_letters_out() -> bool:
        assert run.process.poll() is None, run.log()
        return len(read_topic(bootstrap, dlq, timeout=30)) >= len(bad)

    wait_until(dead_letters_out, 90, "the bad records in the DLQ", interval=1.0)
    letters = sorted(read_topic(bootstrap, dlq),
                     key=lambda m: int(dict(m.headers() or [])["streamdrift.source.offset"]))
    assert len(letters) == len(bad)
    for letter, value in zip(letters, bad, strict=True):
        headers = letter.headers() or []
        own = dict(headers)
        source = sources[int(own["streamdrift.source.offset"])]
        assert letter.key() == KEY and letter.value() == value
        assert headers[:len(HEADERS)] == HEADERS  # in order, binary and null as they were
        assert [name for name, _ in headers[len(HEADERS):]] == [
            "streamdrift.reason", "streamdrift.error", "streamdrift.source.topic",
            "streamdrift.source.partition", "streamdrift.source.offset",
            "streamdrift.source.timestamp", "streamdrift.source.timestamp_type"]
        kind, ms = source.timestamp()
        assert kind == (TIMESTAMP_CREATE_TIME if timestamp_type == "CreateTime"
                        else TIMESTAMP_LOG_APPEND_TIME)
        assert own["streamdrift.source.timestamp"] == str(ms).encode()
        assert own["streamdrift.source.timestamp_type"] == timestamp_type.encode()
        assert letter.timestamp() == (TIMESTAMP_CREATE_TIME, ms)  # the source's time
        if timestamp_type == "CreateTime":
            assert ms == stamp + source.offset()
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(30) == 0, run.log()
