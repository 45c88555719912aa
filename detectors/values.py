"""Value typing shared by the detectors: event times."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def event_time(timestamp: Any) -> float | None:
    """An event's ``timestamp`` (epoch seconds or an RFC 3339 string) in epoch seconds;
    None if it is absent or unreadable (a string without an offset is read as UTC).

    >>> event_time(1798761600), event_time("2027-01-01T00:00:00Z"), event_time("x")
    (1798761600.0, 1798761600.0, None)
    >>> event_time("2027-01-01t00:00:00z"), event_time(True)
    (1798761600.0, None)
    """
    if isinstance(timestamp, bool):
        return None
    if isinstance(timestamp, int | float):
        return float(timestamp) if math.isfinite(timestamp) else None
    if isinstance(timestamp, str):
        try:
            moment = datetime.fromisoformat(timestamp.upper().replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return None
