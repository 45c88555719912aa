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

An outcome is an error indicator for classes (a class, a class-probability object
or a score thresholded at ``score_threshold`` against the label) or an error
magnitude for regression (absolute or squared). Binary outcomes feed ADWIN (the
default) or one of river's binary detectors (DDM, EDDM, HDDM_A, HDDM_W): 0/1 is bounded,
so ADWIN's bound holds as is. Magnitudes feed a ``NumericMonitor`` (ADWIN and
Page-Hinkley on the rank of each error in a warm-up reference of errors), not ADWIN on
raw errors: their tail is the model's residual tail, and ADWIN's Hoeffding-style cut
assumes values in a known range (bench/quality_concept.py: ADWIN on raw |t(3)| errors
raised 66 false alarms per million labels, the ranks none).

Before labels arrive, class probabilities give an estimated accuracy: the mean
top-class probability (the expected accuracy of calibrated probabilities). It is
tracked per model and an ADWIN on the top probability raises a ``concept_drift``
alert (feature ``estimated_accuracy``) when it falls.

Everything is deterministic in the order of its input, bounded, and picklable.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from river import drift
from river.drift.binary import DDM, EDDM, HDDMA, HDDMW

from detectors.config import AdwinSettings, ConceptSettings
from detectors.figures import significant
from detectors.monitors import Adwin, NumericMonitor
from detectors.values import is_number, top_class

#: Feature names of concept-drift alerts.
ERROR_RATE = "error_rate"
ERROR = "error"
ESTIMATED_ACCURACY = "estimated_accuracy"

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


def _category(v: object) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is float and v.is_integer():
        return str(int(v))
    return str(v)


def outcome(prediction: Any, label: Any, settings: ConceptSettings
            ) -> tuple[str, float] | None:
    """("binary", 0/1 error) or ("regression", error magnitude); None if not comparable.

    >>> s = ConceptSettings()
    >>> outcome({"cat": 0.7, "dog": 0.3}, "dog", s), outcome(0.8, 1, s), outcome(0.8, False, s)
    (('binary', 1.0), ('binary', 0.0), ('binary', 1.0))
    >>> outcome(10.0, 12.5, s), outcome("churn", "churn", s)
    (('regression', 2.5), ('binary', 0.0))
    """
    if prediction is None or label is None:
        return None
    if isinstance(prediction, Mapping):
        top = top_class(prediction)
        return None if top is None else ("binary", float(top[0] != _category(label)))
    if is_number(prediction) and not isinstance(prediction, bool):
        if isinstance(label, bool) or label in (0, 1):
            predicted = prediction >= settings.score_threshold
            return "binary", float(predicted != bool(label))
        if is_number(label) and not isinstance(label, bool):
            diff = float(prediction) - float(label)
            squared = settings.regression_error == "squared"
            return "regression", diff * diff if squared else abs(diff)
    return "binary", float(_category(prediction) != _category(label))


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
    """The outcomes of one model (or model version)."""

    def __init__(self, settings: ConceptSettings) -> None:
        self.settings = settings
        self.kind: str | None = None  # "binary" or "regression", from the first outcome
        self._binary: Any = None
        self._regression: NumericMonitor | None = None
        self.recent: deque[float] = deque(maxlen=settings.recent_window)
        self.n = 0  # since the last alert
        self.errors = 0.0

    def update(self, kind: str, values: list[float], positions: list[int]
               ) -> list[tuple[int, str, str, dict[str, Any]]]:
        """(position, feature, detector, stats) for each detection."""
        if self.kind is None:
            self.kind = kind
            if kind == "binary":
                self._binary = _binary_detector(self.settings)
            else:
                s = self.settings
                self._regression = NumericMonitor(s.regression, s.warmup, s.warmup, 1000)
        if kind != self.kind:
            return []  # a model whose labels change type: only its first type is watched
        if self._regression is not None:
            self.recent.extend(values)
            return [(d.position, ERROR, d.detector, d.stats)
                    for d in self._regression.update(values, positions)]
        found: list[tuple[int, str, str, dict[str, Any]]] = []
        detector = self._binary
        recent = self.recent
        for value, position in zip(values, positions, strict=True):
            detector.update(value)
            recent.append(value)  # per value: the stats below must not see later ones
            self.n += 1
            self.errors += value
            if detector.drift_detected:
                window = list(self.recent)[-min(len(self.recent), 200):]
                found.append((position, ERROR_RATE, self.settings.detector, {
                    "before": {"error_rate": significant(self.errors / self.n), "n": self.n},
                    "after": {"error_rate": significant(sum(window) / len(window)),
                              "n": len(window)}}))
                # A new baseline: river's binary detectors reset themselves on the next
                # update anyway; ADWIN would only drop the older part of its window.
                detector = self._binary = _binary_detector(self.settings)
                self.n, self.errors = 0, 0.0
        return found

    def rate(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None


class EstimatedAccuracy:
    """Mean top-class probability of recent predictions, and an ADWIN on it."""

    def __init__(self, settings: AdwinSettings, window: int) -> None:
        self.settings = settings
        self.adwin = Adwin(settings)
        self.recent: deque[float] = deque(maxlen=window)

    def update(self, tops: list[float], positions: list[int]
               ) -> list[tuple[int, str, str, dict[str, Any]]]:
        self.recent.extend(tops)
        if not self.settings.enabled:
            return []
        found: list[tuple[int, str, str, dict[str, Any]]] = []
        adwin = self.adwin
        for top, position in zip(tops, positions, strict=True):
            before, width = adwin.estimation, adwin.width
            if adwin.update(top):
                after = adwin.estimation
                if after < before:  # a fall of expected accuracy; a rise is no alarm
                    found.append((position, ESTIMATED_ACCURACY, "adwin", {
                        "before": {"estimated_accuracy": significant(before), "n": width},
                        "after": {"estimated_accuracy": significant(after),
                                  "n": adwin.width}}))
                    adwin = self.adwin = Adwin(self.settings)  # a new baseline
        return found

    def value(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None


@dataclass(slots=True)
class _Pending:
    prediction: Any  # only what ``outcome`` needs: a score, a class, the top class
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
    """What a stored prediction keeps: class probabilities shrink to their top class
    (``outcome`` compares nothing else), which keeps the join store and its snapshots
    small; scores and classes stay as they are.

    >>> needed({"cat": 0.7, "dog": 0.3}), needed(0.8)
    ('cat', 0.8)
    """
    if isinstance(prediction, Mapping):
        top = top_class(prediction)
        return None if top is None else top[0]
    return prediction
