"""Detector settings: plain pydantic models, refused with the key's path when wrong.

The defaults are chosen so that one setting fits features of any unit: every
detector watches a bounded stream derived from a warm-up reference (see
``reference.py``), never the raw values.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from detectors.reference_file import ReferenceFileError, load_reference_file


class StrictSettings(BaseModel):
    """Settings models: unknown keys refused, frozen, and a boolean refused where a number
    is asked for (YAML reads ``true``, ``yes`` and ``on`` as one; pydantic's lax mode would
    take it as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None and _numbers_only(
                cls.model_fields[info.field_name].annotation):
            raise PydanticCustomError("number_not_boolean", "Input should be a number, not a "
                                      "boolean (YAML reads true, yes and on as one)")
        return value


def _numbers_only(annotation: Any) -> bool:
    """Does ``annotation`` take int or float and not bool (``int``, ``float | None``,
    ``int | Literal['auto']``, ``Annotated[int, ...]``)?

    >>> _numbers_only(int | None), _numbers_only(bool), _numbers_only(dict[str, int])
    (True, False, False)
    """
    kinds: set[Any] = set()

    def walk(node: Any) -> None:
        if node in (int, float, bool):
            kinds.add(node)
        elif get_origin(node) in (Union, UnionType, Annotated):
            for arg in get_args(node):
                walk(arg)

    walk(annotation)
    return bool(kinds) and bool not in kinds


_Strict = StrictSettings


class AdwinSettings(_Strict):
    """river ``ADWIN`` on a stream in [0, 1]; ``delta`` is its confidence."""

    enabled: bool = True
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    clock: int = Field(default=32, ge=1)


class PageHinkleySettings(_Strict):
    """river ``PageHinkley`` on means of ``block`` consecutive ranks (units: ranks in [0, 1]).

    Blocks cut the cost of the pure-Python detector by ``block`` and delay a
    detection by less than one block. ``alpha`` stays 1: a fading sum turns the
    test into the range of a stationary process, which crosses any threshold
    given time (measured: a false alarm every ~20,000 events with 0.9999).
    ``delta`` 0.05 is about a third of a 0.5 sd shift in ranks (0.14), threshold
    0.2: a 0.5 sd shift is found after a median 149 events (bench/quality.py).
    """

    enabled: bool = True
    block: int = Field(default=50, ge=1, le=1000)
    min_instances: int = Field(default=2, ge=1)
    delta: float = Field(default=0.05, ge=0.0, lt=1.0)
    threshold: float = Field(default=0.2, gt=0.0)
    alpha: float = Field(default=1.0, gt=0.0, le=1.0)


class NumericSettings(_Strict):
    """Monitors of a numeric feature: location (ADWIN, Page-Hinkley) and spread."""

    adwin: AdwinSettings = AdwinSettings()
    # The spread ADWIN sees means of ``spread_block`` consecutive |2u - 1|: a fifth of the
    # cost, but ADWIN's cut term counts blocks, not values, so it is slower to fire
    # (bench/quality.py: scale x2 after a median 439 events, 183 with single values).
    spread: AdwinSettings = AdwinSettings(clock=4)
    spread_block: int = Field(default=5, ge=1, le=1000)
    page_hinkley: PageHinkleySettings = PageHinkleySettings()


class CategoricalSettings(_Strict):
    """Monitors of a categorical feature: category frequencies and unseen rate."""

    max_categories: int = Field(default=50, ge=1, le=10_000)
    adwin: AdwinSettings = AdwinSettings()
    unseen: AdwinSettings = AdwinSettings()


class MissingSettings(_Strict):
    """ADWIN on the missing share of ``block`` consecutive values.

    Missing means null, absent or of the wrong type for the series. Blocks cut
    the cost by ``block`` but slow detection more than one block: ADWIN's cut
    term counts blocks (bench/quality.py: 1% -> 10% after a median 1,799
    events; 207 with single values).
    """

    block: int = Field(default=10, ge=1, le=1000)
    # One update per block: checking every 4th keeps the delay short at little cost.
    adwin: AdwinSettings = AdwinSettings(clock=4)


class AnchoredSettings(_Strict):
    """Tests of each series against its reference's in-control law (``anchored.py``).

    ``block`` values make one block mean (location, spread); ``window`` values one
    chi-square of bin counts. ``false_alarms_per_million`` is the rate per series (its
    three statistics share it) under the stated assumptions; ``bias_z`` bounds the
    reference's own sampling error in standard errors.
    """

    enabled: bool = True
    block: int = Field(default=50, ge=5, le=10_000)
    window: int = Field(default=250, ge=20, le=100_000)
    false_alarms_per_million: float = Field(default=0.1, gt=0.0, le=1e4)
    bias_z: float = Field(default=3.0, ge=0.0, le=10.0)


class CalibrationSettings(_Strict):
    """The long-run variance factor ``L`` of each series (``stats/lrv.py``).

    Estimated once per series, from the ranks of the first ``events`` values after its
    first reference (overlapping batch means of ``batch`` values). An estimate under
    ``independent_below`` is read as independence (``L = 1``: the estimate's own noise
    on independent values); above it, ``L`` is the estimate times ``safety`` (the
    estimate's sampling error and its bias for dependence longer than ``batch``).
    Until then the anchored tests run with ``L = provisional`` (a series in a reference
    file is watched from its first value; a gross departure is caught at once) and the
    change detectors wait (a change within an unknown dependence cannot be told from
    it); at the end of the stretch the anchored tests weigh the whole stretch again
    with the estimate, and the change detectors start with it. ``enabled: false``:
    ``L = 1`` everywhere, independent values assumed.
    """

    enabled: bool = True
    events: int = Field(default=2000, ge=200, le=1_000_000)
    batch: int = Field(default=100, ge=2, le=100_000)
    independent_below: float = Field(default=1.5, ge=1.0)
    safety: float = Field(default=1.25, ge=1.0, le=10.0)
    provisional: float = Field(default=4.0, ge=1.0)


class SeasonalitySettings(_Strict):
    """A reference per bucket of event time within a period (off unless set).

    ``period`` seconds (86400: daily, 604800: weekly) cut into ``buckets`` equal
    buckets; each value of a numeric series is ranked in its own bucket's reference
    (from the reference file's timestamps, or from the live values of the first full
    period). Events without a time are counted as missing for these series.
    """

    period: float = Field(gt=0.0, le=366 * 86400.0)
    buckets: int = Field(ge=1, le=10_000)
    min_values: int = Field(default=50, ge=5)  # per bucket, for its reference


class FalseAlarmBudget(_Strict):
    """One false-alarm budget per model, split over its series (Bonferroni).

    A model of at most ``series`` monitored series (features and predictions)
    runs the settings as configured; a model of S > ``series`` divides each
    series' false-alarm rate by S / ``series``: every ADWIN delta divided by it,
    Page-Hinkley's threshold raised to match (``monitors.tightened_threshold``).
    So a model raises about as many false alarms as ``series`` series would,
    however many it has, and each series detects a little later (bench/quality.py).
    """

    enabled: bool = True
    series: int = Field(default=10, ge=1, le=100_000)


class MultivariateSettings(_Strict):
    """The PCA reconstruction error of a model's features (``multivariate.py``); off unless
    ``enabled`` (a change of one feature's own distribution moves the error too, so it
    would double most feature alerts).

    A PCA of the standardized features (categoricals by their shares) is fitted on a model's first
    ``fit_events`` events (default: ``warmup``), keeping the components that explain
    ``explained_variance`` of the variance (NannyML's default, 0.65); the error of each
    later event is watched as the numeric series ``multivariate``. At most
    ``max_features`` features (in order of first appearance) enter the PCA.
    """

    enabled: bool = False
    explained_variance: float = Field(default=0.65, gt=0.0, lt=1.0)
    fit_events: int | None = Field(default=None, ge=50, le=1_000_000)
    max_features: int = Field(default=100, ge=2, le=1000)


class FeatureSettings(_Strict):
    """Per-feature override; ``enabled: false`` switches a feature off."""

    enabled: bool = True
    numeric: NumericSettings | None = None
    categorical: CategoricalSettings | None = None
    missing: MissingSettings | None = None


class ModelTaskSettings(_Strict):
    """The task of one model (``detectors.models.<model_id>``; ``default``: every model
    without an entry of its own). ``task`` unset: inferred from the model's first
    ``detectors.concept.infer_task_from`` labelled predictions, then fixed
    (``detectors/performance.py``). ``threshold``: a binary score at or above it is the
    positive class (default ``detectors.concept.score_threshold``); ``positive_class``:
    the binary positive class (default ``1``; compared after the class normalization)."""

    task: Literal["binary", "multiclass", "regression"] | None = None
    threshold: float | None = None
    positive_class: str | int | bool | None = None


class EstimateSettings(_Strict):
    """Performance estimated before labels (CBPE, ``detectors/estimated.py``).

    Probabilities are calibrated (isotonic regression) on the first ``calibration_labels``
    joined labels of a model; then every ``window`` predictions give an estimated
    accuracy (and, for binary models, ROC AUC) with a band of ``z`` standard errors. An
    ``estimated_<metric>`` alert fires when an estimate is more than ``margin`` below
    its value on the calibration labels and its band's top is below that value too;
    a ``calibration`` alert when the realized accuracy of ``window`` joined labels lies
    outside the estimate's band for the same predictions.
    """

    enabled: bool = True
    calibration_labels: int = Field(default=2000, ge=100, le=1_000_000)
    window: int = Field(default=1000, ge=100, le=1_000_000)
    margin: float = Field(default=0.05, gt=0.0, le=1.0)
    z: float = Field(default=4.0, gt=0.0, le=20.0)
    reconcile: bool = True


class ConceptSettings(_Strict):
    """Label join and concept-drift detectors (``detectors.concept`` in the YAML)."""

    enabled: bool = True
    # The detector on the 0/1 error stream. bench/quality_concept.py: ADWIN (delta 1e-3)
    # finds 10% -> 15% errors after a median 1,191 labels (HDDM_A at 1e-4: 3,400), with no
    # false alarm in 15M stationary labels; DDM and EDDM alarm on stationary streams.
    detector: Literal["ddm", "eddm", "hddm_a", "hddm_w", "adwin"] = "adwin"
    # ADWIN: its delta; HDDM_A/HDDM_W: their drift confidence. DDM/EDDM: river's defaults.
    drift_confidence: float = Field(default=1e-3, gt=0.0, lt=1.0)
    score_threshold: float = 0.5  # a numeric score >= this predicts the positive class
    regression_error: Literal["absolute", "squared"] = "absolute"
    # Page-Hinkley as measured by bench/quality_concept.py (the features' default moved).
    regression: NumericSettings = NumericSettings(
        page_hinkley=PageHinkleySettings(delta=0.03, threshold=0.4))
    warmup: int = Field(default=500, ge=50)  # errors in a regression model's reference
    per_version: bool = False  # one detector per (model, model_version)
    max_wait_seconds: float = Field(default=7 * 86400.0, gt=0.0)  # event time
    max_pending: int = Field(default=100_000, ge=1)  # predictions waiting, per partition
    max_early_labels: int = Field(default=20_000, ge=1)  # labels before their prediction
    recent_window: int = Field(default=1000, ge=10)  # for the rolling rates (gauges)
    # Labelled predictions a model's task is inferred from, when no config fixes it.
    infer_task_from: int = Field(default=100, ge=1, le=100_000)
    # Integer predictions and labels over more distinct values than this: a regression.
    max_classes: int = Field(default=20, ge=2, le=10_000)
    max_versions: int = Field(default=10, ge=1, le=1000)  # per model, in the gauges
    estimate: EstimateSettings = EstimateSettings()


class DetectorConfig(_Strict):
    """Everything the detectors need; the run loop embeds it under ``detectors``.

    >>> DetectorConfig().warmup
    1000
    >>> DetectorConfig(warmup=10)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DetectorConfig
    warmup
      Input should be greater than or equal to 50 ...
    """

    warmup: int = Field(default=1000, ge=50, le=1_000_000)
    rebaseline_warmup: int | None = Field(default=None, ge=50, le=1_000_000)
    recent_window: int = Field(default=1000, ge=10, le=100_000)
    max_models: int = Field(default=1000, ge=1)
    max_features_per_model: int = Field(default=500, ge=1)
    # A model without an event for this long (event time) is retired when a model past
    # max_models sends one: its state is dropped and the newcomer takes its place
    # (detectors/capacity.py). null: models are never retired.
    retire_idle_models_seconds: float | None = Field(default=7 * 86400.0, gt=0.0)
    monitor_predictions: bool = True
    numeric: NumericSettings = NumericSettings()
    categorical: CategoricalSettings = CategoricalSettings()
    missing: MissingSettings = MissingSettings()
    features: dict[str, FeatureSettings] = Field(default_factory=dict)
    false_alarm_budget: FalseAlarmBudget = FalseAlarmBudget()
    # Events of a model after an alert of one of its series during which that series
    # raises no other alert (its detectors still run and re-baseline).
    cooldown: int = Field(default=0, ge=0, le=1_000_000_000)
    # JSONL events (the event contract): the reference of every (model, feature) in it,
    # instead of its first ``warmup`` values; the others warm up as usual.
    reference_file: str | None = Field(default=None, min_length=1)
    concept: ConceptSettings = ConceptSettings()
    # The task of each model by model_id; ``default``: the models without an entry.
    models: dict[str, ModelTaskSettings] = Field(default_factory=dict)
    # The smallest effect worth an alert, in reference standard deviations of a location
    # shift (each statistic's floor is what such a shift gives a normal feature): a
    # 0.03 sd shift over a million events is not worth a page, a 0.25 sd shift is.
    min_effect: float = Field(default=0.1, ge=0.0, le=10.0)
    anchored: AnchoredSettings = AnchoredSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    seasonality: SeasonalitySettings | None = None
    multivariate: MultivariateSettings = MultivariateSettings()
    # Segment features: every series of a model also runs per value of each (the
    # ``max_segment_values`` most frequent in its first ``warmup`` events, the rest pooled
    # as ``other``; ``segments.py``).
    segments: list[str] = Field(default_factory=list, max_length=10)
    max_segment_values: int = Field(default=10, ge=1, le=100)

    @field_validator("reference_file")
    @classmethod
    def _reference_file_loads(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                load_reference_file(path)  # parsed once: the banks reuse it
            except ReferenceFileError as exc:
                raise PydanticCustomError("reference_file", "{error}", {"error": str(exc)}
                                          ) from None
        return path

    def for_model(self, model_id: str) -> ModelTaskSettings:
        """A model's task settings: its own entry, else ``default``, else inference."""
        found = self.models.get(model_id) or self.models.get("default")
        return found or ModelTaskSettings()

    @property
    def warmup_after_alert(self) -> int:
        return self.rebaseline_warmup or self.warmup

    def for_feature(self, name: str) -> FeatureSettings:
        """The settings of one feature: its override merged over the defaults."""
        override = self.features.get(name)
        return FeatureSettings(
            enabled=override.enabled if override else True,
            numeric=(override and override.numeric) or self.numeric,
            categorical=(override and override.categorical) or self.categorical,
            missing=(override and override.missing) or self.missing,
        )
