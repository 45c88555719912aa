"""Which features moved when a model's prediction (or its error rate) drifted.

A ``prediction_drift`` or ``concept_drift`` alert says that the model's output changed,
not why. ``attribute`` ranks the model's feature series by how far each one moved over
the alert's window: the Jensen-Shannon distance (``detectors.stats.scores``) of the
feature's last ``n`` values (the alert's ``stats.after.n``, at least ``MIN_WINDOW``)
against the values just before them (up to ``EARLIER * n``), numeric features on the
earlier values' quintiles, categorical ones on category shares. It is the drift score of
the window against the feature's own immediate past, so it reads the same whether or not
the feature's monitor has (or has just rebuilt) a reference.

What the ranking means: association in time. A feature that moved while the prediction
moved ranks high; it is a place to look first, not a cause. Two features that moved
together rank alike whatever the model does with them, a feature the model ignores
ranks as high as one it relies on, and a prediction that moved with no feature moving
(a new model version, a change in an unmonitored input) shows small scores everywhere.
Without any change the score is noise that shrinks with ``n`` (about 0.1 to 0.2 for
n = 50, five bins): compare features with each other, not with a fixed level.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> moved = np.concatenate((rng.normal(0, 1, 500), rng.normal(2, 1, 500)))
>>> still = rng.normal(0, 1, 1000)
>>> ranked = rank_features({"a": moved, "b": still, "c": ["x", "y"] * 500}, window=500)
>>> [r["feature"] for r in ranked], ranked[0]["jensen_shannon"] > 0.5
(['a', 'b', 'c'], True)
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors.figures import significant
from detectors.monitors import NumericMonitor
from detectors.stats.scores import bin_shares, jensen_shannon, psi
from detectors.values import category, is_missing, is_number

#: Features listed in ``stats.attribution``.
TOP_FEATURES = 5
#: Values in the later part at least (an alert's window can be a few dozen values).
MIN_WINDOW = 50
#: The earlier part: up to this many times the later part's values, just before it.
EARLIER = 8
#: Bins for a numeric feature: the earlier part's quantiles (few bins: the later part
#: is small, and the score's noise grows with bins / values).
BINS = 5


def _window(values: Sequence[Any], window: int) -> int:
    return min(max(window, MIN_WINDOW), len(values) // 2)


def score_shift(earlier: Sequence[Any], later: Sequence[Any]) -> dict[str, float]:
    """Jensen-Shannon distance and PSI of ``later`` against ``earlier``: numeric values
    (numpy arrays) on ``earlier``'s ``BINS`` quantile bins, anything else on category
    shares (with the categories of both). ValueError for an empty side.

    >>> score_shift([1.0, 2.0, 3.0, 4.0] * 25, [1.0, 2.0, 3.0, 4.0] * 25)
    {'jensen_shannon': 0.0, 'psi': 0.0}
    >>> score_shift(["a"] * 10, ["b"] * 10)["jensen_shannon"]
    1.0
    """
    if not len(earlier) or not len(later):
        raise ValueError("score_shift: both sides need values")
    if isinstance(earlier, np.ndarray) and isinstance(later, np.ndarray):
        edges = np.unique(np.quantile(earlier, np.linspace(0, 1, BINS + 1)[1:-1]))
        expected, observed = bin_shares(edges, earlier), bin_shares(edges, later)
    else:
        names = sorted(set(earlier) | set(later))
        index = {name: i for i, name in enumerate(names)}
        expected = np.bincount([index[v] for v in earlier], minlength=len(names))
        observed = np.bincount([index[v] for v in later], minlength=len(names))
    return {"jensen_shannon": significant(jensen_shannon(expected, observed)),
            "psi": significant(psi(expected, observed))}


def rank_features(recent: Mapping[str, Sequence[Any]], window: int,
                  top: int = TOP_FEATURES) -> list[dict[str, Any]]:
    """Features ranked by ``score_shift`` of their last ``window`` values (at least
    ``MIN_WINDOW``, at most half of what the feature has) against up to ``EARLIER`` times
    as many just before them; a feature with fewer than ``2 * MIN_WINDOW`` values is left
    out. The first ``top``, each ``{"feature", "jensen_shannon", "psi", "n"}`` with ``n``
    the later part's values. Ties keep ``recent``'s order."""
    ranked: list[dict[str, Any]] = []
    for name, values in recent.items():
        n = _window(values, window)
        if n < MIN_WINDOW:
            continue
        earlier = values[max(0, len(values) - n - EARLIER * n):len(values) - n]
        scores = score_shift(earlier, values[-n:])
        ranked.append({"feature": name, **scores, "n": n})
    ranked.sort(key=lambda r: -float(r["jensen_shannon"]))
    return ranked[:top]


def present_values(column: Sequence[Any], numeric: bool) -> list[Any]:
    """The values of ``column`` a series of that kind keeps: finite numbers for a numeric
    series, category names for a categorical one (``detectors.values``)."""
    if numeric:
        return [float(v) for v in column if is_number(v) and np.isfinite(float(v))]
    return [category(v) for v in column if not is_missing(v) and not is_number(v)]


def values_until(before: Any, batch_column: Sequence[Any], row: int, keep: int,
                 monitor: NumericMonitor | None = None,
                 positions: Sequence[int] = ()) -> Any:
    """A series' last ``keep`` values up to and including row ``row`` of its column in the
    batch (``batch_column``, at ``positions``: the ``EventBatch``'s rows): its recent
    values when the batch began (``before``, the newest last), then the column's present
    values up to ``row``.
    The same values wherever the input was cut into batches: for a numeric series
    (``monitor`` given) as the monitor stored them (``NumericMonitor.stored_values``: at
    float32 where its reference is compact)."""
    if monitor is None:
        return [*before, *present_values(batch_column[:row + 1], False)][-keep:]
    kept = [(p, float(v)) for p, v in zip(positions[:row + 1], batch_column[:row + 1],
                                          strict=True)
            if is_number(v) and np.isfinite(float(v))]
    values = np.array([v for _, v in kept], dtype=np.float64)
    until = positions[row] if row >= 0 else -1
    return monitor.stored_values(before, values, [p for p, _ in kept], until)[-keep:]


def recent_values(models: Mapping[str, Any]) -> dict[tuple[str, str], tuple[Any, Any]]:
    """(model_id, feature) -> the monitor of every feature series and its recent values,
    as they are now: taken when a batch begins, so that ``attribute`` can look back from
    any row of it (``held_before``). Costs a dict entry per series: a monitor replaces
    its recent values on each update rather than changing them, so nothing is copied."""
    return {(model_id, series.name): (series.values, series.values._recent)  # read only
            for model_id, model in models.items() for series in model.series.values()
            if series.kind == "data_drift" and series.values is not None}


def held_before(before: Mapping[tuple[str, str], tuple[Any, Any]] | None,
                key: tuple[str, str], monitor: Any) -> Any:
    """The recent values ``recent_values`` took of series ``key`` (model_id, feature) when
    the batch began, if its monitor was ``monitor`` then; else none: a series whose kind
    was decided in the batch has a new monitor (the old one's strings are not its
    numbers)."""
    found = (before or {}).get(key)
    return found[1] if found is not None and found[0] is monitor else ()


#: Alert kinds that get ``stats.attribution``.
ATTRIBUTED_KINDS = frozenset(("prediction_drift", "concept_drift"))


def attribute(signals: list[Any], models: Mapping[str, Any], batch: Any = None,
              before: Mapping[tuple[str, str], Any] | None = None) -> list[Any]:
    """``signals`` (``DriftSignal``) with ``stats["attribution"]`` added to each
    prediction_drift and concept_drift one: ``rank_features`` of its model's feature series
    (``ModelMonitors.series`` in ``models``, data_drift ones) over the alert's window
    (``stats.after.n`` values, else half the recent window), as of the alert's row of
    ``batch`` (the ``EventBatch`` the signals came from, with ``before``, the
    ``recent_values`` taken when it began); without a batch (labels that came later), the
    series as they are. Other signals are returned as they are."""
    if not any(s.kind in ATTRIBUTED_KINDS for s in signals):
        return signals
    rows = {} if batch is None else {p: r for r, p in enumerate(batch.positions)}
    out = []
    for signal in signals:
        model = models.get(signal.model_id)
        if signal.kind not in ATTRIBUTED_KINDS or model is None:
            out.append(signal)
            continue
        row = rows.get(signal.position)
        model_rows = ([] if row is None else
                      [r for r, m in enumerate(batch.model_ids) if m == signal.model_id])
        recent: dict[str, Any] = {}
        window = 0
        for series in model.series.values():
            values = series.values
            if series.kind != "data_drift" or not series.enabled or values is None:
                continue
            window = window or values.recent_window // 2
            numeric = isinstance(values, NumericMonitor)
            if row is None:
                recent[series.name] = (values._window() if numeric
                                       else values._recent)  # read only
                continue
            upto = model_rows[:bisect.bisect_right(model_rows, row)]
            column = [batch.features[r].get(series.name) for r in upto]
            earlier = held_before(before, (signal.model_id, series.name), values)
            recent[series.name] = values_until(earlier, column, len(column) - 1,
                                               values.recent_window,
                                               values if numeric else None, upto)
        after = signal.stats.get("after", {})
        window = int(after.get("n") or window)
        stats = {**signal.stats, "attribution": rank_features(recent, window)}
        out.append(dataclasses.replace(signal, stats=stats))
    return out
