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
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


# pytest-timeout's bound for an integration test that sets none: a backstop for a hang
# outside a wait. The waits themselves fail first, once their work stops advancing, so a
# loaded machine only makes a test slower, not red.
INTEGRATION_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT))


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
               interval: float = 0.2, progress: Callable[[], Hashable] | None = None) -> None:
    """Poll a condition; fail with ``what`` if it does not hold in time.

    Without ``progress``, ``timeout`` seconds count from the call. With it (a function
    whose value changes while the awaited work advances: events counted, offsets
    committed), they count from its last change: a slow machine that still advances is
    waited for, a stuck process fails ``timeout`` seconds after it stopped advancing.
    """
    deadline = time.monotonic() + timeout
    seen = progress() if progress is not None else None
    while not condition():
        if progress is not None:
            now = progress()
            if now != seen:
                seen, deadline = now, time.monotonic() + timeout
        if time.monotonic() > deadline:
            stuck = f" (no progress from {seen!r})" if progress is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{stuck}")
        time.sleep(interval)


# Errors a healthy broker gives while it elects a leader (a new topic, a restart), loads a
# group's coordinator or is slow to answer on a loaded machine: asking again succeeds.
TRANSIENT = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
    KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN, KafkaError.NETWORK_EXCEPTION,
    KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._WAIT_COORD,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
})
BROKER_DEADLINE = 120.0  # seconds a helper keeps asking through transient errors

T = TypeVar("T")


def retry_transient(call: Callable[[], T], what: str,
                    deadline: float = BROKER_DEADLINE) -> T:
    """``call()``, asked again while it raises a transient broker error (TRANSIENT, or
    one librdkafka marks retriable) for up to ``deadline`` seconds; then, or on any other
    error, the KafkaException propagates."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0]
            transient = isinstance(error, KafkaError) and (
                error.code() in TRANSIENT or error.retriable())
            if not transient or time.monotonic() > give_up:
                exc.add_note(f"while asking the broker for {what}")
                raise
        time.sleep(0.5)  # a retry pause, not a synchronisation


def _raise_if(error: KafkaError | None) -> None:
    if error is not None:
        raise KafkaException(error)


def partitions(consumer: Consumer, topic: str) -> list[int]:
    """The topic's partitions once each has a leader (right after its creation or a
    broker restart, metadata may still say UNKNOWN_TOPIC_OR_PART or LEADER_NOT_AVAILABLE)."""
    def ask() -> list[int]:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        _raise_if(meta.error)
        if not meta.partitions:
            raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE))
        for p in meta.partitions.values():
            _raise_if(p.error)
            if p.leader < 0:
                raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE))
        return sorted(meta.partitions)

    return retry_transient(ask, f"the partitions of {topic}")


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """Low and high offsets, asked again through transient errors (retry_transient)."""
    def ask() -> tuple[int, int]:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)

    return retry_transient(ask, f"the watermarks of {topic}[{partition}]")


Settings = dict[str, Any]


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0,
               client: Settings | None = None) -> list[Message]:
    """Every record of a topic (committed ones), up to the end offsets seen at the call.
    ``timeout``: seconds without a new record before giving up. ``client``: extra
    settings, e.g. a secured broker's (stream.kafka.client_settings)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, **(client or {}),
                         "group.id": f"reader-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        ends = {}
        for p in partitions(consumer, topic):
            low, high = watermarks(consumer, topic, p)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                pytest.fail(f"no record of {topic} for {timeout:.0f}s, short of {ends}")
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    out.append(msg)
                    deadline = time.monotonic() + timeout
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        return out
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str,
                      client: Settings | None = None) -> dict[int, int]:
    """The group's committed offset per partition (-1001: none), asked again through
    transient errors (a coordinator being elected or loaded, a pending transaction)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, **(client or {}), "group.id": group,
                         "enable.auto.commit": False})

    def ask() -> dict[int, int]:
        asked = [TopicPartition(topic, p) for p in partitions(consumer, topic)]
        answer = consumer.committed(asked, timeout=10)
        for tp in answer:
            _raise_if(tp.error)
        return {tp.partition: tp.offset for tp in answer}

    try:
        return retry_transient(ask, f"{group}'s committed offsets on {topic}")
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, client: Settings | None = None) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, **(client or {}),
                         "group.id": f"w-{uuid.uuid4()}"})
    try:
        return {p: watermarks(consumer, topic, p)[1] for p in partitions(consumer, topic)}
    finally:
        consumer.close()


def streamdrift(*args: str, timeout: float = 600.0, env_extra: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion in its own process (``timeout``: a backstop for a hang)."""
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
