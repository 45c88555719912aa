"""Log lines that repeat (a broker away: librdkafka reports every reconnect attempt)
are held back: the first of each kind passes, then one per interval with a count."""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable

_NUMBERS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Passes the first line of each kind at ``level`` or above, then at most one per
    ``every`` seconds, which says how many like it were held back. A kind is the
    logger, the level and the message with its numbers blanked (ports, counts and
    milliseconds vary between repeats). Lines below ``level`` always pass, and so do
    lines logged with ``extra={"every_line": True}`` (each one is a report of its own,
    e.g. a rejected record in a replay without ``--dlq-output``).

    >>> now = [0.0]
    >>> f = RepeatFilter(every=30.0, clock=lambda: now[0])
    >>> def warn(msg: str) -> str | None:
    ...     r = logging.LogRecord("k", logging.WARNING, "", 0, msg, None, None)
    ...     return r.getMessage() if f.filter(r) else None
    >>> warn("connect to :9092 failed (after 0ms)")
    'connect to :9092 failed (after 0ms)'
    >>> [warn(f"connect to :9092 failed (after {i}ms)") for i in range(3)]
    [None, None, None]
    >>> now[0] = 31.0
    >>> warn("connect to :9092 failed (after 7ms)")
    'connect to :9092 failed (after 7ms) (and 3 more like it in the last 31 s)'
    """

    def __init__(self, every: float = 30.0, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic, kinds: int = 1000) -> None:
        super().__init__()
        self.every, self.level, self.clock, self.kinds = every, level, clock, kinds
        self._seen: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or getattr(record, "every_line", False):
            return True
        message = record.getMessage()
        key = (record.name, record.levelno, _NUMBERS.sub("#", message))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = (f"{message} (and {int(seen[1])} more like it in the last "
                          f"{now - seen[0]:.0f} s)")
            record.args = None
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        if len(self._seen) > self.kinds:  # bounded: the oldest kind is forgotten
            self._seen.popitem(last=False)
        return True
