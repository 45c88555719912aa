"""DetectorBank: every monitor of one stream of events, updated column by column.

The bank is pure: no Kafka, no clock. The run loop keeps one bank per input
partition (so state moves with its partition); a notebook keeps one for a
list of events (see ``detect``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, itemgetter, le, methodcaller
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.attribution import attribute, recent_values
from detectors.capacity import Capacity
from detectors.concept_drift import LabelBatch, LabelJoin, OutcomeMonitor
from detectors.config import DetectorConfig, FeatureSettings
from detectors.estimated import EstimatedPerformance
from detectors.frames import as_events, warn_warming_up
from detectors.monitors import (
    BudgetSplit,
    CategoricalMonitor,
    Detection,
    MissingMonitor,
    NumericMonitor,
    Policy,
    Split,
)
from detectors.multivariate import MULTIVARIATE, MultivariateMonitor
from detectors.outcomes import Fed, Found, ModelOutcomes
from detectors.reference import CategoricalReference, NumericReference, NumericSeed, Seed
from detectors.reference_file import ReferenceFile, load_reference_file
from detectors.seasonal import SeasonalReference
from detectors.segments import SegmentRouter, budget_groups
from detectors.values import (
    CONFIDENCE,
    PREDICTION,
    FeatureValue,
    event_time,
    top_class,
)
from detectors.values import category as _category
from detectors.values import is_missing as _is_missing
from detectors.values import is_number as _is_number

__all__ = ["CONFIDENCE", "PREDICTION", "DetectorBank", "DriftSignal", "EventBatch",
           "FeatureValue", "detect"]


@dataclass(slots=True)
class EventBatch:
    """Validated events as columns; ``positions`` map rows back to the caller's batch."""

    model_ids: list[str] = field(default_factory=list)
    model_versions: list[str | None] = field(default_factory=list)
    features: list[Mapping[str, FeatureValue]] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    # For concept drift: the event's id, event time (epoch seconds) and label, if known.
    event_ids: list[str | None] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)

    def append(self, model_id: str, model_version: str | None,
               features: Mapping[str, FeatureValue], prediction: Any, position: int,
               event_id: str | None = None, time: float | None = None,
               label: Any = None) -> None:
        self.model_ids.append(model_id)
        self.model_versions.append(model_version)
        self.features.append(features)
        self.predictions.append(prediction)
        self.positions.append(position)
        self.event_ids.append(event_id)
        self.times.append(time)
        self.labels.append(label)

    def __len__(self) -> int:
        return len(self.model_ids)


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """A detection, tied to the batch row (``position``) whose value fired it."""

    position: int
    model_id: str
    model_version: str | None
    feature: str
    kind: str
    detector: str
    stats: dict[str, Any]
    segment: tuple[str, str] | None = None  # (segment feature, value); None: all traffic


#: Present values that decide a live series' kind (numeric or categorical) by majority.
TYPE_VOTES = 20


class BankSettings:
    """The settings objects that every series of a bank shares: one ``Policy`` and one
    ``FeatureSettings`` per feature override (one for all the others). A series then
    holds references, not copies: less memory per series, fewer objects per snapshot."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.policy = Policy(config.anchored, config.calibration, config.min_effect,
                             config.seasonality)
        self._features: dict[str, FeatureSettings] = {}  # those with an override
        self._default: FeatureSettings | None = None  # every other feature's

    def feature(self, name: str) -> FeatureSettings:
        """``DetectorConfig.for_feature(name)``, made once."""
        if name not in self.config.features:
            if self._default is None:
                self._default = self.config.for_feature(name)
            return self._default
        found = self._features.get(name)
        if found is None:
            found = self._features[name] = self.config.for_feature(name)
        return found


class SeriesMonitor:
    """One (model, feature) series: its value monitor (numeric or categorical) and its
    missing-rate monitor.

    The kind is decided once, by the majority of the first ``TYPE_VOTES`` present
    values (a reference file's seed decides it at once), so one stray string in a
    numeric feature does not turn it categorical. Until then a provisional monitor of
    the first value's kind runs and the missing-rate monitor counts only nulls; if the
    vote goes the other way, a fresh monitor of the right kind starts after the
    deciding value. After that, a value of the other kind counts as missing and is
    counted in ``mistyped``.
    """

    def __init__(self, name: str, kind: str, config: DetectorConfig,
                 seed: Seed | None = None, shared: BankSettings | None = None) -> None:
        self.name = name
        self.kind = kind
        self.config = config
        shared = shared or BankSettings(config)
        self.settings = shared.feature(name)
        self.policy = shared.policy
        # With a seed from the reference file: its type and reference, no warm-up.
        self.values: NumericMonitor | CategoricalMonitor | None = (
            None if seed is None else self._create(isinstance(seed, NumericSeed), seed))
        self.missing = MissingMonitor(self.settings.missing or config.missing)
        self._votes = [0, 0]  # numbers, other present values, while the kind is undecided
        self._decided = seed is not None
        self.mistyped = 0  # present values of the other kind, once decided
        self.reported_mistyped = 0  # of them, drained by ``DetectorBank.drain_mistyped``
        self._alerted = False
        self._seen = 0  # rows fed so far (the cooldown counts them)
        self._quiet_until = 0  # the cooldown: no alert before this row
        self.suppressed = 0  # detections the cooldown dropped

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def cooling_down(self) -> bool:
        """True between an alert and the end of the new reference's warm-up, or of
        ``detectors.cooldown``, whichever comes later."""
        return self._seen < self._quiet_until or (
            self.values is not None and self.values.warming_up and self._alerted)

    def _create(self, numeric: bool, seed: Seed | None = None
                ) -> NumericMonitor | CategoricalMonitor:
        cfg = self.config
        if numeric:
            ref: NumericReference | SeasonalReference | None = None
            if isinstance(seed, NumericSeed):
                ref = NumericReference.summarizing(seed.values, cfg.warmup)
                season, times = cfg.seasonality, seed.times
                if season is not None and times is not None and not np.isnan(times).any():
                    ref = SeasonalReference.fit(seed.values, times, season, cfg.warmup)
            return NumericMonitor(self.settings.numeric or cfg.numeric, cfg.warmup,
                                  cfg.warmup_after_alert, cfg.recent_window, ref, self.policy)
        settings = self.settings.categorical or cfg.categorical
        categories = None if seed is None or isinstance(seed, NumericSeed) else (
            CategoricalReference(seed.counts, seed.total, settings.max_categories))
        return CategoricalMonitor(settings, cfg.warmup, cfg.warmup_after_alert,
                                  cfg.recent_window, categories, self.policy)

    def _vote(self, column: Sequence[FeatureValue]) -> int:
        """Count votes in ``column``; the index after the deciding value (the column's
        length while undecided). Creates the provisional monitor, and the decided one."""
        votes = self._votes
        for i, v in enumerate(column):
            if _is_missing(v):
                continue
            numeric = _is_number(v)
            if self.values is None:
                self.values = self._create(numeric)
            votes[0 if numeric else 1] += 1
            if votes[0] + votes[1] >= TYPE_VOTES:
                self._decided = True
                wanted = votes[0] >= votes[1]
                if wanted != isinstance(self.values, NumericMonitor):
                    self._switch_to = wanted
                return i + 1
        return len(column)

    _switch_to: bool | None = None

    def update(self, column: Sequence[FeatureValue], rows: Sequence[int],
               split: Split | None = None,
               times: Sequence[float | None] | None = None) -> list[Detection]:
        found: list[Detection] = []
        if not self._decided:
            cut = self._vote(column)
            found = self._feed(column[:cut], rows[:cut], split,
                               None if times is None else times[:cut], typed=self._decided)
            if self._switch_to is not None:
                self.values = self._create(self._switch_to)
                self._switch_to = None
            column, rows = column[cut:], rows[cut:]
            times = None if times is None else times[cut:]
            if not len(column):
                return found
        found.extend(self._feed(column, rows, split, times, typed=True))
        found.sort(key=attrgetter("position"))  # stable: missing first on a tie
        return found

    def _feed(self, column: Sequence[FeatureValue], rows: Sequence[int], split: Split | None,
              times: Sequence[float | None] | None, typed: bool) -> list[Detection]:
        values = self.values
        if isinstance(values, NumericMonitor):
            present, invalid = _numeric_column(column)  # invalid: null or the other kind
        else:
            present, invalid = _categorical_column(column)
        missing = invalid
        if invalid.any():
            nulls = np.fromiter(map(_is_missing, column), dtype=bool, count=len(column))
            if typed:
                self.mistyped += int((invalid & ~nulls).sum())
            else:
                missing = nulls  # the kind is undecided: only nulls are missing yet
        if not len(rows):
            found = []
        elif invalid.any():
            found = self.missing.update(missing, rows, split)
        else:
            found = self.missing.update_present(len(rows), rows, split)
        if values is not None and len(present):
            keep = ~invalid
            present_rows = np.asarray(rows)[keep].tolist() if invalid.any() else rows
            present_times = None
            if times is not None and self.config.seasonality is not None:
                present_times = [t for t, k in zip(times, keep.tolist(), strict=True) if k]
            hits = values.update(present, present_rows, split, present_times)
            if hits:
                self._alerted = True
            elif not values.warming_up:
                self._alerted = False
            found.extend(hits)
        if found and self.config.cooldown:
            found = self._cool_down(found, rows)
        self._seen += len(rows)
        return found

    def _cool_down(self, found: list[Detection], rows: Sequence[int]) -> list[Detection]:
        """Drop the detections within ``cooldown`` rows of the series' last alert."""
        kept = []
        for d in sorted(found, key=attrgetter("position")):  # stable: missing first on a tie
            row = self._seen + bisect_left(rows, d.position)
            if row < self._quiet_until:
                self.suppressed += 1
                continue
            kept.append(d)
            self._quiet_until = row + 1 + self.config.cooldown
        return kept


_NUMBER_TYPES = frozenset((float, int))


def _numeric_column(column: Sequence[FeatureValue]) -> tuple[Any, npt.NDArray[np.bool_]]:
    """Present values as floats, and the mask of missing ones (null or not a number)."""
    if set(map(type, column)) <= _NUMBER_TYPES:  # the usual case, all in C
        values = np.asarray(column, dtype=np.float64)
        finite = np.isfinite(values)
        if finite.all():
            return values, np.zeros(len(column), dtype=bool)
        return values[finite], ~finite
    missing = np.fromiter((not _is_number(v) for v in column), dtype=bool, count=len(column))
    present = np.asarray([v for v in column if _is_number(v)], dtype=np.float64)
    return present, missing


def _categorical_column(column: Sequence[FeatureValue]) -> tuple[list[str], npt.NDArray[np.bool_]]:
    """Present values as category names, and the mask of missing ones (null or a number)."""
    if set(map(type, column)) == {str}:
        return list(column), np.zeros(len(column), dtype=bool)  # type: ignore[arg-type]
    missing = np.fromiter((_is_missing(v) or _is_number(v) for v in column), dtype=bool,
                          count=len(column))
    return [_category(v) for v in column if not _is_missing(v) and not _is_number(v)], missing


def _transpose(features: Sequence[Mapping[str, FeatureValue]], series: list[tuple[str, int]]
               ) -> list[Sequence[FeatureValue]]:
    """One column per series, from its start row on; absent values read as None."""
    names = [name for name, _ in series]
    if len(names) > 1 and all(start == 0 for _, start in series):
        try:  # the usual case, every event has every feature: transpose in C
            return list(zip(*map(itemgetter(*names), features), strict=True)) or [
                () for _ in names]
        except KeyError:
            pass
    return [list(map(methodcaller("get", name), features[start:])) for name, start in series]


class ModelMonitors:
    """All series of one model, bounded in number."""

    def __init__(self, model_id: str, config: DetectorConfig,
                 references: ReferenceFile | None = None, joint: bool = True,
                 shared: BankSettings | None = None) -> None:
        self.model_id = model_id
        self.shared = shared or BankSettings(config)
        # The false-alarm budget is shared by the whole traffic and every segment.
        self.budget_series = config.false_alarm_budget.series / budget_groups(config)
        self.config = config
        self.references = references
        self.series: dict[str, SeriesMonitor] = {}
        self.untracked_features = 0  # values of features past max_features_per_model
        self.unmonitored: list[str] = []  # their names, one per value; the bank drains it
        self._predicts = False
        self._probabilities = False
        self._counted = 0  # enabled series so far: the false-alarm budget's split
        self.multivariate = (MultivariateMonitor(config) if joint and config.multivariate.enabled
                             else None)
        self._joint_counted = False  # the multivariate series in the budget's split

    def _new_series(self, name: str, kind: str) -> SeriesMonitor:
        refs = self.references
        return SeriesMonitor(name, kind, self.config,
                             refs.seed(self.model_id, kind, name) if refs else None,
                             self.shared)

    def _columns(self, features: Sequence[Mapping[str, FeatureValue]]
                 ) -> list[tuple[str, int]]:
        """Enabled feature series and the row of this batch where each one starts.

        A feature seen for the first time starts at its first row: the rows
        before it belong to no series, so where a batch is cut changes nothing.
        """
        known = self.series.keys()
        limit = self.config.max_features_per_model
        starts: dict[str, int] = {}
        if all(map(le, map(methodcaller("keys"), features), repeat(known))):  # nothing new: in C
            features = ()
        for i, feats in enumerate(features):
            if feats.keys() <= known:
                continue
            for name in feats:
                if name in self.series:
                    continue
                if len(self.series) >= limit:
                    self.untracked_features += 1
                    self.unmonitored.append(name)
                    continue
                self.series[name] = self._new_series(name, "data_drift")
                starts[name] = i
        return [(name, starts.get(name, 0)) for name, s in self.series.items()
                if s.enabled and s.kind == "data_drift"]

    def update(self, rows: list[int], batch: EventBatch) -> list[tuple[str, str, Detection]]:
        features = [batch.features[r] for r in rows]
        out: list[tuple[str, str, Detection]] = []
        known = len(self.series)
        series = self._columns(features)
        predictions = (self._prediction_columns(rows, batch) if self.config.monitor_predictions
                       else [])
        split = self._split(known, series, predictions, rows)
        times = ([batch.times[r] for r in rows] if self.config.seasonality is not None
                 and len(batch.times) == len(batch) else None)
        columns = _transpose(features, series)
        for (name, start), column in zip(series, columns, strict=True):
            for d in self.series[name].update(column, rows[start:], split,
                                              None if times is None else times[start:]):
                out.append((name, "data_drift", d))
        if self.multivariate is not None and len(series) > 1:
            joint = {name: column for (name, _), column in zip(series, columns, strict=True)}
            for d in self.multivariate.update(joint, rows, split, times):
                out.append((MULTIVARIATE, "data_drift", d))
        for name, monitor, begin, column in predictions:
            for d in monitor.update(column, rows[begin:], split,
                                    None if times is None else times[begin:]):
                out.append((name, "prediction_drift", d))
        return out

    def _split(self, known: int, series: list[tuple[str, int]],
               predictions: list[tuple[str, SeriesMonitor, int, list[FeatureValue]]],
               rows: list[int]) -> Split | None:
        """The false-alarm budget's split for this batch: series that start in it
        count from their first row on (``BudgetSplit``)."""
        budget = self.config.false_alarm_budget
        if not budget.enabled:
            return None
        starts: list[int] = []
        if len(self.series) > known:
            fresh = {id(m) for m in list(self.series.values())[known:]}
            starts = [rows[start] for name, start in series if id(self.series[name]) in fresh]
            starts += [rows[begin] for _, m, begin, _ in predictions if id(m) in fresh]
        if self.multivariate is not None and not self._joint_counted:
            # The multivariate series counts from the model's first event (whatever the
            # batches), though it starts once its PCA is fitted.
            starts.append(rows[0])
            self._joint_counted = True
        split = BudgetSplit(self.budget_series, self._counted, starts)
        self._counted += len(starts)
        return split

    def _prediction_series(self, name: str) -> SeriesMonitor:
        key = "\x00" + name  # cannot clash with a feature called 'prediction'
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = self._new_series(name, "prediction_drift")
        return series

    def _prediction_columns(self, rows: list[int], batch: EventBatch
                            ) -> list[tuple[str, SeriesMonitor, int, list[FeatureValue]]]:
        """Enabled prediction series, the row of this batch where each starts, its column."""
        preds = [batch.predictions[r] for r in rows]
        # A series starts at the first prediction (or probability object) ever seen and is
        # fed every row after that, so predictions that stop arriving show as missing.
        start = 0 if self._predicts else next(
            (i for i, p in enumerate(preds) if p is not None), None)
        if start is None:
            return []
        self._predicts = True
        scalars_only = set(map(type, preds)) <= _SCALARS
        if scalars_only:  # scores or classes: the column is the values
            classes: list[FeatureValue] = preds
            confidence: list[FeatureValue] = [None] * len(preds)
        else:  # class probabilities somewhere: their argmax class and its probability
            tops = [top_class(p) if isinstance(p, Mapping) else None for p in preds]
            classes = [(top[0] if top else None) if isinstance(p, Mapping) else p
                       for p, top in zip(preds, tops, strict=True)]
            confidence = [top[1] if top else None for top in tops]
        columns = {PREDICTION: (start, classes[start:])}
        if self._probabilities:
            columns[CONFIDENCE] = (0, confidence)
        elif not scalars_only:
            first = next((i for i, p in enumerate(preds) if isinstance(p, Mapping)), None)
            if first is not None:
                self._probabilities = True
                columns[CONFIDENCE] = (first, confidence[first:])
        out = []
        for name, (begin, column) in columns.items():
            series = self._prediction_series(name)
            if series.enabled:
                out.append((name, series, begin, column))
        return out


_SCALARS = frozenset((float, int, str, bool, type(None)))


class DetectorBank:
    """The monitors of every (model, feature) of one event stream.

    >>> import random
    >>> rng = random.Random(1)
    >>> bank = DetectorBank(DetectorConfig(warmup=300))
    >>> batch = EventBatch()
    >>> for i in range(4000):
    ...     income = rng.gauss(5000 if i < 2000 else 6500, 1000)
    ...     batch.append("credit", "7", {"income": income, "age": rng.gauss(40, 9)}, None, i)
    >>> [(s.feature, s.kind, s.position > 2000) for s in bank.update(batch)]
    [('income', 'data_drift', True)]
    """

    def __init__(self, config: DetectorConfig | None = None, join_labels: bool = False) -> None:
        self.config = config or DetectorConfig()
        self.shared = BankSettings(self.config)
        self.models: dict[str, ModelMonitors] = {}
        self.references: ReferenceFile | None = None
        if self.config.reference_file:
            self.references = load_reference_file(self.config.reference_file)
        # Models and features past the bounds, and idle models retired (capacity.py).
        self.capacity = Capacity()
        # (model, segment feature) -> its router and one ModelMonitors per segment value.
        self.segments: dict[tuple[str, str], tuple[SegmentRouter, dict[str, ModelMonitors]]] = {}
        # Concept drift: with ``join_labels`` (a labels topic), predictions wait for their
        # labels; labels on the events themselves are used either way.
        self.join_labels = join_labels
        self.join = LabelJoin(self.config.concept)
        self.model_outcomes = ModelOutcomes(self.config, self.references)

    def update(self, batch: EventBatch) -> list[DriftSignal]:
        models = self.models
        if self.config.retire_idle_models_seconds is not None and (
                len(models) + len(set(batch.model_ids) - models.keys())
                > self.config.max_models):  # more models than room: idle ones may retire
            return self.capacity.update(self, batch, self._update)
        return self._update(batch)

    def _update(self, batch: EventBatch) -> list[DriftSignal]:
        before = recent_values(self.models)  # for attribute(), from any row of the batch
        rows_by_model: dict[str, list[int]] = {}
        for row, model_id in enumerate(batch.model_ids):
            rows = rows_by_model.get(model_id)
            if rows is None:
                rows = rows_by_model[model_id] = []
            rows.append(row)
        signals: list[DriftSignal] = []
        capacity = self.capacity
        capacity.admit(self, rows_by_model)
        for model_id, rows in rows_by_model.items():
            monitors = self.models.get(model_id)
            if monitors is None:
                continue  # past max_models: counted by ``capacity``
            for feature, kind, d in monitors.update(rows, batch):
                kind = "data_quality" if d.detector == "adwin_missing" else kind
                signals.append(DriftSignal(batch.positions[d.position], model_id,
                                           batch.model_versions[d.position], feature, kind,
                                           d.detector, d.stats))
            if self.config.segments:
                signals.extend(self._segments(model_id, rows, batch))
            if monitors.unmonitored:
                for name in monitors.unmonitored:
                    capacity.unmonitored_feature(model_id, name)
                monitors.unmonitored.clear()
        if self.config.retire_idle_models_seconds is not None:
            capacity.observe(batch, rows_by_model, self.models)
        if self.config.concept.enabled:
            signals.extend(self._concept(batch))
        signals.sort(key=lambda s: s.position)  # stable: same-row signals keep model/feature order
        return attribute(signals, self.models, batch, before)

    def _segments(self, model_id: str, rows: list[int], batch: EventBatch) -> list[DriftSignal]:
        """The detections of one model's segment series in this batch (``segments.py``)."""
        out = []
        features = [batch.features[r] for r in rows]
        for name in self.config.segments:
            found = self.segments.get((model_id, name))
            if found is None:
                found = self.segments[model_id, name] = (
                    SegmentRouter(name, self.config.max_segment_values, self.config.warmup), {})
            router, monitors = found
            for value, picked in router.route(features, rows).items():
                monitor = monitors.get(value)
                if monitor is None:
                    monitor = monitors[value] = ModelMonitors(model_id, self.config, joint=False,
                                                               shared=self.shared)
                for feature, kind, d in monitor.update(picked, batch):
                    kind = "data_quality" if d.detector == "adwin_missing" else kind
                    out.append(DriftSignal(batch.positions[d.position], model_id,
                                           batch.model_versions[d.position], feature, kind,
                                           d.detector, d.stats, (name, value)))
        return out

    def add_model(self, model_id: str) -> ModelMonitors:
        """Starts monitoring a model (``capacity.Capacity.admit`` checks the bound)."""
        monitors = self.models[model_id] = ModelMonitors(model_id, self.config,
                                                         self.references, shared=self.shared)
        return monitors

    def drop_model(self, model_id: str) -> None:
        """Forgets a model's detectors: its series, its segments' series, its task,
        outcome, performance and estimate monitors (predictions waiting for labels
        expire as usual)."""
        self.models.pop(model_id, None)
        for key in [k for k in self.segments if k[0] == model_id]:
            del self.segments[key]
        self.model_outcomes.forget(model_id)

    # --- concept drift -------------------------------------------------------------------

    def _concept(self, batch: EventBatch) -> list[DriftSignal]:
        """Outcomes from labels on the events and from labels that waited for them;
        estimated performance from probabilities; predictions stored for the join."""
        preds, labels = batch.predictions, batch.labels
        probabilities = dict in set(map(type, preds))
        with_labels = len(labels) == len(preds) and labels.count(None) != len(labels)
        outcomes = self.model_outcomes
        if not (self.join_labels or with_labels or probabilities or outcomes.watching()):
            outcomes.count(batch.model_ids, preds)  # the usual data-drift-only batch
            return []
        join = self.join
        fed: Fed = {}
        found: list[Found] = []
        ids = batch.event_ids if len(batch.event_ids) == len(preds) else [None] * len(preds)
        times = batch.times if len(batch.times) == len(preds) else [None] * len(preds)
        if not with_labels:
            labels = [None] * len(preds)
        for row, (model_id, version, pred, label, event_id, when) in enumerate(zip(
                batch.model_ids, batch.model_versions, preds, labels, ids, times,
                strict=True)):
            if pred is None:
                continue
            found += outcomes.predicted(model_id, version, pred, row, probabilities)
            if label is None and self.join_labels and event_id is not None:
                label = join.add_prediction((model_id, event_id), pred, version, when)
                if label is None:
                    continue
            elif label is not None:
                join.count(model_id, "joined")  # a label on its event: joined there
            if label is not None:
                found += outcomes.judge(model_id, version, pred, label, row, fed)
        found += outcomes.feed(fed)
        return _concept_signals(found, batch.positions)

    def update_labels(self, batch: LabelBatch) -> list[DriftSignal]:
        """Labels from the labels topic, in its order: each joins its prediction now, waits
        for it, or is counted (duplicate, late, orphan)."""
        if not self.config.concept.enabled:
            return []
        outcomes = self.model_outcomes
        fed: Fed = {}
        found: list[Found] = []
        for row, (model_id, event_id, label, when) in enumerate(zip(
                batch.model_ids, batch.event_ids, batch.labels, batch.times, strict=True)):
            pending = self.join.take((model_id, event_id), label, when)
            if pending is not None:
                found += outcomes.judge(model_id, pending.version, pending.prediction, label,
                                        row, fed)
        self.join.advance()  # labels kept just now may already be past the horizon
        found += outcomes.feed(fed)
        signals = _concept_signals(found, batch.positions)
        signals.sort(key=lambda s: s.position)
        # No attribution here: the features' state when a label arrives depends on how the
        # events and labels topics interleave, so it would not be the same run to run.
        return signals

    @property
    def outcomes(self) -> dict[tuple[str, str | None], OutcomeMonitor]:
        """The outcome detectors, per (model, version or None)."""
        return self.model_outcomes.outcomes

    @property
    def estimates(self) -> dict[str, EstimatedPerformance]:
        return self.model_outcomes.estimates

    def drain_mistyped(self) -> dict[tuple[str, str], int]:
        """(model_id, feature) -> values of the other kind than their series' (a string in
        a numeric feature, a number in a categorical one) since the last call; they were
        counted as missing for their series.

        >>> bank = DetectorBank()
        >>> batch = EventBatch()
        >>> for i, x in enumerate([1.0] * 25 + ["n/a", 2.0]):
        ...     batch.append("m", None, {"x": x}, None, i)
        >>> _ = bank.update(batch)
        >>> bank.drain_mistyped(), bank.drain_mistyped()
        ({('m', 'x'): 1}, {})
        """
        out: dict[tuple[str, str], int] = {}
        for model in self.models.values():
            for series in model.series.values():
                if series.mistyped > series.reported_mistyped:
                    out[(model.model_id, series.name)] = (series.mistyped
                                                          - series.reported_mistyped)
                    series.reported_mistyped = series.mistyped
        return out

    def drain_label_counts(self) -> dict[tuple[str, str], int]:
        """(model_id, outcome) -> labels counted since the last call."""
        counts, self.join.counts = self.join.counts, {}
        return counts

    def drain_label_delays(self) -> list[tuple[str, float]]:
        """(model_id, seconds from prediction to label) of labels joined since the last call."""
        delays, self.join.delays = self.join.delays, []
        return delays

    def join_store_size(self) -> int:
        return self.join.size()

    def model_performance(self) -> dict[str, tuple[float | None, float | None]]:
        """Per model: rolling realized error rate (classifiers) and estimated accuracy."""
        return self.model_outcomes.model_performance()

    def realized_performance(self, changed_only: bool = False
                             ) -> list[tuple[str, str, dict[str, float]]]:
        """See ``ModelOutcomes.realized_performance``."""
        return self.model_outcomes.realized_performance(changed_only)

    def estimated_performance(self) -> list[tuple[str, dict[str, float]]]:
        """See ``ModelOutcomes.estimated_performance``."""
        return self.model_outcomes.estimated_performance()

    def model_tasks(self) -> dict[str, dict[str, Any]]:
        """model_id -> its task (``ModelTask.describe``), for the models decided so far."""
        return self.model_outcomes.model_tasks()

    def drift_scores(self) -> list[tuple[str, str, dict[str, float]]]:
        """(model_id, feature, scores) of every monitored series whose scores are known
        (past its warm-up, recent window full): ``{"psi", "jensen_shannon"}`` and, for a
        numeric series, ``"wasserstein"`` (in reference standard deviations); see
        ``NumericMonitor.scores``. Prediction series appear under ``PREDICTION`` and
        ``CONFIDENCE``. Costs up to a few tenths of a millisecond per series: call it on a
        timer, not per batch.

        >>> bank = DetectorBank(DetectorConfig(warmup=100, recent_window=100))
        >>> batch = EventBatch()
        >>> for i in range(300):
        ...     batch.append("m", None, {"x": float(i % 10), "c": "ab"[i % 2]}, None, i)
        >>> bank.update(batch)
        []
        >>> [(m, f, sorted(s)) for m, f, s in bank.drift_scores()]
        [('m', 'x', ['jensen_shannon', 'psi', 'wasserstein']),
         ('m', 'c', ['jensen_shannon', 'psi'])]
        """
        out = []
        for model in self.models.values():
            for series in model.series.values():
                if series.values is None or not series.enabled:
                    continue
                found = series.values.scores()
                if found is not None:
                    out.append((model.model_id, series.name, found))
            joint = model.multivariate.scores() if model.multivariate is not None else None
            if joint is not None:
                out.append((model.model_id, MULTIVARIATE, joint))
        return out

    def drifting(self) -> list[tuple[str, str]]:
        """(model, feature) pairs in their post-alert cooldown."""
        return [(m.model_id, s.name) for m in self.models.values()
                for s in m.series.values() if s.cooling_down]


def _concept_signals(found: list[Found], positions: Sequence[int]) -> list[DriftSignal]:
    return [DriftSignal(positions[row], model_id, version, feature, "concept_drift", detector,
                        stats) for row, model_id, version, feature, detector, stats in found]


def detect(events: Iterable[Mapping[str, Any]], config: DetectorConfig | None = None,
           batch_size: int = 10_000, columns: Mapping[str, str | None] | None = None
           ) -> list[DriftSignal]:
    """Run the detectors over event dicts (docs/contracts.md's event contract) or a DataFrame.

    ``position`` in each signal is the event's index in the input; ``timestamp``
    (epoch seconds or RFC 3339) is the event time that seasonality needs. A ``label``
    on an event is compared with its ``prediction`` (kind ``concept_drift``). A pandas
    DataFrame (``pip install streamdrift[notebook]``) is read as one event per row:
    ``model_id`` (or ``model``), ``model_version``, ``event_id``, ``timestamp``,
    ``prediction`` and ``label`` columns play those roles, ``columns`` names others
    (``{"timestamp": "ts"}``) or turns one off (``{"label": None}``), every other
    column of a feature dtype is a feature; see ``detectors.frames``. Warns
    (``WarmingUpWarning``) when series were still warming up as the input ended.

    >>> import random
    >>> rng = random.Random(3)
    >>> events = [{"model_id": "m", "features": {"x": rng.gauss(0 if i < 3000 else 2, 1)}}
    ...           for i in range(5000)]
    >>> [(s.feature, s.kind, s.position >= 3000) for s in detect(events)]
    [('x', 'data_drift', True)]
    """
    bank = DetectorBank(config)
    signals: list[DriftSignal] = []
    batch = EventBatch()
    for i, event in enumerate(as_events(events, columns)):
        batch.append(str(event.get("model_id", "model")), event.get("model_version"),
                     event.get("features") or {}, event.get("prediction"), i,
                     event.get("event_id"), event_time(event.get("timestamp")),
                     event.get("label"))
        if len(batch) >= batch_size:
            signals.extend(bank.update(batch))
            batch = EventBatch()
    if len(batch):
        signals.extend(bank.update(batch))
    warn_warming_up(bank)
    return signals
