"""Detection cost in process: CPU per event by values per series per batch, and what
that splits into, a fixed cost per series and batch plus a cost per value.

    python bench/detect.py [--models 20] [--per-model 50,250,1000] [--rounds 15]

Builds one ``DetectorBank`` over bench/throughput.py's events (20 numeric features and a
float prediction per event: 21 series per model, models round robin) and warms every
model past its warm-up and calibration (``--warmup-events`` per model, in batches of
2,000 events). Then, for ``--rounds`` rounds, each round feeds the bank one batch of
each ``--per-model`` size in turn (``size x models`` events, so every series gets
``size`` values), the stream going on from batch to batch: load on a shared machine
hits every size alike. Only ``DetectorBank.update`` is timed (``time.process_time``,
CPU seconds of this process); decoding is done beforehand (bench/decode.py times it).

Reports, per size, the median CPU µs per event and per series and batch, and a least
squares fit of the medians, ``µs per series and batch = fixed + per_value x size``.
The fixed part is what a batch costs a series whatever its values (Python calls and
small numpy calls per series); it is why ``kafka.batch_size: auto`` asks for about 250
events per model (``stream.config.AUTO_EVENTS_PER_MODEL``), and why cost per event
grows with the number of models at a fixed batch size. Writes a markdown table to
stdout and to bench/results/detect.md (``--output``), the raw numbers beside it (.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import N_FEATURES, make_events

from detectors.bank import DetectorBank, EventBatch
from stream.config import load_config
from stream.events import decode_batch
from stream.records import RecordBatch

RESULTS = Path(__file__).resolve().parent / "results"
SERIES_PER_MODEL = N_FEATURES + 1  # the features and the prediction


def decoded(events: list[tuple[bytes, bytes, int]], start: int) -> EventBatch:
    """bench/throughput.py's records as the run loop hands them to a bank."""
    records = RecordBatch()
    for i, (key, value, ms) in enumerate(events, start):
        records.append("events", 0, i, ms, key, value)
    batch = decode_batch(records, 1 << 20)
    return batch.events[("events", 0)]


def fit(sizes: list[int], costs: list[float]) -> tuple[float, float]:
    """Least squares ``cost = fixed + per_value x size``: (fixed, per_value)."""
    per_value, fixed = np.polyfit(np.asarray(sizes, dtype=float), np.asarray(costs), 1)
    return float(fixed), float(per_value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--per-model", default="50,250,1000", metavar="N,N,...",
                   help="values per series per batch (default 50,250,1000)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup-events", type=int, default=6000, metavar="N",
                   help="events per model before timing (default 6000: past the "
                        "warm-up of 1,000 and the calibration of 2,000 values)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=RESULTS / "detect.md", metavar="FILE.md")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.per_model.split(",")]
    if len(sizes) < 2 or min(sizes) < 1:
        p.error("--per-model needs two or more positive sizes")
    started = datetime.now(UTC)
    models = args.models
    warm = args.warmup_events * models
    total = warm + args.rounds * sum(sizes) * models
    print(f"[detect] generating {total:,} events of {models} models", file=sys.stderr)
    events = make_events(total, args.seed, models)
    bank = DetectorBank(load_config(env={}, overrides={}).detectors)
    for start in range(0, warm, 2000):
        bank.update(decoded(events[start:min(start + 2000, warm)], start))
    # Every batch decoded before any is timed (the same batches whatever the timing).
    at, plan = warm, []
    for _ in range(args.rounds):
        for size in sizes:
            n = size * models
            plan.append((size, decoded(events[at:at + n], at)))
            at += n
    del events
    cpu: dict[int, list[float]] = {size: [] for size in sizes}
    for size, batch in plan:
        began = time.process_time()
        bank.update(batch)
        cpu[size].append(time.process_time() - began)
    rows = []
    for size in sizes:
        median = statistics.median(cpu[size])
        rows.append({"per_model": size, "events": size * models,
                     "us_per_event": median / (size * models) * 1e6,
                     "us_per_event_min": min(cpu[size]) / (size * models) * 1e6,
                     "us_per_series_batch": median / (models * SERIES_PER_MODEL) * 1e6})
    fixed, per_value = fit(sizes, [r["us_per_series_batch"] for r in rows])
    command = "python bench/detect.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result: dict[str, Any] = {
        "models": models, "series_per_model": SERIES_PER_MODEL, "rounds": args.rounds,
        "rows": rows, "fixed_us_per_series_batch": fixed, "us_per_value": per_value,
        "command": command.strip(), "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "numpy": np.__version__}
    lines = [
        "# Detection cost per event by values per series per batch (in process)", "",
        f"{models} models x {SERIES_PER_MODEL} series (bench/throughput.py's events), "
        f"{args.rounds} rounds, sizes interleaved; medians of `DetectorBank.update`'s CPU "
        "time.", "",
        "| values per series per batch | events per batch | CPU µs/event (median) | min "
        "| CPU µs per series and batch |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {r['per_model']:,} | {r['events']:,} | {r['us_per_event']:.2f} | "
          f"{r['us_per_event_min']:.2f} | {r['us_per_series_batch']:.1f} |" for r in rows),
        "",
        f"Fit of the medians: **{fixed:.1f} µs fixed per series and batch + "
        f"{per_value:.3f} µs per value**. At 250 values a batch (what "
        f"`kafka.batch_size: auto` gives each model) the fixed part is "
        f"{fixed / (fixed + 250 * per_value):.0%} of a series' cost.", "",
        f"- command: `{result['command']}`",
        f"- date: {result['date']}; Python {result['python']}, numpy {result['numpy']}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
