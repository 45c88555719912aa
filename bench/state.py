"""Detector state in the changelog: size per monitor and time to restore on assignment.

    python bench/state.py [--bootstrap-servers HOST:PORT] [--monitors 10000] [--rounds 3]

Builds DetectorBanks for 3 partitions whose (model, feature) series add up to
``--monitors`` warmed-up monitors (20 features per model: 14 numeric of varied
scales, 4 categorical, 2 with missing values), writes each partition's snapshot to
a fresh changelog topic with ``stream.state.Changelog`` (what a checkpoint does),
then restores all three partitions as an assignment does, ``--rounds`` times.
Reports bytes per monitor, the snapshot (detectors.codec + zlib) and restore times (median,
min..max) and writes bench/results/state.md.

The bootstrap servers default to $BENCH_BOOTSTRAP, else $TEST_KAFKA_BOOTSTRAP,
else localhost:19094 (``make bench``'s broker).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from detectors.bank import DetectorBank, EventBatch
from stream.config import KafkaConfig
from stream.sinks import DeliveryTracker
from stream.state import Changelog

PARTITIONS = 3
FEATURES = 20
RESULTS = Path(__file__).resolve().parent / "results" / "state.md"


def bank_for(partition: int, models: int, events_per_model: int, seed: int) -> DetectorBank:
    rng = random.Random(seed * 1000 + partition)
    bank = DetectorBank()
    batch = EventBatch()
    for m in range(models):
        model = f"p{partition}-m{m}"
        for i in range(events_per_model):
            feats: dict[str, float | str | None] = {
                f"n{j:02d}": rng.gauss(10.0 ** (j % 5), 3.0 ** (j % 4)) for j in range(14)}
            for j in range(4):
                feats[f"c{j}"] = f"v{int(rng.expovariate(0.3)) % (5 + 10 * j)}"
            feats["m0"] = None if rng.random() < 0.05 else rng.random()
            feats["m1"] = None if rng.random() < 0.2 else rng.choice(("a", "b"))
            batch.append(model, None, feats, None, i)
            if len(batch) >= 5000:
                bank.update(batch)
                batch = EventBatch()
    if len(batch):
        bank.update(batch)
    return bank


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", default=os.environ.get(
        "BENCH_BOOTSTRAP", os.environ.get("TEST_KAFKA_BOOTSTRAP", "localhost:19094")))
    p.add_argument("--monitors", type=int, default=10_000)
    p.add_argument("--events-per-model", type=int, default=1500,
                   help="events per model (past the 1,000-event warm-up)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args()
    started = datetime.now(UTC)
    models = max(1, args.monitors // (FEATURES * PARTITIONS))
    build = time.perf_counter()
    banks = {n: bank_for(n, models, args.events_per_model, 0) for n in range(PARTITIONS)}
    build_s = time.perf_counter() - build
    monitors = sum(len(m.series) for b in banks.values() for m in b.models.values())

    topic = f"bench-state-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"cleanup.policy": "compact"})]
                        )[topic].result(30)
    conf = KafkaConfig(bootstrap_servers=args.bootstrap_servers)
    producer = Producer({"bootstrap.servers": args.bootstrap_servers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    tracker = DeliveryTracker()
    log = Changelog(conf, topic, producer, "bench", on_delivery=tracker)
    write = time.perf_counter()
    size = sum(log.write(n, bank, {"events": 1}) for n, bank in banks.items())
    tracker.flush(producer, 120)
    write_s = time.perf_counter() - write

    restores = []
    for _ in range(args.rounds):
        fresh = Changelog(conf, topic, producer, "bench")
        began = time.perf_counter()
        got = fresh.restore({n: {"events": 1} for n in range(PARTITIONS)})
        restores.append(time.perf_counter() - began)
        assert len(got) == PARTITIONS, f"restored {len(got)} of {PARTITIONS} partitions"
    admin.delete_topics([topic])
    med, lo, hi = statistics.median(restores), min(restores), max(restores)
    command = "python bench/state.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "# Detector state in the changelog",
        "",
        f"{monitors:,} monitors ((model, feature) series, each with its value and "
        f"missing-rate detectors) in {PARTITIONS} partitions, {models} models of "
        f"{FEATURES} features per partition, {args.events_per_model:,} events per model.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| snapshot size (detectors.codec + zlib, all partitions) | {size / 1e6:,.1f} MB |",
        f"| bytes per monitor | {size / monitors:,.0f} |",
        f"| snapshot + produce + ack (all partitions) | {write_s:.2f} s |",
        f"| restore on assignment (median of {args.rounds}) | {med:.2f} s "
        f"({lo:.2f}..{hi:.2f}) |",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}; CPUs: {os.cpu_count()}; "
        f"building the banks took {build_s:.0f} s (not counted)",
        "",
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
