"""Concept drift: labels joined to predictions, outcomes fed to error-rate detectors.

Ground truth arrives late, on its own topic, in any order. ``LabelJoin`` keeps the
predictions of one input partition until their label comes (bounded in count and
in event time) and labels that came before their prediction (bounded too); every
label ends counted as one outcome:

- ``joined``: matched to its prediction; the outcome goes to the detectors;
- ``duplicate``: a second label for an event already joined;
- ``late``: its prediction had expired (waited ``max_wait_seconds`` or was pushed
  out by ``max_pending``) before the label came;
- ``orphan``: no prediction came for it within the same bounds (unknown event or
  model);
- ``expired`` counts predictions that never got a label.

An outcome is judged by the model's task, decided once per model
(``detectors/performance.py``: configured, or inferred from its first labelled
predictions): a 0/1 error for classifiers (binary or multiclass), an error magnitude
for regression (absolute or squared). 0/1 errors feed ADWIN (the default) or one of
river's binary detectors (DDM, EDDM, HDDM_A, HDDM_W): 0/1 is bounded, so ADWIN's bound
holds as is. Magnitudes feed a ``NumericMonitor`` (ADWIN and Page-Hinkley on the rank
of each error in a warm-up reference of errors), not ADWIN on raw errors: their tail
is the model's residual tail, and ADWIN's Hoeffding-style cut assumes values in a
known range (bench/quality_concept.py: ADWIN on raw |t(3)| errors raised 66 false
alarms per million labels, the ranks none).

Before labels arrive, ``detectors/estimated.py`` estimates performance from
calibrated probabilities (CBPE).

Everything is deterministic in the order of its input, bounded, and picklable.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift
from river.drift.binary import DDM, EDDM, HDDMA, HDDMW

from detectors.config import ConceptSettings
from detectors.estimated import CALIBRATION, ESTIMATED_PREFIX
from detectors.figures import significant
from detectors.monitors import NumericMonitor
from detectors.performance import PENDING_OUTCOMES, REGRESSION, Outcome, last_rows
from detectors.values import top_class

__all__ = ["CALIBRATION", "ERROR", "ERROR_RATE", "ESTIMATED_ACCURACY", "ESTIMATED_ROC_AUC",
           "OUTCOMES", "LabelBatch", "LabelJoin", "OutcomeMonitor", "needed"]

#: Feature names of concept-drift alerts.
ERROR_RATE = "error_rate"
ERROR = "error"
ESTIMATED_ACCURACY = ESTIMATED_PREFIX + "accuracy"
ESTIMATED_ROC_AUC = ESTIMATED_PREFIX + "roc_auc"

OUTCOMES = ("joined", "duplicate", "late", "orphan", "expired")


def _binary_detector(s: ConceptSettings) -> Any:
    if s.detector == "adwin":
        return drift.ADWIN(delta=s.drift_confidence)  # type: ignore[no-untyped-call]
    if s.detector == "ddm":
        return DDM()
    if s.detector == "eddm":
        return EDDM()
    if s.detector == "hddm_w":
        return HDDMW(drift_confidence=s.drift_confidence)  # type: ignore[no-untyped-call]
    return HDDMA(drift_confidence=s.drift_confidence)  # type: ignore[no-untyped-call]


@dataclass(slots=True)
class LabelBatch:
    """Labels as columns; ``positions`` map rows back to the caller's batch."""

    model_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    def append(self, model_id: str, event_id: str, label: Any, time: float | None,
               position: int) -> None:
        self.model_ids.append(model_id)
        self.event_ids.append(event_id)
        self.labels.append(label)
        self.times.append(time)
        self.positions.append(position)

    def __len__(self) -> int:
        return len(self.model_ids)


@dataclass(slots=True)
class ConceptSignal:
    """A concept-drift detection, at ``position`` of the caller's batch."""

    position: int
    model_id: str
    model_version: str | None
    feature: str
    detector: str
    stats: dict[str, Any]


class OutcomeMonitor:
    """The outcomes of one model (or model version), watched as its task says: the 0/1
    errors of a classifier, the error magnitudes of a regression."""

    def __init__(self, settings: ConceptSettings, task: str = "binary") -> None:
        self.settings = settings
        self.kind = "regression" if task == REGRESSION else "binary"
        self._binary: Any = None
        self._regression: NumericMonitor | None = None
        if self.kind == "binary":
            self._binary = _binary_detector(settings)
        else:
            self._regression = NumericMonitor(settings.regression, settings.warmup,
                                              settings.warmup, 1000)
        # The last ``recent_window`` outcome values as float64, oldest first, and those
        # that came since as floats (at most PENDING_OUTCOMES): 8 bytes a value, where a
        # deque of floats took ~32.
        self._rows: npt.NDArray[np.float64] = np.empty(0)
        self._pending: list[float] = []
        self.n = 0  # since the last alert
        self.errors = 0.0

    def _keep(self) -> None:
        """The pending values into the rows (the last ``recent_window`` of them)."""
        if self._pending:
            self._rows = last_rows(self._rows, self._pending, self.settings.recent_window)
            self._pending = []

    @property
    def recent(self) -> list[float]:
        """The last ``recent_window`` outcome values, oldest first."""
        self._keep()
        values: list[float] = self._rows.tolist()
        return values

    def update(self, outcomes: list[Outcome], positions: list[int]
               ) -> list[tuple[int, str, str, dict[str, Any]]]:
        """(position, feature, detector, stats) for each detection."""
        if self._regression is not None:
            squared = self.settings.regression_error == "squared"
            values = [o[0] * o[0] if squared else o[0] for o in outcomes]
            self._pending.extend(values)
            self._keep()
            return [(d.position, ERROR, d.detector, d.stats)
                    for d in self._regression.update(values, positions)]
        found: list[tuple[int, str, str, dict[str, Any]]] = []
        detector = self._binary
        pending = self._pending
        for o, position in zip(outcomes, positions, strict=True):
            value = o[0]
            detector.update(value)
            pending.append(value)  # per value: the stats below must not see later ones
            self.n += 1
            self.errors += value
            if detector.drift_detected:
                window = self.recent[-200:]
                pending = self._pending  # ``recent`` moved the values to the rows
                found.append((position, ERROR_RATE, self.settings.detector, {
                    "before": {"error_rate": significant(self.errors / self.n), "n": self.n},
                    "after": {"error_rate": significant(sum(window) / len(window)),
                              "n": len(window)}}))
                # A new baseline: river's binary detectors reset themselves on the next
                # update anyway; ADWIN would only drop the older part of its window.
                detector = self._binary = _binary_detector(self.settings)
                self.n, self.errors = 0, 0.0
        if len(self._pending) >= PENDING_OUTCOMES:
            self._keep()
        return found

    def rate(self) -> float | None:
        recent = self.recent
        return sum(recent) / len(recent) if recent else None


@dataclass(slots=True)
class _Pending:
    prediction: Any  # only what an outcome needs (``needed``)
    version: str | None
    time: float  # -inf: unknown, expires with the first watermark


@dataclass(slots=True)
class _Early:
    label: Any
    time: float


@dataclass
class LabelJoin:
    """Predictions waiting for labels and labels waiting for predictions, bounded.

    Time expiry looks at the oldest entries (in arrival order) only: one that arrived
    out of event-time order waits behind a newer one, never beyond ``max_pending``.

    >>> join = LabelJoin(ConceptSettings(max_wait_seconds=60.0))
    >>> join.add_prediction(("m", "e1"), 0.9, None, 100.0) is None  # stored, waits
    True
    >>> join.take(("m", "e1"), 1, 130.0).prediction, join.delays
    (0.9, [('m', 30.0)])
    >>> join.take(("m", "e2"), 0, 131.0)  # before its prediction: kept
    >>> join.add_prediction(("m", "e2"), 0.2, None, 125.0)  # joins the label kept
    0
    >>> join.take(("m", "e2"), 0, 140.0)  # once more
    >>> sorted(join.counts.items())
    [(('m', 'duplicate'), 1), (('m', 'joined'), 2)]
    """

    settings: ConceptSettings
    pending: OrderedDict[tuple[str, str], _Pending] = field(default_factory=OrderedDict)
    early: OrderedDict[tuple[str, str], _Early] = field(default_factory=OrderedDict)
    joined: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    expired: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    delays: list[tuple[str, float]] = field(default_factory=list)
    # Event time reached by the events and by the labels. Time expiry follows the slower
    # of the two: when one topic is read far ahead of the other (catching up a backlog),
    # predictions must not expire before the labels of their time have been read.
    events_time: float = -math.inf
    labels_time: float = -math.inf

    def count(self, model_id: str, what: str) -> None:
        key = (model_id, what)
        self.counts[key] = self.counts.get(key, 0) + 1

    def _remember(self, store: OrderedDict[tuple[str, str], None], key: tuple[str, str]
                  ) -> None:
        store[key] = None  # keys joined or expired lately, to tell duplicate/late from orphan
        if len(store) > max(10_000, self.settings.max_pending):
            store.popitem(last=False)

    def _join(self, key: tuple[str, str], prediction_time: float, label_time: float) -> None:
        self._remember(self.joined, key)
        self.count(key[0], "joined")
        if math.isfinite(prediction_time) and math.isfinite(label_time):
            self.delays.append((key[0], max(0.0, label_time - prediction_time)))

    def add_prediction(self, key: tuple[str, str], prediction: Any, version: str | None,
                       time: float | None) -> Any:
        """Store a prediction (as ``needed(prediction)``); returns the label that was
        waiting for it (joined now), or None."""
        if time is None:
            time = self.events_time
        elif time > self.events_time:
            self.advance(events=time)  # per event: where batches are cut changes nothing
        early = self.early.pop(key, None)
        if early is not None:
            self._join(key, time, early.time)
            return early.label
        if key in self.pending or key in self.joined:
            return None  # a replayed prediction: keep the first
        self.pending[key] = _Pending(needed(prediction), version, time)
        if len(self.pending) > self.settings.max_pending:
            old, _ = self.pending.popitem(last=False)
            self.count(old[0], "expired")
            self._remember(self.expired, old)
        return None

    def take(self, key: tuple[str, str], label: Any, time: float | None) -> _Pending | None:
        """The prediction a label joins, or None (then the label is counted or kept)."""
        if time is None:
            time = self.labels_time
        elif time > self.labels_time:
            self.advance(labels=time)
        found = self.pending.pop(key, None)
        if found is not None:
            self._join(key, found.time, time)
            return found
        if key in self.joined:
            self.count(key[0], "duplicate")
        elif key in self.expired:
            self.count(key[0], "late")
        elif key in self.early:
            self.count(key[0], "duplicate")
        else:
            self.early[key] = _Early(label, time)
            if len(self.early) > self.settings.max_early_labels:
                old, _ = self.early.popitem(last=False)
                self.count(old[0], "orphan")
        return None

    def advance(self, events: float | None = None, labels: float | None = None) -> None:
        """Move the event-time watermarks on and expire what waited longer than
        ``max_wait_seconds`` behind the slower of the two."""
        if events is not None and events > self.events_time:
            self.events_time = events
        if labels is not None and labels > self.labels_time:
            self.labels_time = labels
        horizon = min(self.events_time, self.labels_time) - self.settings.max_wait_seconds
        pending, early = self.pending, self.early
        while pending and next(iter(pending.values())).time < horizon:
            key, _ = pending.popitem(last=False)
            self.count(key[0], "expired")
            self._remember(self.expired, key)
        while early and next(iter(early.values())).time < horizon:
            key, _ = early.popitem(last=False)
            self.count(key[0], "orphan")

    def size(self) -> int:
        return len(self.pending) + len(self.early)


def needed(prediction: Any) -> Any:
    """What a stored prediction keeps: class probabilities shrink to their top class and
    its probability (enough for the outcome, a binary model's positive-class probability
    and the estimate's reconciliation), which keeps the join store and its snapshots
    small; scores and classes stay as they are.

    >>> needed({"cat": 0.7, "dog": 0.2, "cow": 0.1}), needed(0.8)
    ({'cat': 0.7}, 0.8)
    """
    if isinstance(prediction, Mapping):
        top = top_class(prediction)
        return None if top is None else {top[0]: top[1]}
    return prediction
