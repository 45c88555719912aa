"""Multivariate drift of a model's features: the PCA reconstruction error.

Per-feature monitors cannot see a change in how features move together (two features
correlated +0.8 in the reference and uncorrelated later keep their marginals, so every
per-feature test stays quiet). Following NannyML's data reconstruction drift
(https://nannyml.readthedocs.io, "Multivariate Data Drift: Data Reconstruction with
PCA"), a PCA of the standardized numeric features is fitted on the model's first
``fit`` events; each later event is projected on the components that explain
``explained_variance`` of the variance and back, and its reconstruction error (the
Euclidean distance between the standardized event and its reconstruction) is one
value of a numeric series. That series is watched like any feature
(``monitors.NumericMonitor``: its own reference of errors, the long-run variance
calibration, the anchored CUSUMs and the effect floor), so a joint change that moves
events off the reference's principal subspace raises the error and alerts under the
feature name ``MULTIVARIATE``. The series counts in the model's false-alarm budget
(``detectors.false_alarm_budget``) from the model's first event.

Categorical features (booleans too) enter by their share in the fit sample (frequency
encoding, as NannyML's count encoder; an unseen category is 0). Missing values are
imputed with the reference mean (0 after standardizing), as NannyML's mean imputer
does; an event without any of the fitted features has no error. Features constant in
the fit sample, mostly missing, or past ``max_features`` (in order of first
appearance) are left out. The PCA is kept after
an alert: the error series re-learns its reference, so a lasting joint change alerts
once.

Each alert's ``contributors`` name the features whose mean squared residual rose the
most over the alert's run (the values since the change, at most ``recent_window``)
against the fit sample: where in the joint the events left the reference's
subspace. Rises are sums over blocks of ``BLOCK`` events counted from the fit, so
they do not depend on batch boundaries.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.config import DetectorConfig
from detectors.figures import mean_std
from detectors.monitors import Detection, NumericMonitor, Policy, Split
from detectors.values import FeatureValue, category, is_missing, is_number

FloatArray = npt.NDArray[np.float64]

#: The alert feature name of the reconstruction error series.
MULTIVARIATE = "multivariate"
#: Rows per block of the residual sums behind ``contributors``.
BLOCK = 50
#: Standardized values are clipped to this many standard deviations.
Z_LIMIT = 1e150
#: Features named in an alert's ``contributors``.
TOP_CONTRIBUTORS = 5

#: A categorical feature's encoding: category -> share in the fit sample, and the share
#: of a category not among them.
Encoder = tuple[dict[str, float], float]


class Reconstruction:
    """A PCA of standardized features fitted on reference rows.

    ``rows`` is ``(n, p)`` with NaN for missing values. Components are kept, largest
    first, until their share of the variance reaches ``explained`` (at most ``p - 1``:
    one dimension is always left for the error). Raises ValueError for fewer than two
    usable columns or rows.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 1))
    >>> rows = np.hstack([x, 0.9 * x + 0.1 * rng.normal(size=(2000, 1))])
    >>> pca = Reconstruction(rows, 0.65)
    >>> pca.components.shape
    (1, 2)
    >>> bool(pca.errors(rows).mean() < pca.errors(rows[:, ::-1]).mean())  # joint changed
    True
    """

    def __init__(self, rows: FloatArray, explained: float) -> None:
        if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] < 2:
            raise ValueError("a reconstruction needs at least two rows and two columns")
        self.mean, self.scale = _column_moments(rows)
        z = self.standardize(rows)
        _, singular, vt = np.linalg.svd(z, full_matrices=False)
        variance = singular ** 2
        total = float(variance.sum())
        share = np.cumsum(variance) / total if total > 0 else np.ones(variance.size)
        k = int(np.searchsorted(share, explained - 1e-12)) + 1
        self.components: FloatArray = vt[: min(k, rows.shape[1] - 1)]
        self.reference_sq: FloatArray = (self.residuals(rows) ** 2).mean(axis=0)

    def standardize(self, rows: FloatArray) -> FloatArray:
        # Each term divided first: finite for any finite doubles (x - mean may not be);
        # clipped at 1e150 sd so that squares and their sums stay finite (an error that
        # large ranks at the top of any reference all the same).
        z: FloatArray = rows / self.scale - self.mean / self.scale
        return np.clip(np.where(np.isnan(z), 0.0, z), -Z_LIMIT, Z_LIMIT)

    def residuals(self, rows: FloatArray) -> FloatArray:
        """``(n, p)`` standardized rows minus their reconstruction."""
        z = self.standardize(rows)
        back: FloatArray = (z @ self.components.T) @ self.components
        return z - back

    def errors(self, rows: FloatArray) -> FloatArray:
        """``(n,)`` Euclidean reconstruction errors of ``rows``."""
        out: FloatArray = np.sqrt((self.residuals(rows) ** 2).sum(axis=1))
        return out


def numeric_matrix(columns: Sequence[Sequence[FeatureValue]], n: int) -> FloatArray:
    """``(n, len(columns))`` floats, NaN where a value is missing or not a number
    (``values.is_number``: a boolean is not one); a column shorter than ``n`` starts late
    (its first rows are NaN)."""
    out = np.full((n, len(columns)), math.nan)
    for j, column in enumerate(columns):
        offset = n - len(column)
        if set(map(type, column)) <= _NUMBER_TYPES:  # the usual case, in C
            values = np.asarray(column, dtype=np.float64)
            values[~np.isfinite(values)] = math.nan
        else:
            values = np.asarray([float(v) if is_number(v) else math.nan  # type: ignore[arg-type]
                                 for v in column], dtype=np.float64)
        out[offset:, j] = values
    return out


_NUMBER_TYPES = frozenset((float, int))


class MultivariateMonitor:
    """The reconstruction error of one model's events, watched as a numeric series.

    ``update`` takes a model batch's feature columns (name -> column, a column
    shorter than the batch starts late), the batch rows and, with
    ``detectors.seasonality``, the event times (the errors get a reference per
    bucket, like any feature); it returns the detections, each with
    ``stats["contributors"]``.
    """

    def __init__(self, config: DetectorConfig) -> None:
        settings = config.multivariate
        self.config = config
        self.explained = settings.explained_variance
        self.fit_events = settings.fit_events or config.warmup
        self.max_features = settings.max_features
        self.features: list[str] = []  # fixed at the fit
        # Per feature: None (numeric) or its category -> share in the fit sample.
        self.encoders: list[Encoder | None] = []
        self.pca: Reconstruction | None = None
        self._pending: dict[str, list[FeatureValue]] = {}  # raw values before the fit
        self._pending_rows = 0
        self.errors = NumericMonitor(config.numeric, config.warmup, config.warmup_after_alert,
                                     config.recent_window, None,
                                     Policy(config.anchored, config.calibration,
                                            config.min_effect, config.seasonality))
        self._blocks: deque[FloatArray] = deque(maxlen=max(1, config.recent_window // BLOCK))
        self._partial: FloatArray | None = None
        self._partial_rows = 0
        self.unfitted = False  # True when the fit sample had fewer than two usable features

    @property
    def fitted(self) -> bool:
        return self.pca is not None

    def update(self, columns: Mapping[str, Sequence[FeatureValue]], rows: Sequence[int],
               split: Split | None = None,
               times: Sequence[float | None] | None = None) -> list[Detection]:
        n = len(rows)
        if self.unfitted or not n:
            return []
        detections: list[Detection] = []
        start = 0
        if self.pca is None:
            start = self._collect(columns, n)
            if self.pca is None or start >= n:
                return []
        matrix = self._matrix(columns, n)
        matrix = matrix[start:]
        present: npt.NDArray[np.bool_] = np.asarray(~np.isnan(matrix).all(axis=1))
        residual_sq = self.pca.residuals(matrix) ** 2
        errors = np.sqrt(residual_sq.sum(axis=1))
        at = np.flatnonzero(present)
        kept = at.tolist()
        positions = [rows[start + i] for i in kept]
        found = self.errors.update(errors[at], positions, split,
                                   None if times is None else [times[start + i] for i in kept])
        done = 0
        index_of = {p: i for i, p in zip(kept, positions, strict=True)}
        for d in found:
            i = index_of[d.position]
            self._add_residuals(residual_sq[done : i + 1][present[done : i + 1]])
            done = i + 1
            run = int(d.stats.get("after", {}).get("n", 0)) or BLOCK
            d.stats["contributors"] = self._contributors(run)
            detections.append(d)
        self._add_residuals(residual_sq[done:][present[done:]])
        return detections

    def scores(self) -> dict[str, float] | None:
        return self.errors.scores() if self.pca is not None else None

    # --- the fit ------------------------------------------------------------------------

    def _collect(self, columns: Mapping[str, Sequence[FeatureValue]], n: int) -> int:
        """Take rows into the fit sample; the batch row after the last one taken."""
        take = min(self.fit_events - self._pending_rows, n)
        pending = self._pending
        for name in columns:
            if name not in pending and len(pending) < 4 * self.max_features:
                pending[name] = [None] * self._pending_rows
        for name, kept in pending.items():
            column = _tail(columns.get(name, ()), n)
            late = min(n - len(column), take)  # rows before the feature's first value
            kept.extend([None] * late)
            kept.extend(column[: take - late])
        self._pending_rows += take
        if self._pending_rows >= self.fit_events:
            self._fit()
        return take

    def _fit(self) -> None:
        names: list[str] = []
        encoders: list[Encoder | None] = []
        columns: list[FloatArray] = []
        for name, values in self._pending.items():
            if len(names) == self.max_features:
                break
            encoder = _encoder(values)
            column = _encode(values, encoder)
            if np.isfinite(column).mean() < 0.5:
                continue  # mostly missing
            _, spread = _column_moments(column[:, None])
            if not spread[0] > 0.0:
                continue  # constant in the fit sample: nothing to reconstruct
            names.append(name)
            encoders.append(encoder)
            columns.append(column)
        self._pending, self._pending_rows = {}, 0
        if len(names) < 2:
            self.unfitted = True
            return
        self.features, self.encoders = names, encoders
        self.pca = Reconstruction(np.column_stack(columns), self.explained)

    def _matrix(self, columns: Mapping[str, Sequence[FeatureValue]], n: int) -> FloatArray:
        out = np.empty((n, len(self.features)))
        for j, (name, encoder) in enumerate(zip(self.features, self.encoders, strict=True)):
            column = _tail(columns.get(name, ()), n)
            late = n - len(column)
            out[:late, j] = math.nan
            out[late:, j] = (numeric_matrix([column], len(column))[:, 0] if encoder is None
                             else _encode(column, encoder))
        return out

    # --- contributors -------------------------------------------------------------------

    def _add_residuals(self, residual_sq: FloatArray) -> None:
        i = 0
        while i < residual_sq.shape[0]:
            if self._partial is None:
                self._partial = np.zeros(residual_sq.shape[1])
                self._partial_rows = 0
            take = min(BLOCK - self._partial_rows, residual_sq.shape[0] - i)
            self._partial += residual_sq[i : i + take].sum(axis=0)
            self._partial_rows += take
            i += take
            if self._partial_rows == BLOCK:
                self._blocks.append(self._partial)
                self._partial = None

    def _contributors(self, run: int) -> dict[str, float]:
        """The features whose mean squared residual over the last ``run`` rows (whole
        blocks, at most the kept ones) rose most above the fit sample's."""
        assert self.pca is not None
        total = np.zeros(len(self.features))
        count = 0
        if self._partial is not None:
            total += self._partial
            count += self._partial_rows
        for block in reversed(self._blocks):
            if count >= run:
                break
            total += block
            count += BLOCK
        if not count:
            return {}
        rise = total / count - self.pca.reference_sq
        order = np.argsort(-rise, kind="stable")[:TOP_CONTRIBUTORS]
        return {self.features[j]: _sig(float(rise[j])) for j in order.tolist() if rise[j] > 0}


#: Categories kept per categorical feature (the most frequent of the fit sample; the
#: others encode as their mean share).
MAX_CATEGORIES = 1000


def _encoder(values: Sequence[FeatureValue]) -> Encoder | None:
    """None when most present values are numbers; else each category's share of the
    present values in the fit sample (frequency encoding, as NannyML's count encoder),
    the most frequent ``MAX_CATEGORIES``, with the mean share of the rest for any other
    category (0 when there is no rest: an unseen category encodes as 0)."""
    numbers = others = 0
    counts: dict[str, int] = {}
    for v in values:
        if v is None or is_missing(v):
            continue
        if is_number(v):
            numbers += 1
        else:
            others += 1
            name = category(v)
            counts[name] = counts.get(name, 0) + 1
    if numbers >= others:
        return None
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = {k: c / total for k, c in ranked[:MAX_CATEGORIES]}
    rest = ranked[MAX_CATEGORIES:]
    return kept, (sum(c for _, c in rest) / total / len(rest) if rest else 0.0)


def _encode(values: Sequence[FeatureValue], encoder: Encoder | None) -> FloatArray:
    """Floats of one feature's values: numbers as they are, or categories by their
    share (unseen: 0; past ``MAX_CATEGORIES``: the rest's mean share); NaN when missing
    or of the other kind."""
    if encoder is None:
        return numeric_matrix([values], len(values))[:, 0]
    shares, unknown = encoder  # unknown: 0 unless the fit sample had more categories
    out = [math.nan if v is None or is_missing(v) or is_number(v)
           else shares.get(category(v), unknown) for v in values]
    return np.asarray(out, dtype=np.float64)


def _column_moments(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of each column over its non-NaN values (0 and 0 for a
    column without any), finite for any finite doubles and with no warning
    (``figures.mean_std``)."""
    means, stds = np.zeros(rows.shape[1]), np.zeros(rows.shape[1])
    for j in range(rows.shape[1]):
        column = rows[:, j]
        present = column[~np.isnan(column)]
        if present.size:
            means[j], stds[j] = mean_std(present)
    return means, stds


def _tail(column: Sequence[Any], n: int) -> Sequence[Any]:
    return column if len(column) <= n else column[-n:]


def _sig(x: float) -> float:
    return float(f"{x:.4g}")
