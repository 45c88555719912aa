"""What ``detect`` reads from a pandas DataFrame, and what it says when the input ends
before the detectors could judge it.

A DataFrame is read as one event per row (docs/contracts.md's event contract). Columns
with these names have a role instead of being features (``ROLE_COLUMNS``):

=================  =====================  ============================================
role               column (default)       read as
=================  =====================  ============================================
``model_id``       ``model_id``, else     the model the row belongs to (default
                   ``model``              ``"model"`` for every row)
``model_version``  ``model_version``      the model's version (alerts carry it)
``event_id``       ``event_id``           the id labels are joined by
``timestamp``      ``timestamp``          the event time: datetime64 (naive is UTC),
                                          epoch seconds or RFC 3339 strings
``prediction``     ``prediction``         the model's output (prediction drift)
``label``          ``label``              the ground truth, compared with the
                                          prediction (concept drift)
=================  =====================  ============================================

``columns`` names other columns for a role (``{"timestamp": "ts", "label": "y"}``) or
turns a role off (``{"label": None}``: a column named ``label`` is then a feature).
Every other column is a feature, when its dtype is one: numbers and booleans, strings
and categoricals. Columns of other dtypes (datetime, timedelta, period, interval,
complex, or objects holding dates, lists, dicts) are skipped with a
``FrameColumnWarning`` that names them. Missing values (NaN, None, NA, NaT) are
missing. pandas itself is not imported here: it is the ``streamdrift[notebook]``
extra, and any object with pandas' ``DataFrame`` interface is read alike.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.bank import DetectorBank

#: Each role and the column names it is found under by default, first match wins.
ROLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "model_id": ("model_id", "model"),
    "model_version": ("model_version",),
    "event_id": ("event_id",),
    "timestamp": ("timestamp",),
    "prediction": ("prediction",),
    "label": ("label",),
}

#: Feature dtypes by numpy kind: bool, signed, unsigned, float, object (checked by
#: value), unicode/bytes strings. pandas' category, string and nullable dtypes say
#: their own kind (``O``, ``i``, ``f``, ``b``) or are named below.
_FEATURE_KINDS = frozenset("biufOUS")
_FEATURE_DTYPE_NAMES = ("category", "string", "str", "boolean")


class FrameColumnWarning(UserWarning):
    """A DataFrame column that ``detect`` skipped (not a feature dtype)."""


class WarmingUpWarning(UserWarning):
    """The input ended while series were still learning their reference: no alert could
    come from them."""


def is_frame(events: object) -> bool:
    """True for a pandas DataFrame (or anything with its ``columns``, ``dtypes`` and
    ``to_dict``)."""
    return all(hasattr(events, name) for name in ("columns", "dtypes", "to_dict"))


def as_events(events: Iterable[Mapping[str, Any]] | Any,
              columns: Mapping[str, str | None] | None = None) -> Iterable[Mapping[str, Any]]:
    """Event dicts from ``events``: a DataFrame's rows (see the module's doc), or the
    event dicts themselves. ``columns`` (role -> column name or None) only applies to a
    DataFrame. Raises ``ValueError`` for an unknown role or a named column that is not
    in the frame, ``TypeError`` for ``columns`` with event dicts.
    """
    if not is_frame(events):
        if columns:
            raise TypeError("columns= applies to a DataFrame; event dicts carry their "
                            "roles as keys (docs/contracts.md's event contract)")
        return events
    return frame_events(events, columns)


def frame_roles(frame: Any, columns: Mapping[str, str | None] | None = None
                ) -> dict[str, str]:
    """Role -> the frame's column that plays it (only the roles found).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"model": ["a"], "y": [1], "x": [0.5], "prediction": [0.9]})
    >>> frame_roles(frame, {"label": "y"})
    {'model_id': 'model', 'prediction': 'prediction', 'label': 'y'}
    """
    given = dict(columns or {})
    unknown = sorted(set(given) - set(ROLE_COLUMNS))
    if unknown:
        raise ValueError(f"columns: unknown role(s) {', '.join(unknown)}; the roles are "
                         f"{', '.join(ROLE_COLUMNS)}")
    names = [str(c) for c in frame.columns]
    roles: dict[str, str] = {}
    for role, defaults in ROLE_COLUMNS.items():
        if role in given:
            name = given[role]
            if name is None:
                continue
            if name not in names:
                raise ValueError(f"columns: {role}={name!r} is not a column of the frame "
                                 f"(columns: {', '.join(names)})")
            roles[role] = name
        else:
            found = next((n for n in defaults if n in names), None)
            if found is not None:
                roles[role] = found
    return roles


def feature_columns(frame: Any, roles: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """(feature columns, skipped column -> why) of a frame whose ``roles`` are known.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [1.0], "c": ["a"], "when": pd.to_datetime(["2026-01-01"]),
    ...                       "flag": [True], "label": [1]})
    >>> feature_columns(frame, {"label": "label"})
    (['x', 'c', 'flag'], {'when': 'datetime64[us]'})
    """
    taken = set(roles.values())
    features: list[str] = []
    skipped: dict[str, str] = {}
    for name, dtype in zip(frame.columns, frame.dtypes, strict=True):
        name = str(name)
        if name in taken:
            continue
        why = _not_a_feature(frame[name], dtype)
        if why is None:
            features.append(name)
        else:
            skipped[name] = why
    return features, skipped


def _not_a_feature(column: Any, dtype: Any) -> str | None:
    """None for a feature column, else its dtype (or the kind of its objects)."""
    kind = getattr(dtype, "kind", "O")
    if str(dtype) in _FEATURE_DTYPE_NAMES:
        return None
    if kind not in _FEATURE_KINDS:
        return str(dtype)
    if kind == "O":
        present = column.dropna()
        if len(present):
            first = present.iloc[0]
            if isinstance(first, dt.date | dt.time | dt.timedelta | list | dict | tuple | set):
                return f"object ({type(first).__name__})"
    return None


def frame_events(frame: Any, columns: Mapping[str, str | None] | None = None
                 ) -> Iterator[dict[str, Any]]:
    """One event dict per row of ``frame`` (see the module's doc); warns
    (``FrameColumnWarning``) once for the columns it skips.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"model": ["m", "m"], "x": [1.5, None], "c": ["a", "b"],
    ...                       "timestamp": pd.to_datetime([0, 60], unit="s"),
    ...                       "prediction": [0.9, 0.1], "label": [1, None]})
    >>> for event in frame_events(frame):
    ...     print(event)
    {'model_id': 'm', 'features': {'x': 1.5, 'c': 'a'}, 'timestamp': 0.0,
     'prediction': 0.9, 'label': 1.0}
    {'model_id': 'm', 'features': {'x': None, 'c': 'b'}, 'timestamp': 60.0,
     'prediction': 0.1, 'label': None}
    """
    roles = frame_roles(frame, columns)
    features, skipped = feature_columns(frame, roles)
    if skipped:
        listed = ", ".join(f"{name!r} ({why})" for name, why in skipped.items())
        warnings.warn(f"detect: skipped {len(skipped)} column(s) that are not features: "
                      f"{listed}. A time column is the event time with "
                      f"columns={{'timestamp': NAME}}; convert others to numbers or strings "
                      f"to monitor them", FrameColumnWarning, stacklevel=4)
    role_values = {role: _column_values(frame[name], time=role == "timestamp")
                   for role, name in roles.items()}
    rows = _records(frame[features]) if features else [{} for _ in range(len(frame))]
    model_ids = role_values.pop("model_id", None)
    for i, row in enumerate(rows):
        event: dict[str, Any] = {"model_id": "model" if model_ids is None or model_ids[i]
                                 is None else str(model_ids[i]), "features": row}
        for role, values in role_values.items():
            event[role] = values[i]
        yield event


def _records(frame: Any) -> list[dict[str, Any]]:
    """The frame's rows as dicts of Python values, each missing value None."""
    boxed = frame.astype(object)
    rows: list[dict[str, Any]] = boxed.where(frame.notna(), None).to_dict("records")
    return rows


def _column_values(column: Any, time: bool) -> list[Any]:
    """A role column as Python values (None where missing); a datetime column as epoch
    seconds (naive read as UTC)."""
    if time and getattr(column.dtype, "kind", "") == "M":
        if getattr(column.dt, "tz", None) is None:
            column = column.dt.tz_localize("UTC")
        return [None if s != s else float(s) for s in _epoch_seconds(column)]
    values: list[Any] = column.astype(object).where(column.notna(), None).tolist()
    return values


def _epoch_seconds(column: Any) -> list[float]:
    """Seconds since 1970-01-01T00:00:00Z of a tz-aware datetime column (NaN for NaT)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = column - epoch
    return list(delta.dt.total_seconds())


def warming_up(banks: Iterable[DetectorBank]) -> tuple[str, int, int]:
    """The series of ``banks`` still learning their reference ("model/feature", the first
    8 and how many more), how many there are, and how many series there are in all: no
    alert could have come from those, so an empty result says nothing about their
    drift. ("", 0, total) when none."""
    warming: list[str] = []
    total = 0
    for bank in banks:
        for model in bank.models.values():
            total += len(model.series)
            for name, series in model.series.items():
                values = series.values
                if values is None or values.warming_up:
                    # PREDICTION and CONFIDENCE begin with a NUL (no feature can be named so)
                    warming.append(f"{model.model_id}/{name.strip(chr(0))}")
    shown = ", ".join(warming[:8]) + (f" and {len(warming) - 8} more" if len(warming) > 8
                                      else "")
    return shown, len(warming), total


def warn_warming_up(bank: DetectorBank) -> None:
    """Warn (``WarmingUpWarning``) if some series were still learning their reference
    when the input ended (``warming_up``)."""
    shown, warming, total = warming_up([bank])
    if not warming:
        return
    warnings.warn(f"detect: {warming} of {total} series were still warming up when the "
                  f"input ended ({shown}): no alert can come from them yet. Each needs "
                  f"DetectorConfig.warmup={bank.config.warmup} present values first; give "
                  f"more rows, a smaller warmup, or a reference file",
                  WarmingUpWarning, stacklevel=3)
