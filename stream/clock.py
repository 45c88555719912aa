"""Event (and label) times that run ahead of their record's timestamp: a wrong clock.

One event stamped 2099 would otherwise pin the newest-event gauge
(``streamdrift_last_event_timestamp_seconds``) for good, so that the model never reads
silent, and hand the detectors (seasonal buckets, the label join's horizon) a time
from the future; a label stamped 2099 moves the join's label clock there. The record
timestamp (Kafka's CreateTime or LogAppendTime) is the reference: a time more than
``limits.max_clock_skew_seconds`` ahead of it is not trusted. Times behind it are kept
(late events and backfills are normal).

This runs on decoded batches, after ``stream.events.decode_batch``, not inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from detectors.bank import EventBatch
from detectors.concept_drift import LabelBatch
from stream.events import DecodedBatch, DecodedLabels, Rejected, format_time
from stream.records import RecordBatch

#: The DLQ reason of an untrusted event time under ``clock_skew_policy: dead_letter``.
CLOCK_SKEW = "clock_skew"


@dataclass(frozen=True, slots=True)
class Skewed:
    """An event whose time ran ahead: its row in the RecordBatch, model, both times (s)."""

    row: int
    model_id: str
    event_time: float
    record_time: float

    @property
    def ahead(self) -> float:
        return self.event_time - self.record_time


def distrust_skewed_times(decoded: DecodedBatch | DecodedLabels, records: RecordBatch,
                          max_skew: float, dead_letter: bool = False) -> list[Skewed]:
    """Finds, in place, the events (or labels) of ``decoded`` whose time is more than
    ``max_skew`` seconds ahead of their record's timestamp, and returns them in row order.

    Each one either takes its record timestamp as its time (in its batch's ``times``,
    and for events in ``decoded.event_times``), or, with ``dead_letter``, leaves its
    batch and joins ``decoded.rejected`` (reason ``CLOCK_SKEW``). A record without a
    timestamp (a file line) has nothing to be compared with: its time stays.

    >>> from stream.events import decode_batch
    >>> records = RecordBatch()
    >>> for i, ts in enumerate(["2026-11-30T12:00:00Z", "2099-01-01T00:00:00Z"]):
    ...     value = f'{{"event_id":"e{i}","model_id":"m","timestamp":"{ts}","features":{{}}}}'
    ...     records.append("t", 0, i, 1_796_040_000_000, None, value.encode())
    >>> decoded = decode_batch(records, 10_000)
    >>> [(s.row, s.model_id) for s in distrust_skewed_times(decoded, records, 300.0)]
    [(1, 'm')]
    >>> decoded.events[("t", 0)].times
    [1796040000.0, 1796040000.0]
    """
    stamps = records.timestamps_ms
    batches: dict[tuple[str, int], Any] = (
        decoded.events if isinstance(decoded, DecodedBatch) else decoded.labels)
    event_times = decoded.event_times if isinstance(decoded, DecodedBatch) else None
    found: list[Skewed] = []
    for key, batch in list(batches.items()):
        times = batch.times
        rows = batch.positions
        if None not in times:  # the usual batch: one comparison of extremes, in C
            known = [stamps[r] for r in rows]
            if None not in known and (not times
                                      or max(times) - min(known) / 1000 <= max_skew):
                continue
        skewed = [i for i, (t, r) in enumerate(zip(times, rows, strict=True))
                  if t is not None and stamps[r] is not None
                  and t - stamps[r] / 1000 > max_skew]
        if not skewed:
            continue
        for i in skewed:
            row = rows[i]
            record_time = stamps[row] / 1000
            found.append(Skewed(row, batch.model_ids[i], times[i], record_time))
            if not dead_letter:
                times[i] = record_time
                if event_times is not None:
                    event_times[row] = record_time
        if dead_letter:
            batches[key] = _without(batch, set(skewed))
    if dead_letter and found:
        decoded.rejected.extend(Rejected(s.row, CLOCK_SKEW, _detail(s, max_skew)) for s in found)
        decoded.rejected.sort(key=lambda r: r.row)
    found.sort(key=lambda s: s.row)
    return found


def _detail(skewed: Skewed, max_skew: float) -> str:
    return (f"timestamp: {format_time(skewed.event_time)} is {skewed.ahead:.0f} s ahead of "
            f"the record timestamp {format_time(skewed.record_time)} (more than "
            f"limits.max_clock_skew_seconds, {max_skew:g})")


B = TypeVar("B", EventBatch, LabelBatch)


def _without(batch: B, drop: set[int]) -> B:
    """The batch without the rows ``drop`` (a column of another length stays as it is)."""
    n = len(batch)
    keep = [i for i in range(n) if i not in drop]
    columns = {}
    for f in fields(batch):
        column = getattr(batch, f.name)
        columns[f.name] = [column[i] for i in keep] if len(column) == n else column
    return type(batch)(**columns)
