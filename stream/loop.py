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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectors.bank import DetectorBank
from stream.alerts import build_alert
from stream.config import AppConfig
from stream.events import decode_batch
from stream.metrics import Metrics
from stream.records import RecordBatch
from stream.sinks import AlertSink, DeadLetterSink
from stream.sources import Partition, Source

log = logging.getLogger("streamdrift.loop")


@dataclass(slots=True)
class LoopStats:
    records: int = 0
    events: int = 0
    rejected: int = 0
    alerts: int = 0
    batches: int = 0


class RunLoop:
    """Wires a source to the detectors and the sinks; owns one DetectorBank per partition."""

    def __init__(self, source: Source, alerts: AlertSink, dead_letters: DeadLetterSink,
                 config: AppConfig, metrics: Metrics,
                 on_alert: Callable[[dict[str, Any]], None] | None = None,
                 progress_seconds: float | None = None) -> None:
        self.source = source
        self.alerts = alerts
        self.dead_letters = dead_letters
        self.config = config
        self.metrics = metrics
        self.on_alert = on_alert
        self.progress_seconds = progress_seconds
        self.config_hash = config.config_hash()
        self.banks: dict[Partition, DetectorBank] = {}
        self.stats = LoopStats()
        self._drifting: set[tuple[str, str]] = set()
        self._newest: dict[str, float] = {}
        self.assignment: set[Partition] = set()
        self._next_offset: dict[Partition, int] = {}
        self._parked: set[Partition] = set()
        self.last_poll = time.monotonic()
        if hasattr(source, "listener"):
            source.listener = self

    # Partition lifecycle: state lives and dies with its partition.
    def assigned(self, partitions: list[Partition],
                 resume_at: dict[Partition, int] | None = None) -> None:
        """Partitions are ours; ``resume_at`` is where the group resumes each one.

        A bank kept from before (an eager rebalance revokes every partition and gives
        most back at once) is used again only if the partition resumes exactly where
        the bank stopped; otherwise another member moved it on, and it starts afresh.
        """
        self.assignment.update(partitions)
        for p in partitions:
            self._parked.discard(p)
            resumes = (resume_at or {}).get(p)
            if p in self.banks and (resumes is None or resumes != self._next_offset.get(p)):
                log.info("%s[%d]: resumes at %s, its detectors stopped at %s: new warm-up",
                         p[0], p[1], resumes, self._next_offset.get(p))
                del self.banks[p]

    def revoked(self, partitions: list[Partition]) -> None:
        self.assignment.difference_update(partitions)
        self._parked.update(partitions)  # kept until we know where they resume
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):  # no lag reported yet for it
                self.metrics.lag.remove(topic, str(partition))
        self._refresh_drifting()

    def run(self, stop: threading.Event | None = None) -> LoopStats:
        """Process batches until ``stop`` is set or a bounded source ends."""
        stop = stop or threading.Event()
        last_progress = time.monotonic()
        try:
            while not stop.is_set():
                records = self.source.poll()
                self.last_poll = time.monotonic()
                if records is None:
                    break
                if not len(records):
                    continue
                started = time.perf_counter()
                self.process(records)
                self.checkpoint(records)
                self.metrics.batch_duration.observe(time.perf_counter() - started)
                now = time.monotonic()
                if self.progress_seconds and now - last_progress >= self.progress_seconds:
                    last_progress = now
                    s = self.stats
                    log.info("progress: %d records, %d events, %d rejected, %d alerts",
                             s.records, s.events, s.rejected, s.alerts)
        finally:
            self.source.close()
            self.alerts.close()
            self.dead_letters.close()
        return self.stats

    def checkpoint(self, records: RecordBatch) -> None:
        # The order is the guarantee. Alerts and dead letters are durable before
        # the offsets that produced them are committed, so a crash in between
        # re-reads the batch and re-sends its alerts with the same alert_id
        # (at-least-once); committing first could lose them.
        self.alerts.flush()
        self.dead_letters.flush()
        self.source.commit(records.next_offsets())

    def process(self, records: RecordBatch) -> None:
        decoded = decode_batch(records, self.config.limits.max_record_bytes)
        metrics = self.metrics
        for rejected in decoded.rejected:
            self.dead_letters.send(records, rejected)
            metrics.invalid.labels(rejected.reason).inc()
            log.debug("rejected %s[%d]@%d: %s (%s)", records.topics[rejected.row],
                      records.partitions[rejected.row], records.offsets[rejected.row],
                      rejected.reason, rejected.detail)
        fired = False
        for partition, events in decoded.events.items():
            bank = self.banks.get(partition)
            if bank is None:
                bank = self.banks[partition] = DetectorBank(self.config.detectors)
            metrics.count_events(events.model_ids)
            self._observe_times(events.model_ids, events.positions, decoded.event_times)
            for signal in bank.update(events):
                row = signal.position
                alert = build_alert(signal, decoded.event_ids[row], decoded.event_times[row],
                                    records.topics[row], records.partitions[row],
                                    records.offsets[row], self.config_hash)
                self.alerts.send(alert)
                model = metrics.model(signal.model_id)
                metrics.alerts.labels(model, metrics.feature(signal.model_id, signal.feature),
                                      signal.kind, signal.detector).inc()
                self.stats.alerts += 1
                fired = True
                if self.on_alert:
                    self.on_alert(alert)
            self.stats.events += len(events)
        self._next_offset.update(records.next_offsets())
        if fired or self._drifting:
            self._refresh_drifting()
        self.stats.records += len(records)
        self.stats.rejected += len(decoded.rejected)
        self.stats.batches += 1

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
