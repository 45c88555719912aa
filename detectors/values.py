"""Value typing in one home: missing values, numbers, category names, the top class of
class probabilities, event times, and the names prediction series take."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

FeatureValue = float | int | str | bool | None

#: Feature name under which a model's prediction is monitored.
PREDICTION = "prediction"
#: For class-probability predictions: the probability of the predicted class.
CONFIDENCE = "prediction.confidence"


def is_missing(v: object) -> bool:
    """Null, or NaN (how pandas marks a missing number).

    >>> is_missing(None), is_missing(float("nan")), is_missing(0.0)
    (True, True, False)
    """
    return v is None or (type(v) is float and v != v)


def is_number(v: object) -> bool:
    """A finite real number (int, float, or a numpy scalar of either, as pandas and numpy
    hand them out); a bool is not a number here.

    >>> [is_number(v) for v in (1, 2.5, np.float64(3), np.int64(4), True, np.bool_(1), "5")]
    [True, True, True, True, False, False, False]
    """
    if type(v) is float or type(v) is int:
        return math.isfinite(v)
    return (isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
            and math.isfinite(v))


def category(v: FeatureValue) -> str:
    """The category name of a feature value: booleans as ``true``/``false``.

    >>> category(True), category("DE")
    ('true', 'DE')
    """
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def top_class(prediction: Mapping[str, Any]) -> tuple[str, float] | None:
    """The most probable class of class probabilities and its probability (the first on
    a tie); None if no probability is a number.

    >>> top_class({"cat": 0.7, "dog": 0.3}), top_class({"x": None})
    (('cat', 0.7), None)
    """
    best: tuple[str, float] | None = None
    for cls, p in prediction.items():
        if is_number(p) and (best is None or p > best[1]):
            best = (cls, float(p))
    return best


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
