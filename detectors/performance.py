"""The task of a model, decided once, and its realized performance on joined labels.

A model is ``binary``, ``multiclass`` or ``regression``: configured
(``detectors.models.<model_id>``, or the ``default`` entry) or, where nothing is
configured, inferred once from its first ``detectors.concept.infer_task_from``
(prediction, label) pairs (``infer_task``) and then fixed. Every later outcome is
judged by that task, so how a label is compared never depends on where batches are
cut or on what the first label happened to be.

Class values are compared by name after one normalization (``class_name``):
booleans are ``1``/``0``, integral numbers their integer (``1.0`` is ``1``), numeric
strings as the number they spell (``"1"``, ``"1.0"``, ``" 1 "`` are ``1``),
``"true"``/``"false"`` in any case ``1``/``0``; other strings are themselves.

An outcome is a plain tuple ``(error, truth, score, predicted)``:

- classification: ``error`` 0/1; binary: ``truth`` and ``predicted`` 1 for the
  positive class, 0 otherwise, ``score`` the positive class's probability or score
  (NaN for a hard class); multiclass: ``truth`` and ``predicted`` -1, ``score`` the top
  class's probability (NaN for a hard class);
- regression: ``error`` the absolute error, ``truth`` the label, ``score`` the
  prediction, ``predicted`` 0.

Realized metrics follow scikit-learn's definitions (accuracy, precision, recall, ROC
AUC as the Mann-Whitney statistic with mid-ranks for ties, MAE, RMSE).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.config import ModelTaskSettings
from detectors.values import is_number, top_class

log = logging.getLogger("streamdrift.detectors")

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)

Outcome = tuple[float, float, float, float]
#: Outcomes a ``RealizedPerformance`` takes as tuples before it moves them to its rows.
PENDING_OUTCOMES = 64


def last_rows(rows: npt.NDArray[np.float64], new: npt.ArrayLike, window: int
              ) -> npt.NDArray[np.float64]:
    """``rows`` then ``new`` (float64, along the first axis), the last ``window`` of them,
    in an array of their own: a slice of the joined ones would keep all of them alive.

    >>> last_rows(np.array([1.0, 2.0]), [3.0, 4.0], 3).tolist()
    [2.0, 3.0, 4.0]
    """
    joined = np.concatenate((rows, np.asarray(new, dtype=np.float64)))
    kept: npt.NDArray[np.float64] = joined[max(joined.shape[0] - window, 0):].copy()
    return kept


def class_name(v: Any) -> str | None:
    """The class a prediction or label value names (the module's normalization rule);
    None for null, NaN, infinities and containers.

    >>> [class_name(v) for v in (True, 1, "1", 1.0, " 1.0 ", "TRUE")]
    ['1', '1', '1', '1', '1', '1']
    >>> [class_name(v) for v in (False, 0, "0", 2.5, "cat", None, float("nan"))]
    ['0', '0', '0', '2.5', 'cat', None, None]
    """
    if v is None:
        return None
    if isinstance(v, bool | np.bool_):
        return "1" if v else "0"
    if type(v) is int:
        return str(v)
    if is_number(v):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(v, str):
        s = v.strip()
        low = s.lower()
        if low in ("true", "false"):
            return "1" if low == "true" else "0"
        try:
            f = float(s)
        except ValueError:
            return s
        return class_name(f) if math.isfinite(f) else s
    return None


def as_number(v: Any) -> float | None:
    """A regression value: a finite number or a numeric string; None otherwise (booleans
    included).

    >>> as_number(2), as_number(" 2.5"), as_number(True), as_number("x")
    (2.0, 2.5, None, None)
    """
    if is_number(v):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _fractional(v: Any) -> bool:
    return is_number(v) and not float(v).is_integer()


@dataclass(slots=True)
class ModelTask:
    """How one model's predictions are compared with labels (see the module docstring).

    ``scores``: a numeric prediction of a binary model is a score, positive at or above
    ``threshold`` (the classes are ``1``/``0``); ``probabilistic``: predictions carry
    probabilities or scores (estimated performance is possible).

    >>> t = ModelTask(BINARY, "1", "0", 0.5, True, True, "config")
    >>> t.compare(0.8, 1), t.compare(True, "0"), t.compare({"0": 0.3, "1": 0.7}, 1.0)
    ((0.0, 1.0, 0.8, 1.0), (1.0, 0.0, nan, 1.0), (0.0, 1.0, 0.7, 1.0))
    >>> m = ModelTask(MULTICLASS, None, None, 0.5, False, False, "inferred")
    >>> m.compare(2, 1), m.compare("1", 1.0)
    ((1.0, -1.0, nan, -1.0), (0.0, -1.0, nan, -1.0))
    >>> ModelTask(REGRESSION, None, None, 0.5, False, True, "inferred").compare(1.5, 3)
    (1.5, 3.0, 1.5, 0.0)
    """

    task: str
    positive: str | None
    negative: str | None
    threshold: float
    scores: bool
    probabilistic: bool
    source: str  # "config" or "inferred"

    def compare(self, prediction: Any, label: Any) -> Outcome | None:
        """The outcome of one (prediction, label) pair; None if they cannot be compared."""
        if prediction is None or label is None:
            return None
        if self.task == REGRESSION:
            p, y = as_number(prediction), as_number(label)
            if p is None or y is None:
                return None
            return abs(p - y), y, p, 0.0
        truth = class_name(label)
        if truth is None:
            return None
        if self.task == MULTICLASS:
            score = math.nan
            if isinstance(prediction, Mapping):
                top = top_class(prediction)
                if top is None:
                    return None
                predicted, score = class_name(top[0]), top[1]
            else:
                predicted = class_name(prediction)
            if predicted is None:
                return None
            return float(predicted != truth), -1.0, score, -1.0
        y = 1.0 if truth == self.positive else 0.0
        if isinstance(prediction, Mapping):
            p = self.positive_probability(prediction)
            if p is None:
                return None
            positive = p >= self.threshold
            return float(positive != (y == 1.0)), y, p, float(positive)
        if self.scores and is_number(prediction):
            s = float(prediction)
            positive = s >= self.threshold
            return float(positive != (y == 1.0)), y, s if self.probabilistic else math.nan, \
                float(positive)
        name = class_name(prediction)
        if name is None:
            return None
        positive = name == self.positive
        return float(positive != (y == 1.0)), y, math.nan, float(positive)

    def positive_probability(self, probabilities: Mapping[str, Any]) -> float | None:
        """The positive class's probability in class probabilities (one minus the other
        class's when only that one is given, as the join store keeps the top class only).
        """
        other = None
        for cls, p in probabilities.items():
            if not is_number(p):
                continue
            if class_name(cls) == self.positive:
                return float(p)
            other = 1.0 - float(p)
        return other

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "positive_class": self.positive, "threshold": self.threshold,
                "scores": self.scores, "source": self.source}


def configured_task(settings: ModelTaskSettings, default_threshold: float) -> ModelTask | None:
    """The task a config entry fixes, or None when it leaves the task to inference."""
    if settings.task is None:
        return None
    threshold = default_threshold if settings.threshold is None else settings.threshold
    positive = class_name(settings.positive_class) if settings.positive_class is not None \
        else "1"
    negative = "0" if positive == "1" else None
    # numbers are scores unless the classes themselves are other numbers (1 and 2, say)
    scores = settings.task == BINARY and (positive in ("0", "1") or as_number(positive) is None)
    return ModelTask(settings.task, positive if settings.task == BINARY else None,
                     negative if settings.task == BINARY else None, threshold, scores, True,
                     "config")


def infer_task(pairs: Sequence[tuple[Any, Any]], settings: ModelTaskSettings,
               default_threshold: float, max_classes: int) -> ModelTask:
    """The task of a model from its first (prediction, label) pairs (both not null).

    - class probabilities: binary with at most two classes (labels and top classes),
      else multiclass;
    - a fractional number among the predictions: binary scores if every prediction is
      in [0, 1] and the labels name at most two classes; else regression if the labels
      are numbers;
    - otherwise (booleans, integers, strings): regression if predictions and labels are
      all numbers spanning more than ``max_classes`` values; binary with at most two
      classes; multiclass beyond.

    The positive class is ``settings.positive_class``, else ``1`` if seen (or no
    class was seen), else the rarer label (the larger name on a tie).

    >>> s = ModelTaskSettings()
    >>> infer_task([(0.3, 0), (0.8, 1)], s, 0.5, 20).task
    'binary'
    >>> infer_task([(2, 1), (0, 0), (1, 1)], s, 0.5, 20).task
    'multiclass'
    >>> infer_task([(1.4, 0), (2.2, 3), (0.7, 1)], s, 0.5, 20).task
    'regression'
    >>> t = infer_task([(True, 0), (False, 1)], s, 0.5, 20)
    >>> t.task, t.positive, t.scores, t.probabilistic
    ('binary', '1', True, False)
    """
    threshold = default_threshold if settings.threshold is None else settings.threshold
    preds = [p for p, _ in pairs]
    labels = [y for _, y in pairs]
    label_classes = [c for c in map(class_name, labels) if c is not None]
    probabilities = any(isinstance(p, Mapping) for p in preds)
    fractional = not probabilities and any(map(_fractional, preds))
    task: str
    if probabilities:
        # top classes only: a prediction waiting for its label on the labels topic keeps
        # no more (``concept_drift.needed``), and both paths must decide alike
        tops = [top_class(p) for p in preds if isinstance(p, Mapping)]
        keys = {class_name(t[0]) for t in tops if t is not None}
        classes = set(label_classes) | {k for k in keys if k is not None}
        task = BINARY if len(classes) <= 2 else MULTICLASS
    elif fractional:
        unit = all(is_number(p) and 0.0 <= float(p) <= 1.0 for p in preds)
        numeric_labels = all(as_number(y) is not None and not isinstance(y, bool)
                             for y in labels)
        if unit and (set(label_classes) <= {"0", "1"} or len(set(label_classes)) <= 2):
            task = BINARY
        elif numeric_labels:
            task = REGRESSION
        else:
            task = MULTICLASS
        classes = set(label_classes)
    else:
        classes = set(label_classes) | {c for c in map(class_name, preds) if c is not None}
        numbers = all(is_number(v) for v in (*preds, *labels))
        if numbers and len(classes) > max_classes:
            task = REGRESSION
        else:
            task = BINARY if len(classes) <= 2 else MULTICLASS
    positive = negative = None
    if task == BINARY:
        if settings.positive_class is not None:
            positive = class_name(settings.positive_class)
        elif "1" in classes or not classes:
            positive = "1"
        else:
            counts = {c: label_classes.count(c) for c in classes}
            positive = min(sorted(classes, reverse=True), key=counts.__getitem__)
        rest = sorted(classes - {positive})
        negative = "0" if positive == "1" else (rest[0] if rest else None)
    scores = task == BINARY and (fractional or (positive == "1" and negative in ("0", None)))
    return ModelTask(task, positive, negative, threshold, scores,
                     probabilities or fractional, "inferred")


class TaskDecision:
    """The task of one model: fixed by config at once, or inferred from its first
    ``size`` (prediction, label) pairs, which wait here (``waiting``) until then."""

    def __init__(self, model_id: str, settings: ModelTaskSettings, default_threshold: float,
                 size: int, max_classes: int) -> None:
        self.model_id = model_id
        self.settings = settings
        self.default_threshold = default_threshold
        self.size = size
        self.max_classes = max_classes
        self.task = configured_task(settings, default_threshold)
        self.waiting: list[tuple[Any, Any, str | None]] = []

    def add(self, prediction: Any, label: Any, version: str | None
            ) -> list[tuple[Any, Any, str | None]]:
        """The pairs to judge now, in order: this one once the task is known, all the
        waiting ones when this pair decides it, none while it is undecided."""
        if self.task is not None:
            return [(prediction, label, version)]
        if prediction is None or label is None:
            return []
        self.waiting.append((prediction, label, version))
        if len(self.waiting) < self.size:
            return []
        self.task = infer_task([(p, y) for p, y, _ in self.waiting], self.settings,
                               self.default_threshold, self.max_classes)
        log.info("model %r: task %s inferred from its first %d labels: %s", self.model_id,
                 self.task.task, len(self.waiting), self.task.describe())
        waiting, self.waiting = self.waiting, []
        return waiting


class RealizedPerformance:
    """Realized metrics of the last ``window`` outcomes of one model (or model version).

    >>> r = RealizedPerformance(BINARY, 10)
    >>> for o in [(0., 1., .9, 1.), (1., 0., .6, 1.), (0., 0., .2, 0.), (1., 1., .4, 0.)]:
    ...     r.add(o)
    >>> r.metrics()
    {'accuracy': 0.5, 'error_rate': 0.5, 'precision': 0.5, 'recall': 0.5, 'roc_auc': 0.75}
    >>> g = RealizedPerformance(REGRESSION, 10)
    >>> for o in [(1.0, 3.0, 2.0, 0.0), (3.0, 0.0, 3.0, 0.0)]:
    ...     g.add(o)
    >>> g.metrics()
    {'mae': 2.0, 'rmse': 2.236068}
    """

    def __init__(self, task: str, window: int) -> None:
        self.task = task
        self.window = window
        # The last ``window`` outcomes as rows of float64, oldest first, and those added
        # since, as tuples (at most ``PENDING_OUTCOMES``): 32 bytes an outcome, where a
        # deque of 4-tuples of floats took ~150 (a labelled model's 1,000: 149 KiB).
        self._rows: npt.NDArray[np.float64] = np.empty((0, 4))
        self._pending: list[Outcome] = []
        self.changed = False  # outcomes added since ``metrics`` was last read

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        if len(self._pending) >= PENDING_OUTCOMES:
            self._flush()
        self.changed = True

    def _flush(self) -> None:
        if self._pending:
            self._rows = last_rows(self._rows, self._pending, self.window)
            self._pending = []

    @property
    def recent(self) -> npt.NDArray[np.float64]:
        """The last ``window`` outcomes, oldest first: shape (n, 4), float64 (error,
        truth, score, predicted: ``ModelTask.compare``)."""
        self._flush()
        return self._rows

    def metrics(self) -> dict[str, float]:
        self.changed = False
        a = self.recent
        if not a.size:
            return {}
        error = a[:, 0]
        if self.task == REGRESSION:
            return {"mae": round(float(error.mean()), 6),
                    "rmse": round(float(np.sqrt((error * error).mean())), 6)}
        out = {"accuracy": round(1.0 - float(error.mean()), 6),
               "error_rate": round(float(error.mean()), 6)}
        if self.task != BINARY:
            return out
        truth, score, predicted = a[:, 1] == 1.0, a[:, 2], a[:, 3] == 1.0
        if predicted.any():
            out["precision"] = round(float((truth & predicted).sum() / predicted.sum()), 6)
        if truth.any():
            out["recall"] = round(float((truth & predicted).sum() / truth.sum()), 6)
        scored = ~np.isnan(score)
        if scored.all():
            auc = roc_auc(truth, score)
            if auc is not None:
                out["roc_auc"] = round(auc, 6)
        return out


def roc_auc(truth: np.ndarray[Any, Any], score: np.ndarray[Any, Any]) -> float | None:
    """Area under the ROC curve: the Mann-Whitney U over positives x negatives, ties
    counted one half (Hanley & McNeil 1982); None without both classes.

    >>> roc_auc(np.array([True, False, True]), np.array([0.9, 0.5, 0.5]))
    0.75
    """
    n1 = int(truth.sum())
    n0 = len(truth) - n1
    if n1 == 0 or n0 == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # mid-ranks: each run of equal scores gets the mean of its positions (1-based)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mid = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mid, ends - starts)
    u = ranks[truth].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n1 * n0))
