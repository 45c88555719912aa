"""Never lose, never repeat: detector state in the changelog, proven on a real broker.

One uninterrupted run over a multi-model stream on a 3-partition topic gives the
alert set R. Then the same input is processed by groups of `streamdrift run`
processes that are SIGKILLed at random points and restarted, joined by a third
member and left by it, or whose broker restarts mid-stream. Each must end with
every input offset committed and the alerts equal to R: the same `alert_id`s
(at-least-once may repeat one; exactly-once, read with read_committed, never).
Equal ids mean equal detector state: a member that restored a partition's state
from the changelog fired at exactly the record an uninterrupted run fired at.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaException

from tests.integration.conftest import (
    REPO,
    Running,
    committed_offsets,
    end_offsets,
    read_topic,
    streamdrift,
    wait_until,
)

pytestmark = pytest.mark.integration

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


RATE = 5000  # events/s of a stream produced while the group consumes it


def _simulate(bootstrap: str, topic: str, *extra: str) -> list[str]:
    return ["simulate", "--bootstrap-servers", bootstrap, "--topic", topic, "--partitions",
            "3", "--events", str(EVENTS), "--seed", "11", "--models", MODELS, "--drift-at",
            str(EVENTS // 2), "--drift-feature", "balance", "--shift", "1.5", *extra]


def _produce_while_consumed(bootstrap: str, stream: dict[str, object], name: str
                            ) -> tuple[dict[str, object], subprocess.Popen[str]]:
    """The same stream on a topic of its own, produced at RATE in the background, so
    that what the test does to the group happens mid-stream whatever the machine's pace."""
    topic = f"it-{name}-events-{stream['tag']}"
    producer = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", *_simulate(bootstrap, topic, "--rate", str(RATE))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    _STARTED.append(producer)
    wait_until(lambda: sum(end_offsets(bootstrap, topic).values()) > 0, 60,
               "the producer to start")
    return {**stream, "events": topic, "ends": None}, producer


def _uninterrupted(bootstrap: str, stream: dict[str, object], logs: Path) -> set[str]:
    group = Group(bootstrap, stream, f"base-{stream['events']}", "at-least-once", logs)
    group.ends = {p: o for p, o in end_offsets(bootstrap, group.events).items() if o}
    group.start("only")
    ids = group.finish()
    assert len(ids) == len(set(ids)), "an uninterrupted run repeats nothing"
    assert len(ids) >= 4, f"the stream must give alerts for the comparison to mean much: {ids}"
    return set(ids)


@pytest.fixture(scope="module")
def stream(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The input topic and R, the alert ids of one uninterrupted run."""
    tag = os.urandom(4).hex()
    events = f"it-state-events-{tag}"
    made = streamdrift(*_simulate(bootstrap, events))
    assert made.returncode == 0, made.stderr
    config = tmp_path_factory.mktemp("state") / "streamdrift.yaml"
    config.write_text(CONFIG)
    ends = {p: o for p, o in end_offsets(bootstrap, events).items() if o}
    assert len(ends) == 3, f"the stream must use every partition: {ends}"
    return {"events": events, "config": config, "ends": ends, "tag": tag}


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _kill_leftovers() -> Iterator[None]:
    """A failed test must not leave a member running (it would hold the group)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Group:
    """`streamdrift run` processes of one consumer group, by slot."""

    def __init__(self, bootstrap: str, stream: dict[str, object], name: str,
                 guarantee: str, logs: Path) -> None:
        self.bootstrap = bootstrap
        self.events = str(stream["events"])
        self.ends: dict[int, int] | None = stream["ends"]  # type: ignore[assignment]
        self.config = str(stream["config"])
        self.name = name if name.startswith("base-") else f"it-{name}-{stream['tag']}"
        self.alerts = f"{self.name}-alerts"
        self.guarantee = guarantee
        self.logs = logs
        self.members: dict[str, Running] = {}
        self.started = 0

    def start(self, slot: str, static: bool = True) -> Running:
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
                 "--group-id", self.name, "--metrics-port", "0",
                 "--processing-guarantee", self.guarantee],
                stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
        _STARTED.append(proc)
        self.members[slot] = Running(proc, 0, log_path)
        return self.members[slot]

    def kill(self, slot: str) -> None:
        member = self.members.pop(slot)
        member.process.send_signal(signal.SIGKILL)
        member.process.wait(10)

    def stop(self, slot: str) -> None:
        member = self.members.pop(slot)
        member.process.send_signal(signal.SIGTERM)
        assert member.process.wait(60) == 0, member.log()

    def alive(self) -> None:
        for slot, member in self.members.items():
            assert member.process.poll() is None, f"{slot} exited:\n{member.log()[-3000:]}"

    def committed(self) -> dict[int, int]:
        for attempt in range(5):  # the coordinator may be moving (e.g. a broker restart)
            try:
                return {p: o for p, o in committed_offsets(self.bootstrap, self.name,
                                                           self.events).items() if o >= 0}
            except KafkaException:
                if attempt == 4:
                    raise
                time.sleep(1.0)  # a retry pause, not a synchronisation
        raise AssertionError("unreachable")

    def progress(self) -> int:
        return sum(self.committed().values())

    def done(self) -> bool:
        self.alive()
        if self.ends is None:  # still being produced
            return False
        return self.committed() == self.ends

    def produced(self, producer: subprocess.Popen[str]) -> None:
        """The background producer finished: now the input's end is known."""
        assert producer.wait(120) == 0, producer.stderr.read() if producer.stderr else ""
        self.ends = {p: o for p, o in end_offsets(self.bootstrap, self.events).items() if o}

    def finish(self, timeout: float = 180.0 + EVENTS / 1000) -> list[str]:
        wait_until(self.done, timeout, f"{self.name} to commit every input offset")
        for slot in list(self.members):
            self.stop(slot)
        return [orjson.loads(m.value())["alert_id"]
                for m in read_topic(self.bootstrap, self.alerts)]


def _kill_at_random_points(group: Group, rng: random.Random, slots: list[str],
                           kills: int, producer: subprocess.Popen[str]) -> None:
    for _ in range(kills):
        before = group.progress()
        wait_until(lambda before=before: group.progress() > before, 90,
                   f"{group.name} to make progress")
        time.sleep(rng.uniform(0.0, 1.0))  # a random kill point, not a synchronisation
        if producer.poll() is not None:
            pytest.fail("the input was all produced before the kill: lower RATE")
        victim = rng.choice(slots)
        group.kill(victim)
        group.start(victim)


@pytest.fixture(scope="module")
def baseline(bootstrap: str, stream: dict[str, object],
             tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return _uninterrupted(bootstrap, stream, tmp_path_factory.mktemp("base"))


def test_replay_gives_the_uninterrupted_run_s_alerts(
        bootstrap: str, stream: dict[str, object], baseline: set[str]) -> None:
    done = streamdrift("replay", "--bootstrap-servers", bootstrap, "--topic",
                       str(stream["events"]))
    assert done.returncode == 0, done.stderr
    assert {orjson.loads(line)["alert_id"] for line in done.stdout.splitlines()} == baseline


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_sigkill_at_random_points_loses_and_repeats_nothing(
        bootstrap: str, stream: dict[str, object], guarantee: str, tmp_path: Path) -> None:
    live, producer = _produce_while_consumed(bootstrap, stream, f"kill-{guarantee[:5]}")
    group = Group(bootstrap, live, f"state-kill-{guarantee[:5]}", guarantee, tmp_path)
    for slot in ("a", "b"):
        group.start(slot)
    _kill_at_random_points(group, random.Random(guarantee), ["a", "b"], KILLS, producer)
    group.produced(producer)
    ids = group.finish()
    assert set(ids) == _uninterrupted(bootstrap, live, tmp_path)
    if guarantee == "exactly-once":
        assert len(ids) == len(set(ids)), "read_committed sees every alert exactly once"


def test_a_member_joining_and_leaving_mid_stream_changes_nothing(
        bootstrap: str, stream: dict[str, object], tmp_path: Path) -> None:
    live, producer = _produce_while_consumed(bootstrap, stream, "rebalance")
    group = Group(bootstrap, live, "state-rebalance", "exactly-once", tmp_path)
    for slot in ("a", "b"):
        group.start(slot)
    wait_until(lambda: group.progress() > 0, 90, "the group to make progress")
    third = group.start("c", static=False)
    wait_until(lambda: "assigned it-" in third.log(), 60, "the third member to get partitions")
    before = group.progress()
    wait_until(lambda: group.progress() > before, 90, "progress with three members")
    if producer.poll() is not None:
        pytest.fail("the input was all produced before the third member left: lower RATE")
    group.stop("c")
    group.produced(producer)
    ids = group.finish()
    assert set(ids) == _uninterrupted(bootstrap, live, tmp_path)
    assert len(ids) == len(set(ids))


def test_a_broker_restart_mid_stream_is_ridden_out(
        bootstrap: str, stream: dict[str, object], baseline: set[str], tmp_path: Path) -> None:
    port = bootstrap.rsplit(":", 1)[1]
    launcher = REPO / "deploy" / "local-kafka.sh"
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_CLEAN": "0"}
    # librdkafka's default session timeout (45 s) outlasts the restart; a static member
    # whose session times out meanwhile is fenced when the broker is back (a fatal
    # error: the process exits non-zero for its supervisor to restart it).
    config = tmp_path / "default-session.yaml"
    config.write_text("kafka:\n  batch_size: 150\n  checkpoint_interval_seconds: 0\n")
    group = Group(bootstrap, {**stream, "config": config}, "state-broker", "at-least-once",
                  tmp_path)
    member = group.start("a", static=False)
    wait_until(lambda: group.progress() > 0, 90, "the group to make progress")
    if group.done():
        pytest.fail("the input was processed before the broker stopped")
    stopped = subprocess.run([str(launcher), "stop"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    started = subprocess.run([str(launcher), "start"], env=env, capture_output=True,
                             text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    assert member.process.poll() is None, member.log()[-3000:]
    ids = group.finish(timeout=240)
    assert set(ids) == baseline
    assert "Traceback" not in member.log()
