"""Throughput of ``streamdrift run`` against two baselines, measured in one run.

    python bench/throughput.py [--bootstrap-servers HOST:PORT] [--events N] [--rounds R]
        [--models M]

Pre-fills a fresh topic (3 partitions) with N simulated events (docs/contracts.md's event
contract: M models keyed by model_id (default 2; ``--models 200`` is the many-models
variant of a platform team's topic), 20 numeric features f00..f19 of different
scales, a float prediction), then runs, in rounds, each variant in its own child
process that consumes the whole topic with a fresh consumer group:

  a  plain: ``Consumer.consume`` + ``orjson.loads`` of each value, nothing else
     (the ceiling: what reading and parsing alone cost);
  b  naive: per event a pydantic model, per (model, feature) a river ``ADWIN`` and
     ``PageHinkley`` (defaults) updated with the raw value, a Prometheus counter;
     offsets committed synchronously after each batch;
  c  streamdrift: ``stream.loop.RunLoop`` with ``KafkaSource``, Kafka alert and
     dead-letter sinks and ``Metrics`` (not served): ``streamdrift run``'s code
     path (``stream.cli.cmd_run``) minus the HTTP server.

  x  streamdrift, exactly-once: c with ``--processing-guarantee exactly-once`` (alerts,
     changelog records and offsets in one Kafka transaction per checkpoint).

Variants are interleaved per round (a, b, c, x, a, b, c, x, ...) so that noise from
other work on the machine hits all of them alike; the ratios c/a and c/b are
computed per round and reported as medians with their range. A child's time runs
from its first poll to its last record processed (and committed, for b and c):
process start, imports and closing the consumer are not counted. Its CPU seconds
(``time.process_time``: user + system time of all its threads, librdkafka's too)
are taken over the same span and reported per event, which a shared machine's
load changes far less than events/s. Its peak RSS is VmHWM from
/proc/self/status at the end. All three consume with KafkaSource's
settings, the same batch size and the same fetch tuning (see ``fetch_settings``).

Writes a markdown table to stdout and to bench/results/throughput.md, and the raw
per-round numbers to bench/results/throughput.json (children's stderr: throughput-children.log);
with ``--models M`` other than 2, to bench/results/throughput-M-models.{md,json}.

The bootstrap servers default to $BENCH_BOOTSTRAP, else $TEST_KAFKA_BOOTSTRAP,
else $STREAMDRIFT_TEST_BOOTSTRAP (what deploy/with-kafka.sh exports), else
localhost:19094 (``make bench``'s broker).

One variant alone, over a topic kept with --keep-topics (e.g. to profile it):

    python bench/throughput.py --variant c --topic T --alerts-topic A --dlq-topic D \\
        --events N --profile c.prof
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
VARIANTS = ("a", "b", "c", "x")
DESCRIPTIONS = {
    "a": "plain: consume + orjson.loads",
    "b": "naive: pydantic model, river ADWIN + PageHinkley per feature, counter, per event",
    "c": "streamdrift run, at-least-once (RunLoop + KafkaSource + Kafka sinks + changelog "
         "+ Metrics)",
    "x": "streamdrift run, exactly-once (c in Kafka transactions)",
}
MODELS = ("credit-risk", "churn")  # the default two; --models M > 2 names them m000..
N_FEATURES = 20
PARTITIONS = 3
BAR_C_OVER_B = 2.0  # the bar: c is at least 2x b
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, event time of the first event


def default_bootstrap() -> str:
    for name in ("BENCH_BOOTSTRAP", "TEST_KAFKA_BOOTSTRAP", "STREAMDRIFT_TEST_BOOTSTRAP"):
        value = os.environ.get(name)
        if value:
            return value
    return "localhost:19094"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-servers", default=default_bootstrap(), metavar="HOSTS")
    p.add_argument("--events", type=int, default=400_000, metavar="N",
                   help="events to pre-fill and to consume per variant (default 400000)")
    p.add_argument("--rounds", type=int, default=5, metavar="R",
                   help="rounds of a, b, c, x (default 5)")
    p.add_argument("--batch-size", type=int, default=2000, metavar="N",
                   help="records per consume call of a and b (default 2000)")
    p.add_argument("--run-batch-size", default="auto", metavar="N|auto",
                   help="kafka.batch_size of c and x (default auto, run's default: 2,000 "
                        "records per poll, 250 per model with more than 8 models, up to "
                        "kafka.max_batch_size)")
    p.add_argument("--fetch-wait-ms", type=int, default=50, metavar="MS",
                   help="librdkafka fetch.wait.max.ms, all variants (default 50; see "
                        "fetch_settings)")
    p.add_argument("--fetch-queue-backoff-ms", type=int, default=10, metavar="MS",
                   help="librdkafka fetch.queue.backoff.ms, all variants (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--idle-timeout", type=float, default=60.0, metavar="S",
                   help="a child fails when no record arrives for this long (default 60)")
    p.add_argument("--models", type=int, default=len(MODELS), metavar="M",
                   help="models the events are spread over, round robin (default 2; "
                        "the many-models variant: 200)")
    p.add_argument("--output", type=Path, metavar="FILE.md",
                   help="default bench/results/throughput.md, or throughput-M-models.md "
                        "with --models M other than 2")
    p.add_argument("--keep-topics", action="store_true",
                   help="do not delete the topics and consumer groups at the end")
    p.add_argument("--check", action="store_true",
                   help=f"exit 1 if the median c/b is below {BAR_C_OVER_B:g}")
    # One variant in this process (what the parent runs as a child).
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--topic", help=argparse.SUPPRESS)
    p.add_argument("--alerts-topic", help=argparse.SUPPRESS)
    p.add_argument("--dlq-topic", help=argparse.SUPPRESS)
    p.add_argument("--group-id", help=argparse.SUPPRESS)
    p.add_argument("--profile", type=Path, metavar="FILE.prof", help=argparse.SUPPRESS)
    return p


# --- pre-fill -------------------------------------------------------------------------


def feature_names() -> list[str]:
    return [f"f{j:02d}" for j in range(N_FEATURES)]


def model_names(models: int) -> tuple[str, ...]:
    return MODELS if models == len(MODELS) else tuple(f"m{i:03d}" for i in range(models))


def make_events(n: int, seed: int, models: int = len(MODELS)) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp ms): n events, models round robin, event time 100 per s."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-2.0, 4.0, N_FEATURES)  # 0.01 .. 10000
    means = scales * rng.uniform(-3.0, 3.0, N_FEATURES)
    x = rng.normal(means, scales, size=(n, N_FEATURES))
    # About six significant digits, as a producer would send them.
    for j, scale in enumerate(scales):
        x[:, j] = np.round(x[:, j], max(0, 5 - math.floor(math.log10(scale))))
    weights = rng.normal(0.0, 1.0, N_FEATURES) / scales / math.sqrt(N_FEATURES)
    scores = np.round(1.0 / (1.0 + np.exp(-((x - means) @ weights))), 4).tolist()
    names = feature_names()
    model_ids = model_names(models)
    out = []
    for i, row in enumerate(x.tolist()):
        model = model_ids[i % len(model_ids)]
        when = START + i / 100.0
        stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
        event = {
            "event_id": f"e-{i:09d}",
            "model_id": model,
            "timestamp": stamp.replace("+00:00", "Z"),
            "features": dict(zip(names, row, strict=True)),
            "prediction": scores[i],
        }
        out.append((model.encode(), orjson.dumps(event), int(when * 1000)))
    return out


def create_topics(admin: AdminClient, names: Sequence[str], partitions: int) -> None:
    # Record timestamps are event times (as `streamdrift simulate` stamps them), months
    # old: without retention.ms=-1 a broker's time retention deletes the segments
    # while the variants read them (local-kafka.sh keeps 24 hours).
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1,
                  config={"retention.ms": "-1"}) for name in names],
        operation_timeout=30)
    for future in futures.values():
        future.result(60)


def prefill(bootstrap: str, topic: str, events: list[tuple[bytes, bytes, int]]) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err.str())

    for key, value, ts in events:
        while True:
            try:
                producer.produce(topic, value, key, timestamp=ts, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(120)
    if remaining or failures:
        raise SystemExit(f"pre-fill failed: {remaining} not delivered, {len(failures)} failed"
                         + (f", first: {failures[0]}" if failures else ""))


def partition_counts(bootstrap: str, topic: str, group_id: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(PARTITIONS)}
    finally:
        consumer.close()


# --- the variants (each in its own child process) -----------------------------------------


@dataclass
class Result:
    variant: str
    events: int
    seconds: float  # first poll -> last record processed (and committed, for b and c)
    events_per_s: float
    peak_rss_mib: float
    first_record_s: float  # first poll -> first record (group join, fetch start)
    batches: int
    detections: int  # b: raw river detectors that fired; c: alerts published
    cpu_seconds: float = float("nan")  # process_time over the same span as ``seconds``
    # process_time from the first batch that ended past half the events to the end, and
    # the events processed in it: the cost once every model is past its start-up.
    late_cpu_seconds: float = float("nan")
    late_events: int = 0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    @property
    def late_cpu_us_per_event(self) -> float:
        return self.late_cpu_seconds / self.late_events * 1e6 if self.late_events else math.nan


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def consumer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What KafkaSource sets (stream/sources.py), for a and b, plus ``fetch_settings``."""
    return {
        "bootstrap.servers": args.bootstrap_servers,
        "group.id": args.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        **fetch_settings(args),
    }


def fetch_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Fetch tuning, the same for all three variants (c gets it through ``kafka.consumer``).

    A pre-filled topic is read as fast as the broker serves it, and a variant that
    drains librdkafka's prefetch queue faster than librdkafka refills it stalls in
    ways live traffic at the head of the log does not: a full queue postpones the
    partition's next fetch by fetch.queue.backoff.ms (1000 ms by default), and a
    drained partition holds the broker's next fetch by up to fetch.wait.max.ms
    (500 ms) for the others. Only variant a is fast enough to notice (measured:
    one 0.8 s stall per run, 1.5 s instead of 0.8 s); b and c never drain the queue.
    """
    return {"fetch.wait.max.ms": args.fetch_wait_ms,
            "fetch.queue.backoff.ms": args.fetch_queue_backoff_ms}


class Clock:
    """first poll, first record, last record; and the no-progress guard."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.first: float | None = None
        self.half: tuple[float, int] | None = None
        self.start()

    def start(self) -> None:
        self.started = self.last_progress = time.perf_counter()
        self.cpu_started = time.process_time()

    def progress(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last_progress = now

    def idle(self) -> bool:
        return time.perf_counter() - self.last_progress > self.idle_timeout

    def mark(self, done: int, target: int) -> None:
        """After a batch: the first time ``done`` reaches half of ``target``, note the CPU
        time and the count (the second half's cost, ``Result.late_cpu_seconds``)."""
        if self.half is None and 2 * done >= target:
            self.half = (time.process_time(), done)


@contextlib.contextmanager
def subscribed(args: argparse.Namespace) -> Iterator[Consumer]:
    """A consumer in a fresh group on the topic, closed (leaving the group) at the end."""
    consumer = Consumer(consumer_settings(args))
    consumer.subscribe([args.topic])
    try:
        yield consumer
    finally:
        consumer.close()


def _is_error(msg: Message) -> bool:
    err = msg.error()
    if err is None:
        return False
    if err.fatal():
        raise KafkaException(err)
    print(f"consumer: {err.str()}", file=sys.stderr)
    return True


def consumed(consumer: Any, args: argparse.Namespace, clock: Clock, variant: str,
             done: Callable[[], int]) -> Iterator[list[Any]]:
    """Batches until ``done()`` reaches the target; no more records asked than remain."""
    while (n := done()) < args.events:
        msgs = consumer.consume(min(args.batch_size, args.events - n), 0.5)
        if not msgs:
            if clock.idle():
                raise SystemExit(f"{variant}: no record for {args.idle_timeout:g}s after {n}")
            continue
        clock.progress()
        yield msgs


def run_plain(args: argparse.Namespace) -> Result:
    n, batches = 0, 0
    loads = orjson.loads
    with subscribed(args) as consumer:
        clock = Clock(args.idle_timeout)
        for msgs in consumed(consumer, args, clock, "a", lambda: n):  # noqa: B023 - live n
            for msg in msgs:
                if _is_error(msg):
                    continue
                loads(msg.value())  # type: ignore[arg-type]
                n += 1
            batches += 1
            clock.mark(n, args.events)
        ended, cpu_ended = time.perf_counter(), time.process_time()
        rss = peak_rss_mib()
    return _result("a", n, clock, ended, cpu_ended, rss, batches, 0)


def run_naive(args: argparse.Namespace) -> Result:
    from confluent_kafka import TopicPartition
    from prometheus_client import CollectorRegistry, Counter
    from pydantic import BaseModel
    from river import drift

    class NaiveEvent(BaseModel):
        event_id: str
        model_id: str
        timestamp: str | None = None
        features: dict[str, float | int | str | bool | None]
        prediction: float | None = None

    registry = CollectorRegistry()
    events_total = Counter("bench_events", "Events processed.", ["model_id"],
                           registry=registry)
    detectors: dict[tuple[str, str], tuple[drift.ADWIN, drift.PageHinkley]] = {}
    n, batches, fired = 0, 0, 0
    with subscribed(args) as consumer:
        clock = Clock(args.idle_timeout)
        for msgs in consumed(consumer, args, clock, "b", lambda: n):  # noqa: B023 - live n
            offsets: dict[tuple[str, int], int] = {}
            for msg in msgs:
                if _is_error(msg):
                    continue
                raw = orjson.loads(msg.value())  # type: ignore[arg-type]
                event = NaiveEvent.model_validate(raw)
                for name, x in event.features.items():
                    if type(x) is not float and type(x) is not int:
                        continue
                    key = (event.model_id, name)
                    pair = detectors.get(key)
                    if pair is None:
                        pair = detectors[key] = (drift.ADWIN(), drift.PageHinkley())
                    adwin, ph = pair
                    adwin.update(x)
                    if adwin.drift_detected:
                        fired += 1
                    ph.update(x)
                    if ph.drift_detected:
                        fired += 1
                events_total.labels(event.model_id).inc()
                offsets[msg.topic() or "", msg.partition() or 0] = (msg.offset() or 0) + 1
                n += 1
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                            asynchronous=False)
            batches += 1
            clock.mark(n, args.events)
        ended, cpu_ended = time.perf_counter(), time.process_time()
        rss = peak_rss_mib()
    return _result("b", n, clock, ended, cpu_ended, rss, batches, fired)


def run_streamdrift(args: argparse.Namespace, exactly_once: bool = False) -> Result:
    import logging

    from stream.cli import live_loop  # the loop exactly as `streamdrift run` wires it
    from stream.config import load_config
    from stream.loop import RunLoop
    from stream.records import RecordBatch
    from stream.sources import KafkaSource

    # As `streamdrift run` logs (alerts at INFO, to stderr; the parent keeps it).
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("streamdrift")
    # env={}: default settings whatever STREAMDRIFT_* variables are set.
    config = load_config(env={}, overrides={
        "kafka.bootstrap_servers": args.bootstrap_servers,
        "kafka.events_topic": args.topic,
        "kafka.alerts_topic": args.alerts_topic,
        "kafka.dlq_topic": args.dlq_topic,
        "kafka.group_id": args.group_id,
        "kafka.batch_size": args.run_batch_size,
        "kafka.consumer": fetch_settings(args),
        "kafka.processing_guarantee": "exactly-once" if exactly_once else "at-least-once",
        "kafka.transactional_id": f"{args.group_id}-tx",
    })
    from stream.kafka import ensure_changelog, wait_for_broker

    ensure_changelog(wait_for_broker(config.kafka), args.topic, config.state_topic, True, 1)
    variant = "x" if exactly_once else "c"
    stop = threading.Event()
    clock = Clock(args.idle_timeout)
    target = args.events

    class BoundedLoop(RunLoop):
        """RunLoop that stops once ``target`` records are processed and committed."""

        ended: float | None = None
        cpu_ended = float("nan")
        rss = float("nan")

        def process(self, records: RecordBatch) -> None:
            clock.progress()
            super().process(records)
            clock.mark(self.stats.records, target)
            if self.stats.records >= target and self.ended is None:
                self.checkpoint()  # the last records' alerts, state and offsets durable
                self.ended, self.cpu_ended = time.perf_counter(), time.process_time()
                self.rss = peak_rss_mib()
                stop.set()

    holder: dict[str, RunLoop] = {}

    class BoundedSource(KafkaSource):
        """KafkaSource that asks for no more than the records still to come.

        ``consume(n, timeout)`` waits until it has n records or the timeout passes:
        asking for a full batch when fewer remain would add the timeout to the end.
        """

        def poll(self) -> RecordBatch:
            remaining = target - holder["loop"].stats.records
            if 0 < remaining < getattr(self, "batch_size", self.conf.batch_size):
                self.batch_size = remaining
                # Code before kafka.batch_size "auto" (a run against an older checkout)
                # polls the config's number.
                self.conf = self.conf.model_copy(update={"batch_size": remaining})
            return super().poll()

    loop = holder["loop"] = live_loop(config, source_class=BoundedSource,
                                      loop_class=BoundedLoop)

    def watchdog() -> None:
        while not stop.wait(1.0):
            if clock.idle():
                log.error("%s: no record for %gs after %d", variant, args.idle_timeout,
                          loop.stats.records)
                stop.set()

    threading.Thread(target=watchdog, daemon=True).start()
    clock.start()
    stats = loop.run(stop)  # closes the source and the sinks after `ended`
    if loop.ended is None:
        raise SystemExit(f"{variant}: stopped after {stats.records} of {target} records")
    return _result(variant, stats.records, clock, loop.ended, loop.cpu_ended, loop.rss,
                   stats.batches, stats.alerts)


def _result(variant: str, n: int, clock: Clock, ended: float, cpu_ended: float, rss: float,
            batches: int, detections: int) -> Result:
    seconds = ended - clock.started
    first = (clock.first or ended) - clock.started
    half_cpu, half_n = clock.half or (math.nan, n)
    return Result(variant, n, round(seconds, 4), round(n / seconds, 1), round(rss, 1),
                  round(first, 4), batches, detections,
                  round(cpu_ended - clock.cpu_started, 4), round(cpu_ended - half_cpu, 4),
                  n - half_n)


RUNNERS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "a": run_plain, "b": run_naive, "c": run_streamdrift,
    "x": lambda args: run_streamdrift(args, exactly_once=True),
}


def child(args: argparse.Namespace) -> int:
    if not args.topic:
        raise SystemExit("--variant needs --topic (and, for c, --alerts-topic, --dlq-topic)")
    if args.variant in ("c", "x") and not (args.alerts_topic and args.dlq_topic):
        raise SystemExit("--variant c and x need --alerts-topic and --dlq-topic")
    args.group_id = args.group_id or f"bench-{args.variant}-{uuid.uuid4().hex[:12]}"
    runner = RUNNERS[args.variant]
    if args.profile is None:
        result = runner(args)
    else:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(runner, args)
        profiler.dump_stats(args.profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
        print(text.getvalue(), file=sys.stderr)
    print(json.dumps(asdict(result)), flush=True)
    return 0


# --- the parent: pre-fill, rounds, report --------------------------------------------------


def run_child(args: argparse.Namespace, variant: str, topics: dict[str, str], group_id: str,
              log_file: Path) -> Result:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant,
           "--group-id", group_id,
           "--topic", topics["events"], "--alerts-topic", topics["alerts"],
           "--dlq-topic", topics["dlq"], "--events", str(args.events),
           "--bootstrap-servers", args.bootstrap_servers, "--batch-size", str(args.batch_size),
           "--run-batch-size", str(args.run_batch_size),
           "--idle-timeout", str(args.idle_timeout), "--fetch-wait-ms", str(args.fetch_wait_ms),
           "--fetch-queue-backoff-ms", str(args.fetch_queue_backoff_ms)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    with log_file.open("a") as log:
        log.write(f"--- {variant}: {shlex.join(cmd)}\n{proc.stderr}")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"variant {variant} failed with status {proc.returncode}"
                         f" (log: {log_file})")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result(**data)


def median_range(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def after_join(r: Result) -> float:
    """events/s from the first record on: without the group join and first fetch."""
    return r.events / (r.seconds - r.first_record_s)


def report(args: argparse.Namespace, rounds: list[dict[str, Result]], command: str,
           started: datetime, elapsed: float, prefill_s: float,
           partitions: dict[int, int]) -> tuple[str, float]:
    from importlib.metadata import version

    import confluent_kafka

    lines = [
        "# Throughput: streamdrift run vs. plain consume and a naive per-event loop",
        "",
        f"N = {args.events:,} events (20 numeric features, {args.models} models, "
        f"{PARTITIONS} partitions), {len(rounds)} rounds, variants interleaved a, b, c, x "
        "per round; medians (min..max) across rounds.",
        "",
        "| variant | what | events/s | events/s min..max | events/s after join "
        "| CPU µs/event | CPU µs/event min..max | CPU µs/event, second half "
        "| first record after (s) | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        eps = median_range([r[v].events_per_s for r in rounds])
        steady = statistics.median(after_join(r[v]) for r in rounds)
        join = statistics.median(r[v].first_record_s for r in rounds)
        rss = statistics.median(r[v].peak_rss_mib for r in rounds)
        cpu_us = median_range([r[v].cpu_us_per_event for r in rounds])
        late = statistics.median(r[v].late_cpu_us_per_event for r in rounds)
        lines.append(f"| {v} | {DESCRIPTIONS[v]} | {eps[0]:,.0f} | "
                     f"{eps[1]:,.0f}..{eps[2]:,.0f} | {steady:,.0f} | {cpu_us[0]:.1f} | "
                     f"{cpu_us[1]:.1f}..{cpu_us[2]:.1f} | {late:.1f} | {join:.2f} | {rss:.0f} |")
    ca = median_range([r["c"].events_per_s / r["a"].events_per_s for r in rounds])
    cb = median_range([r["c"].events_per_s / r["b"].events_per_s for r in rounds])
    ca_j = median_range([after_join(r["c"]) / after_join(r["a"]) for r in rounds])
    cb_j = median_range([after_join(r["c"]) / after_join(r["b"]) for r in rounds])
    xc = median_range([r["x"].events_per_s / r["c"].events_per_s for r in rounds])
    xc_j = median_range([after_join(r["x"]) / after_join(r["c"]) for r in rounds])
    verdict = "met" if cb[0] >= BAR_C_OVER_B else "NOT met"
    lines += [
        "",
        "| ratio (per round) | median | min..max | after join: median | min..max |",
        "|---|---:|---:|---:|---:|",
        f"| c/a | {ca[0]:.2f} | {ca[1]:.2f}..{ca[2]:.2f} | {ca_j[0]:.2f} "
        f"| {ca_j[1]:.2f}..{ca_j[2]:.2f} |",
        f"| c/b | {cb[0]:.2f} | {cb[1]:.2f}..{cb[2]:.2f} | {cb_j[0]:.2f} "
        f"| {cb_j[1]:.2f}..{cb_j[2]:.2f} |",
        f"| x/c (exactly-once vs at-least-once) | {xc[0]:.2f} | {xc[1]:.2f}..{xc[2]:.2f} "
        f"| {xc_j[0]:.2f} | {xc_j[1]:.2f}..{xc_j[2]:.2f} |",
        "",
        f"Bar (median c/b >= {BAR_C_OVER_B:g}): **{verdict}**.",
        "",
        "Per round, events/s (a / b / c / x):",
        "",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(f"- round {i}: " + " / ".join(f"{r[v].events_per_s:,.0f}"
                                                   for v in VARIANTS)
                     + f"; c alerts: {r['c'].detections}, b raw detections: "
                     f"{r['b'].detections:,}")
    cpu = os.cpu_count()
    c_eps = statistics.median(r["c"].events_per_s for r in rounds)
    lines += [
        "",
        f"- command: `{command}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}; total {elapsed:.0f} s "
        f"(pre-fill {prefill_s:.1f} s); CPUs: {cpu}; records per partition: "
        + ", ".join(f"{p}: {c:,}" for p, c in sorted(partitions.items())),
        f"- Python {sys.version.split()[0]}, confluent-kafka {confluent_kafka.version()} "
        f"(librdkafka {confluent_kafka.libversion()[0]}), river {version('river')}, "
        f"pydantic {version('pydantic')}; a and b consume batches of {args.batch_size}, c and x "
        f"kafka.batch_size {args.run_batch_size}; fetch.wait.max.ms {args.fetch_wait_ms}, "
        f"fetch.queue.backoff.ms {args.fetch_queue_backoff_ms} (all variants; see "
        "fetch_settings)",
        "- time: first poll to last record processed (b, c: and its batch committed), "
        "in the child process; imports, start-up and closing are not counted. "
        "CPU µs/event: the child's time.process_time (all its threads) over the same span, "
        "per event; \"second half\": from the end of the first batch past half the "
        "events to the end, over the events in it (every model past its warm-up and "
        "calibration when each model has at least 6,000 events: --events 6000 x --models). "
        "\"after join\" counts from the first record received instead, leaving out the "
        "consumer group join and first fetch (\"first record after\").",
        "",
        "README paragraph:",
        "",
        f"> On {cpu} CPUs shared with other work and a local single-node broker, "
        f"`streamdrift run` processed a median {c_eps:,.0f} events/s ({args.events:,} events "
        f"of 20 numeric features, {len(rounds)} rounds): "
        f"{cb[0]:.1f}x a naive loop that validates a pydantic model and updates river's "
        f"ADWIN and Page-Hinkley per event and feature (range {cb[1]:.1f}..{cb[2]:.1f}x), "
        f"and {ca[0]:.0%} of the rate of a plain consume + orjson.loads loop that does "
        "nothing else (range "
        f"{ca[1]:.0%}..{ca[2]:.0%}). Ratios are per round, variants interleaved, medians. "
        "`make bench` reproduces it (bench/throughput.py).",
    ]
    return "\n".join(lines) + "\n", cb[0]


def parent(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    if args.output is None:
        name = ("throughput" if args.models == len(MODELS)
                else f"throughput-{args.models}-models")
        args.output = RESULTS_DIR / f"{name}.md"
    run_id = uuid.uuid4().hex[:12]
    topics = {"events": f"bench-events-{run_id}", "alerts": f"bench-alerts-{run_id}",
              "dlq": f"bench-dlq-{run_id}"}
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    try:
        admin.list_topics(timeout=30)
    except KafkaException as exc:
        raise SystemExit(f"cannot reach Kafka at {args.bootstrap_servers}: {exc}") from None
    create_topics(admin, list(topics.values()), PARTITIONS)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    log_file = args.output.with_name(f"{args.output.stem}-children.log")
    log_file.write_text("")
    groups: list[str] = []  # the watermarks consumer never joins its group
    print(f"[bench] topic {topics['events']}: generating {args.events:,} events",
          file=sys.stderr)
    try:
        p0 = time.perf_counter()
        prefill(args.bootstrap_servers, topics["events"],
                make_events(args.events, args.seed, args.models))
        prefill_s = time.perf_counter() - p0
        partitions = partition_counts(args.bootstrap_servers, topics["events"],
                                      f"bench-{run_id}-watermarks")
        print(f"[bench] pre-filled in {prefill_s:.1f}s: {partitions}", file=sys.stderr)
        rounds: list[dict[str, Result]] = []
        for i in range(args.rounds):
            results = {}
            for v in VARIANTS:
                group = f"bench-{run_id}-{i + 1}{v}"
                groups.append(group)
                results[v] = run_child(args, v, topics, group, log_file)
                print(f"[bench] round {i + 1}/{args.rounds} {v}: "
                      f"{results[v].events_per_s:,.0f} events/s in {results[v].seconds:.2f}s, "
                      f"{results[v].cpu_us_per_event:.1f} CPU µs/event, "
                      f"peak RSS {results[v].peak_rss_mib:.0f} MiB", file=sys.stderr)
            rounds.append(results)
    finally:
        if args.keep_topics:
            print(f"[bench] kept topics {topics}", file=sys.stderr)
        else:
            cleanup(admin, list(topics.values()), groups)
    text, cb = report(args, rounds, command, started, time.perf_counter() - t0, prefill_s,
                      partitions)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_bytes(orjson.dumps(
        {"command": command, "date": started.isoformat(), "events": args.events,
         "models": args.models, "features": N_FEATURES, "cpus": os.cpu_count(),
         "cpu_us_per_event": {v: statistics.median(r[v].cpu_us_per_event for r in rounds)
                              for v in VARIANTS},
         "rounds": [{v: asdict(r[v]) for v in VARIANTS} for r in rounds]},
        option=orjson.OPT_INDENT_2))
    return 1 if args.check and cb < BAR_C_OVER_B else 0


def cleanup(admin: AdminClient, topics: list[str], groups: list[str]) -> None:
    """Best effort: this run's topics and consumer groups, nothing else."""
    futures = {**admin.delete_topics(topics, operation_timeout=30)}
    if groups:
        futures.update(admin.delete_consumer_groups(groups, request_timeout=30))
    for name, future in futures.items():
        try:
            future.result(60)
        except KafkaException as exc:
            print(f"[bench] cleanup of {name}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.events < 1 or args.rounds < 1 or args.models < 1:
        raise SystemExit("--events, --rounds and --models must be at least 1")
    return child(args) if args.variant else parent(args)


if __name__ == "__main__":
    sys.exit(main())
