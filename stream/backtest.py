"""``streamdrift backtest``: the replay loop over one input, once per config, recorded.

Each config runs the run loop (``stream.loop.RunLoop``) over its own fresh source of the
same input, as ``replay`` does, so its alerts are replay's, byte for byte. On top, a
``BacktestLoop`` records what the report and the scoring need, reading the detectors'
state between batches and never changing it:

- every alert, with its position in the input (the 0-based index of its event among the
  events records read, rejected ones included: for a file, its line index) and event time;
- each series' drift scores (``DetectorBank.drift_scores``) after every batch;
- at each data-drift alert, the reference its series had in force and the series' values
  up to the alert's row, as binned shares (``distributions``);
- events, rejected records, feature-events (values fed to feature series, missing ones
  included), the event-time range;
- the event time of the positions a truth file names, and the position of its times.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from detectors.attribution import held_before, recent_values, values_until
from detectors.bank import DetectorBank, DriftSignal
from detectors.monitors import SCORE_BINS, NumericMonitor
from detectors.stats.scores import bin_shares
from detectors.values import event_time
from stream import report, truth
from stream.config import AppConfig
from stream.events import format_time
from stream.loop import RunLoop
from stream.metrics import Metrics
from stream.records import RecordBatch
from stream.sinks import AlertSink, DeadLetterSink, JsonLinesSink
from stream.sources import Source

log = logging.getLogger("streamdrift.backtest")

#: Fewest latest values shown as a feature's current distribution at an alert.
CURRENT_VALUES = 250


@dataclass(slots=True)
class ScoreSample:
    """The drift scores of one series after a batch."""

    position: int  # events records read so far
    time: float | None  # newest event time so far (epoch seconds)
    partition: int
    model_id: str
    feature: str
    scores: dict[str, float]


@dataclass(slots=True)
class PerformanceSample:
    """A model's rolling realized error rate and estimated accuracy after a batch
    (``DetectorBank.model_performance``); None where unknown."""

    position: int
    time: float | None
    partition: int
    model_id: str
    error_rate: float | None
    estimated_accuracy: float | None


@dataclass(slots=True)
class RecordedAlert:
    alert: dict[str, Any]
    position: int
    time: float | None
    distribution: dict[str, Any] | None = None


@dataclass(slots=True)
class ConfigRun:
    """What one config's pass over the input gave."""

    name: str  # the config file as given (or "defaults")
    config_hash: str
    alerts: list[RecordedAlert] = field(default_factory=list)
    scores: list[ScoreSample] = field(default_factory=list)
    performance: list[PerformanceSample] = field(default_factory=list)
    records: int = 0
    events: int = 0
    rejected: int = 0
    labels: int = 0
    feature_events: int = 0
    first_time: float | None = None
    last_time: float | None = None
    series: set[tuple[str, str]] = field(default_factory=set)  # (model_id, feature) seen
    times_at: dict[int, float] = field(default_factory=dict)  # truth position -> event time
    positions_at: dict[float, int] = field(default_factory=dict)  # truth time -> position
    seconds: float = 0.0


class CollectingSink:
    """Forwards alerts to another sink (or none) and keeps nothing itself: the loop's
    ``on_alert`` records them."""

    def __init__(self, inner: AlertSink | None) -> None:
        self.inner = inner

    def send(self, alert: dict[str, Any]) -> None:
        if self.inner is not None:
            self.inner.send(alert)

    def flush(self, timeout: float | None = None) -> None:
        if self.inner is not None:
            self.inner.flush(timeout)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def distributions(recent: Any, window: int, reference: dict[str, Any] | None
                  ) -> dict[str, Any] | None:
    """Binned shares of a series' reference (``reference``, as ``reference_shares`` gave
    it before the alert's batch) and of the last ``window`` of its values ``recent`` (the
    newest last): numeric series on the reference's ``SCORE_BINS`` quantile bins,
    categorical ones on its kept categories and 'other'. None without a reference or
    values."""
    recent = recent[-max(1, min(window, len(recent))):]
    if reference is None or not len(recent):
        return None
    if reference["kind"] == "numeric":
        current = bin_shares(reference["edges"], np.asarray(recent, dtype=np.float64))
    else:
        names = reference["labels"][:-1]
        counts = [sum(1 for v in recent if v == name) for name in names]
        current = np.asarray([*counts, len(recent) - sum(counts)], dtype=np.float64) / len(recent)
    return {**reference, "current": [round(float(x), 6) for x in current],
            "current_n": len(recent)}


def reference_shares(values: Any) -> dict[str, Any] | None:
    """A series' reference as bins: ``{"kind", "labels", "edges" (numeric), "reference"}``
    (shares of the reference in each bin); None while it has none."""
    ref = getattr(values, "reference", None)
    if ref is None:
        return None
    if isinstance(values, NumericMonitor):
        edges, expected = ref.quantile_bins(SCORE_BINS)
        edges = [float(e) for e in edges]
        labels = ([f"< {_short(edges[0])}"]
                  + [f"{_short(a)} .. {_short(b)}" for a, b in itertools.pairwise(edges)]
                  + [f">= {_short(edges[-1])}"]) if edges else ["all"]
        return {"kind": "numeric", "edges": edges, "labels": labels,
                "reference": [round(float(x), 6) for x in expected]}
    names = list(ref.frequencies)
    return {"kind": "categorical", "labels": [*names, "other"],
            "reference": [round(float(x), 6)
                          for x in [*ref.frequencies.values(), ref.other_frequency]]}


def _short(x: float) -> str:
    return f"{x:.4g}"


class BacktestLoop(RunLoop):
    """The run loop, recording into ``run`` between batches (see the module docstring).

    ``truth_positions`` and ``truth_times`` are the points a truth file names: the loop
    records the event time at each position and the first position at or after each time.
    """

    def __init__(self, source: Source, alerts: AlertSink | None,
                 dead_letters: DeadLetterSink, config: AppConfig, run: ConfigRun,
                 truth_positions: Iterable[int] = (), truth_times: Iterable[float] = (),
                 on_progress: Callable[[ConfigRun], None] | None = None) -> None:
        super().__init__(source, CollectingSink(alerts), dead_letters, config, Metrics())
        self.run_record = run
        self.on_progress = on_progress
        self._wanted_positions = sorted(set(truth_positions))
        self._wanted_times = sorted(set(truth_times))
        self._time_index = 0
        self._ordinal = 0  # events records read before the current batch
        self._in_events = False
        self._events = RecordBatch()
        self._before: dict[int, dict[tuple[str, str], Any]] = {}
        # (partition, model, feature) -> (the reference object, its shares)
        self._references: dict[tuple[int, str, str], tuple[Any, dict[str, Any]]] = {}

    def _process_events(self, records: RecordBatch) -> bool:
        self._events = records
        self._in_events = True
        try:
            return super()._process_events(records)
        finally:
            self._in_events = False
            self._ordinal += len(records)

    def _observe_times(self, model_ids: list[str], rows: list[int],
                       times: dict[int, float | None]) -> None:
        super()._observe_times(model_ids, rows, times)
        run, base = self.run_record, self._ordinal
        wanted, moments = self._wanted_positions, self._wanted_times
        for row in rows:
            t = times[row]
            if t is None:
                continue
            if run.first_time is None or t < run.first_time:
                run.first_time = t
            if run.last_time is None or t > run.last_time:
                run.last_time = t
            position = base + row
            i = bisect.bisect_left(wanted, position)
            if i < len(wanted) and wanted[i] == position:
                run.times_at[position] = t
            while self._time_index < len(moments) and moments[self._time_index] <= t:
                run.positions_at[moments[self._time_index]] = position
                self._time_index += 1

    def _publish(self, alert: dict[str, Any], signal: DriftSignal) -> None:
        super()._publish(alert, signal)
        # An alert of a label that came later sits at the events read so far.
        position = self._ordinal + signal.position if self._in_events else self._ordinal
        recorded = RecordedAlert(alert, position, event_time(alert.get("event_time")))
        number = alert["source"]["partition"]
        seen = self._references.get((number, signal.model_id, signal.feature))
        if seen is not None and signal.kind == "data_drift" and self._in_events:
            after = alert["stats"].get("after", {})
            window = max(int(after.get("n", 0)), CURRENT_VALUES)
            recorded.distribution = distributions(
                self._values_at(number, signal), window, seen[1])
        self.run_record.alerts.append(recorded)

    def _values_at(self, number: int, signal: DriftSignal) -> Any:
        """The series' values up to the alert's own row: its recent values when the batch
        began and the batch's values of its partition and model up to that row."""
        bank = self.banks.get(number)
        model = None if bank is None else bank.models.get(signal.model_id)
        series = None if model is None else model.series.get(signal.feature)
        events = self.batch_events.get((self._events.topics[signal.position], number))
        if series is None or series.values is None or events is None:
            return ()
        # The bank's rows are the partition's events, in order (``EventBatch.positions``
        # are the records' rows).
        last = bisect.bisect_right(events.positions, signal.position)
        rows = [r for r in range(last) if events.model_ids[r] == signal.model_id]
        column = [events.features[r].get(signal.feature) for r in rows]
        values = series.values
        before = held_before(self._before.get(number), (signal.model_id, signal.feature),
                             values)
        return values_until(before, column, len(column) - 1, values.recent_window,
                            values if isinstance(values, NumericMonitor) else None, rows)

    def process(self, records: RecordBatch) -> None:
        # Each bank's recent values as the batch begins, to look back from an alert's row.
        self._before = {number: recent_values(bank.models)
                        for number, bank in self.banks.items()}
        super().process(records)
        run = self.run_record
        run.records = self.stats.records
        for number, bank in sorted(self.banks.items()):
            for model_id, feature, scores in bank.drift_scores():
                run.scores.append(ScoreSample(self._ordinal, run.last_time, number, model_id,
                                              feature,
                                              {k: round(v, 6) for k, v in scores.items()}))
            for model_id, (error_rate, estimated) in bank.model_performance().items():
                run.performance.append(PerformanceSample(self._ordinal, run.last_time, number,
                                                         model_id, error_rate, estimated))
            self._remember_references(number, bank)
        if self.on_progress is not None:
            self.on_progress(run)

    def _remember_references(self, number: int, bank: DetectorBank) -> None:
        """The reference each series has now, as shares: the one in force for the next
        batch's alerts (an alert rebuilds its series' reference)."""
        for model in bank.models.values():
            for series in model.series.values():
                key = (number, model.model_id, series.name)
                ref = getattr(series.values, "reference", None)
                if ref is None:
                    self._references.pop(key, None)
                    continue
                known = self._references.get(key)
                if known is None or known[0] is not ref:  # the object: an id can be reused
                    shares = reference_shares(series.values)
                    if shares is not None:
                        self._references[key] = (ref, shares)


def feature_events(banks: Iterable[DetectorBank]) -> int:
    """Values fed to feature series (not prediction series), missing ones included."""
    total = 0
    for bank in banks:
        for model in bank.models.values():
            for series in model.series.values():
                if series.kind == "data_drift":
                    total += int(getattr(series, "_seen", 0))
    return total


def run_config(name: str, config: AppConfig, source: Source, dead_letters: DeadLetterSink,
               alerts: AlertSink | None = None, truth_positions: Iterable[int] = (),
               truth_times: Iterable[float] = (), stop: threading.Event | None = None,
               progress: Progress | None = None) -> ConfigRun:
    """One pass of ``config`` over ``source``; ``alerts`` gets its alerts as replay's
    ``--output`` would."""
    run = ConfigRun(name, config.config_hash())
    began = time.monotonic()
    loop = BacktestLoop(source, alerts, dead_letters, config, run, truth_positions,
                        truth_times, None if progress is None else progress.update)
    stats = loop.run(stop)
    loop.log_warming_up(f"backtest {name}")
    run.records, run.events, run.rejected, run.labels = (stats.records, stats.events,
                                                         stats.rejected, stats.labels)
    run.feature_events = feature_events(loop.banks.values())
    run.series = {(model.model_id, name.strip("\x00")) for bank in loop.banks.values()
                  for model in bank.models.values() for name in model.series}
    run.seconds = time.monotonic() - began
    if progress is not None:
        progress.done(run)
    return run


class Progress:
    """One status line on a terminal: records read, records per second, alerts, and an
    ETA when the caller knows the ``total`` records (a file's lines). Nothing when
    ``out`` is not a terminal."""

    def __init__(self, label: str, total: int | None = None, out: IO[str] | None = None,
                 every: float = 0.5) -> None:
        self.out = out if out is not None else sys.stderr
        self.enabled = self.out.isatty()
        self.label = label
        self.total = total
        self.every = every
        self._began = time.monotonic()
        self._last = 0.0

    def update(self, run: ConfigRun) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < self.every:
            return
        self._last = now
        rate = run.records / max(now - self._began, 1e-9)
        eta = ""
        if self.total and rate > 0 and run.records < self.total:
            eta = f", ETA {math.ceil((self.total - run.records) / rate)} s"
        self.out.write(f"\r{self.label}: {run.records:,} records, {rate:,.0f} records/s, "
                       f"{len(run.alerts)} alerts{eta}   ")
        self.out.flush()

    def done(self, run: ConfigRun) -> None:
        if self.enabled:
            self.out.write(f"\r{self.label}: {run.records:,} records in {run.seconds:.1f} s, "
                           f"{len(run.alerts)} alerts{' ' * 20}\n")
            self.out.flush()


def summary(runs: list[ConfigRun], input_name: str, scored: list[dict[str, Any]] | None
            ) -> dict[str, Any]:
    """The JSON summary: per config (named by its file) its hash, counts, event-time
    range and alerts by kind; with a truth file, its scores (``stream.truth``)."""
    configs = []
    for i, run in enumerate(runs):
        kinds: dict[str, int] = {}
        for a in run.alerts:
            kinds[a.alert["kind"]] = kinds.get(a.alert["kind"], 0) + 1
        entry: dict[str, Any] = {
            "config": run.name, "config_hash": run.config_hash, "records": run.records,
            "events": run.events, "rejected": run.rejected, "labels": run.labels,
            "feature_events": run.feature_events, "alerts": len(run.alerts),
            "alerts_by_kind": dict(sorted(kinds.items())),
            "first_event_time": format_time(run.first_time),
            "last_event_time": format_time(run.last_time),
        }
        if scored is not None:
            entry["truth"] = scored[i]
        configs.append(entry)
    return {"input": input_name, "configs": configs}


def default_name(path: str | Path | None) -> str:
    return "defaults" if path is None else str(path)


class QuietDeadLetterSink:
    """Rejected records of a backtest: counted in the summary and the report, not logged
    one by one (each config reads the same input)."""

    def send(self, records: RecordBatch, rejected: Any) -> None:
        pass

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


EXIT_CONFIG = 2  # as the CLI's


def main(args: Any, configs: list[tuple[str, AppConfig]],
         source_for: Callable[[AppConfig], Source], stop: threading.Event) -> int:
    """``streamdrift backtest``: each config over a fresh source of the same input, then
    the summary (``--summary``), the alerts of the first config (``--output``, as replay
    writes them) and the report (``--report``). Exit 2 for an unreadable input or truth
    file."""
    known: list[truth.KnownDrift] = []
    if args.truth is not None:
        try:
            known = truth.load(args.truth)
        except (OSError, ValueError) as exc:
            log.error("--truth: %s", exc)
            return EXIT_CONFIG
    positions = [k.at for k in known if isinstance(k.at, int)] + [
        k.until for k in known if isinstance(k.until, int)]
    moments = [k.at for k in known if isinstance(k.at, float)] + [
        k.until for k in known if isinstance(k.until, float)]
    runs: list[ConfigRun] = []
    total = None  # records of a file, for the ETA on a terminal
    if args.input is not None and sys.stderr.isatty():
        with contextlib.suppress(OSError), open(args.input, "rb") as lines:
            total = sum(1 for _ in lines)
    for i, (name, config) in enumerate(configs):
        try:
            source = source_for(config)
        except OSError as exc:
            log.error("--input: cannot read %s: %s", args.input, exc.strerror)
            return EXIT_CONFIG
        sink = JsonLinesSink(args.output) if i == 0 and args.output else None
        progress = Progress(f"{name} ({i + 1}/{len(configs)})", total)
        run = run_config(name, config, source, QuietDeadLetterSink(), sink, positions,
                         moments, stop, progress)
        log.info("%s: %d records, %d events, %d rejected, %d alerts in %.1f s", name,
                 run.records, run.events, run.rejected, len(run.alerts), run.seconds)
        runs.append(run)
        if stop.is_set():
            break
    if args.truth is not None and runs:
        for problem in truth.unmatched(known, runs[0].series):
            log.warning("--truth %s", problem)
    scored = [truth.score(run, known) for run in runs] if args.truth is not None else None
    input_name = str(args.input) if args.input is not None else _range_name(args)
    result = summary(runs, input_name, scored)
    if scored is not None:
        result["best"] = truth.best(scored)
    if args.summary is not None:
        Path(args.summary).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        log.info("wrote %s", args.summary)
    report.write(args.report, runs, result, [c for _, c in configs], known)
    log.info("wrote %s", args.report)
    return 0


def _range_name(args: Any) -> str:
    start = format_time(args.start) if args.start is not None else "start"
    end = format_time(args.end) if args.end is not None else "end"
    return f"topic {args.topic} from {start} to {end}"
