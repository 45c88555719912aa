"""What a replay tells while it works and when it ends: a progress display on a terminal
(tqdm) and a one-line summary.

The display goes to standard error and only when that is a terminal (``tqdm``'s
``disable``), so a replay in a pipe, a file or CI prints no control characters; log
lines go through tqdm meanwhile (``tqdm.contrib.logging.logging_redirect_tqdm``) so they
do not break the bar.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

from tqdm import tqdm

from stream.events import Rejected
from stream.loop import LoopStats
from stream.records import RecordBatch
from stream.sinks import DeadLetterSink
from stream.sources import Partition, Source


class RejectionCounter:
    """A dead-letter sink that counts rejected records by reason, then hands each on.

    >>> class Nowhere:
    ...     def send(self, records, rejected): pass
    ...     def flush(self, timeout=None): pass
    ...     def close(self): pass
    >>> counter = RejectionCounter(Nowhere())
    >>> counter.send(RecordBatch(), Rejected(0, "not_json", "x"))
    >>> counter.send(RecordBatch(), Rejected(1, "not_json", "y"))
    >>> dict(counter.reasons)
    {'not_json': 2}
    """

    def __init__(self, inner: DeadLetterSink) -> None:
        self.inner = inner
        self.reasons: Counter[str] = Counter()

    def send(self, records: RecordBatch, rejected: Rejected) -> None:
        self.reasons[rejected.reason] += 1
        self.inner.send(records, rejected)

    def flush(self, timeout: float | None = None) -> None:
        self.inner.flush(timeout)

    def close(self) -> None:
        self.inner.close()


class ProgressSource:
    """Another source, shown as a tqdm bar while it is read: bytes of a file with an ETA
    (``size`` and ``position()`` of a ``FileSource``), else records; events per second
    and alerts so far from the run loop's ``stats`` (set once the loop exists).

    ``enabled``: None shows the bar only when ``stream`` is a terminal."""

    def __init__(self, source: Source, stream: IO[str], enabled: bool | None = None) -> None:
        self.source = source
        self.stats = LoopStats()
        self._size: int | None = getattr(source, "size", None)
        self._position: Callable[[], int] | None = getattr(source, "position", None)
        self._began = time.monotonic()
        by_bytes = self._size is not None and self._position is not None
        self.bar = tqdm(total=self._size if by_bytes else None, file=stream,
                        disable=not stream.isatty() if enabled is None else not enabled,
                        desc="replay", unit="B" if by_bytes else " records",
                        unit_scale=True, unit_divisor=1024 if by_bytes else 1000,
                        dynamic_ncols=True, mininterval=0.5, leave=True)
        self._by_bytes = by_bytes

    @property
    def shown(self) -> bool:
        return not self.bar.disable

    def poll(self) -> RecordBatch | None:
        records = self.source.poll()
        if self.shown:
            self._update(0 if records is None else len(records))
        return records

    def _update(self, count: int) -> None:
        stats = self.stats
        rate = stats.events / max(time.monotonic() - self._began, 1e-9)
        self.bar.set_postfix_str(f"{stats.events:,} events ({rate:,.0f}/s), "
                                 f"{stats.rejected:,} rejected, {stats.alerts:,} alerts",
                                 refresh=False)
        if self._by_bytes and self._position is not None:
            self.bar.update(self._position() - self.bar.n)
        else:
            self.bar.update(count)

    def commit(self, offsets: dict[Partition, int]) -> bool | None:
        return self.source.commit(offsets)

    def resize(self, records: int) -> None:
        resize = getattr(self.source, "resize", None)
        if resize is not None:
            resize(records)

    # The run loop sets itself as the partition listener of a source that has one: it
    # must reach the wrapped source, which calls it.
    @property
    def listener(self) -> Any:
        return getattr(self.source, "listener", None)

    @listener.setter
    def listener(self, value: Any) -> None:
        if hasattr(self.source, "listener"):
            self.source.listener = value

    def close(self) -> None:
        if self.shown:
            self._update(0)
        self.bar.close()
        self.source.close()

    def __getattr__(self, name: str) -> Any:  # the wrapped source's other members
        return getattr(self.source, name)


def summary(stats: LoopStats, reasons: Counter[str], outside: int = 0) -> str:
    """The replay's last line: records, events, labels, rejected by reason, alerts.

    >>> summary(LoopStats(records=10, events=7, rejected=3, alerts=1),
    ...         Counter({"not_json": 2, "bad_timestamp": 1}))
    'replay: 10 records, 7 events, 3 rejected (not_json 2, bad_timestamp 1), 1 alerts'
    """
    by_reason = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())
    line = (f"replay: {stats.records} records, {stats.events} events"
            + (f", {stats.labels} labels" if stats.labels else "")
            + f", {stats.rejected} rejected" + (f" ({by_reason})" if by_reason else "")
            + f", {stats.alerts} alerts")
    return line + (f"; {outside} lines outside --from/--to" if outside else "")
