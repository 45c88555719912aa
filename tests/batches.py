"""Event dicts of one model ``m`` cut into ``EventBatch``es, for tests of batch-size
independence and snapshots (positions are the events' indices)."""

from __future__ import annotations

from typing import Any

from detectors import EventBatch


def model_batches(events: list[dict[str, Any]], size: int) -> list[EventBatch]:
    """``events`` (each with ``features``) in batches of ``size``, as model ``m``."""
    out = []
    for start in range(0, len(events), size):
        batch = EventBatch()
        for i in range(start, min(len(events), start + size)):
            batch.append("m", None, events[i]["features"], None, i)
        out.append(batch)
    return out
