"""Never lose, never repeat: detector state in the changelog, proven on a real broker.

One uninterrupted run over a multi-model stream on a 3-partition topic gives the
alert set R. Then each test copies the same records, chunk by chunk, to a topic of
its own while a group of `streamdrift run` processes consumes the copy, and does
something to the group mid-stream: SIGKILLs members and restarts them, lets a third
member join and leave, or restarts the broker. Mid-stream holds by construction,
whatever the machine's pace: the next chunk is produced only after the group has
committed past a point (drawn at random) of the last one, and the disruption comes
right after that chunk, so it always meets input that is still in flight.

Each test must end with every input offset committed and the alerts of R. A copy has
the input's partitions, offsets, keys, values and timestamps, so an alert on it,
addressed to the input topic (the same model, feature, kind, detector, partition
and offset), must carry an `alert_id` of R (at-least-once may repeat one;
exactly-once, read with read_committed, never). Equal ids mean equal detector state:
a member that restored a partition's state from the changelog fired at exactly the
record an uninterrupted run fired at.

Waits fail when the group stops advancing (no committed offset moved for
STALL_SECONDS), never on a total time: a slow machine is waited for, a stuck group
fails.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from stream.alerts import alert_id
from stream.kafka import ensure_topics
from tests.integration.conftest import (
    REPO,
    Running,
    committed_offsets,
    end_offsets,
    free_port,
    metric,
    read_topic,
    retry_transient,
    streamdrift,
    wait_until,
)

# The timeout is a backstop for a hang outside the waits below; those fail first.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

# bench/recovery.sh runs this module longer: more events, more kills.
EVENTS = int(os.environ.get("RECOVERY_EVENTS", "60000"))
KILLS = int(os.environ.get("RECOVERY_KILLS", "3"))
MODELS = "credit,fraud,ads,churn"  # partitions 0, 1, 2, 0 (librdkafka: crc32 of the key)
CONFIG = """
kafka:
  batch_size: 150
  checkpoint_interval_seconds: 0
  consumer:
    session.timeout.ms: 6000
    heartbeat.interval.ms: 500
"""
STALL_SECONDS = 180.0  # no committed offset moved for this long: the group is stuck
EXIT_SECONDS = 300.0  # a member's shutdown checkpoint on a loaded machine (a hang bound)

Record = tuple[bytes | None, bytes | None, int]  # key, value, timestamp (ms)


@pytest.fixture(scope="module")
def stream(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The input topic, its records per partition (in offset order) and the run config."""
    tag = os.urandom(4).hex()
    events = f"it-state-events-{tag}"
    made = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", events,
                       "--partitions", "3", "--events", str(EVENTS), "--seed", "11",
                       "--models", MODELS, "--drift-at", str(EVENTS // 2),
                       "--drift-feature", "balance", "--shift", "1.5")
    assert made.returncode == 0, made.stderr
    config = tmp_path_factory.mktemp("state") / "streamdrift.yaml"
    config.write_text(CONFIG)
    records: dict[int, list[Record]] = {0: [], 1: [], 2: []}
    for msg in read_topic(bootstrap, events):
        part = records[int(msg.partition() or 0)]
        assert msg.offset() == len(part), "the input's offsets are 0, 1, 2, ... (no gap)"
        part.append((msg.key(), msg.value(), msg.timestamp()[1]))
    assert all(records.values()), "the stream must use every partition"
    return {"events": events, "config": config, "records": records, "tag": tag}


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _kill_leftovers() -> Iterator[None]:
    """A failed test must not leave a member running (it would hold the group)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)


class Feed:
    """The input's records, copied to ``topic`` chunk by chunk: chunk i is the i-th of
    ``chunks`` equal slices of every partition, produced to the same partition, so
    that the copy holds every record at the input's offset."""

    def __init__(self, bootstrap: str, records: dict[int, list[Record]], topic: str,
                 chunks: int) -> None:
        self.bootstrap, self.records, self.topic = bootstrap, records, topic
        self.cuts = {p: [len(rs) * i // chunks for i in range(chunks + 1)]
                     for p, rs in records.items()}
        self.chunks = chunks
        self.produced = 0  # chunks so far
        admin = AdminClient({"bootstrap.servers": bootstrap})
        retry_transient(lambda: ensure_topics(admin, [topic], len(records), 1),
                        f"creating {topic}")

    def total(self, chunks: int) -> int:
        """Records in the first ``chunks`` chunks."""
        return sum(cut[chunks] for cut in self.cuts.values())

    def ends(self) -> dict[int, int]:
        """End offset per partition of what has been produced."""
        return {p: cut[self.produced] for p, cut in self.cuts.items()}

    def produce_next(self) -> None:
        """Produce the next chunk and wait until the broker has every record of it."""
        assert self.produced < self.chunks, "every chunk is produced already"
        i = self.produced
        failed: list[KafkaError] = []
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                             "linger.ms": 20})

        def delivered(error: KafkaError | None, _msg: object) -> None:
            if error is not None:
                failed.append(error)

        for p, rs in self.records.items():
            for key, value, ts in rs[self.cuts[p][i]:self.cuts[p][i + 1]]:
                try:
                    producer.produce(self.topic, value, key, partition=p, timestamp=ts,
                                     on_delivery=delivered)
                except BufferError:  # the local queue is full: let it drain, then again
                    producer.poll(1.0)
                    producer.produce(self.topic, value, key, partition=p, timestamp=ts,
                                     on_delivery=delivered)
                producer.poll(0)
        # librdkafka's delivery timeout (300 s) bounds the flush: each record is then
        # either acknowledged or reported as failed.
        assert producer.flush(400) == 0 and not failed, f"chunk {i} not produced: {failed}"
        self.produced += 1
        # An idempotent producer to fresh partitions: each record is at its input offset.
        assert end_offsets(self.bootstrap, self.topic) == self.ends()


class Group:
    """`streamdrift run` processes of one consumer group, by slot."""

    def __init__(self, bootstrap: str, stream: dict[str, Any], name: str, guarantee: str,
                 logs: Path, events: str | None = None, config: Path | None = None) -> None:
        self.bootstrap = bootstrap
        self.name = f"it-{name}-{stream['tag']}"
        self.events = events or f"{self.name}-events"
        self.alerts = f"{self.name}-alerts"
        self.config = str(config or stream["config"])
        self.guarantee = guarantee
        self.logs = logs
        self.members: dict[str, Running] = {}
        self.started = 0

    def start(self, slot: str, static: bool = True, metrics_port: int = 0) -> Running:
        log_path = self.logs / f"{self.name}-{slot}-{self.started}.log"
        self.started += 1
        env = {**os.environ, "STREAMDRIFT_KAFKA__TRANSACTIONAL_ID": f"{self.name}-{slot}"}
        if static:
            env["STREAMDRIFT_KAFKA__GROUP_INSTANCE_ID"] = f"{self.name}-{slot}"
        with log_path.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "run", "--config", self.config,
                 "--bootstrap-servers", self.bootstrap, "--events-topic", self.events,
                 "--alerts-topic", self.alerts, "--dlq-topic", f"{self.name}-dlq",
                 "--group-id", self.name, "--metrics-port", str(metrics_port),
                 "--processing-guarantee", self.guarantee],
                stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
        _STARTED.append(proc)
        self.members[slot] = Running(proc, metrics_port, log_path)
        return self.members[slot]

    def kill(self, slot: str) -> None:
        member = self.members.pop(slot)
        member.process.send_signal(signal.SIGKILL)
        member.process.wait(60)

    def stop(self, slot: str) -> None:
        member = self.members.pop(slot)
        member.process.send_signal(signal.SIGTERM)
        assert member.process.wait(EXIT_SECONDS) == 0, member.log()[-3000:]

    def alive(self) -> bool:
        for slot, member in self.members.items():
            assert member.process.poll() is None, f"{slot} exited:\n{member.log()[-3000:]}"
        return True

    def committed(self) -> dict[int, int]:
        return {p: o for p, o in committed_offsets(self.bootstrap, self.name,
                                                   self.events).items() if o >= 0}

    def progress(self) -> int:
        """Records committed in all."""
        return sum(self.committed().values())

    def wait_committed(self, target: int, what: str) -> None:
        """Until the group has committed ``target`` records in all. Fails at once if a
        member exits, and after STALL_SECONDS in which no committed offset moved."""
        seen = [-1]

        def reached() -> bool:
            self.alive()
            seen[0] = self.progress()
            return seen[0] >= target

        wait_until(reached, STALL_SECONDS, f"{self.name} to commit {target} records ({what})",
                   interval=0.5, progress=lambda: seen[0])

    def finish(self, ends: dict[int, int]) -> list[dict[str, Any]]:
        """Wait until every offset up to ``ends`` is committed, stop every member (SIGTERM,
        exit 0), and return the alerts topic's alerts (read_committed)."""
        self.wait_committed(sum(ends.values()), "every input offset")
        assert self.committed() == {p: o for p, o in ends.items() if o}
        for slot in list(self.members):
            self.stop(slot)
        return [orjson.loads(m.value()) for m in read_topic(self.bootstrap, self.alerts)]

    def wait_for_log(self, member: Running, text: str, what: str) -> None:
        wait_until(lambda: self.alive() and text in member.log(), STALL_SECONDS, what,
                   interval=0.5)


def _addressed_to(topic: str, alerts: list[dict[str, Any]]) -> list[str]:
    """Each alert's id had it fired on ``topic``: the same model, feature, kind, detector,
    partition and offset. Checks first that the alert's own id is its source's."""
    ids = []
    for a in alerts:
        what = (a["model_id"], a["feature"], a["kind"], a["detector"])
        source = a["source"]
        assert a["alert_id"] == alert_id(*what, source["topic"], source["partition"],
                                          source["offset"]), a
        ids.append(alert_id(*what, topic, source["partition"], source["offset"]))
    return ids


def _mark_in_last_chunk(feed: Feed, rng: random.Random) -> int:
    """A random point of the chunk produced last (between a tenth and nine tenths of it)."""
    low, high = feed.total(feed.produced - 1), feed.total(feed.produced)
    return low + int(rng.uniform(0.1, 0.9) * (high - low))


@pytest.fixture(scope="module")
def baseline(bootstrap: str, stream: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """R: the alert ids of one uninterrupted run over the input topic."""
    group = Group(bootstrap, stream, "base", "at-least-once", tmp_path_factory.mktemp("base"),
                  events=stream["events"])
    group.start("only")
    ends = {p: len(rs) for p, rs in stream["records"].items()}
    ids = [a["alert_id"] for a in group.finish(ends)]
    assert len(ids) == len(set(ids)), "an uninterrupted run repeats nothing"
    assert len(ids) >= 4, f"the stream must give alerts for the comparison to mean much: {ids}"
    return set(ids)


def test_replay_gives_the_uninterrupted_run_s_alerts(
        bootstrap: str, stream: dict[str, Any], baseline: set[str]) -> None:
    done = streamdrift("replay", "--bootstrap-servers", bootstrap, "--topic",
                       str(stream["events"]))
    assert done.returncode == 0, done.stderr
    assert {orjson.loads(line)["alert_id"] for line in done.stdout.splitlines()} == baseline


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_sigkill_mid_stream_loses_and_repeats_nothing(
        bootstrap: str, stream: dict[str, Any], baseline: set[str], guarantee: str,
        tmp_path: Path) -> None:
    rng = random.Random(guarantee)
    group = Group(bootstrap, stream, f"state-kill-{guarantee[:5]}", guarantee, tmp_path)
    feed = Feed(bootstrap, stream["records"], group.events, KILLS + 1)
    feed.produce_next()
    for slot in ("a", "b"):
        group.start(slot)
    for kill in range(1, KILLS + 1):
        group.wait_committed(_mark_in_last_chunk(feed, rng), f"the point of kill {kill}")
        feed.produce_next()  # the kill meets this chunk in flight
        victim = rng.choice(["a", "b"])
        group.kill(victim)
        group.start(victim)
    alerts = group.finish(feed.ends())
    ids = _addressed_to(stream["events"], alerts)
    assert set(ids) == baseline
    if guarantee == "exactly-once":
        assert len(ids) == len(set(ids)), "read_committed sees every alert exactly once"


def test_a_member_joining_and_leaving_mid_stream_changes_nothing(
        bootstrap: str, stream: dict[str, Any], baseline: set[str], tmp_path: Path) -> None:
    rng = random.Random("rebalance")
    group = Group(bootstrap, stream, "state-rebalance", "exactly-once", tmp_path)
    feed = Feed(bootstrap, stream["records"], group.events, 4)
    feed.produce_next()
    for slot in ("a", "b"):
        group.start(slot)
    group.wait_committed(_mark_in_last_chunk(feed, rng), "a and b to consume")
    third = group.start("c", static=False, metrics_port=free_port())
    group.wait_for_log(third, "assigned it-", "the third member to get partitions")
    before = group.progress()
    feed.produce_next()  # input for three members: the third's partition gets some too
    wait_until(lambda: group.alive() and metric(third, "streamdrift_events_total") > 0
               and group.progress() > before, STALL_SECONDS,
               "the third member to consume and the group to commit", interval=0.5,
               progress=group.progress)
    feed.produce_next()  # the third member leaves with this chunk in flight
    group.stop("c")
    feed.produce_next()
    alerts = group.finish(feed.ends())
    ids = _addressed_to(stream["events"], alerts)
    assert set(ids) == baseline
    assert len(ids) == len(set(ids))


def test_a_broker_restart_mid_stream_is_ridden_out(
        bootstrap: str, stream: dict[str, Any], baseline: set[str], tmp_path: Path) -> None:
    port = bootstrap.rsplit(":", 1)[1]
    launcher = REPO / "deploy" / "local-kafka.sh"
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_CLEAN": "0", "KAFKA_START_TIMEOUT": "600"}
    # librdkafka's default session timeout (45 s) outlasts the restart; a static member
    # whose session times out meanwhile is fenced when the broker is back (a fatal
    # error: the process exits non-zero for its supervisor to restart it).
    config = tmp_path / "default-session.yaml"
    config.write_text("kafka:\n  batch_size: 150\n  checkpoint_interval_seconds: 0\n")
    group = Group(bootstrap, stream, "state-broker", "at-least-once", tmp_path, config=config)
    feed = Feed(bootstrap, stream["records"], group.events, 3)
    feed.produce_next()
    member = group.start("a", static=False)
    group.wait_committed(_mark_in_last_chunk(feed, random.Random("broker")),
                         "the member to consume")
    feed.produce_next()  # the broker stops with this chunk in flight
    stopped = subprocess.run([str(launcher), "stop"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    started = subprocess.run([str(launcher), "start"], env=env, capture_output=True,
                             text=True, timeout=900)
    assert started.returncode == 0, started.stderr
    assert member.process.poll() is None, member.log()[-3000:]
    feed.produce_next()
    alerts = group.finish(feed.ends())
    assert set(_addressed_to(stream["events"], alerts)) == baseline
    assert "Traceback" not in member.log()
