"""Records that no producer should send still reach the DLQ with their reason, on a real broker."""

from __future__ import annotations

import signal
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
