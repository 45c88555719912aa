"""Every model's outcomes: its task, its concept-drift detectors, its realized and its
estimated performance (one ``ModelOutcomes`` per bank, that is per input partition).

The bank walks its batches and the label join; this module judges each joined
(prediction, label) by the model's task (``performance.py``), feeds the outcome
detectors (``concept_drift.OutcomeMonitor``), the realized-performance windows and the
estimate (``estimated.py``). Detections come back as ``(row, model_id, model_version,
feature, detector, stats)`` with ``row`` the caller's batch row.

>>> from detectors.config import DetectorConfig
>>> outcomes = ModelOutcomes(DetectorConfig())
>>> fed = {}
>>> for row in range(100):
...     _ = outcomes.judge("m", None, row % 3, row % 3, row, fed)
>>> outcomes.feed(fed), outcomes.model_tasks()["m"]["task"]
([], 'multiclass')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import compress, repeat
from operator import is_not
from typing import Any

from detectors.concept_drift import OutcomeMonitor
from detectors.config import DetectorConfig
from detectors.estimated import EstimatedPerformance
from detectors.performance import (
    MULTICLASS,
    REGRESSION,
    ModelTask,
    RealizedPerformance,
    TaskDecision,
    infer_task,
    log,
)
from detectors.reference_file import ReferenceFile

#: A detection: (batch row, model_id, model_version, feature, detector, stats).
Found = tuple[int, str, str | None, str, str, dict[str, Any]]
#: Outcomes queued for the detectors, per (model, version or None): the model's task, the
#: outcomes, their batch rows and their model versions.
Fed = dict[tuple[str, str | None], tuple[str, list[Any], list[int], list[str | None]]]



class ModelOutcomes:
    """Tasks, outcome detectors, realized and estimated performance of every model."""

    def __init__(self, config: DetectorConfig, references: ReferenceFile | None = None
                 ) -> None:
        self.config = config
        self.references = references
        self.outcomes: dict[tuple[str, str | None], OutcomeMonitor] = {}
        self.tasks: dict[str, TaskDecision] = {}  # per model: its task, decided once
        self.performance: dict[tuple[str, str], RealizedPerformance] = {}  # (model, version)
        self.estimates: dict[str, EstimatedPerformance] = {}
        self.predictions: dict[str, int] = {}  # per model: predictions so far

    def forget(self, model_id: str) -> None:
        """Drops everything kept for one model (a retired model, ``capacity.py``)."""
        for key in [k for k in self.outcomes if k[0] == model_id]:
            del self.outcomes[key]
        for key in [k for k in self.performance if k[0] == model_id]:
            del self.performance[key]
        self.tasks.pop(model_id, None)
        self.estimates.pop(model_id, None)
        self.predictions.pop(model_id, None)

    def watching(self) -> bool:
        """Whether predictions without labels need a look each (an estimate runs, or a
        reference file has labelled predictions to calibrate one)."""
        return bool(self.estimates) or (self.references is not None
                                        and bool(self.references.labelled))

    def count(self, model_ids: Sequence[str], predictions: Sequence[Any]) -> None:
        """Count the (non-null) predictions of a batch nothing else looks at, in C: the
        estimate's windows are numbered by them."""
        counts = self.predictions
        for model_id, n in Counter(compress(model_ids, map(is_not, predictions,
                                                            repeat(None)))).items():
            counts[model_id] = counts.get(model_id, 0) + n

    def predicted(self, model_id: str, version: str | None, prediction: Any, row: int,
                  probabilities: bool) -> list[Found]:
        """A (non-null) prediction: counted, and estimated if its model is."""
        index = self.predictions.get(model_id, 0)
        self.predictions[model_id] = index + 1
        estimate = self.estimates.get(model_id)
        if estimate is None and self.references is not None and model_id not in self.tasks:
            estimate = self._from_reference(model_id)
        if estimate is None and probabilities and isinstance(prediction, Mapping):
            estimate = self._provisional(model_id)
        if estimate is None:
            return []
        detector = "cbpe"  # the estimate's alerts
        return [(row, model_id, version, feature, detector, stats)
                for feature, stats in estimate.observe_prediction(prediction, index)]

    def judge(self, model_id: str, version: str | None, prediction: Any, label: Any,
              row: int, fed: Fed) -> list[Found]:
        """One joined (prediction, label), judged by its model's task (the pairs that
        waited for the task to be decided are judged at this row): its outcome is queued
        for the detectors in ``fed``, added to the realized performance, and given to
        the estimate (calibration, reconciliation), whose alerts are returned."""
        decision = self.tasks.get(model_id)
        settings = self.config.concept
        if decision is None:
            if len(self.tasks) >= 10 * self.config.max_models:
                return []
            decision = self.tasks[model_id] = TaskDecision(
                model_id, self.config.for_model(model_id), settings.score_threshold,
                settings.infer_task_from, settings.max_classes)
        out: list[Found] = []
        for pred, truth, ver in decision.add(prediction, label, version):
            task = decision.task
            assert task is not None
            found = task.compare(pred, truth)
            if found is None:
                continue
            key = (model_id, ver if settings.per_version else None)
            entry = fed.setdefault(key, (task.task, [], [], []))
            entry[1].append(found)
            entry[2].append(row)
            entry[3].append(ver)
            self._realized(model_id, ver, task.task).add(found)
            estimate = self.estimates.get(model_id)
            if (estimate is None or estimate.provisional) and task.probabilistic \
                    and task.task != REGRESSION and settings.estimate.enabled:
                estimate = self.estimates[model_id] = EstimatedPerformance(
                    task, settings.estimate)
            if estimate is not None:
                detector = "cbpe"
                out.extend((row, model_id, ver, feature, detector, stats)
                           for feature, stats in estimate.observe_outcome(found))
        return out

    def feed(self, fed: Fed) -> list[Found]:
        """The queued outcomes to their detectors (one per model, or per model version)."""
        out: list[Found] = []
        for key, (task, values, rows, versions) in fed.items():
            monitor = self.outcomes.get(key)
            if monitor is None:
                if len(self.outcomes) >= 10 * self.config.max_models:
                    continue
                monitor = self.outcomes[key] = OutcomeMonitor(self.config.concept, task)
            for row, feature, detector, stats in monitor.update(values, rows):
                version = key[1] if key[1] is not None else versions[rows.index(row)]
                out.append((row, key[0], version, feature, detector, stats))
        return out

    def _from_reference(self, model_id: str) -> EstimatedPerformance | None:
        """A model with labelled predictions in the reference file: its task decided on
        them (unless configured) and its estimate calibrated on them, from its first
        prediction on."""
        assert self.references is not None
        pairs = self.references.labelled.get(model_id)
        settings = self.config.concept
        if not pairs or len(self.tasks) >= 10 * self.config.max_models:
            return None
        decision = self.tasks[model_id] = TaskDecision(
            model_id, self.config.for_model(model_id), settings.score_threshold,
            settings.infer_task_from, settings.max_classes)
        if decision.task is None:
            decision.task = infer_task(pairs[:settings.infer_task_from], decision.settings,
                                       settings.score_threshold, settings.max_classes)
            log.info("model %r: task %s inferred from the reference file: %s", model_id,
                     decision.task.task, decision.task.describe())
        task = decision.task
        if not (task.probabilistic and task.task != REGRESSION and settings.estimate.enabled):
            return None
        estimate = self.estimates[model_id] = EstimatedPerformance(task, settings.estimate)
        for prediction, label in pairs:
            found = task.compare(prediction, label)
            if found is not None:
                estimate.observe_outcome(found)
            if estimate.calibration is not None:
                break
        return estimate

    def _provisional(self, model_id: str) -> EstimatedPerformance | None:
        """Before its first labels, a model sending class probabilities is estimated with
        its probabilities at face value (``EstimatedPerformance``)."""
        settings = self.config.concept.estimate
        if (not settings.enabled or model_id in self.tasks
                or len(self.estimates) >= self.config.max_models):
            return None
        task = ModelTask(MULTICLASS, None, None, 0.5, False, True, "provisional")
        found = self.estimates[model_id] = EstimatedPerformance(task, settings, provisional=True)
        return found

    def _realized(self, model_id: str, version: str | None, task: str) -> RealizedPerformance:
        """The realized-performance window of (model, version); versions past
        ``max_versions`` of a model share the version ``other``."""
        key = (model_id, version or "")
        found = self.performance.get(key)
        if found is None:
            limit = self.config.concept.max_versions
            if sum(1 for m, _ in self.performance if m == model_id) >= limit:
                key = (model_id, "other")
                found = self.performance.get(key)
            if found is None:
                found = self.performance[key] = RealizedPerformance(
                    task, self.config.concept.recent_window)
        return found

    # --- readings (gauges) -------------------------------------------------------------

    def model_performance(self) -> dict[str, tuple[float | None, float | None]]:
        """Per model: rolling realized error rate (classifiers) and estimated accuracy."""
        out: dict[str, tuple[float | None, float | None]] = {}
        for (model_id, _version), monitor in self.outcomes.items():
            if monitor.kind == "binary" and model_id not in out:
                out[model_id] = (monitor.rate(), None)
        for model_id, estimate in self.estimates.items():
            value = estimate.values().get("accuracy")
            out[model_id] = (out.get(model_id, (None, None))[0], value)
        return out

    def realized_performance(self, changed_only: bool = False
                             ) -> list[tuple[str, str, dict[str, float]]]:
        """(model_id, model_version or "", metrics) of the last ``recent_window`` joined
        labels of each model version: accuracy, error_rate and, for binary models,
        precision, recall, roc_auc (classifiers); mae, rmse (regression). See
        ``performance.py``. Costs a sort of each window: ``changed_only`` reads only the
        versions with outcomes since their last reading."""
        return [(m, v, p.metrics()) for (m, v), p in self.performance.items()
                if p.changed or not changed_only]

    def estimated_performance(self) -> list[tuple[str, dict[str, float]]]:
        """(model_id, estimates) of the last complete window of predictions: accuracy,
        roc_auc (binary) and each one's band half-width (``<metric>_band``)."""
        return [(m, e.values()) for m, e in self.estimates.items() if e.latest]

    def model_tasks(self) -> dict[str, dict[str, Any]]:
        """model_id -> its task (``ModelTask.describe``), for the models decided so far."""
        return {m: d.task.describe() for m, d in self.tasks.items() if d.task is not None}
