"""Decode + validate cost per event, in process: ``stream.events.decode_batch`` on
batches of bench/throughput.py's events (20 numeric features, an RFC 3339 timestamp,
a float prediction), against ``orjson.loads`` alone (the parse floor).

    python bench/decode.py [--events 20000] [--batch-size 2000] [--rounds 15]
        [--baseline OLD_EVENTS.py]

Each round times every variant once over the same batches (interleaved, so load on a
shared machine hits all alike) with ``time.process_time`` (CPU seconds of this
process); reports the median and min across rounds, in µs per event. With
``--baseline``, a copy of an older stream/events.py is timed beside the current one.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import make_events

from stream.events import decode_batch
from stream.records import RecordBatch


def batches_of(n: int, size: int) -> list[RecordBatch]:
    events = make_events(n, 0)
    out = []
    for start in range(0, n, size):
        batch = RecordBatch()
        for i, (key, value, ms) in enumerate(events[start:start + size], start):
            batch.append("events", i % 3, i, ms, key, value)
        out.append(batch)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--baseline", type=Path, metavar="OLD_EVENTS.py")
    args = p.parse_args()
    batches = batches_of(args.events, args.batch_size)
    variants: dict[str, Callable[[RecordBatch], Any]] = {
        "orjson.loads only": lambda b: list(map(orjson.loads, b.values)),
        "decode_batch": lambda b: decode_batch(b, 1 << 20),
    }
    if args.baseline:
        spec = importlib.util.spec_from_file_location("baseline_events", args.baseline)
        assert spec is not None and spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = old  # dataclasses look their module up there
        spec.loader.exec_module(old)
        variants["decode_batch (baseline)"] = lambda b: old.decode_batch(b, 1 << 20)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            began = time.process_time()
            for batch in batches:
                fn(batch)
            times[name].append((time.process_time() - began) / args.events * 1e6)
    for name, runs in times.items():
        print(f"{name:26s} median {statistics.median(runs):6.2f} µs/event "
              f"(min {min(runs):.2f}, {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
