"""`make demo` starts fresh: deploy/demo_reset.py (run by deploy/demo.sh unless
DEMO_FRESH=0) deletes the demo's topics and consumer group on a real broker, so no
detector state or offset of a previous run is restored."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import (
    committed_offsets,
    free_port,
    retry_transient,
    wait_until,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def reset(bootstrap: str, group: str, *topics: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "deploy" / "demo_reset.py"), bootstrap,
                           group, *topics], capture_output=True, text=True, timeout=180,
                          cwd=REPO, check=False)


def test_reset_deletes_the_demo_topics_and_group(bootstrap: str,
                                                 names: Callable[[str], str]) -> None:
    events, state, group = names("demo-events"), names("demo-state"), names("demo-group")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (events, state)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(events, b'{"event_id": "e"}')
    producer.produce(state, b"snapshot", key=b"0")
    assert producer.flush(60) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    retry_transient(lambda: consumer.commit(offsets=[TopicPartition(events, 0, 1)],
                                            asynchronous=False), "commit")
    consumer.close()
    assert committed_offsets(bootstrap, group, events) == {0: 1}

    done = reset(bootstrap, group, events, state, names("never-made"))
    assert done.returncode == 0, done.stderr
    assert f"group {group}" in done.stdout and f"topic {events}" in done.stdout
    listed = set(admin.list_topics(timeout=30).topics)
    assert not {events, state} & listed
    described = admin.describe_consumer_groups([group])[group].result()
    assert not described.members and str(described.state).endswith("DEAD")

    # A second run finds nothing left and still succeeds (the next `make demo`).
    again = reset(bootstrap, group, events, state)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "nothing to delete"
    # The topic can be made again at once: the demo's producer creates it right after.
    wait_until(lambda: all(f.exception() is None for f in
                           admin.create_topics([NewTopic(events, 1, 1)]).values()),
               60, "the deleted topic made again")


def test_reset_on_a_broker_that_just_started(tmp_path: Path) -> None:
    """`make demo` on a fresh machine starts its broker and resets at once: the group
    coordinator is not ready yet (NOT_COORDINATOR), and the reset asks again instead of
    failing the demo (it did, found by running `make demo`)."""
    port, controller = free_port(), free_port()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller),
           "KAFKA_STATE_DIR": str(tmp_path / "kafka"), "KAFKA_START_TIMEOUT": "600"}
    launcher = [str(REPO / "deploy" / "local-kafka.sh")]
    subprocess.run([*launcher, "start"], env=env, check=True, timeout=660, cwd=REPO,
                   capture_output=True)
    try:
        done = reset(f"localhost:{port}", "streamdrift-demo", "demo-events", "demo-alerts")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "nothing to delete"
    finally:
        subprocess.run([*launcher, "stop"], env=env, check=False, timeout=120, cwd=REPO,
                       capture_output=True)
