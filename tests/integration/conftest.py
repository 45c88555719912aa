"""Integration fixtures: a real Kafka broker, started by `make test` (deploy/with-kafka.sh).

Nothing here fakes Kafka. The broker's address comes from
TEST_KAFKA_BOOTSTRAP; without it these tests fail rather than skip, so a
broken test setup cannot pass as green.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bootstrap() -> str:
    servers = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if not servers:
        pytest.fail("TEST_KAFKA_BOOTSTRAP is not set: run the suite with `make test`, "
                    "which starts a broker (deploy/with-kafka.sh)")
    admin = AdminClient({"bootstrap.servers": servers})
    admin.list_topics(timeout=30)  # fails fast with a clear error if the broker is not there
    return servers


@pytest.fixture
def names() -> Callable[[str], str]:
    run = uuid.uuid4().hex[:8]
    return lambda base: f"it-{base}-{run}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.2) -> None:
    """Poll a condition; fail with ``what`` if it does not hold in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """Low and high offsets; retried while a new topic's leader is being elected."""
    deadline = time.monotonic() + 30
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            if not exc.args[0].retriable() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


Settings = dict[str, Any]


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0,
               client: Settings | None = None) -> list[Message]:
    """Every record of a topic (committed ones), up to the end offsets seen at the call.
    ``client``: extra settings, e.g. a secured broker's (stream.kafka.client_settings)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, **(client or {}),
                         "group.id": f"reader-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        ends = {}
        for p in meta.partitions:
            low, high = watermarks(consumer, topic, p)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                pytest.fail(f"timed out reading {topic}")
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    out.append(msg)
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        return out
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str,
                      client: Settings | None = None) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, **(client or {}), "group.id": group,
                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=30)}
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, client: Settings | None = None) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, **(client or {}),
                         "group.id": f"w-{uuid.uuid4()}"})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        return {p: watermarks(consumer, topic, p)[1] for p in meta.partitions}
    finally:
        consumer.close()


def streamdrift(*args: str, timeout: float = 120.0, env_extra: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion in its own process."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


@dataclass
class Running:
    process: subprocess.Popen[str]
    metrics_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start `streamdrift run ...` in the background; killed at teardown if still alive."""
    started: list[Running] = []

    def start(*args: str, env_extra: dict[str, str] | None = None) -> Running:
        port = free_port()
        log_path = tmp_path / f"run-{len(started)}.log"
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "run", "--metrics-port", str(port), *args],
                stdout=log_file, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                env={**os.environ, **(env_extra or {})})
        running = Running(proc, port, log_path)
        started.append(running)
        return running

    yield start
    for r in started:
        if r.process.poll() is None:
            r.process.kill()
            r.process.wait(10)


def metric(run: Running, name: str, **labels: str) -> float:
    """Sum of a metric's samples on a running process's /metrics (-1 if it does not answer)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{run.metrics_port}/metrics",
                                      timeout=5).read().decode()
    except OSError:
        return -1.0
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
