"""Drift inside a segment (issue 17): detection, false alarms and cost of ``detectors.segments``.

    python bench/segments.py [--quick] [--seeds N] [--out bench/results/segments]

One model, features ``country`` (DE/FR/US/IT/ES at 40/30/15/10/5 %) and f0..f2 ~ N(0, 1);
``segments: [country]`` with the defaults (every country its own segment).

  shift       ``--seeds`` (10; quick 3) streams of ``--events`` (120,000): f0 + 0.5 sd in
              ES only (5 % of the traffic) from event 50,000. Delay counted in ES events
              after the change (the segment's own traffic) to the first alert of
              (f0, country=ES); every other alert counts against it. The whole-traffic
              series alone (no segments) on the same streams, for comparison.
  stationary  ``--stationary-events`` (1,000,000; quick 200,000) events, no change: every
              alert of the model (whole traffic and segments) per million model events.
  cost        CPU seconds of ``detect`` on ``--cost-events`` (200,000) events with
              ``segments: [channel]`` (3 values: web/app/shop at 60/30/10 %) against the
              same events without segments; medians of ``--rounds`` (3) interleaved runs.

Targets (issue 17): the 5 %-segment shift caught within 3,000 events of that segment's
traffic on every seed, with the segment named; at most 1 false alarm per million model
events (the model's budget: 10 series x 0.1 per million); with 3 segment values, at
least half the throughput of the same run without segments (CPU ratio <= 2).

Writes OUT.md and OUT.json (default bench/results/segments.*).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detectors import DetectorConfig, detect

SHARES = {"DE": 0.4, "FR": 0.3, "US": 0.15, "IT": 0.1, "ES": 0.05}
CHANNELS = {"web": 0.6, "app": 0.3, "shop": 0.1}
CHANGE = 50_000
TARGET_DELAY = 3_000
TARGET_FA = 1.0
TARGET_COST = 2.0
RESULTS = Path(__file__).resolve().parent / "results"


def stream(seed: int, n: int, shift: float, segment: dict[str, float] = SHARES,
           name: str = "country") -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng([17, seed])
    values = rng.choice(list(segment), p=list(segment.values()), size=n)
    x = rng.normal(size=(n, 3))
    hit = (np.arange(n) >= CHANGE) & (values == "ES")
    x[hit, 0] += shift
    cols = [x[:, j].tolist() for j in range(3)]
    labels = values.tolist()
    return [{"model_id": "m", "features": {name: labels[i], "f0": cols[0][i], "f1": cols[1][i],
                                           "f2": cols[2][i]}} for i in range(n)], hit


def run_shift(seeds: int, n: int) -> dict[str, Any]:
    config = DetectorConfig(segments=["country"])
    delays: list[int | None] = []
    wrong = 0
    plain_alerts = 0
    for seed in range(seeds):
        events, hit = stream(seed, n, 0.5)
        found = detect(events, config)
        first = next((s for s in found if s.feature == "f0" and s.segment == ("country", "ES")
                      and s.position >= CHANGE), None)
        wrong += sum(1 for s in found if s is not first)
        delays.append(int(hit[: first.position + 1].sum()) if first else None)
        plain_alerts += len(detect(events))
    caught = [d for d in delays if d is not None]
    return {"seeds": seeds, "events": n, "delays_in_segment_events": delays,
            "detected": len(caught), "median": statistics.median(caught) if caught else None,
            "p90": float(np.percentile(caught, 90)) if caught else None,
            "max": max(caught) if len(caught) == seeds else None,
            "other_alerts": wrong, "whole_traffic_alerts_without_segments": plain_alerts}


def run_stationary(n: int) -> dict[str, Any]:
    events, _ = stream(10_000, n, 0.0)
    found = detect(events, DetectorConfig(segments=["country"]))
    return {"events": n, "alerts": len(found),
            "per_million": len(found) / n * 1e6,
            "by_series": sorted({f"{s.feature}/{s.segment}" for s in found})}


def run_cost(n: int, rounds: int) -> dict[str, Any]:
    events, _ = stream(20_000, n, 0.0, CHANNELS, "channel")
    configs = {"without": DetectorConfig(), "with": DetectorConfig(segments=["channel"])}
    seconds: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(rounds):
        for k, c in configs.items():
            t0 = time.process_time()
            detect(events, c)
            seconds[k].append(time.process_time() - t0)
    ratios = [w / o for w, o in zip(seconds["with"], seconds["without"], strict=True)]
    return {"events": n, "rounds": rounds, "cpu_seconds": seconds,
            "ratio_median": statistics.median(ratios), "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int)
    p.add_argument("--events", type=int, default=120_000)
    p.add_argument("--stationary-events", type=int)
    p.add_argument("--cost-events", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "segments")
    args = p.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 10)
    stationary_n = args.stationary_events or (200_000 if args.quick else 1_000_000)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    shift = run_shift(seeds, args.events)
    print(f"[segments] shift: {shift['detected']}/{seeds} detected", file=sys.stderr)
    quiet = run_stationary(stationary_n)
    print(f"[segments] stationary: {quiet['alerts']} alerts", file=sys.stderr)
    cost = run_cost(args.cost_events, args.rounds)
    runtime = time.perf_counter() - t0
    targets = [
        {"target": f"0.5 sd shift in a 5 % segment caught within {TARGET_DELAY:,} events of "
                   "that segment's traffic, every seed, segment named, nothing else",
         "measured": f"median {shift['median']}, p90 {shift['p90']}, max {shift['max']}, "
                     f"detected {shift['detected']}/{seeds}, other alerts "
                     f"{shift['other_alerts']}",
         "pass": shift["max"] is not None and shift["max"] <= TARGET_DELAY
         and shift["other_alerts"] == 0},
        {"target": f"<= {TARGET_FA:g} false alarm per 1M model events with segments "
                   "(whole traffic and every segment)",
         "measured": f"{quiet['alerts']} in {stationary_n:,} events "
                     f"({quiet['per_million']:.2f} per 1M)",
         "pass": quiet["per_million"] <= TARGET_FA},
        {"target": "3 segment values: at least half the throughput without segments "
                   f"(CPU ratio <= {TARGET_COST:g})",
         "measured": f"CPU ratio {cost['ratio_median']:.2f} (median of {args.rounds}; "
                     + ", ".join(f"{r:.2f}" for r in cost["ratios"]) + ")",
         "pass": cost["ratio_median"] <= TARGET_COST},
    ]
    command = "python bench/segments.py" + (" " + " ".join(argv) if argv else "")
    md = ["# Drift inside a segment", "",
          "| target | measured | |", "|---|---|---|",
          *[f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |"
            for t in targets], "",
          f"Without segments, the same shift streams raised "
          f"{shift['whole_traffic_alerts_without_segments']} alert(s) in all ({seeds} seeds).",
          "",
          f"- command: `{command}`; date: {started:%Y-%m-%d %H:%M} UTC; runtime {runtime:.0f} s",
          ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(md))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "date": started.isoformat(), "shift": shift,
         "stationary": quiet, "cost": cost, "targets": targets}, indent=2) + "\n")
    print("\n".join(md))
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
