"""Scoring a backtest against known drifts (``--truth``).

A truth file has one JSON object a line::

    {"model_id": "credit-risk", "feature": "income", "at": 5000, "until": 9000}

``at`` and the optional ``until`` are positions in the input (an integer: the 0-based
index of the event among the events records read, rejected ones included; for a file
its line index) or RFC 3339 event times (a string). ``feature`` is optional: without it
any alert of the model counts. A drift lasts from ``at`` until ``until``, or else until
the next known drift of the same model and feature, or else the end of the input.

Per config (``score``):

- ``detection_rate``: drifts with at least one alert of their model and feature inside
  their span, over the drifts that start within the input;
- ``delay_events`` and ``delay_seconds``: from ``at`` to a detected drift's first alert,
  in input positions and in event time; their median and 90th percentile (numpy's
  linear interpolation between order statistics);
- ``false_alarms``: alerts inside no drift's span (of their model and feature), and
  ``false_alarms_per_million`` of them per 1,000,000 feature-events (values fed to
  feature series, missing ones included);
- ``alerts_per_drift``: alerts inside drift spans over the drifts (1 is ideal: more is
  repeated paging for one change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from stream.events import parse_rfc3339

if TYPE_CHECKING:
    from stream.backtest import ConfigRun

Point = int | float  # a position (int) or an event time in epoch seconds (float)


@dataclass(frozen=True, slots=True)
class KnownDrift:
    model_id: str
    feature: str | None
    at: Point
    until: Point | None = None
    line: int = 0


def _point(value: Any, key: str, line: int) -> Point:
    if isinstance(value, bool):
        raise ValueError(f"line {line}: {key}: a position (integer) or an RFC 3339 time")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"line {line}: {key}: a position is >= 0")
        return value
    if isinstance(value, str):
        try:
            return parse_rfc3339(value).timestamp()
        except ValueError:
            pass
    raise ValueError(f"line {line}: {key}: {value!r} is neither a position (integer) nor "
                     "an RFC 3339 time")


def load(path: str | Path) -> list[KnownDrift]:
    """The known drifts of a truth file, in file order. ValueError (with the line
    number) for a line that is not such an object; OSError if the file cannot be read.

    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    >>> _ = f.write('{"model_id": "m", "feature": "x", "at": 10}\\n'
    ...             '{"model_id": "m", "at": "2026-01-01T00:00:00Z", "until": 99}\\n')
    >>> f.close()
    >>> [(d.feature, d.at, d.until) for d in load(f.name)]
    [('x', 10, None), (None, 1767225600.0, 99)]
    >>> os.unlink(f.name)
    """
    drifts = []
    for number, raw in enumerate(Path(path).read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("model_id"), str) \
                or "at" not in obj:
            raise ValueError(f"line {number}: expected an object with model_id and at")
        feature = obj.get("feature")
        if feature is not None and not isinstance(feature, str):
            raise ValueError(f"line {number}: feature: a string")
        at = _point(obj["at"], "at", number)
        until = None if obj.get("until") is None else _point(obj["until"], "until", number)
        if until is not None and type(until) is type(at) and until <= at:
            raise ValueError(f"line {number}: until ({obj['until']!r}) is not after at "
                             f"({obj['at']!r})")
        drifts.append(KnownDrift(obj["model_id"], feature, at, until, number))
    return drifts


def unmatched(drifts: list[KnownDrift], series: set[tuple[str, str]]) -> list[str]:
    """The known drifts whose model, or model and feature, the input never had (a typo
    in the truth file scores as a missed drift): one line each, with its line number.
    ``series``: the (model_id, feature) pairs the input had.

    >>> d = [KnownDrift("credit-risk", "incme", 1, line=1), KnownDrift("credit-rsk", None, 1,
    ...      line=2), KnownDrift("credit-risk", "income", 1, line=3)]
    >>> for problem in unmatched(d, {("credit-risk", "income")}):
    ...     print(problem)
    line 1: model 'credit-risk' has no feature 'incme' in the input
    line 2: model 'credit-rsk' has no events in the input
    """
    models = {model for model, _ in series}
    out = []
    for d in drifts:
        if d.model_id not in models:
            out.append(f"line {d.line}: model {d.model_id!r} has no events in the input")
        elif d.feature is not None and (d.model_id, d.feature) not in series:
            out.append(f"line {d.line}: model {d.model_id!r} has no feature {d.feature!r} "
                       "in the input")
    return out


def _position(point: Point | None, run: ConfigRun) -> float | None:
    """A point as an input position: the first event at or after a time, a position as
    it is; inf past the input's last record."""
    if point is None:
        return None
    if isinstance(point, int):
        return float(point) if point < run.records else math.inf
    found = run.positions_at.get(point)
    return math.inf if found is None else float(found)


def _time(point: Point, run: ConfigRun) -> float | None:
    return point if isinstance(point, float) else run.times_at.get(point)


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    return {"median": round(float(np.percentile(values, 50)), 3),
            "p90": round(float(np.percentile(values, 90)), 3)}


def _matches(drift: KnownDrift, alert: dict[str, Any]) -> bool:
    return alert["model_id"] == drift.model_id and (
        drift.feature is None or alert["feature"] == drift.feature)


def score(run: ConfigRun, drifts: list[KnownDrift]) -> dict[str, Any]:
    """The truth scores of one config's run (see the module docstring)."""
    spans: list[tuple[KnownDrift, float, float]] = []
    for i, d in enumerate(drifts):
        start = _position(d.at, run)
        end = _position(d.until, run)
        if end is None:  # until the next drift of the same series
            later = [_position(o.at, run) for o in drifts[i + 1:]
                     if o.model_id == d.model_id and o.feature == d.feature]
            end = min([p for p in later if p is not None], default=math.inf)
        assert start is not None
        spans.append((d, start, end))
    per_drift = []
    inside: set[int] = set()
    in_input = 0
    for d, start, end in spans:
        row: dict[str, Any] = {"line": d.line, "model_id": d.model_id, "feature": d.feature,
                               "detected": False}
        if math.isinf(start):
            row["beyond_input"] = True
            per_drift.append(row)
            continue
        in_input += 1
        hits = [a for a in run.alerts if _matches(d, a.alert) and start <= a.position < end]
        inside.update(id(a) for a in hits)
        row["alerts"] = len(hits)
        if hits:
            first = hits[0]
            row.update(detected=True, first_alert=first.alert["alert_id"],
                       delay_events=int(first.position - start))
            at_time = _time(d.at, run)
            if at_time is not None and first.time is not None:
                row["delay_seconds"] = round(first.time - at_time, 3)
        per_drift.append(row)
    detected = [r for r in per_drift if r["detected"]]
    false_alarms = sum(1 for a in run.alerts if id(a) not in inside)
    million = run.feature_events / 1e6
    return {
        "drifts": in_input,
        "detected": len(detected),
        "detection_rate": round(len(detected) / in_input, 6) if in_input else None,
        "delay_events": _quantiles([r["delay_events"] for r in detected]),
        "delay_seconds": _quantiles([r["delay_seconds"] for r in detected
                                     if "delay_seconds" in r]),
        "false_alarms": false_alarms,
        "feature_events": run.feature_events,
        "false_alarms_per_million": round(false_alarms / million, 3) if million else None,
        "alerts_in_drifts": len(inside),
        "alerts_per_drift": round(len(inside) / in_input, 6) if in_input else None,
        "per_drift": per_drift,
    }


#: Criterion -> (how to read it from a score, whether higher is better); alerts per
#: drift is best closest to 1.
CRITERIA: dict[str, tuple[tuple[str, ...], str]] = {
    "detection_rate": (("detection_rate",), "max"),
    "delay_events_median": (("delay_events", "median"), "min"),
    "delay_events_p90": (("delay_events", "p90"), "min"),
    "delay_seconds_median": (("delay_seconds", "median"), "min"),
    "delay_seconds_p90": (("delay_seconds", "p90"), "min"),
    "false_alarms_per_million": (("false_alarms_per_million",), "min"),
    "alerts_per_drift": (("alerts_per_drift",), "one"),
}


def criterion(scored: dict[str, Any], name: str) -> float | None:
    value: Any = scored
    for key in CRITERIA[name][0]:
        value = value.get(key) if isinstance(value, dict) else None
    return None if value is None else float(value)


def best(scored: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per criterion, the indices of the configs that do best (ties: all of them);
    a criterion no config has a value for is left out.

    >>> best([{"detection_rate": 0.5, "alerts_per_drift": 3},
    ...       {"detection_rate": 1.0, "alerts_per_drift": 1.5}])
    {'detection_rate': [1], 'alerts_per_drift': [1]}
    """
    out: dict[str, list[int]] = {}
    for name, (_path, way) in CRITERIA.items():
        values = [(i, criterion(s, name)) for i, s in enumerate(scored)]
        known = [(i, v) for i, v in values if v is not None]
        if not known:
            continue
        ranks = [(i, -v if way == "max" else abs(v - 1.0) if way == "one" else v)
                 for i, v in known]
        top = min(r for _, r in ranks)
        out[name] = [i for i, r in ranks if r == top]
    return out
