"""Detector state: memory per monitor, changelog size, snapshot and restore times.

    python bench/state.py [--bootstrap-servers HOST:PORT] [--monitors 10000] [--rounds 3]

Builds DetectorBanks for ``--partitions`` (3) partitions whose (model, feature) series
add up to ``--monitors`` monitors (20 features per model: 14 numeric of varied
scales, 4 categorical, 2 with missing values), each past its warm-up and calibration
(``STEADY_EVENTS`` events per model), writes each partition's
snapshot to a fresh changelog topic with ``stream.state.Changelog`` (what a
checkpoint does), then restores all partitions as an assignment does, ``--rounds``
times. Reports:

- RSS per monitor: the process's resident set (VmRSS, /proc/self/status) after the
  banks are built, less the one before, over the monitors;
- the snapshot: time to encode (detectors.codec + Zstandard) and enqueue the records of
  all partitions, time until the broker acknowledged them, the process's peak RSS
  while doing so (VmHWM, reset before through /proc/self/clear_refs), and the
  changelog bytes per monitor;
- the restore: median (min..max) time, partitions restored, how far the peak RSS
  rose above the RSS before it (the built banks are freed first).

Writes bench/results/state.md and .json (with ``--monitors`` other than 10,000:
bench/results/state-N-monitors.*). ``--monitors 100000`` (the issue's platform
figure) runs in about 3 minutes on 2 shared cores: past 10,000 monitors only
``--distinct-models`` (40) models per partition are fed their own events (the warm-up
and arming of thresholds dominate the build), the others are copies of them made
through detectors.codec, each its own object graph with its own model id. Banks
allow as many models as they hold (``detectors.max_models``).

The bootstrap servers default to $BENCH_BOOTSTRAP, else $TEST_KAFKA_BOOTSTRAP,
else localhost:19094 (``make bench``'s broker).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from detectors import codec
from detectors.bank import DetectorBank, EventBatch
from detectors.config import DetectorConfig
from stream.config import KafkaConfig
from stream.sinks import CLIENT_DEFAULT_MESSAGE_BYTES, DeliveryTracker, producer_queue_kbytes
from stream.state import Changelog, compress_state, zstd  # the Zstandard the changelog uses

FEATURES = 20
#: Events per model that take every series of ``bank_for`` (the sparsest has 80 % of its
#: values present) past its warm-up and calibration: the state a monitor has most of its
#: life. Until 2026-12-02 the bench used 1,500 (monitors still calibrating: no ADWIN or
#: Page-Hinkley yet: a third less to decode and ~550 B less changelog each).
STEADY_EVENTS = 4000
DEFAULT_MONITORS = 10_000
RESULTS = Path(__file__).resolve().parent / "results"


def bank_for(partition: int, models: int, events_per_model: int, seed: int,
             distinct: int | None = None) -> DetectorBank:
    """A partition's bank of ``models`` warmed-up models; the first ``distinct`` are fed
    their own events, the others are copies of those (through detectors.codec, so each
    is an object graph of its own) under their own model ids."""
    distinct = models if distinct is None else min(distinct, models)
    config = DetectorConfig(max_models=max(models, DetectorConfig().max_models))
    rng = random.Random(seed * 1000 + partition)
    bank = DetectorBank(config)
    batch = EventBatch()
    for m in range(distinct):
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
    blob = codec.encode(bank) if distinct < models else b""
    made = distinct
    while made < models:
        for monitors in codec.decode(blob, DetectorBank).models.values():
            if made == models:
                break
            monitors.model_id = f"p{partition}-m{made}"
            bank.models[monitors.model_id] = monitors
            made += 1
    return bank


def steady_series(model: Any) -> int:
    """Series of a model past warm-up and calibration, change detectors built (those of
    a numeric series: its ADWINs and Page-Hinkley)."""
    return sum(1 for s in model.series.values()
               if s.values is not None and s.values.reference is not None
               and s.values.inflation is not None and s.values._armed)


def memory_mib(field: str) -> float:
    """A /proc/self/status figure (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> bool:
    """Sets VmHWM back to the current RSS (Linux 4.0+, proc(5) clear_refs "5")."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", default=os.environ.get(
        "BENCH_BOOTSTRAP", os.environ.get("TEST_KAFKA_BOOTSTRAP", "localhost:19094")))
    p.add_argument("--monitors", type=int, default=DEFAULT_MONITORS,
                   help=f"(model, feature) monitors in all (default {DEFAULT_MONITORS:,}; "
                        "the platform figure: 100000)")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--events-per-model", type=int, default=STEADY_EVENTS,
                   help="events per model (default %(default)s: every series past its "
                        "warm-up of 1,000 values and calibration of 2,000, its change "
                        "detectors running, as a monitor is most of its life)")
    p.add_argument("--distinct-models", type=int, metavar="K",
                   help="models per partition fed their own events; the rest are copies "
                        "of them (default: all up to 10,000 monitors, else 40)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--producer-queue-kbytes", type=int, metavar="KIB",
                   default=producer_queue_kbytes(CLIENT_DEFAULT_MESSAGE_BYTES),
                   help="the producer's queue.buffering.max.kbytes (default: what "
                        "streamdrift run uses, %(default)s)")
    p.add_argument("--output", type=Path, metavar="FILE.md",
                   help="default bench/results/state.md, or state-N-monitors.md with "
                        f"--monitors N other than {DEFAULT_MONITORS:,}")
    args = p.parse_args()
    if args.output is None:
        name = ("state" if args.monitors == DEFAULT_MONITORS
                else f"state-{args.monitors}-monitors")
        args.output = RESULTS / f"{name}.md"
    started = datetime.now(UTC)
    parts = args.partitions
    models = max(1, args.monitors // (FEATURES * parts))
    if args.distinct_models is None:
        args.distinct_models = models if args.monitors <= DEFAULT_MONITORS else 40
    distinct = min(args.distinct_models, models)

    gc.collect()
    rss_before = memory_mib("VmRSS")
    build = time.perf_counter()
    banks = {}
    for n in range(parts):
        banks[n] = bank_for(n, models, args.events_per_model, 0, distinct)
        print(f"[state] partition {n}: {models} models built, "
              f"{time.perf_counter() - build:.0f} s, RSS {memory_mib('VmRSS'):,.0f} MiB",
              file=sys.stderr)
    build_s = time.perf_counter() - build
    gc.collect()
    rss_banks = memory_mib("VmRSS") - rss_before
    monitors = sum(len(m.series) for b in banks.values() for m in b.models.values())
    steady = sum(steady_series(m) for b in banks.values() for m in b.models.values())

    topic = f"bench-state-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    admin.create_topics([NewTopic(topic, parts, 1, config={"cleanup.policy": "compact"})]
                        )[topic].result(30)
    conf = KafkaConfig(bootstrap_servers=args.bootstrap_servers)
    producer = Producer({"bootstrap.servers": args.bootstrap_servers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5,
                         "queue.buffering.max.kbytes": args.producer_queue_kbytes})
    tracker = DeliveryTracker()
    log = Changelog(conf, topic, producer, "bench", on_delivery=tracker)
    peak_tracked = reset_peak()
    rss_snapshot = memory_mib("VmRSS")
    write = time.perf_counter()
    size = sum(log.write_all([(n, bank, {"events": 1}) for n, bank in banks.items()]
                             ).values())
    encode_s = time.perf_counter() - write
    tracker.flush(producer, 600)
    write_s = time.perf_counter() - write
    snapshot_peak = memory_mib("VmHWM")
    print(f"[state] snapshot: {size / 1e6:,.1f} MB in {write_s:.1f} s", file=sys.stderr)
    codec_us = codec_cost(banks[0], args.rounds)
    del banks  # a restoring process holds only what it restores

    restores: list[float] = []
    restored: list[int] = []
    restore_peaks: list[float] = []
    restore_held: list[float] = []  # peak less the RSS once restored: what it held meanwhile
    failure = ""
    for _ in range(args.rounds):
        gc.collect()
        reset_peak()
        base = memory_mib("VmRSS")
        fresh = Changelog(conf, topic, producer, "bench")
        began = time.perf_counter()
        try:
            got = fresh.restore({n: {"events": 1} for n in range(parts)})
        except Exception as exc:  # a restore that fails is a result too
            failure = f"{type(exc).__name__}: {exc}"
            print(f"[state] restore failed: {failure}", file=sys.stderr)
            break
        restores.append(time.perf_counter() - began)
        restored.append(len(got))
        restore_peaks.append(memory_mib("VmHWM") - base)
        restore_held.append(memory_mib("VmHWM") - memory_mib("VmRSS"))
        del got
    admin.delete_topics([topic])

    result: dict[str, Any] = {
        "command": "python bench/state.py " + " ".join(sys.argv[1:]),
        "date": started.isoformat(), "cpus": os.cpu_count(), "partitions": parts,
        "models": models * parts, "features_per_model": FEATURES, "monitors": monitors,
        "events_per_model": args.events_per_model, "distinct_models": distinct * parts,
        "steady_monitors": steady, "build_s": round(build_s, 1),
        "rss_banks_mib": round(rss_banks, 1),
        "rss_per_monitor_bytes": round(rss_banks * 2**20 / monitors),
        "changelog_bytes": size, "changelog_bytes_per_monitor": round(size / monitors),
        "snapshot_encode_s": round(encode_s, 2), "snapshot_acked_s": round(write_s, 2),
        "snapshot_peak_rss_mib": round(snapshot_peak, 1) if peak_tracked else None,
        "snapshot_peak_growth_mib": (round(snapshot_peak - rss_snapshot, 1) if peak_tracked
                                     else None),
        "restore_s": [round(s, 2) for s in restores], "restored_partitions": restored,
        "restore_peak_rss_growth_mib": [round(m, 1) for m in restore_peaks],
        "restore_peak_over_restored_mib": [round(m, 1) for m in restore_held],
        "restore_failure": failure or None,
        "codec_us_per_monitor": codec_us,
        "producer_queue_kbytes": args.producer_queue_kbytes,
    }
    text = report(result, args.rounds, parts)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0


def codec_cost(bank: DetectorBank, rounds: int) -> dict[str, float]:
    """CPU microseconds per monitor of one partition's state, in this process alone (no
    broker, no other thread): ``detectors.codec`` encode and decode, Zstandard compress
    and decompress; medians of ``rounds`` (at least 3). What the snapshot and restore
    figures are made of, less sensitive to the machine's other work than they are."""
    monitors = sum(len(m.series) for m in bank.models.values())
    times: dict[str, list[float]] = {"encode": [], "compress": [], "decompress": [],
                                     "decode": []}
    for _ in range(max(3, rounds)):
        began = time.process_time()
        data = codec.encode(bank)
        times["encode"].append(time.process_time() - began)
        began = time.process_time()
        packed = compress_state(data)
        times["compress"].append(time.process_time() - began)
        began = time.process_time()
        data = zstd.decompress(packed)
        times["decompress"].append(time.process_time() - began)
        began = time.process_time()
        codec.decode(data, DetectorBank)
        times["decode"].append(time.process_time() - began)
    return {step: round(statistics.median(t) / monitors * 1e6, 1) for step, t in times.items()}


def report(r: dict[str, Any], rounds: int, parts: int) -> str:
    if r["restore_s"]:
        times = r["restore_s"]
        restore = (f"{statistics.median(times):.2f} s ({min(times):.2f}..{max(times):.2f}); "
                   f"{min(r['restored_partitions'])} of {parts} partitions restored")
        restore_peak = (f"{max(r['restore_peak_rss_growth_mib']):,.0f} MiB (peak "
                        f"{max(r['restore_peak_over_restored_mib']):,.0f} MiB over the RSS "
                        "once restored)")
    else:
        restore, restore_peak = f"failed: {r['restore_failure']}", "-"
    peak = ("not measured (no /proc/self/clear_refs)" if r["snapshot_peak_rss_mib"] is None
            else f"{r['snapshot_peak_rss_mib']:,.0f} MiB ({r['snapshot_peak_growth_mib']:+,.0f} "
            "MiB over the RSS before it)")
    return "\n".join([
        "# Detector state: memory, changelog, snapshot and restore",
        "",
        f"{r['monitors']:,} monitors ((model, feature) series, each with its value and "
        f"missing-rate detectors) in {parts} partitions, {r['models']:,} models of "
        f"{FEATURES} features, {r['events_per_model']:,} events per model"
        + (f" ({r['distinct_models']:,} models fed their own events, the others copies "
           "of them through detectors.codec)." if r["distinct_models"] < r["models"]
           else ".")
        + f" {r['steady_monitors']:,} of them past warm-up and calibration, their change "
        "detectors running.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| RSS of the banks | {r['rss_banks_mib']:,.0f} MiB |",
        f"| RSS per monitor | {r['rss_per_monitor_bytes'] / 1024:,.1f} KiB |",
        f"| changelog (detectors.codec + Zstandard, all partitions) | "
        f"{r['changelog_bytes'] / 1e6:,.1f} MB |",
        f"| changelog bytes per monitor | {r['changelog_bytes_per_monitor']:,} |",
        f"| snapshot: encode + enqueue (all partitions) | {r['snapshot_encode_s']:.2f} s |",
        f"| snapshot: until acknowledged | {r['snapshot_acked_s']:.2f} s |",
        f"| peak RSS of the process while snapshotting | {peak} |",
        f"| restore on assignment (median of {rounds}) | {restore} |",
        f"| peak RSS growth while restoring (the built banks freed before) | "
        f"{restore_peak} |",
        *(f"| {step} in process, one partition (median of {max(3, rounds)}) | "
          f"{us:,.1f} us per monitor |" for step, us in r["codec_us_per_monitor"].items()),
        "",
        f"- command: `{r['command'].strip()}`",
        f"- date: {r['date'][:16].replace('T', ' ')} UTC; CPUs: {r['cpus']}; building "
        f"the banks took {r['build_s']:.0f} s (not counted)",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
