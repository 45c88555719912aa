"""Event times that run ahead of their record's timestamp: a producer clock that is wrong.

One event stamped 2099 would otherwise pin the newest-event gauge
(``streamdrift_last_event_timestamp_seconds``) for good, so that the model never reads
silent, and hand the detectors (seasonal buckets, the label join's horizon) a time
from the future. The record timestamp (Kafka's CreateTime or LogAppendTime) is the
reference: an event time more than ``limits.max_clock_skew_seconds`` ahead of it is
not trusted. Times behind it are kept (late events and backfills are normal).

This runs on decoded batches, after ``stream.events.decode_batch``, not inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.bank import EventBatch
from stream.events import DecodedBatch, Rejected, format_time
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


def distrust_skewed_times(decoded: DecodedBatch, records: RecordBatch, max_skew: float,
                          dead_letter: bool = False) -> list[Skewed]:
    """Finds, in place, the events of ``decoded`` whose event time is more than
    ``max_skew`` seconds ahead of their record's timestamp, and returns them in row order.

    Each one either takes its record timestamp as event time (in ``decoded.event_times``
    and its ``EventBatch.times``), or, with ``dead_letter``, leaves its ``EventBatch``
    and joins ``decoded.rejected`` (reason ``CLOCK_SKEW``). A record without a timestamp
    (a file line) has nothing to be compared with: its event time stays.

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
    found: list[Skewed] = []
    for key, batch in list(decoded.events.items()):
        times = batch.times
        rows = batch.positions
        if None not in times:  # the usual batch: one comparison of extremes, in C
            known = [stamps[r] for r in rows]
            if None not in known and (not times or max(times) - min(known) / 1000 <= max_skew):  # type: ignore[operator, type-var]
                continue
        skewed = [i for i, (t, r) in enumerate(zip(times, rows, strict=True))
                  if t is not None and stamps[r] is not None
                  and t - stamps[r] / 1000 > max_skew]  # type: ignore[operator]
        if not skewed:
            continue
        for i in skewed:
            row = rows[i]
            record_time = stamps[row] / 1000  # type: ignore[operator]
            found.append(Skewed(row, batch.model_ids[i], times[i], record_time))  # type: ignore[arg-type]
            if not dead_letter:
                times[i] = record_time
                decoded.event_times[row] = record_time
        if dead_letter:
            decoded.events[key] = _without(batch, set(skewed))
    if dead_letter and found:
        decoded.rejected.extend(Rejected(s.row, CLOCK_SKEW, _detail(s, max_skew)) for s in found)
        decoded.rejected.sort(key=lambda r: r.row)
    found.sort(key=lambda s: s.row)
    return found


def _detail(skewed: Skewed, max_skew: float) -> str:
    return (f"timestamp: {format_time(skewed.event_time)} is {skewed.ahead:.0f} s ahead of "
            f"the record timestamp {format_time(skewed.record_time)} (more than "
            f"limits.max_clock_skew_seconds, {max_skew:g})")


def _without(batch: EventBatch, drop: set[int]) -> EventBatch:
    keep = [i for i in range(len(batch)) if i not in drop]

    def take(column: list) -> list:  # type: ignore[type-arg]
        return [column[i] for i in keep] if len(column) == len(batch) else column

    return EventBatch(model_ids=take(batch.model_ids),
                      model_versions=take(batch.model_versions),
                      features=take(batch.features), predictions=take(batch.predictions),
                      positions=take(batch.positions), event_ids=take(batch.event_ids),
                      times=take(batch.times), labels=take(batch.labels))
