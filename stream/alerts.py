"""Alerts (docs/contracts.md's alert contract): built from a DriftSignal, serialized once."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from detectors.bank import DriftSignal
from stream import __version__
from stream.events import format_time


def alert_id(model_id: str, feature: str, kind: str, detector: str, topic: str, partition: int,
             offset: int, segment: tuple[str, str] | None = None) -> str:
    """Deterministic id: the same detection at the same source position, the same id.

    ``kind`` is in the key so that a feature called ``prediction`` and the
    prediction itself, firing on the same record, keep two ids; a segment series'
    ``segment`` (feature, value) is too, so that it never shares the id of the whole
    traffic's series (whose ids are what they were before segments existed).

    >>> alert_id("m", "x", "data_drift", "adwin", "events", 0, 42)
    'd94048799402f3bc8b16597724901705'
    >>> alert_id("m", "x", "data_drift", "adwin", "events", 0, 42, ("country", "ES"))
    '83d8afeb0c46e9cc956082a2497d087c'
    """
    parts = [model_id, feature, kind, detector, topic, str(partition), str(offset)]
    if segment is not None:
        parts += ["segment", *segment]
    key = "\x1f".join(parts)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def build_alert(signal: DriftSignal, event_id: str, event_time: float | None, topic: str,
                partition: int, offset: int, config_hash: str) -> dict[str, Any]:
    return {
        "alert_id": alert_id(signal.model_id, signal.feature, signal.kind, signal.detector,
                             topic, partition, offset, signal.segment),
        "model_id": signal.model_id,
        "model_version": signal.model_version,
        "feature": signal.feature,
        "segment": (None if signal.segment is None
                    else {"feature": signal.segment[0], "value": signal.segment[1]}),
        "kind": signal.kind,
        "detector": signal.detector,
        "event_id": event_id,
        "event_time": format_time(event_time),
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "stats": signal.stats,
        "config_hash": config_hash,
        "version": __version__,
    }


def encode_alert(alert: dict[str, Any]) -> bytes:
    # Key order is the contract's; orjson keeps insertion order, so bytes are stable.
    return orjson.dumps(alert)


def describe_alert(alert: dict[str, Any]) -> str:
    """One readable line for a terminal or a log.

    >>> a = {"model_id": "m", "feature": "income", "kind": "data_drift", "detector": "adwin",
    ...      "event_time": "2026-11-26T15:10:02.000Z", "event_id": "e-7",
    ...      "source": {"topic": "events", "partition": 0, "offset": 7},
    ...      "stats": {"before": {"mean": 1.0, "n": 1000}, "after": {"mean": 2.5, "n": 80}}}
    >>> print(describe_alert(a))  # doctest: +NORMALIZE_WHITESPACE
    DRIFT m/income data_drift by adwin at 2026-11-26T15:10:02.000Z (events[0]@7, e-7):
    mean 1 -> 2.5 (n 1000 -> 80)
    >>> a["stats"] = {"before": {"estimated_accuracy": 0.9019},
    ...               "after": {"accuracy": 0.81, "n": 1000}}
    >>> print(describe_alert(a).split(": ", 1)[1])
    estimated_accuracy 0.9019, accuracy 0.81 (n 1000)
    """
    src = alert["source"]
    where = f"{src['topic']}[{src['partition']}]@{src['offset']}"
    before, after = alert["stats"].get("before", {}), alert["stats"].get("after", {})
    changes = []
    for key in ("mean", "std", "missing_rate", "unseen", "top", "error_rate",
                "estimated_accuracy", "estimated_roc_auc", "accuracy", "n"):
        if key in before and key in after:
            changes.append(f"{key} {_short(before[key])} -> {_short(after[key])}")
        elif key in before or key in after:  # one side only (a calibration alert: an
            # estimate before, the realized figure after): the figure, no arrow to None
            changes.append(f"{key} {_short(before.get(key, after.get(key)))}")
    counts = f" ({changes.pop()})" if changes and changes[-1].startswith("n ") else ""
    return (f"DRIFT {alert['model_id']}/{alert['feature']} {alert['kind']} by "
            f"{alert['detector']} at {alert['event_time']} ({where}, {alert['event_id']}): "
            + ", ".join(changes) + counts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:3]) + "}"
    return str(value)
