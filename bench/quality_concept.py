"""Concept-drift detection quality: the binary error-rate detectors and the error monitors.

    python bench/quality_concept.py          # the full run (about 6 min on 2 shared cores)
    python bench/quality_concept.py --quick  # 5 seeds, 2 x 50,000 stationary labels (~15 s)

What it measures. A label stream is the stream of outcomes of joined labels, one value per
label: the 0/1 error indicator of a classifier, or the absolute error of a regression model.

Change streams. Per scenario and seed, ``--before`` (5,000) outcomes, then ``--after``
(20,000) after the change: the error rate goes from 10% to 20% or to 15% (Bernoulli
indicators), or the regression residual's scale grows x1.5 (|N(0, 1)| or |Student-t(3)|
errors: a heavy tail). Delay = first detection at or after the change minus the change
index, in labels; none within ``--after`` labels is a miss; FA = detections before the
change, summed over the seeds; alerts = detections at or after the change per detected
seed (a detector that re-baselines fires once per change).

Stationary streams. ``--stationary-seeds`` (5) independent streams of ``--labels``
(1,000,000) outcomes with no change (2%, 10% and 30% errors; |N(0, 1)| and |t(3)|
errors): every detection is a false alarm, reported per million labels.

Methods. Every row but the raw ADWIN ones runs streamdrift's code path:
``detectors.concept_drift.OutcomeMonitor`` with ``ConceptSettings(detector=...,
drift_confidence=...)``, all outcomes of a stream in one call (the result does not depend
on how it is cut). DDM and EDDM take river's defaults (the config exposes no knob for
them); HDDM_A and HDDM_W take ``drift_confidence`` (river's default 1e-3); ADWIN
(``detector: adwin``) takes it as its delta. Each is replaced by a fresh detector after a
detection. The raw ADWIN rows are ``river.drift.ADWIN`` on the raw outcomes, left as river
leaves it after a detection (it drops the older part of its window). Regression errors:
``OutcomeMonitor`` ranks each error in a reference of the first ``warmup`` errors
(``NumericMonitor``: ADWIN and Page-Hinkley on ranks in [0, 1]), against ADWIN on the raw
error magnitudes.

Estimated performance (CBPE, ``detectors/estimated.py``), after the tables above (alone
with ``--cbpe-only``, written to bench/results/quality_cbpe.md): the estimate's error on a
calibrated stationary binary model, its alert on a covariate shift that costs 10 points of
accuracy against the realized detector's with labels an hour late, the reconciliation on
overconfident scores, and false alarms of both on ``--cbpe-predictions`` stationary
predictions per seed (``cbpe_run``).

Writes a markdown report to stdout and bench/results/quality_concept.md (the raw numbers
to bench/results/quality_concept.json); --quick writes nothing unless --out is given.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from river import drift

from detectors.bank import DetectorBank, EventBatch
from detectors.concept_drift import LabelBatch, OutcomeMonitor
from detectors.config import ConceptSettings, DetectorConfig, EstimateSettings
from detectors.estimated import EstimatedPerformance
from detectors.performance import ModelTask, RealizedPerformance

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: A detector over one outcome stream: the indices where it fired.
Method = Callable[[list[float]], list[int]]


def ours(kind: str, **settings: Any) -> Method:
    def run(values: list[float]) -> list[int]:
        monitor = OutcomeMonitor(ConceptSettings(**settings), kind)
        outcomes = [(v, 0.0, math.nan, 0.0) for v in values]  # (error, truth, score, predicted)
        return [hit[0] for hit in monitor.update(outcomes, list(range(len(values))))]
    return run


def raw_adwin(delta: float) -> Method:
    def run(values: list[float]) -> list[int]:
        detector = drift.ADWIN(delta=delta)  # type: ignore[no-untyped-call]
        fired = []
        for i, x in enumerate(values):
            detector.update(x)
            if detector.drift_detected:
                fired.append(i)
        return fired
    return run


BINARY: dict[str, Method] = {
    "ddm (river defaults)": ours("binary", detector="ddm"),
    "eddm (river defaults)": ours("binary", detector="eddm"),
    "hddm_a, drift_confidence 1e-3 (river default)": ours(
        "binary", detector="hddm_a", drift_confidence=1e-3),
    "hddm_a, drift_confidence 1e-4": ours("binary", detector="hddm_a", drift_confidence=1e-4),
    "hddm_a, drift_confidence 1e-5": ours("binary", detector="hddm_a", drift_confidence=1e-5),
    "hddm_w, drift_confidence 1e-3 (river default)": ours(
        "binary", detector="hddm_w", drift_confidence=1e-3),
    "hddm_w, drift_confidence 1e-4": ours("binary", detector="hddm_w", drift_confidence=1e-4),
    "adwin, delta 2e-3 (river's default delta)": ours(
        "binary", detector="adwin", drift_confidence=2e-3),
    "adwin, delta 1e-3": ours("binary", detector="adwin", drift_confidence=1e-3),
    "adwin, delta 1e-4": ours("binary", detector="adwin", drift_confidence=1e-4),
    "raw river ADWIN() on 0/1 errors (no re-baseline)": raw_adwin(0.002),
}
REGRESSION: dict[str, Method] = {
    "OutcomeMonitor: ranks of errors (NumericMonitor)": ours("regression"),
    "adwin on raw errors, delta 0.002 (river default)": raw_adwin(0.002),
    "adwin on raw errors, delta 1e-5": raw_adwin(1e-5),
}

Maker = Callable[[np.random.Generator, int, float], np.ndarray]


def _bernoulli(p: float) -> Maker:
    return lambda rng, n, scale: (rng.random(n) < p * scale).astype(np.float64)


def _abs_normal(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.abs(rng.normal(0.0, scale, n))


def _abs_t3(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.abs(rng.standard_t(3, n) * scale)


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # "binary" | "regression"
    make: Maker
    scale: float  # before: scale 1; after: this (error rate x, or residual scale x)


CHANGES = (
    Change("error rate 10% -> 20%", "binary", _bernoulli(0.1), 2.0),
    Change("error rate 10% -> 15%", "binary", _bernoulli(0.1), 1.5),
    Change("|N(0,1)| error scale x1.5", "regression", _abs_normal, 1.5),
    Change("|t(3)| error scale x1.5", "regression", _abs_t3, 1.5),
)
STATIONARY = (
    Change("stationary 2% errors", "binary", _bernoulli(0.02), 1.0),
    Change("stationary 10% errors", "binary", _bernoulli(0.1), 1.0),
    Change("stationary 30% errors", "binary", _bernoulli(0.3), 1.0),
    Change("stationary |N(0,1)| errors", "regression", _abs_normal, 1.0),
    Change("stationary |t(3)| errors", "regression", _abs_t3, 1.0),
)


@dataclass
class Cell:
    delays: list[int] = field(default_factory=list)
    after: int = 0  # detections at or after the change
    runs: int = 0
    false_alarms: int = 0
    labels: int = 0  # stationary: labels watched

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runs": self.runs, "false_alarms": self.false_alarms}
        if self.labels:
            out["labels"] = self.labels
            out["fa_per_million"] = self.false_alarms / self.labels * 1e6
        else:
            out["detected"] = len(self.delays)
            out["alerts_per_change"] = self.after / len(self.delays) if self.delays else None
            out["median"] = statistics.median(self.delays) if self.delays else None
            out["p90"] = (float(np.percentile(self.delays, 90, method="nearest"))
                          if self.delays else None)
        return out


def run(seeds: int, before: int, after: int, stationary_seeds: int, labels: int
        ) -> tuple[dict[str, dict[str, Cell]], dict[str, float]]:
    cells: dict[str, dict[str, Cell]] = {}
    seconds: dict[str, float] = {}
    for index, change in enumerate(CHANGES):
        methods = BINARY if change.kind == "binary" else REGRESSION
        streams = []
        for seed in range(seeds):
            rng = np.random.default_rng([index, seed])
            values = np.concatenate((change.make(rng, before, 1.0),
                                     change.make(rng, after, change.scale)))
            streams.append(values.tolist())
        for method, detect in methods.items():
            cell = cells.setdefault(method, {}).setdefault(change.name, Cell())
            start = time.perf_counter()
            for values in streams:
                fired = detect(values)
                cell.runs += 1
                cell.false_alarms += sum(1 for i in fired if i < before)
                hit = next((i for i in fired if i >= before), None)
                cell.after += sum(1 for i in fired if i >= before)
                if hit is not None:
                    cell.delays.append(hit - before)
            seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - start
        print(f"{change.name}: done", file=sys.stderr)
    for index, change in enumerate(STATIONARY):
        methods = BINARY if change.kind == "binary" else REGRESSION
        for stream in range(stationary_seeds):
            rng = np.random.default_rng([100 + index, stream])
            values = change.make(rng, labels, 1.0).tolist()
            for method, detect in methods.items():
                cell = cells.setdefault(method, {}).setdefault(change.name, Cell())
                start = time.perf_counter()
                cell.false_alarms += len(detect(values))
                seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - start
                cell.runs += 1
                cell.labels += len(values)
        print(f"{change.name}: done", file=sys.stderr)
    return cells, seconds


# --- estimated performance (CBPE) and its reconciliation ----------------------------------
#
# A binary model on one feature x: the truth is y ~ Bernoulli(sigmoid(2x)) and the model
# scores sigmoid(2x) (calibrated) or, after an "overconfident" change, sigmoid(8x) (the
# same predicted class, the same accuracy, probabilities pushed to 0/1). A covariate shift
# narrows x from N(0, 1.5) to N(0, 0.5): the scores stay calibrated and accuracy falls
# about 10 points (0.83 -> 0.71). Events come at 10/s; their labels 1 hour later.

EVENT_RATE = 10.0
LABEL_DELAY = 3600.0


def _binary_stream(rng: np.random.Generator, n: int, change_at: int | None, change: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of n predictions; the change from index change_at on."""
    x = rng.normal(0.0, 1.5, n)
    if change_at is not None and change == "covariate":
        x[change_at:] = rng.normal(0.0, 0.5, n - change_at)
    truth = 1.0 / (1.0 + np.exp(-2.0 * x))
    y = (rng.random(n) < truth).astype(np.float64)
    score = truth.copy()
    if change_at is not None and change == "overconfident":
        score[change_at:] = 1.0 / (1.0 + np.exp(-8.0 * x[change_at:]))
    return np.round(score, 6), y


def _estimate_error(seeds: int, windows: int, window: int = 5000) -> dict[str, list[float]]:
    """|estimated - realized| accuracy and ROC AUC per window of ``window`` predictions of
    a calibrated stationary model (calibrated on 2,000 labels first)."""
    settings = EstimateSettings(window=window, reconcile=False)
    task = ModelTask("binary", "1", "0", 0.5, True, True, "config")
    out: dict[str, list[float]] = {"accuracy": [], "roc_auc": []}
    for seed in range(seeds):
        rng = np.random.default_rng([7, seed])
        n = 2000 + windows * window
        scores, y = _binary_stream(rng, n, None, "")
        estimate = EstimatedPerformance(task, settings)
        for s, t in zip(scores[:2000].tolist(), y[:2000].tolist(), strict=True):
            estimate.observe_outcome(task.compare(s, t))  # type: ignore[arg-type]
        for w in range(windows):
            part = slice(2000 + w * window, 2000 + (w + 1) * window)
            for j, s in enumerate(scores[part].tolist()):
                estimate.observe_prediction(s, w * window + j)
            realized = RealizedPerformance("binary", window)
            for s, t in zip(scores[part].tolist(), y[part].tolist(), strict=True):
                realized.add(task.compare(s, t))  # type: ignore[arg-type]
            got = realized.metrics()
            for metric in out:
                out[metric].append(abs(estimate.latest[metric][0] - got[metric]))
    return out


def _bank_run(scores: np.ndarray, y: np.ndarray, config: DetectorConfig,
              delay: float = LABEL_DELAY, step: int = 1000) -> list[tuple[int, str, float]]:
    """(event index, feature, event time of the alert) of the concept alerts of a bank fed
    the predictions at 10/s and their labels one hour later, in event-time order."""
    bank = DetectorBank(config, join_labels=True)
    n = len(scores)
    times = np.arange(n) / EVENT_RATE
    out: list[tuple[int, str, float]] = []
    labelled = 0
    for start in range(0, n, step):
        batch = EventBatch()
        for i in range(start, min(n, start + step)):
            batch.append("m", None, {}, float(scores[i]), i, f"e{i}", float(times[i]))
        for s in bank.update(batch):
            if s.kind == "concept_drift":
                out.append((s.position, s.feature, float(times[s.position])))
        now = times[min(n, start + step) - 1]
        labels = LabelBatch()
        while labelled < n and times[labelled] + delay <= now:
            labels.append("m", f"e{labelled}", int(y[labelled]),
                          float(times[labelled] + delay), labelled)
            labelled += 1
        for s in bank.update_labels(labels):
            out.append((s.position, s.feature, float(times[s.position] + delay)))
    return out


@dataclass
class CbpeCell:
    runs: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)  # labels (events) after the change
    false_alarms: int = 0
    predictions: int = 0


def cbpe_run(seeds: int, predictions: int, change_at: int = 60_000, after: int = 60_000
             ) -> dict[str, Any]:
    config = DetectorConfig()
    cells: dict[str, CbpeCell] = {}
    # A covariate shift that costs 10 points of accuracy: estimate against realized.
    for seed in range(seeds):
        rng = np.random.default_rng([8, seed])
        scores, y = _binary_stream(rng, change_at + after, change_at, "covariate")
        alerts = _bank_run(scores, y, config)
        change_time = change_at / EVENT_RATE
        for name, features in (("estimate (estimated_accuracy)", {"estimated_accuracy"}),
                               ("realized (error_rate, labels 1 h late)", {"error_rate"})):
            cell = cells.setdefault("covariate: " + name, CbpeCell())
            cell.runs += 1
            hits = [t for _, f, t in alerts if f in features and t >= change_time]
            cell.false_alarms += sum(1 for _, f, t in alerts if f in features
                                     and t < change_time)
            if hits:
                cell.detected += 1
                cell.delays.append((min(hits) - change_time) * EVENT_RATE)
    # Overconfident from change_at on: reconciliation.
    for seed in range(seeds):
        rng = np.random.default_rng([9, seed])
        scores, y = _binary_stream(rng, change_at + after, change_at, "overconfident")
        alerts = _bank_run(scores, y, config)
        cell = cells.setdefault("overconfident: calibration", CbpeCell())
        cell.runs += 1
        change_time = change_at / EVENT_RATE + LABEL_DELAY  # its labels come an hour later
        hits = [t for _, f, t in alerts if f == "calibration" and t >= change_time]
        cell.false_alarms += sum(1 for _, f, t in alerts if f == "calibration"
                                 and t < change_time)
        if hits:
            cell.detected += 1
            cell.delays.append((min(hits) - change_time) * EVENT_RATE)
    # Stationary and calibrated: every estimate or calibration alert is a false alarm.
    for seed in range(seeds):
        rng = np.random.default_rng([10, seed])
        scores, y = _binary_stream(rng, predictions, None, "")
        alerts = _bank_run(scores, y, config)
        for name, features in (("stationary: estimated_*", {"estimated_accuracy",
                                                            "estimated_roc_auc"}),
                               ("stationary: calibration", {"calibration"})):
            cell = cells.setdefault(name, CbpeCell())
            cell.runs += 1
            cell.predictions += predictions
            cell.false_alarms += sum(1 for _, f, _ in alerts if f in features)
    return {"cells": cells, "error": _estimate_error(seeds, max(2, predictions // 50_000))}


def cbpe_report(result: dict[str, Any], seconds: float, args: argparse.Namespace,
                command: str) -> str:
    cells = result["cells"]
    estimate = cells["covariate: estimate (estimated_accuracy)"].delays
    realized = cells["covariate: realized (error_rate, labels 1 h late)"].delays
    earlier = (f"{statistics.median(realized) - statistics.median(estimate):,.0f}"
               if estimate and realized else "-")
    return "\n".join([
        "# Estimated performance (CBPE) and reconciliation",
        "",
        f"Made by `{command}` ({seconds:.0f} s). A binary model on x ~ N(0, 1.5), truth "
        "Bernoulli(sigmoid(2x)), calibrated scores sigmoid(2x); 10 events/s, labels 1 hour "
        f"later; {args.cbpe_seeds} seeds. Estimate error: calibrated on 2,000 labels, then "
        "|estimated - realized| over windows of 5,000 predictions. Covariate: x narrows to "
        "N(0, 0.5) at event 60,000 (accuracy 0.83 -> 0.71, scores still calibrated): delay "
        "in events after the change until the alert is published (the realized detector "
        "waits for the labels). Overconfident: scores sigmoid(8x) from event 60,000 (same "
        "accuracy): delay in labels after the first label of the change. Stationary: "
        f"{args.cbpe_predictions:,} predictions per seed, every alert a false alarm. "
        "Defaults of `detectors.concept.estimate` (windows of 1,000).",
        "",
        *cbpe_table(result),
        "",
        f"On the covariate shift the estimate alerts a median {earlier} labels before the "
        "realized error-rate detector.",
        "",
    ])


def cbpe_table(result: dict[str, Any]) -> list[str]:
    error = result["error"]
    lines = ["| metric | windows | median abs error | p90 |", "|---|---:|---:|---:|"]
    for metric, values in error.items():
        q = np.quantile(values, [0.5, 0.9])
        lines.append(f"| {metric} | {len(values)} | {q[0]:.4f} | {q[1]:.4f} |")
    lines += ["", "| scenario | detected | median delay (labels) | p90 | FA | FA per 1M "
              "predictions |", "|---|---:|---:|---:|---:|---:|"]
    for name, c in result["cells"].items():
        q = np.quantile(c.delays, [0.5, 0.9]) if c.delays else None
        per_million = (f"{c.false_alarms / c.predictions * 1e6:.2f}" if c.predictions
                       else "-")
        lines.append(f"| {name} | {c.detected}/{c.runs} | "
                     f"{'-' if q is None else f'{q[0]:,.0f}'} | "
                     f"{'-' if q is None else f'{q[1]:,.0f}'} | {c.false_alarms} | "
                     f"{per_million} |")
    return lines


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _fa(x: float) -> str:
    return f"{x:,.1f}" if x >= 1 or x == 0 else f"{x:.2f}"


def table(cells: dict[str, dict[str, Cell]], kind: str) -> list[str]:
    changes = [c.name for c in CHANGES if c.kind == kind]
    steady = [c.name for c in STATIONARY if c.kind == kind]
    methods = [m for m in (BINARY if kind == "binary" else REGRESSION) if m in cells]
    head = ["method"]
    for name in changes:
        head += [f"{name}: detected", "median", "p90", "alerts", "FA"]
    head += [f"{name}: FA per 1M labels" for name in steady]
    lines = ["| " + " | ".join(head) + " |",
             "|---|" + "---:|" * (len(head) - 1)]
    for method in methods:
        row = [method]
        for name in changes:
            s = cells[method][name].summary()
            alerts = s["alerts_per_change"]
            row += [f"{s['detected']}/{s['runs']}", _num(s["median"]), _num(s["p90"]),
                    "-" if alerts is None else f"{alerts:.2f}", str(s["false_alarms"])]
        row += [_fa(cells[method][name].summary()["fa_per_million"]) for name in steady]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def report(cells: dict[str, dict[str, Cell]], seconds: dict[str, float],
           args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Concept-drift detection quality",
        "",
        f"Made by `{command}`. Change streams: {args.seeds} seeds per scenario, "
        f"{args.before:,} labels before the change and {args.after:,} after. detected: "
        "seeds with a detection at or after the change; median and p90: its delay in "
        "labels over the detected seeds; alerts: detections at or after the change per "
        "detected seed (1.00: one alert per change); FA: detections before the change, "
        f"summed over the seeds. Stationary: {args.stationary_seeds} streams of "
        f"{args.labels:,} labels, every detection a false alarm, per million labels.",
        "",
        "## Classifiers: 0/1 error indicators",
        "",
        *table(cells, "binary"),
        "",
        "## Regression: absolute errors",
        "",
        *table(cells, "regression"),
        "",
        "Seconds per method (all its streams): " + ", ".join(
            f"{m}: {s:.1f}" for m, s in seconds.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="5 seeds, 2 stationary streams of 50,000 labels; writes nothing")
    p.add_argument("--seeds", type=int, help="seeds per change scenario (default 50; quick 5)")
    p.add_argument("--before", type=int, default=5_000, help="labels before the change")
    p.add_argument("--after", type=int, default=20_000, help="labels after the change")
    p.add_argument("--stationary-seeds", type=int,
                   help="stationary streams per scenario (default 5; quick 2)")
    p.add_argument("--labels", type=int,
                   help="labels per stationary stream (default 1,000,000; quick 50,000)")
    p.add_argument("--out", type=Path, help="report path (default bench/results/"
                   "quality_concept.md; --quick writes only with --out)")
    p.add_argument("--cbpe-seeds", type=int, help="seeds of the estimate's scenarios "
                   "(default 5; quick 1)")
    p.add_argument("--cbpe-predictions", type=int, help="predictions per stationary stream "
                   "of the estimate (default 1,000,000; quick 100,000)")
    p.add_argument("--cbpe-only", action="store_true", help="only the estimate's section, "
                   "written to bench/results/quality_cbpe.md (unless --quick)")
    args = p.parse_args(argv)
    quick = args.quick
    args.cbpe_seeds = args.cbpe_seeds or (1 if quick else 5)
    args.cbpe_predictions = args.cbpe_predictions or (100_000 if quick else 1_000_000)
    args.seeds = args.seeds or (5 if quick else 50)
    args.stationary_seeds = args.stationary_seeds or (2 if quick else 5)
    args.labels = args.labels or (50_000 if quick else 1_000_000)
    if args.out is None and not quick:
        args.out = RESULTS_DIR / ("quality_cbpe.md" if args.cbpe_only else "quality_concept.md")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python bench/quality_concept.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    cells: dict[str, dict[str, Cell]] = {}
    seconds: dict[str, float] = {}
    if not args.cbpe_only:
        cells, seconds = run(args.seeds, args.before, args.after, args.stationary_seeds,
                             args.labels)
    start = time.perf_counter()
    cbpe = cbpe_run(args.cbpe_seeds, args.cbpe_predictions)
    cbpe_seconds = time.perf_counter() - start
    text = ("" if args.cbpe_only else report(cells, seconds, args, command.strip())) + \
        cbpe_report(cbpe, cbpe_seconds, args, command.strip())
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        raw: dict[str, Any] = {m: {name: c.summary() for name, c in per.items()}
                               for m, per in cells.items()}
        raw["cbpe"] = {"estimate_error": cbpe["error"],
                       "scenarios": {name: dataclasses.asdict(c)
                                     for name, c in cbpe["cells"].items()}}
        args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
