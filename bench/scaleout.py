"""Scale-out: one ``streamdrift run`` process against two in one consumer group.

    python bench/scaleout.py [--bootstrap-servers HOST:PORT] [--events N] [--rounds R]
        [--partitions 6] [--models 12]

Pre-fills a fresh topic of ``--partitions`` partitions with N events of
bench/throughput.py's shape (20 numeric features, a float prediction; ``--models``
models, model m in partition m mod P, keyed by its id, so every partition holds
the same share and each model lives in one partition), then, in interleaved
rounds, starts 1 and then 2 real ``streamdrift run`` processes (the CLI, exactly
as deployed; metrics on an ephemeral port) in a fresh consumer group each, and
times them from their start until the group's committed offsets cover all N
events. The time includes the processes' start-up, the group join and, with two,
the rebalance that moves half the partitions (and their state) to the second
member: what adding a member costs. The processes are then stopped (SIGTERM) and
their CPU seconds (user + system, from ``os.wait4``) are summed.

Reports events/s per setting (median, min..max), the per-round ratio two/one
(the issue's target: >= 1.8 on 2 cores), and CPU µs per event; writes
bench/results/scaleout.md and .json (the run's stderr: scaleout-children.log).
The bootstrap servers default as bench/throughput.py's do.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import cleanup, create_topics, default_bootstrap, make_events

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = (1, 2)


def prefill(bootstrap: str, topic: str, n: int, models: int, partitions: int,
            seed: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 50,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1_048_576})
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err.str())

    for i, (key, value, ms) in enumerate(make_events(n, seed, models)):
        while True:
            try:
                producer.produce(topic, value, key, partition=(i % models) % partitions,
                                 timestamp=ms, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) or failures:
        raise SystemExit(f"pre-fill failed: {failures[:1]}")


def committed_total(watcher: Consumer, topic: str, partitions: int) -> int:
    offsets = watcher.committed([TopicPartition(topic, p) for p in range(partitions)],
                                timeout=10)
    return sum(max(tp.offset, 0) for tp in offsets)


def run_group(args: argparse.Namespace, processes: int, topics: dict[str, str],
              group: str, config_file: Path, log: Any) -> dict[str, Any]:
    """Start ``processes`` run processes in ``group``; seconds until all is committed."""
    streamdrift = Path(sys.executable).with_name("streamdrift")
    watcher = Consumer({"bootstrap.servers": args.bootstrap_servers, "group.id": group,
                        "enable.auto.commit": False})
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMDRIFT_")}
    started = time.perf_counter()
    procs = []
    for i in range(processes):
        cmd = [str(streamdrift), "run", "--config", str(config_file),
               "--bootstrap-servers", args.bootstrap_servers,
               "--events-topic", topics["events"], "--alerts-topic", topics["alerts"],
               "--dlq-topic", topics["dlq"], "--group-id", group, "--metrics-port", "0"]
        log.write(f"--- {group} member {i}: {' '.join(cmd)}\n")
        log.flush()
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
    done, last, last_change = 0, -1, time.perf_counter()
    first: tuple[float, int] | None = None  # (time, records) of the first commit seen
    try:
        while done < args.events:
            time.sleep(0.2)
            done = committed_total(watcher, topics["events"], args.partitions)
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            if done != last:
                last, last_change = done, now
            elif now - last_change > args.idle_timeout:
                raise SystemExit(f"{group}: no commit for {args.idle_timeout:g}s at {done}")
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"{group}: a run process exited early (log: {log.name})")
        ended = time.perf_counter()
        seconds = ended - started
        assert first is not None
        # None when the first commit seen already covered everything (a tiny run).
        after_first = (None if first[1] >= args.events
                       else (args.events - first[1]) / (ended - first[0]))
    finally:
        cpu = 0.0
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                _, _, usage = os.wait4(proc.pid, 0)
                cpu += usage.ru_utime + usage.ru_stime
            except ChildProcessError:  # reaped by poll() above
                pass
            proc.returncode = 0
        watcher.close()
    return {"processes": processes, "events": args.events, "seconds": round(seconds, 3),
            "events_per_s": round(args.events / seconds, 1),
            "first_commit_s": round(first[0] - started, 3),
            "events_per_s_after_first_commit": (None if after_first is None
                                                else round(after_first, 1)),
            "cpu_seconds": round(cpu, 3),
            "cpu_us_per_event": round(cpu / args.events * 1e6, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", default=default_bootstrap())
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--models", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--idle-timeout", type=float, default=120.0)
    p.add_argument("--output", type=Path, default=RESULTS / "scaleout.md")
    args = p.parse_args()
    started = datetime.now(UTC)
    run_id = uuid.uuid4().hex[:12]
    topics = {k: f"bench-scaleout-{k}-{run_id}" for k in ("events", "alerts", "dlq")}
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    create_topics(admin, list(topics.values()), args.partitions)
    groups: list[str] = []
    log_path = args.output.with_name(f"{args.output.stem}-children.log")
    rounds: list[dict[int, dict[str, Any]]] = []
    try:
        prefill(args.bootstrap_servers, topics["events"], args.events, args.models,
                args.partitions, args.seed)
        print(f"[scaleout] pre-filled {args.events:,} events", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp, log_path.open("w") as log:
            config_file = Path(tmp) / "streamdrift.yaml"
            # bench/throughput.py's fetch settings, and the changelog co-partitioned.
            config_file.write_text(
                f"kafka:\n  topic_partitions: {args.partitions}\n  consumer:\n"
                "    fetch.wait.max.ms: 50\n    fetch.queue.backoff.ms: 10\n")
            for r in range(args.rounds):
                result = {}
                for n in SETTINGS:
                    group = f"bench-scaleout-{run_id}-{r + 1}-{n}"
                    groups += [group]
                    result[n] = run_group(args, n, topics, group, config_file, log)
                    print(f"[scaleout] round {r + 1}/{args.rounds}, {n} process(es): "
                          f"{result[n]['events_per_s']:,.0f} events/s, "
                          f"{result[n]['cpu_us_per_event']:.1f} CPU µs/event", file=sys.stderr)
                rounds.append(result)
    finally:
        state_topics = [f"{g}-state" for g in groups]
        cleanup(admin, list(topics.values()) + state_topics, groups)
    text, data = report(args, rounds, started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(text)
    return 0


def report(args: argparse.Namespace, rounds: list[dict[int, dict[str, Any]]],
           started: datetime) -> tuple[str, dict[str, Any]]:
    ratios = [r[2]["events_per_s"] / r[1]["events_per_s"] for r in rounds]
    steady = [r[2]["events_per_s_after_first_commit"] / r[1]["events_per_s_after_first_commit"]
              for r in rounds if r[1]["events_per_s_after_first_commit"]
              and r[2]["events_per_s_after_first_commit"]] or [float("nan")]
    lines = [
        "# Scale-out: two `streamdrift run` processes in one group against one",
        "",
        f"{args.events:,} events ({args.models} models of 20 numeric features, "
        f"{args.partitions} partitions, equal shares), {len(rounds)} rounds, settings "
        "interleaved; time from the processes' start until the group committed every "
        "record (start-up, join and the rebalance included).",
        "",
        "| processes | events/s (median) | min..max | events/s after the first commit "
        "| first commit after (s) | CPU µs/event (all processes, start-up included) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in SETTINGS:
        eps = [r[n]["events_per_s"] for r in rounds]
        cpu = statistics.median(r[n]["cpu_us_per_event"] for r in rounds)
        rate = statistics.median(r[n]["events_per_s_after_first_commit"] or float("nan")
                                   for r in rounds)
        first = statistics.median(r[n]["first_commit_s"] for r in rounds)
        lines.append(f"| {n} | {statistics.median(eps):,.0f} | {min(eps):,.0f}.."
                     f"{max(eps):,.0f} | {rate:,.0f} | {first:.1f} | {cpu:.1f} |")
    lines += [
        "",
        f"Two/one, per round: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}..{max(ratios):.2f}); target >= 1.8. After the first commit "
        f"(start-up and join left out): {statistics.median(steady):.2f} "
        f"({min(steady):.2f}..{max(steady):.2f}).",
        "",
        f"- command: `python bench/scaleout.py {' '.join(sys.argv[1:])}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}; CPUs: {os.cpu_count()} "
        "(shared with other work: a second process gains only what the machine has spare)",
        "",
    ]
    data = {"command": "python bench/scaleout.py " + " ".join(sys.argv[1:]),
            "date": started.isoformat(), "cpus": os.cpu_count(), "events": args.events,
            "partitions": args.partitions, "models": args.models,
            "ratio_two_over_one": ratios, "ratio_after_first_commit": steady,
            "rounds": [{str(n): r[n] for n in SETTINGS} for r in rounds]}
    return "\n".join(lines), data


if __name__ == "__main__":
    sys.exit(main())
