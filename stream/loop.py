r"""The run loop: one implementation for live runs, replays and backtests.

    source -> decode + validate -> DetectorBank per partition -> alert sink
           \-> dead-letter sink                               -> checkpoint

A replay is this loop with another source and sink, so a live run and a
replay of the same records give the same alerts, byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectors.bank import DetectorBank, DriftSignal, EventBatch
from detectors.capacity import REASONS as CAPACITY_REASONS
from detectors.capacity import Report
from detectors.concept_drift import LabelBatch
from detectors.frames import warming_up
from stream.alerts import build_alert
from stream.clock import Skewed, distrust_skewed_times
from stream.config import AppConfig
from stream.events import (
    DecodedBatch,
    DecodedLabels,
    Rejected,
    decode_batch,
    decode_labels,
    format_time,
)
from stream.metrics import Metrics
from stream.records import Headers, RecordBatch
from stream.sinks import AlertSink, DeadLetterSink, SinkError
from stream.sources import Partition, Source
from stream.state import Changelog, Transactions

log = logging.getLogger("streamdrift.loop")

#: A checkpoint on revoke finishes within this bound (max.poll.interval.ms is 300 s).
REVOKE_SECONDS = 30.0

#: A label waits at most this long (wall clock) for its partition's events to pass it,
#: and a partition holds at most this many labels; past either, labels go in order.
HOLD_SECONDS = 60.0
HOLD_MAX_LABELS = 50_000


@dataclass(frozen=True, slots=True)
class HeldLabel:
    topic: str
    offset: int
    timestamp_ms: int | None
    model_id: str
    event_id: str
    label: Any
    time: float | None
    arrived: float
    key: bytes | None  # the record itself, for the DLQ if detection fails on it
    value: bytes | None
    headers: Headers | None
    timestamp_type: int


#: Each of these log lines names another model or feature: none is held back as a repeat
#: (stream/logs.py); they are bounded by LOGGED_UNMONITORED instead.
_EVERY_LINE = {"every_line": True}

#: Models and features past the detectors' bounds logged by name, at most (then counted).
LOGGED_UNMONITORED = 10_000

#: Checkpoints (snapshots of detector state, commits) take at most this share of the time.
CHECKPOINT_SHARE = 0.1

#: Drift scores (streamdrift_feature_drift_score) are exported at most once per this many
#: seconds, and computing them takes at most SCORES_SHARE of the time: they cost 0.1 to
#: 0.3 ms per series (measured), too much to pay on every batch.
SCORES_SECONDS = 1.0
SCORES_SHARE = 0.02


@dataclass(slots=True)
class LoopStats:
    records: int = 0
    events: int = 0
    labels: int = 0
    rejected: int = 0
    alerts: int = 0
    batches: int = 0


class RunLoop:
    """Wires a source to the detectors and the sinks; owns one DetectorBank per partition."""

    def __init__(self, source: Source, alerts: AlertSink, dead_letters: DeadLetterSink,
                 config: AppConfig, metrics: Metrics,
                 on_alert: Callable[[dict[str, Any]], None] | None = None,
                 progress_seconds: float | None = None, state: Changelog | None = None,
                 transactions: Transactions | None = None,
                 checkpoint_seconds: float = 0.0) -> None:
        self.source = source
        self.alerts = alerts
        self.dead_letters = dead_letters
        self.config = config
        self.metrics = metrics
        self.on_alert = on_alert
        self.progress_seconds = progress_seconds
        self.state = state
        self.transactions = transactions
        self.checkpoint_seconds = checkpoint_seconds
        self.config_hash = config.config_hash()
        # Detector state per input partition number: the events topic's partition p and
        # the labels topic's partition p (co-partitioned) share one bank.
        self.banks: dict[int, DetectorBank] = {}
        self.labels_topic = config.kafka.labels_topic
        self._held: dict[int, deque[HeldLabel]] = {}  # labels waiting for events to pass
        self._events_ms: dict[int, int] = {}  # newest events record timestamp per partition
        self._labels_read: dict[int, int] = {}  # next labels offset to read, per partition
        self.stats = LoopStats()
        self._drifting: set[tuple[str, str]] = set()
        self._newest: dict[str, float] = {}
        self._skew_logged: set[str] = set()  # model labels whose clock skew was logged
        # (model, feature or None) past the detectors' bounds, logged once each.
        self._logged_unmonitored: set[tuple[str, str | None]] = set()
        self.assignment: set[Partition] = set()
        self._next_offset: dict[Partition, int] = {}  # where each bank's input stands
        self._pending: dict[Partition, int] = {}  # processed, not yet committed
        self._dirty: set[int] = set()  # banks changed since their last snapshot
        #: The decoded events of the batch being processed, per (topic, partition).
        self.batch_events: dict[tuple[str, int], EventBatch] = {}
        self._parked: set[int] = set()
        self._last_checkpoint = time.monotonic()
        self._checkpoint_cost = 0.0
        self._scores_stale: set[int] = set()  # partitions changed since their scores went out
        self._scores_due = 0.0  # monotonic time of the next drift-score export
        self.last_poll = time.monotonic()
        if hasattr(source, "listener"):
            source.listener = self

    # Partition lifecycle: state lives and dies with its partition.
    def assigned(self, partitions: list[Partition],
                 resume_at: dict[Partition, int | None] | None = None) -> None:
        """Partitions are ours; ``resume_at`` is where the group resumes each one.

        A bank kept from before (an eager rebalance revokes every partition and gives
        most back at once) is used again only if its partition resumes exactly where the
        bank stopped. Otherwise the state is restored from the changelog (the snapshot
        that matches the committed offsets), or starts a new warm-up.
        """
        self.assignment.update(partitions)
        by_number: dict[int, dict[str, int | None]] = {}
        for topic, number in partitions:
            by_number.setdefault(number, {})[topic] = (resume_at or {}).get((topic, number))
        to_restore: dict[int, dict[str, int | None]] = {}
        self._scores_stale.update(by_number)  # kept or restored: its scores go out again
        for number, wanted in sorted(by_number.items()):
            self._parked.discard(number)
            self._held.pop(number, None)  # held labels are read again from the committed offset
            self._labels_read.pop(number, None)
            if number in self.banks:
                if resume_at is None or self._resumes_exactly(number, wanted):
                    continue
                log.info("partition %d: resumes at %s, its detectors stopped at %s", number,
                         wanted, self._positions(number))
                self._drop(number)
            to_restore[number] = wanted
        if self.state is not None and to_restore and resume_at is not None:
            started = time.perf_counter()
            for number, restored in self.state.restore(to_restore).items():
                self.banks[number] = restored.bank
                for topic, offset in restored.offsets.items():
                    self._next_offset[(topic, number)] = offset
            self.metrics.restore_duration.observe(time.perf_counter() - started)

    def _positions(self, number: int) -> dict[str, int]:
        return {t: o for (t, p), o in self._next_offset.items() if p == number}

    def _resumes_exactly(self, number: int, wanted: dict[str, int | None]) -> bool:
        here = self._positions(number)
        return bool(here) and all(wanted.get(t) == o for t, o in here.items())

    def _drop(self, number: int) -> None:
        self.banks.pop(number, None)
        self._held.pop(number, None)
        self._events_ms.pop(number, None)
        self._labels_read.pop(number, None)
        self._dirty.discard(number)
        self._parked.discard(number)
        for key in [k for k in self._next_offset if k[1] == number]:
            del self._next_offset[key]
            self._pending.pop(key, None)
        if self.state is not None:
            self.state.forget(number)

    def revoked(self, partitions: list[Partition]) -> None:
        """A rebalance takes partitions away: checkpoint first, within REVOKE_SECONDS
        (well inside max.poll.interval.ms), so the next owner resumes exactly where this
        member stopped, with its state. A checkpoint that cannot finish in time commits
        nothing (exactly-once: aborts); the next owner then re-reads from the last commit."""
        if self._pending or self._dirty:
            try:
                self.checkpoint(within=REVOKE_SECONDS)
            except SinkError as exc:
                log.warning("revoke: checkpoint not done in %gs (%s): the next owner "
                            "re-reads from the last commit", REVOKE_SECONDS, exc)
        self.assignment.difference_update(partitions)
        self._parked.update(p for _, p in partitions)  # kept until we know where they resume
        self._forget_series(partitions)

    def lost(self, partitions: list[Partition]) -> None:
        """Partitions taken without a revoke (session timed out): another member may own
        them already, so nothing is committed for them and their state is dropped."""
        if self.transactions is not None:
            self.transactions.abort()  # its records would claim offsets we no longer own
            for number in list(self.banks):
                self._drop(number)
        for _, number in partitions:
            self._drop(number)
        self.assignment.difference_update(partitions)
        self._forget_series(partitions)

    def _forget_series(self, partitions: list[Partition]) -> None:
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):  # no lag reported yet for it
                self.metrics.lag.remove(topic, str(partition))
            with contextlib.suppress(KeyError):
                self.metrics.state_bytes.remove(str(partition))
            self.metrics.forget_drift_scores(partition)
            self._scores_stale.discard(partition)
        self._refresh_drifting()
        self._unmonitored_gauge()

    def run(self, stop: threading.Event | None = None) -> LoopStats:
        """Process batches until ``stop`` is set or a bounded source ends."""
        stop = stop or threading.Event()
        last_progress = time.monotonic()
        try:
            while not stop.is_set():
                records = self.source.poll()
                self.last_poll = time.monotonic()
                if records is None:
                    self.tick(everything=True)
                    break
                if not len(records):
                    self.tick()
                    self.export_scores()
                    if (self._pending or self._dirty) and self._checkpoint_due():
                        self.checkpoint()
                    continue
                started = time.perf_counter()
                self.process(records)
                self._resize_polls()
                if self._checkpoint_due():
                    self.checkpoint()
                self.metrics.batch_duration.observe(time.perf_counter() - started)
                now = time.monotonic()
                if self.progress_seconds and now - last_progress >= self.progress_seconds:
                    last_progress = now
                    s = self.stats
                    log.info("progress: %d records, %d events, %d rejected, %d alerts",
                             s.records, s.events, s.rejected, s.alerts)
            if self._pending or self._dirty:
                self.checkpoint()
            self.export_scores(now=True)
        finally:
            self.source.close()
            self.alerts.close()
            self.dead_letters.close()
        return self.stats

    def _resize_polls(self) -> None:
        """Ask the source for ``kafka.batch_size`` records per poll, which with ``auto``
        grows with the models monitored (``KafkaConfig.poll_size``)."""
        resize = getattr(self.source, "resize", None)
        if resize is not None:
            resize(self.config.kafka.poll_size(sum(len(b.models) for b in self.banks.values())))

    def _checkpoint_due(self) -> bool:
        # Large states take long to snapshot: space checkpoints so that snapshots cost at
        # most CHECKPOINT_SHARE of the time (a crash then re-reads more, nothing else changes).
        wait = max(self.checkpoint_seconds, self._checkpoint_cost / CHECKPOINT_SHARE)
        return time.monotonic() - self._last_checkpoint >= wait

    def checkpoint(self, within: float | None = None) -> None:
        """The one checkpoint sequence; its order is the processing guarantee.

        1. Alerts and dead letters are made durable first (at-least-once: flushed and
           acknowledged; exactly-once: they are in the open transaction).
        2. Then the detector state of every partition changed since the last checkpoint
           goes to the changelog, each snapshot carrying the source offsets it covers.
        3. Only then are those source offsets committed (exactly-once: in the same
           transaction as 1 and 2, which commits all or nothing).

        A crash before 3 re-reads from the previous commit with the state of the previous
        commit (restore takes the snapshot that matches the committed offsets), so the
        same records give the same alerts with the same alert_id: at-least-once repeats
        them, exactly-once never made them visible. Committing first could lose alerts;
        writing state after the commit could restore state that missed records.
        """
        started = time.perf_counter()
        self._last_checkpoint = time.monotonic()
        txn = self.transactions
        if txn is None:
            self.alerts.flush(within)
            self.dead_letters.flush(within)
        if self.state is not None:
            snapshot = time.perf_counter()
            dirty = [(number, self.banks[number], self._positions(number))
                     for number in sorted(self._dirty) if number in self.banks]
            for number, size in self.state.write_all(dirty).items():
                self.metrics.state_bytes.labels(str(number)).set(size)
            # Only the snapshots' own time spaces checkpoints: waiting for a broker that
            # is away must not push the next commit minutes later.
            self._checkpoint_cost = time.perf_counter() - snapshot
            if txn is None and self._dirty:
                self.alerts.flush(within)  # the shared producer: the changelog records too
        offsets = dict(self._pending)
        if txn is not None:
            committed = txn.commit(offsets, within)
        else:
            committed = self.source.commit(offsets) is not False
        if committed:
            self._pending.clear()
            self._dirty.clear()
            if self.state is not None:
                self.state.committed()
        elif txn is not None and within is None:
            self._rewind()
        elif txn is not None:  # a revoke: every partition's in-memory state ran ahead
            for number in list(self.banks):
                self._drop(number)
        self.metrics.checkpoint_duration.observe(time.perf_counter() - started)

    def _rewind(self) -> None:
        """After an aborted transaction: back to the committed offsets and their state."""
        rewind = getattr(self.source, "rewind", None)
        resume_at = rewind() if rewind is not None else {}
        assignment = sorted(self.assignment)
        for number in list(self.banks):
            self._drop(number)
        self.assigned(assignment, resume_at)

    def process(self, records: RecordBatch) -> None:
        if self.transactions is not None:
            self.transactions.begin()  # what this batch produces is part of the transaction
        labels_topic = self.labels_topic
        label_rows = ([i for i, t in enumerate(records.topics) if t == labels_topic]
                      if labels_topic else [])
        if label_rows:  # events first: a label is held until its partition's events pass it
            events = records.take([i for i, t in enumerate(records.topics) if t != labels_topic])
            labels = records.take(label_rows)
        else:
            events, labels = records, None
        fired = self._process_events(events) if len(events) else False
        if labels is not None:
            self._hold_labels(labels)
        if self._held:
            fired = self._release_labels() or fired
        processed = records.next_offsets()
        self._next_offset.update(processed)
        self._pending.update(processed)
        self._dirty.update(p for _, p in processed)
        if labels_topic:
            for (topic, number), offset in processed.items():
                if topic == labels_topic:
                    self._labels_read[number] = offset
            self._label_positions()
        self._concept_metrics({p for _, p in processed})
        if fired or self._drifting:
            self._refresh_drifting()
        self._unmonitored_gauge()
        self._scores_stale.update(p for _, p in processed)
        self.export_scores()
        self.stats.records += len(records)
        self.stats.batches += 1

    def _concept_metrics(self, numbers: set[int]) -> None:
        """Label outcomes, delays, join-store size and model performance gauges."""
        metrics = self.metrics
        for number in numbers:
            bank = self.banks.get(number)
            if bank is None or not (bank.outcomes or bank.estimates or bank.join_labels):
                continue
            for (model_id, what), n in bank.drain_label_counts().items():
                metrics.labels.labels(metrics.model(model_id), what).inc(n)
            for _model_id, seconds in bank.drain_label_delays():
                metrics.label_delay.observe(seconds)
            for model_id, (error_rate, _estimated) in bank.model_performance().items():
                if error_rate is not None:
                    metrics.error_rate.labels(metrics.model(model_id)).set(error_rate)
            for model_id, version, values in bank.realized_performance(changed_only=True):
                labels = (metrics.model(model_id), metrics.version(model_id, version))
                for name, value in values.items():
                    metrics.performance.labels(*labels, name).set(value)
            for model_id, values in bank.estimated_performance():
                for name, value in values.items():
                    metrics.estimated.labels(metrics.model(model_id), name).set(value)
        if self.labels_topic:
            metrics.join_store.set(sum(b.join_store_size() for n, b in self.banks.items()
                                       if n not in self._parked))

    def _label_positions(self) -> None:
        """A held label is not processed yet: its partition resumes at the first one."""
        topic = self.labels_topic
        assert topic is not None
        for number, read in self._labels_read.items():
            held = self._held.get(number)
            position = held[0].offset if held else read
            if self._next_offset.get((topic, number)) != position:
                self._next_offset[(topic, number)] = position
                self._pending[(topic, number)] = position
                self._dirty.add(number)
        self.metrics.labels_held.set(sum(map(len, self._held.values())))

    def tick(self, everything: bool = False) -> None:
        """Between batches (an empty poll): labels that waited long enough go; with
        ``everything`` (a bounded input ended), every held label goes, in order."""
        if not any(self._held.values()):
            return
        if self.transactions is not None:
            self.transactions.begin()
        if self._release_labels(everything):
            self._refresh_drifting()
        self._label_positions()
        self._concept_metrics(set(self.banks))

    def _bank(self, number: int) -> DetectorBank:
        bank = self.banks.get(number)
        if bank is None:
            bank = self.banks[number] = DetectorBank(self.config.detectors,
                                                     join_labels=bool(self.labels_topic))
        return bank

    def _reject(self, records: RecordBatch, rejected: list[Rejected]) -> None:
        for r in rejected:
            self.dead_letters.send(records, r)
            self.metrics.invalid.labels(r.reason).inc()
            log.debug("rejected %s[%d]@%d: %s (%s)", records.topics[r.row],
                      records.partitions[r.row], records.offsets[r.row], r.reason, r.detail)
        self.stats.rejected += len(rejected)

    def _detection_failed(self, records: RecordBatch, rows: list[int], number: int,
                          exc: Exception) -> None:
        """Detection or alert building raised on a batch: a bug, not bad data (decoding
        refused that). The batch's records go to the DLQ (``detection_failed``, counted,
        logged with the traceback) instead of stopping the loop on them for good, and the
        partition's detectors, maybe half updated, start afresh (a new warm-up)."""
        log.error("partition %d: detection failed on %d records (%s: %s); they go to the "
                  "DLQ (reason detection_failed) and the partition's detectors start a new "
                  "warm-up", number, len(rows), type(exc).__name__, exc, exc_info=exc)
        detail = f"detection raised {type(exc).__name__}: {exc}"[:500]
        self._reject(records, [Rejected(row, "detection_failed", detail) for row in rows])
        self.banks.pop(number, None)

    def _build(self, signal: DriftSignal, event_id: str, event_time: float | None,
               topic: str, partition: int, offset: int) -> dict[str, Any]:
        return build_alert(signal, event_id, event_time, topic, partition, offset,
                           self.config_hash)

    def _publish(self, alert: dict[str, Any], signal: DriftSignal) -> None:
        self.alerts.send(alert)
        metrics = self.metrics
        metrics.alerts.labels(metrics.model(signal.model_id),
                              metrics.feature(signal.model_id, signal.feature),
                              signal.kind, signal.detector).inc()
        self.stats.alerts += 1
        if self.on_alert:
            self.on_alert(alert)

    def _process_events(self, records: RecordBatch) -> bool:
        limits = self.config.limits
        decoded = decode_batch(records, limits.max_record_bytes,
                               max_name_bytes=limits.max_name_bytes,
                               max_category_bytes=limits.max_category_bytes)
        self._screen(decoded, records)
        self.batch_events = decoded.events  # the backtest looks back from an alert's row
        metrics = self.metrics
        fired = False
        for (_topic, number), events in decoded.events.items():
            if not len(events):
                continue  # all of its events were dead-lettered
            bank = self._bank(number)
            try:
                signals = bank.update(events)
                alerts = [self._build(s, decoded.event_ids[s.position],
                                      decoded.event_times[s.position],
                                      records.topics[s.position],
                                      records.partitions[s.position],
                                      records.offsets[s.position]) for s in signals]
            except Exception as exc:  # a bug; the records are kept in the DLQ
                self._detection_failed(records, events.positions, number, exc)
                continue
            metrics.count_events(events.model_ids)
            self._report_capacity(bank.capacity.drain())
            for (model_id, feature), n in bank.drain_mistyped().items():
                metrics.mistyped.labels(metrics.model(model_id),
                                        metrics.feature(model_id, feature)).inc(n)
            self._observe_times(events.model_ids, events.positions, decoded.event_times)
            for signal, alert in zip(signals, alerts, strict=True):
                self._publish(alert, signal)
                fired = True
            self.stats.events += len(events)
        if self.labels_topic:
            newest = self._events_ms
            for number, stamp in zip(records.partitions, records.timestamps_ms, strict=True):
                if stamp is not None and stamp > newest.get(number, -1):
                    newest[number] = stamp
        return fired

    def _report_capacity(self, report: Report) -> None:
        """Counts what the detectors' bounds left unmonitored and the models retired; logs
        each model or feature left out once (at most LOGGED_UNMONITORED of them)."""
        metrics, detectors = self.metrics, self.config.detectors
        for reason, n in report.events.items():
            metrics.events_unmonitored.labels(reason).inc(n)
        for model_id, feature in report.new:
            if (model_id, feature) in self._logged_unmonitored:
                continue
            if len(self._logged_unmonitored) >= LOGGED_UNMONITORED:
                if len(self._logged_unmonitored) == LOGGED_UNMONITORED:
                    self._logged_unmonitored.add(("", None))
                    log.warning("more models or features past the detectors' bounds: no "
                                "longer logged (streamdrift_series_unmonitored counts them)")
                continue
            self._logged_unmonitored.add((model_id, feature))
            if feature is None:
                idle = detectors.retire_idle_models_seconds
                sooner = ("" if idle is None else ", or lower "
                          f"detectors.retire_idle_models_seconds ({idle:g}) so that idle "
                          "models make room sooner")
                log.warning("model %r is not monitored: its partition's detectors already "
                            "watch detectors.max_models (%d) models; raise "
                            "detectors.max_models%s. Its events are counted in "
                            "streamdrift_events_unmonitored_total{reason=\"max_models\"}",
                            model_id, detectors.max_models, sooner, extra=_EVERY_LINE)
            else:
                log.warning("feature %r of model %r is not monitored: the model already "
                            "has detectors.max_features_per_model (%d) series; raise "
                            "detectors.max_features_per_model. Its values are counted in "
                            "streamdrift_events_unmonitored_total"
                            "{reason=\"max_features_per_model\"}",
                            feature, model_id, detectors.max_features_per_model,
                            extra=_EVERY_LINE)
        for model_id, idle, newcomer in report.retired:
            metrics.models_retired.inc()
            log.warning("model %r retired after %.0f s without an event "
                        "(detectors.retire_idle_models_seconds %g): its detector state is "
                        "dropped to make room for model %r (past detectors.max_models, %d); "
                        "if it comes back it starts a new warm-up", model_id, idle,
                        detectors.retire_idle_models_seconds, newcomer, detectors.max_models,
                        extra=_EVERY_LINE)

    def _unmonitored_gauge(self) -> None:
        totals = dict.fromkeys(CAPACITY_REASONS, 0)
        for number, bank in self.banks.items():
            if number in self._parked:
                continue
            for reason, n in bank.capacity.unmonitored().items():
                totals[reason] += n
        for reason, n in totals.items():
            self.metrics.series_unmonitored.labels(reason).set(n)

    def _count_skewed(self, skewed: list[Skewed]) -> None:
        """Counts events whose event time was not trusted; logs the first per model label."""
        if not skewed:
            return
        metrics, limits = self.metrics, self.config.limits
        for model_id, n in Counter(s.model_id for s in skewed).items():
            label = metrics.model(model_id)
            metrics.clock_skew.labels(label).inc(n)
            if label in self._skew_logged:
                continue
            self._skew_logged.add(label)
            first = next(s for s in skewed if s.model_id == model_id)
            what = ("sent to the DLQ (reason clock_skew)"
                    if limits.clock_skew_policy == "dead_letter"
                    else "processed with their record timestamp")
            log.warning("model %r: a time %s is %.0f s ahead of its record timestamp %s "
                        "(more than limits.max_clock_skew_seconds, %g): a producer clock runs "
                        "ahead; such events and labels are %s and counted in "
                        "streamdrift_events_clock_skew_total (logged once per model)",
                        model_id, format_time(first.event_time), first.ahead,
                        format_time(first.record_time), limits.max_clock_skew_seconds, what,
                        extra=_EVERY_LINE)  # one per model label: bounded

    def _screen(self, decoded: DecodedBatch | DecodedLabels, records: RecordBatch) -> None:
        """What every decoded batch (events or labels) goes through before detection:
        times too far ahead of their record timestamps distrusted (``stream/clock.py``),
        the rejected records dead-lettered, capped category values counted."""
        limits = self.config.limits
        if limits.max_clock_skew_seconds is not None:
            self._count_skewed(distrust_skewed_times(
                decoded, records, limits.max_clock_skew_seconds,
                dead_letter=limits.clock_skew_policy == "dead_letter"))
        self._reject(records, decoded.rejected)
        if decoded.capped:
            self.metrics.categories_capped.inc(decoded.capped)

    def _hold_labels(self, records: RecordBatch) -> None:
        limits = self.config.limits
        decoded = decode_labels(records, limits.max_record_bytes,
                                max_name_bytes=limits.max_name_bytes,
                                max_category_bytes=limits.max_category_bytes)
        self._screen(decoded, records)
        arrived = time.monotonic()
        for (topic, number), columns in decoded.labels.items():
            held = self._held.setdefault(number, deque())
            for model_id, event_id, label, when, row in zip(
                    columns.model_ids, columns.event_ids, columns.labels, columns.times,
                    columns.positions, strict=True):
                held.append(HeldLabel(topic, records.offsets[row], records.timestamps_ms[row],
                                      model_id, event_id, label, when, arrived,
                                      records.keys[row], records.values[row],
                                      records.header_list(row), records.timestamp_type(row)))

    def _release_labels(self, everything: bool = False) -> bool:
        """Labels whose partition's events have passed their record timestamp go to the
        detectors, in the labels topic's order.

        Holding them makes the join independent of how the consumer interleaves the two
        topics: a label is joined once its prediction (produced before it) has been read,
        live or replayed. A label also goes when its partition holds too many, or has
        waited HOLD_SECONDS for events that do not come (a quiet partition).
        """
        fired = False
        now = time.monotonic()
        for number, held in self._held.items():
            passed = self._events_ms.get(number, -1)
            released: list[HeldLabel] = []
            while held and (everything or held[0].timestamp_ms is None
                            or held[0].timestamp_ms <= passed
                            or len(held) > HOLD_MAX_LABELS
                            or now - held[0].arrived > HOLD_SECONDS):
                released.append(held.popleft())
            if not released:
                continue
            batch = LabelBatch(model_ids=[h.model_id for h in released],
                               event_ids=[h.event_id for h in released],
                               labels=[h.label for h in released],
                               times=[h.time for h in released],
                               positions=list(range(len(released))))
            try:
                signals = self._bank(number).update_labels(batch)
                alerts = [self._build(s, released[s.position].event_id,
                                      released[s.position].time, released[s.position].topic,
                                      number, released[s.position].offset) for s in signals]
            except Exception as exc:  # a bug; the labels are kept in the DLQ
                again = RecordBatch()
                for h in released:
                    again.append(h.topic, number, h.offset, h.timestamp_ms, h.key, h.value,
                                 h.headers, h.timestamp_type)
                self._detection_failed(again, list(range(len(released))), number, exc)
                continue
            for signal, alert in zip(signals, alerts, strict=True):
                self._publish(alert, signal)
                fired = True
            self.stats.labels += len(released)
        return fired

    def _observe_times(self, model_ids: list[str], rows: list[int],
                       times: dict[int, float | None]) -> None:
        newest: dict[str, float] = {}
        models = set(model_ids)
        if len(models) == 1:  # the usual case when producers key by model_id
            known = [t for t in map(times.__getitem__, rows) if t is not None]
            if known:
                newest[model_ids[0]] = max(known)
        else:
            for model_id, row in zip(model_ids, rows, strict=True):
                t = times[row]
                if t is not None and t > newest.get(model_id, float("-inf")):
                    newest[model_id] = t
        for model_id, t in newest.items():
            label = self.metrics.model(model_id)
            if t > self._newest.get(label, float("-inf")):  # a model may span partitions
                self._newest[label] = t
                self.metrics.last_event.labels(label).set(t)

    def export_scores(self, now: bool = False) -> None:
        """Drift scores of the partitions processed since their last export go to
        streamdrift_feature_drift_score, when due (``SCORES_SECONDS``, spaced further so
        that they cost at most ``SCORES_SHARE`` of the time) or ``now``."""
        if not self._scores_stale or (not now and time.monotonic() < self._scores_due):
            return
        started = time.perf_counter()
        for number in sorted(self._scores_stale):
            bank = self.banks.get(number)
            if bank is not None and number not in self._parked:
                self.metrics.set_drift_scores(number, bank.drift_scores())
        self._scores_stale.clear()
        cost = time.perf_counter() - started
        self._scores_due = time.monotonic() + max(SCORES_SECONDS, cost / SCORES_SHARE)

    def _refresh_drifting(self) -> None:
        now = {pair for key, bank in self.banks.items() if key not in self._parked
               for pair in bank.drifting()}
        metrics = self.metrics
        for model_id, feature in now - self._drifting:
            metrics.drift_active.labels(metrics.model(model_id),
                                        metrics.feature(model_id, feature)).set(1)
        for model_id, feature in self._drifting - now:
            metrics.drift_active.labels(metrics.model(model_id),
                                        metrics.feature(model_id, feature)).set(0)
        self._drifting = now

    def log_warming_up(self, what: str) -> None:
        """Logs the series still warming up (``detectors.frames.warming_up``), for a
        replay or a backtest that ended: their silence says nothing about their drift."""
        shown, warming, total = warming_up(self.banks.values())
        if warming:
            log.warning("%s: %d of %d series were still warming up when the input ended "
                        "(%s): no alert can come from them yet. Each needs "
                        "detectors.warmup=%d present values first; give more input, a "
                        "smaller detectors.warmup, or a reference file "
                        "(detectors.reference_file)", what, warming, total, shown,
                        self.config.detectors.warmup)

    def alive(self, stalled_after: float = 300.0) -> tuple[bool, str]:
        """Alive while the loop keeps polling (a poll returns within batch_timeout)."""
        since = time.monotonic() - self.last_poll
        if since > stalled_after:
            return False, f"no poll for {since:.0f}s"
        return True, f"last poll {since:.1f}s ago"

    def ready(self, stalled_after: float = 30.0) -> tuple[bool, str]:
        """Ready when partitions are assigned and the loop is consuming them."""
        if not self.assignment:
            return False, "no partitions assigned"
        since = time.monotonic() - self.last_poll
        if since > stalled_after:
            return False, f"no poll for {since:.0f}s"
        return True, f"consuming {len(self.assignment)} partitions"

    def update_lag(self, stats: dict[str, Any]) -> None:
        """librdkafka statistics callback: consumer lag per assigned partition."""
        for topic, info in stats.get("topics", {}).items():
            for pid, part in info.get("partitions", {}).items():
                if pid == "-1" or (topic, int(pid)) not in self.assignment:
                    continue
                lag = part.get("consumer_lag", -1)
                if lag < 0 and part.get("lo_offset", -1) >= 0:
                    # Nothing consumed or committed yet (e.g. an empty partition): all of it.
                    lag = part.get("hi_offset", -1) - part["lo_offset"]
                if lag >= 0:
                    self.metrics.lag.labels(topic, pid).set(lag)
