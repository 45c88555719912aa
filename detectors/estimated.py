"""Performance estimated before labels (CBPE) and its reconciliation with the labels.

Confidence-based performance estimation, as NannyML documents it ("Estimation of
Performance of the Monitored Model", CBPE): calibrate the model's probabilities on
labelled reference data, then read the expected confusion matrix of new predictions
off the calibrated probabilities. Written here from that description (no NannyML
code): isotonic regression (Barlow et al. 1972, pool-adjacent-violators) calibrates
a binary model's positive-class score (P(y = 1 | score)) or a multiclass model's top
probability (P(correct | top probability)) on the first ``calibration_labels``
joined labels of the model.

Per window of ``window`` predictions (the model's predictions numbered from its first,
so neither batch boundaries nor the time the labels come change the windows):

- estimated accuracy = mean of c_i, the calibrated probability that prediction i is
  right (binary: p_i if predicted positive, else 1 - p_i); its standard error is that
  of a sum of independent Bernoulli(c_i), sqrt(sum c_i (1 - c_i)) / n;
- estimated ROC AUC (binary) = the area under the expected ROC curve: predictions
  sorted by score, expected true positives the running sum of p_i, expected false
  positives of 1 - p_i; standard error by Hanley & McNeil (1982) with n1 = sum p_i,
  n0 = sum (1 - p_i).

Before any label, a model sending class probabilities gets a provisional estimate:
its probabilities at face value (the mean top-class probability is the accuracy of
calibrated probabilities), against its first window; it is replaced by the calibrated
one once labels come.

Assumptions (NannyML's): no concept drift (P(y | score) stays what it was on the
calibration labels), and calibrated probabilities stay calibrated under covariate
shift. Reconciliation checks the first one as labels come: over each ``window``
joined labels, the realized accuracy against the mean c_i of the same predictions;
apart by more than ``z`` standard errors (the window's and the calibration's) means
the probabilities no longer mean what they meant (feature ``calibration``).
Regression models are not estimated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.config import EstimateSettings
from detectors.figures import significant
from detectors.performance import BINARY, MULTICLASS, ModelTask, Outcome
from detectors.values import is_number, top_class

ESTIMATED_PREFIX = "estimated_"
CALIBRATION = "calibration"
METRICS = ("accuracy", "roc_auc")


class IsotonicCalibration:
    """A non-decreasing step function fitted by pool-adjacent-violators (least squares).

    >>> c = IsotonicCalibration.fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0., 1., 0., 1.]))
    >>> c.predict(np.array([0.0, 0.25, 0.35, 0.9])).tolist()
    [0.0, 0.5, 1.0, 1.0]
    """

    def __init__(self, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> None:
        self.x = x  # upper end of each block (scores)
        self.y = y  # the block's mean outcome

    @classmethod
    def fit(cls, scores: np.ndarray[Any, Any], outcomes: np.ndarray[Any, Any]
            ) -> IsotonicCalibration:
        order = np.argsort(scores, kind="mergesort")
        xs, ys = scores[order], outcomes[order].astype(np.float64)
        means: list[float] = []
        weights: list[float] = []
        ends: list[float] = []
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            if ends and x == ends[-1]:  # equal scores: one block
                means[-1] = (means[-1] * weights[-1] + y) / (weights[-1] + 1)
                weights[-1] += 1
            else:
                means.append(y)
                weights.append(1.0)
                ends.append(x)
            while len(means) > 1 and means[-2] > means[-1]:
                w = weights[-2] + weights[-1]
                m = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
                means[-2:], weights[-2:], ends[-2:] = [m], [w], [ends[-1]]
        return cls(np.asarray(ends, dtype=np.float64), np.asarray(means, dtype=np.float64))

    def predict(self, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The calibrated probability of each score (the block it falls in; beyond the
        last block, the last block's)."""
        index = np.minimum(np.searchsorted(self.x, scores, side="left"), len(self.x) - 1)
        return self.y[index]


def expected_accuracy(p: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any] | None
                      ) -> tuple[float, float]:
    """(mean, standard error) of the accuracy expected from calibrated probabilities.
    ``p``: P(y = 1) with ``predicted`` (0/1) for binary, P(correct) without.

    >>> [round(v, 6) for v in expected_accuracy(np.array([0.9, 0.2]), np.array([1.0, 0.0]))]
    [0.85, 0.25]
    """
    c = p if predicted is None else np.where(predicted == 1.0, p, 1.0 - p)
    n = len(c)
    return float(c.mean()), float(math.sqrt(float((c * (1.0 - c)).sum())) / n)


def expected_roc_auc(scores: np.ndarray[Any, Any], p: np.ndarray[Any, Any]
                     ) -> tuple[float, float] | None:
    """(area, standard error) under the ROC curve expected from calibrated P(y = 1);
    equal scores are one step of the curve (a diagonal); None if every p is 0 or 1
    on one side only.

    >>> round(expected_roc_auc(np.array([0.1, 0.9]), np.array([0.0, 1.0]))[0], 6)
    1.0
    """
    order = np.argsort(-scores, kind="mergesort")
    s, q = scores[order], p[order]
    n1, n0 = float(q.sum()), float((1.0 - q).sum())
    if n1 <= 0.0 or n0 <= 0.0:
        return None
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of equal scores
    tpr = np.r_[0.0, np.cumsum(q)[last] / n1]
    fpr = np.r_[0.0, np.cumsum(1.0 - q)[last] / n0]
    a = float(np.trapezoid(tpr, fpr))
    q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return a, math.sqrt(max(var, 0.0))


class EstimatedPerformance:
    """CBPE for one classifier whose predictions carry probabilities (or scores).

    ``observe_outcome`` takes the model's joined outcomes (calibration, then
    reconciliation); ``observe_prediction`` its predictions (estimation, once
    calibrated). Both return ``(feature, stats)`` of the alerts they raise.
    """

    def __init__(self, task: ModelTask, settings: EstimateSettings,
                 provisional: bool = False) -> None:
        self.task = task
        self.settings = settings
        # Before any label (class probabilities only): probabilities at face value, the
        # first window the reference; replaced by a calibrated estimate once labels come.
        self.provisional = provisional
        self.calibration: IsotonicCalibration | None = None
        self._scores: list[float] = []  # calibration stretch: scores ...
        self._targets: list[float] = []  # ... and P(y=1) targets (binary) or correctness
        self._predicted: list[float] = []
        self.reference: dict[str, tuple[float, float]] = {}  # metric -> (value, its s.e.)
        self.reference_n = 0  # the predictions behind ``reference``
        self.window_scores: list[float] = []
        self.window_predicted: list[float] = []
        self.window_open = False  # seen from the start of the current window
        self.latest: dict[str, tuple[float, float]] = {}  # metric -> (estimate, s.e.)
        self.low: dict[str, bool] = {}  # an estimated_<metric> alert is standing
        self.seen = 0  # predictions estimated, for the alerts' n
        # reconciliation: sums over the current window of joined labels
        self._n = 0
        self._c = 0.0
        self._cc = 0.0
        self._right = 0.0
        self.apart = False  # a calibration alert is standing
        self.reconciled: tuple[float, float, float] | None = None  # estimate, realized, band

    @property
    def binary(self) -> bool:
        return self.task.task == BINARY

    def _score(self, prediction: Any) -> tuple[float, float] | None:
        """(score, predicted 0/1) of a prediction; None if it carries no probability."""
        task = self.task
        if isinstance(prediction, Mapping):
            if task.task == MULTICLASS:
                top = top_class(prediction)
                return None if top is None else (top[1], -1.0)
            p = task.positive_probability(prediction)
            return None if p is None else (p, float(p >= task.threshold))
        if task.task == BINARY and task.scores and is_number(prediction):
            s = float(prediction)
            return s, float(s >= task.threshold)
        return None

    # --- labels: calibration, then reconciliation -------------------------------------

    def observe_outcome(self, outcome: Outcome) -> list[tuple[str, dict[str, Any]]]:
        error, truth, score, predicted = outcome
        if math.isnan(score) or self.provisional:
            return []
        if self.calibration is None:
            self._scores.append(score)
            self._targets.append(truth if self.binary else 1.0 - error)
            self._predicted.append(predicted)
            if len(self._scores) >= self.settings.calibration_labels:
                self._calibrate()
            return []
        if not self.settings.reconcile:
            return []
        p = float(self.calibration.predict(np.array([score]))[0])
        c = (p if predicted == 1.0 else 1.0 - p) if self.binary else p
        self._n += 1
        self._c += c
        self._cc += c * (1.0 - c)
        self._right += 1.0 - error
        if self._n < self.settings.window:
            return []
        n = self._n
        estimate, realized = self._c / n, self._right / n
        ref_se = self.reference["accuracy"][1]
        band = self.settings.z * math.sqrt(self._cc / (n * n) + ref_se * ref_se)
        self._n, self._c, self._cc, self._right = 0, 0.0, 0.0, 0.0
        self.reconciled = (estimate, realized, band)
        if abs(estimate - realized) <= band:
            self.apart = False
            return []
        if self.apart:
            return []
        self.apart = True
        return [(CALIBRATION, {
            "before": {"estimated_accuracy": significant(estimate), "band": significant(band)},
            "after": {"accuracy": significant(realized), "n": n}})]

    def _calibrate(self) -> None:
        scores = np.asarray(self._scores, dtype=np.float64)
        targets = np.asarray(self._targets, dtype=np.float64)
        predicted = np.asarray(self._predicted, dtype=np.float64)
        self.calibration = IsotonicCalibration.fit(scores, targets)
        n = len(scores)
        realized = float((targets == predicted).mean()) if self.binary else float(targets.mean())
        self.reference["accuracy"] = (realized, math.sqrt(realized * (1 - realized) / n))
        self.reference_n = n
        if self.binary:
            auc = expected_roc_auc(scores, self.calibration.predict(scores))
            if auc is not None:
                self.reference["roc_auc"] = auc
        self._scores, self._targets, self._predicted = [], [], []

    # --- predictions: estimation ------------------------------------------------------

    def observe_prediction(self, prediction: Any, index: int
                           ) -> list[tuple[str, dict[str, Any]]]:
        """``index``: the prediction's number among its model's (from 0). Windows are
        fixed stretches of those numbers, so they fall on the same predictions whenever
        the labels that calibrate come (on the events or later on their own topic); a
        window this estimate did not see from its start, or that ended before the
        calibration, is not estimated."""
        window = self.settings.window
        if index % window == 0:
            self.window_scores, self.window_predicted = [], []
            self.window_open = True
        if not self.window_open:
            return []
        found = self._score(prediction)
        if found is not None:
            self.window_scores.append(found[0])
            self.window_predicted.append(found[1])
        if (index + 1) % window:
            return []
        self.window_open = False
        scores = np.asarray(self.window_scores, dtype=np.float64)
        predicted = np.asarray(self.window_predicted, dtype=np.float64)
        self.window_scores, self.window_predicted = [], []
        if (self.calibration is None and not self.provisional) or len(scores) < 2:
            return []
        self.seen += len(scores)
        p = scores if self.calibration is None else self.calibration.predict(scores)
        latest = {"accuracy": expected_accuracy(p, predicted if self.binary else None)}
        if self.binary:
            auc = expected_roc_auc(scores, p)
            if auc is not None:
                latest["roc_auc"] = auc
        self.latest = latest
        if self.provisional and not self.reference:
            self.reference = dict(latest)
            self.reference_n = len(scores)
            return []
        out = []
        margin, z = self.settings.margin, self.settings.z
        for metric, (value, se) in latest.items():
            ref = self.reference.get(metric)
            if ref is None:
                continue
            fell = ref[0] - value > margin and value + z * se < ref[0]
            if not fell:
                if ref[0] - value <= margin:
                    self.low[metric] = False
                continue
            if self.low.get(metric):
                continue
            self.low[metric] = True
            out.append((ESTIMATED_PREFIX + metric, {
                "before": {f"estimated_{metric}": significant(ref[0]), "n": self.reference_n},
                "after": {f"estimated_{metric}": significant(value),
                          "band": significant(z * se), "n": len(scores)}}))
        return out

    def values(self) -> dict[str, float]:
        """The latest window's estimates and their band's half-width (``<metric>_band``)."""
        out: dict[str, float] = {}
        for metric, (value, se) in self.latest.items():
            out[metric] = round(value, 6)
            out[metric + "_band"] = round(self.settings.z * se, 6)
        return out

