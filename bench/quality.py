"""Detection quality of streamdrift's defaults against raw river detectors.

    python bench/quality.py              # the full run (about 13 min on 2 shared cores)
    python bench/quality.py --quick      # small versions of every row, no sweep (~1.5 min)

What it measures (the issue's benchmark):

Change streams. Per scenario and seed, one series of ``--before`` (10,000) events and
``--after`` (10,000) events, the change at index 10,000. streamdrift takes the first
``warmup`` (1,000) events as its reference; the raw baselines start at event 0.
Numeric scenarios start from normal(100, 15): a mean shift of 0.25, 0.5 or 1 standard
deviation, the standard deviation x2 about the same mean, and a shape change (unimodal
to the bimodal mixture 0.5 N(mu - a, s) + 0.5 N(mu + a, s), a = 0.9 sd, a^2 + s^2 = sd^2:
same mean, same variance). Categorical scenarios use 10 levels with frequencies
proportional to 1/(k+1) (0.34, 0.17, 0.11, ...): the most and third most frequent levels
swap frequencies, or a new level takes 5% (the others keep their proportions). The
missing scenario is a normal(100, 15) feature whose null rate goes from 1% to 10%.
Delay = first detection at or after the change minus the change index; a detection
before the change is a false alarm (counted, per scenario, over all seeds); no detection
in the ``--after`` events after the change is a miss.

Stationary streams. 20 features of varied distributions (see FEATURES: normals at scales
1 to 1e6 and 1e-3, uniforms, Poisson counts, lognormal, Pareto, Student-t(3), 0/1 flags,
constant, near-constant, categoricals of 3, 50 and 100,000 levels, ...; three of them with
nulls at a constant rate), ``--events`` (1,000,000) events each, ``--stationary-seeds`` (3)
independent streams, no change: every detection is a false alarm, reported per million
feature-events, overall and per feature. The raw baselines skip nulls.

Methods, side by side:

  streamdrift  ``DetectorBank(DetectorConfig())`` fed ``EventBatch`` batches of events
               ``{"model_id": "m", "features": {...}}`` (its real code path; batches of
               1,000 rows for change streams, 2,000 rows of 20 features for stationary
               ones). Every signal of the feature counts (any detector, kind
               ``data_drift``); for the missing scenario only kind ``data_quality``.
  adwin        ``river.drift.ADWIN()`` with defaults, one update per raw value.
  ph           ``river.drift.PageHinkley()`` with defaults, one update per raw value.
  dummy        ``river.drift.DummyDriftDetector()`` with defaults: fires every 300 values
               whatever they are. It is here so that a metric that rewards firing often
               is seen for what it is.

river's detectors reset themselves after a detection (``update`` resets when the previous
value fired); the bench does nothing more. Raw detectors need numbers: a categorical value
is fed as its level's index in a fixed order (levels by decreasing base frequency; a new
level gets the next index), a missing-rate scenario as the indicator 1.0 (null) / 0.0.

Trade-off (skipped by --quick; --sweep forces it, --no-sweep skips it): streamdrift with
(a) every ADWIN's delta in {1e-3, 1e-4, 1e-5, 1e-6} (numeric location and spread,
categorical, unseen, missing) x Page-Hinkley's threshold in {0.15, 0.2, 0.3, 0.4};
(b) Page-Hinkley's drift allowance 0.03 (the previous default) and blocks of 25;
(c) the spread and missing ADWINs on single values instead of block means; (d) the
model-level false-alarm budget off. Each on the first ``--sweep-events`` (1,000,000)
events of the first stationary stream (one model of 20 features: the budget splits by 2)
and on the numeric and missing change scenarios (one feature: no split): false alarms per
million feature-events against median delay.

Model-level budget (``--budget-events``, 0 skips it): whole-model false alarms of one
stationary model of 5 to 100 features with the budget off and on (under loose settings,
so that alarms are frequent enough to count), and the delay of a change in one feature
of a model of 1 to 100 features with the defaults.

Production-like rows (issue 10; a seeds or events count of 0 skips a row). Each shows
raw river ADWIN and Page-Hinkley (defaults, one update per raw value) beside streamdrift;
data from bench/production_streams.py; reference files go to a temporary directory.

  skew         ``--skew-seeds`` (20; quick 3) seeds. A reference file of
               ``--reference-events`` (5,000) events: x ~ N(0, 1), c at a/b/c = 60/30/10 %,
               ``code`` uniform over 5,000 zip-code-like strings. Live streams of
               ``--skew-events`` (50,000) events, one per difference from the first event:
               x ~ N(0.5, 1); x ~ N(0, 1.5^2); x bimodal of the same mean and variance; c at
               20/30/50 %; every code replaced by a new one from event ``--switch-at``
               (10,000); and one stream where nothing differs. Delay from event 0 (from the
               switch); the features that do not differ are controls (false alarms).
               streamdrift: ``DetectorConfig(reference_file=...)``; the raw baselines see the
               reference's values first, then the live stream.
  dependent    ``--dependent-streams`` (3; quick 1) x ``--dependent-events`` (1,000,000;
               quick 100,000) events of one model with three stationary unit-variance
               features: AR(1) phi 0.5 and 0.9, sessions of 20 events (offset sd 0.7, noise sd
               0.71). No change: false alarms per million feature-events, streamdrift with a
               warm-up reference and with a reference file of the same processes.
  daily cycle  ``--cycle-seeds`` (10; quick 1) x ``--cycle-days`` (7) days at 10 events a
               minute: ``load`` = 2 sin(2 pi t / 1 day) + N(0, 1), ``flat`` = N(0, 1); the
               reference file is the day before (another seed). Alerts without seasonality
               (warm-up, reference file), with ``seasonality: {period: 86400, buckets: 96}``
               (reference file, or the stream's first day), and the delay of load + 0.5 from
               day 4 noon with seasonality. Also a +-0.3 sd cycle, ``--small-cycle-seeds``
               (3; quick 1) x ``--small-cycle-events`` (600,000; quick 100,000), no
               seasonality.
  small shift  ``--small-shift-seeds`` (5; quick 1) streams of N(0, 1), +0.03 sd after
               ``--before`` (10,000) events, ``--small-shift-after`` (1,000,000; quick
               100,000) events after: every alert counts. The 0.25 sd row is the mean +0.25 sd
               change scenario above.
  constant     ``--constant-seeds`` (20; quick 3) x ``--constant-events`` (20,000): f 0.0
               through the warm-up then N(0, 1), g 0.0 for 3,000 events then N(0, 1), k 0.0.
  joint        ``--joint-seeds`` (20; quick 3) x ``--joint-events`` (20,000): income and loan
               correlated +0.8 until 10,000 then independent, three more N(0, 1) features
               (every marginal fixed): delay of the ``multivariate`` alert, per-feature
               alerts; and two stationary streams of 20 features on two factors
               (independent, AR(1) phi 0.9) of ``--joint-stationary-events`` (1,000,000;
               quick 100,000): multivariate alarms per million model events.

Rows that need a detector setting DetectorConfig does not know yet (``seasonality``) are
reported as "not run: needs detectors.seasonality" (pydantic refuses an unknown key) and
their targets as "not run"; every other refusal is raised. "Caught within B events" means
on every seed, with no detection of that feature before the change.

Writes a markdown report to stdout and bench/results/quality.md, the raw numbers to
bench/results/quality.json; progress goes to stderr. --quick writes nothing unless --out
is given, so that a smoke test does not overwrite the full run's results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import production_streams as ps  # bench/production_streams.py (bench/ is on sys.path)
from pydantic import ValidationError
from river import drift
from scipy.signal import lfilter

from detectors import DetectorBank, DetectorConfig, EventBatch
from detectors.config import (
    AdwinSettings,
    CategoricalSettings,
    FalseAlarmBudget,
    MissingSettings,
    NumericSettings,
    PageHinkleySettings,
)
from detectors.multivariate import MULTIVARIATE

FloatArray = npt.NDArray[np.float64]
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MODEL = "m"
METHODS = ("streamdrift", "adwin", "ph", "dummy")
RAW_METHODS = ("adwin", "ph", "dummy")
CHANGE_BATCH = 1000
STATIONARY_BATCH = 2000
STATIONARY_CHUNK = 50_000  # events generated at once per feature (bounded memory)
SWEEP_SCENARIOS = ("mean_0.25", "mean_0.5", "scale_x2", "shape", "missing")

# The issue's targets for the defaults.
TARGET_FA_PER_MILLION = 0.1
TARGET_MEDIAN_DELAY = {"mean_0.5": 150, "scale_x2": 1000}

RawFactory = Callable[[], Any]
RAW_FACTORIES: dict[str, RawFactory] = {
    "adwin": drift.ADWIN,
    "ph": drift.PageHinkley,
    "dummy": drift.DummyDriftDetector,
}


# --------------------------------------------------------------------------- data

MU, SD = 100.0, 15.0
CAT_LEVELS = [f"c{k}" for k in range(11)]  # c10 is the new level
_CAT_P = 1.0 / np.arange(1, 11)
CAT_P: FloatArray = _CAT_P / _CAT_P.sum()


def _normal(rng: np.random.Generator, n: int, mean: float = MU, sd: float = SD) -> FloatArray:
    return rng.normal(mean, sd, n)


def _bimodal(rng: np.random.Generator, n: int, a: float = 0.9 * SD) -> FloatArray:
    s = math.sqrt(SD**2 - a**2)
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return MU + signs * a + rng.normal(0.0, s, n)


def _categorical(rng: np.random.Generator, n: int, p: FloatArray) -> tuple[list[Any], FloatArray]:
    idx = rng.choice(len(p), size=n, p=p)
    return [CAT_LEVELS[i] for i in idx.tolist()], idx.astype(np.float64)


Series = tuple[list[Any], FloatArray]  # values for events, numbers for the raw detectors
Maker = Callable[[np.random.Generator, int, int], Series]


def _numeric_change(after: Callable[[np.random.Generator, int], FloatArray]) -> Maker:
    def make(rng: np.random.Generator, n0: int, n1: int) -> Series:
        xs = np.concatenate((_normal(rng, n0), after(rng, n1)))
        return xs.tolist(), xs
    return make


def _swap(rng: np.random.Generator, n0: int, n1: int) -> Series:
    p1 = CAT_P.copy()
    p1[[0, 2]] = p1[[2, 0]]
    a, ra = _categorical(rng, n0, CAT_P)
    b, rb = _categorical(rng, n1, p1)
    return a + b, np.concatenate((ra, rb))


def _new_level(rng: np.random.Generator, n0: int, n1: int) -> Series:
    p1 = np.append(CAT_P * 0.95, 0.05)
    a, ra = _categorical(rng, n0, CAT_P)
    b, rb = _categorical(rng, n1, p1)
    return a + b, np.concatenate((ra, rb))


def _missing(rng: np.random.Generator, n0: int, n1: int) -> Series:
    xs = _normal(rng, n0 + n1)
    rate = np.where(np.arange(n0 + n1) < n0, 0.01, 0.10)
    null = rng.random(n0 + n1) < rate
    values: list[Any] = xs.tolist()
    for i in np.flatnonzero(null).tolist():
        values[i] = None
    return values, null.astype(np.float64)


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    make: Maker
    kind: str = "data_drift"  # the signal kind that counts as detecting it


SCENARIOS = (
    Scenario("mean_0.25", "mean +0.25 sd",
             _numeric_change(lambda r, n: _normal(r, n, MU + 0.25 * SD))),
    Scenario("mean_0.5", "mean +0.5 sd",
             _numeric_change(lambda r, n: _normal(r, n, MU + 0.5 * SD))),
    Scenario("mean_1", "mean +1 sd", _numeric_change(lambda r, n: _normal(r, n, MU + SD))),
    Scenario("scale_x2", "sd x2", _numeric_change(lambda r, n: _normal(r, n, MU, 2 * SD))),
    Scenario("shape", "normal -> bimodal (same mean, sd)", _numeric_change(_bimodal)),
    Scenario("cat_swap", "categorical: 1st and 3rd level swap", _swap),
    Scenario("cat_new", "categorical: new level at 5%", _new_level),
    Scenario("missing", "missing 1% -> 10%", _missing, kind="data_quality"),
)
SCENARIO_BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    make: Callable[[np.random.Generator, int], Series]


def _with_nulls(rng: np.random.Generator, values: list[Any], numbers: FloatArray,
                null_rate: float) -> Series:
    """Null values at a constant rate: None in the events, NaN for the raw baselines
    (which skip them: river has no notion of a missing value)."""
    if null_rate:
        null = np.flatnonzero(rng.random(len(values)) < null_rate)
        numbers = numbers.copy()
        numbers[null] = np.nan
        for i in null.tolist():
            values[i] = None
    return values, numbers


def _num(gen: Callable[[np.random.Generator, int], npt.NDArray[Any]], null_rate: float = 0.0
         ) -> Callable[[np.random.Generator, int], Series]:
    def make(rng: np.random.Generator, n: int) -> Series:
        xs = gen(rng, n)  # int arrays give ints in the events, as JSON would
        return _with_nulls(rng, xs.tolist(), xs.astype(np.float64), null_rate)
    return make


def _cat(levels: int, p: FloatArray | None, null_rate: float = 0.0
         ) -> Callable[[np.random.Generator, int], Series]:
    names = [f"v{k}" for k in range(levels)]

    def make(rng: np.random.Generator, n: int) -> Series:
        idx = rng.choice(levels, size=n, p=p) if p is not None else rng.integers(0, levels, n)
        return _with_nulls(rng, [names[i] for i in idx.tolist()], idx.astype(np.float64),
                           null_rate)
    return make


def _zipf(levels: int, s: float) -> FloatArray:
    w: FloatArray = 1.0 / np.arange(1, levels + 1, dtype=np.float64) ** s
    p: FloatArray = w / w.sum()
    return p


FEATURES = (
    Feature("f00", "normal(0, 1)", _num(lambda r, n: r.normal(0.0, 1.0, n))),
    Feature("f01", "normal(5e6, 1e6)", _num(lambda r, n: r.normal(5e6, 1e6, n))),
    Feature("f02", "normal(2e-3, 1e-3)", _num(lambda r, n: r.normal(2e-3, 1e-3, n))),
    Feature("f03", "normal(100, 15), 2 decimals, 5% null",
            _num(lambda r, n: r.normal(100, 15, n).round(2), null_rate=0.05)),
    Feature("f04", "uniform(0, 1)", _num(lambda r, n: r.random(n))),
    Feature("f05", "uniform(-1e4, 1e4)", _num(lambda r, n: r.uniform(-1e4, 1e4, n))),
    Feature("f06", "Poisson(3) counts", _num(lambda r, n: r.poisson(3.0, n))),
    Feature("f07", "Poisson(0.5) counts", _num(lambda r, n: r.poisson(0.5, n))),
    Feature("f08", "lognormal(0, 2)", _num(lambda r, n: r.lognormal(0.0, 2.0, n))),
    Feature("f09", "Pareto(1.5), x_min 1", _num(lambda r, n: r.pareto(1.5, n) + 1.0)),
    Feature("f10", "Student-t(3)", _num(lambda r, n: r.standard_t(3.0, n))),
    Feature("f11", "exponential(mean 1000), 0.5% null",
            _num(lambda r, n: r.exponential(1000.0, n), null_rate=0.005)),
    Feature("f12", "0/1 flag, p = 0.1", _num(lambda r, n: (r.random(n) < 0.1).astype(np.int64))),
    Feature("f13", "0/1 flag, p = 0.01",
            _num(lambda r, n: (r.random(n) < 0.01).astype(np.int64))),
    Feature("f14", "constant 42", _num(lambda r, n: np.full(n, 42.0))),
    Feature("f15", "near-constant: 7, 8 once in 1000",
            _num(lambda r, n: np.where(r.random(n) < 1e-3, 8.0, 7.0))),
    Feature("f16", "bimodal normal mixture",
            _num(lambda r, n: np.where(r.random(n) < 0.3, r.normal(-2, 0.5, n),
                                       r.normal(3, 1, n)))),
    Feature("f17", "categorical, 3 levels (0.6/0.3/0.1), 20% null",
            _cat(3, np.array([0.6, 0.3, 0.1]), null_rate=0.2)),
    Feature("f18", "categorical, 50 levels, Zipf(1.1)", _cat(50, _zipf(50, 1.1))),
    Feature("f19", "categorical, 100,000 levels, uniform", _cat(100_000, None)),
)


# --------------------------------------------------------------------------- methods

def raw_detections(factory: RawFactory, values: Sequence[float], offset: int = 0,
                   detector: Any = None) -> tuple[list[int], Any]:
    """Indices (plus ``offset``) where a river detector fired, and the detector (to go on)."""
    det = factory() if detector is None else detector
    update = det.update
    hits: list[int] = []
    for i, v in enumerate(values):
        update(v)
        if det.drift_detected:
            hits.append(offset + i)
    return hits, det


def change_batches(values: Sequence[Any]) -> list[EventBatch]:
    batches: list[EventBatch] = []
    for start in range(0, len(values), CHANGE_BATCH):
        batch = EventBatch()
        for i in range(start, min(len(values), start + CHANGE_BATCH)):
            batch.append(MODEL, None, {"x": values[i]}, None, i)
        batches.append(batch)
    return batches


def streamdrift_detections(batches: Iterable[EventBatch], config: DetectorConfig
                           ) -> list[tuple[int, str, str]]:
    """(position, kind, detector) of every signal of the bank over the batches."""
    bank = DetectorBank(config)
    out: list[tuple[int, str, str]] = []
    for batch in batches:
        out.extend((s.position, s.kind, s.detector) for s in bank.update(batch))
    return out


DEFAULT = DetectorConfig()


@dataclass(frozen=True)
class Variant:
    """streamdrift's defaults with the knobs of the trade-off changed.

    ``adwin_delta`` is applied to every ADWIN (numeric location and spread, categorical,
    unseen, missing); the clocks are the defaults' unless given.
    """

    group: str
    adwin_delta: float = DEFAULT.numeric.adwin.delta
    ph_block: int = DEFAULT.numeric.page_hinkley.block
    ph_delta: float = DEFAULT.numeric.page_hinkley.delta
    ph_threshold: float = DEFAULT.numeric.page_hinkley.threshold
    spread_block: int = DEFAULT.numeric.spread_block
    spread_clock: int = DEFAULT.numeric.spread.clock
    missing_block: int = DEFAULT.missing.block
    missing_clock: int = DEFAULT.missing.adwin.clock
    budget: bool = DEFAULT.false_alarm_budget.enabled  # the model-level split

    @property
    def key(self) -> str:
        return (f"adwin_delta={self.adwin_delta:g},ph_block={self.ph_block},"
                f"ph_delta={self.ph_delta:g},ph_threshold={self.ph_threshold:g},"
                f"spread_block={self.spread_block},spread_clock={self.spread_clock},"
                f"missing_block={self.missing_block},missing_clock={self.missing_clock},"
                f"budget={self.budget}")

    @property
    def changes(self) -> str:
        """What differs from the defaults, e.g. 'PH threshold 0.3'."""
        names = {"adwin_delta": "ADWIN delta", "ph_block": "PH block", "ph_delta": "PH delta",
                 "ph_threshold": "PH threshold", "spread_block": "spread block",
                 "spread_clock": "spread clock", "missing_block": "missing block",
                 "missing_clock": "missing clock"}
        changed = [f"{label} {getattr(self, name):g}" for name, label in names.items()
                   if getattr(self, name) != getattr(BASE, name)]
        if self.budget != BASE.budget:
            changed.append(f"model budget {'on' if self.budget else 'off'}")
        return ", ".join(changed) or "the defaults"

    def config(self) -> DetectorConfig:
        def adwin(s: AdwinSettings, clock: int | None = None) -> AdwinSettings:
            return AdwinSettings(**{**s.model_dump(), "delta": self.adwin_delta,
                                    "clock": clock or s.clock})

        n, c, m = DEFAULT.numeric, DEFAULT.categorical, DEFAULT.missing
        numeric = NumericSettings(
            adwin=adwin(n.adwin), spread=adwin(n.spread, self.spread_clock),
            spread_block=self.spread_block,
            page_hinkley=PageHinkleySettings(**{
                **n.page_hinkley.model_dump(), "block": self.ph_block, "delta": self.ph_delta,
                "threshold": self.ph_threshold}))
        categorical = CategoricalSettings(max_categories=c.max_categories, adwin=adwin(c.adwin),
                                          unseen=adwin(c.unseen))
        missing = MissingSettings(block=self.missing_block,
                                  adwin=adwin(m.adwin, self.missing_clock))
        budget = FalseAlarmBudget(**{**DEFAULT.false_alarm_budget.model_dump(),
                                     "enabled": self.budget})
        return DetectorConfig(numeric=numeric, categorical=categorical, missing=missing,
                              false_alarm_budget=budget)


BASE = Variant("defaults")
DEFAULT_KEY = BASE.key
VARIANTS: tuple[Variant, ...] = (
    *(replace(BASE, group="a: ADWIN delta x PH threshold", adwin_delta=d, ph_threshold=t)
      for d in (1e-3, 1e-4, 1e-5, 1e-6) for t in (0.15, 0.2, 0.3, 0.4)),
    *(replace(BASE, group="b: PH drift allowance", ph_block=b, ph_delta=d, ph_threshold=t)
      for b, d, t in ((50, 0.03, 0.3), (50, 0.03, 0.4), (25, 0.05, 0.3), (25, 0.05, 0.4))),
    replace(BASE, group="c: ADWIN on single values", spread_block=1, spread_clock=32),
    replace(BASE, group="c: ADWIN on single values", missing_block=1, missing_clock=32),
    replace(BASE, group="d: model budget off", budget=False),
)


# --------------------------------------------------------------------------- change streams

@dataclass
class Outcome:
    """One method on one seed of one scenario."""

    pre: int  # detections before the change (false alarms)
    delay: int | None  # first detection at or after the change, minus the change index
    detector: str | None = None  # streamdrift: which detector fired first after the change
    other: int = 0  # streamdrift: signals of another kind than the scenario's (e.g. data_drift)


def score(positions: Sequence[int], change: int, end: int) -> tuple[int, int | None]:
    pre = sum(1 for p in positions if p < change)
    post = [p for p in positions if change <= p < end]
    return pre, (min(post) - change if post else None)


def run_change(scenario: Scenario, seed: int, n0: int, n1: int, base_seed: int,
               variants: dict[str, DetectorConfig]) -> dict[str, Outcome]:
    """Every method on one seed; streamdrift variants keyed ``variant:KEY``."""
    index = SCENARIOS.index(scenario)
    rng = np.random.default_rng([base_seed, 1, index, seed])
    values, raw = scenario.make(rng, n0, n1)
    end = n0 + n1
    batches = change_batches(values)
    configs = {"streamdrift": DEFAULT} | {f"variant:{k}": c for k, c in variants.items()
                                          if k != DEFAULT_KEY}
    outcomes: dict[str, Outcome] = {}
    for name, config in configs.items():
        signals = streamdrift_detections(batches, config)
        relevant = [(p, d) for p, kind, d in signals if kind == scenario.kind]
        pre, delay = score([p for p, _ in relevant], n0, end)
        first = min(((p, d) for p, d in relevant if p >= n0), default=None)
        outcomes[name] = Outcome(pre, delay, first[1] if first else None,
                                 other=len(signals) - len(relevant))
    if DEFAULT_KEY in variants:
        outcomes[f"variant:{DEFAULT_KEY}"] = outcomes["streamdrift"]
    raw_list = raw.tolist()
    for method in RAW_METHODS:
        hits, _ = raw_detections(RAW_FACTORIES[method], raw_list)
        outcomes[method] = Outcome(*score(hits, n0, end))
    return outcomes


@dataclass
class Summary:
    seeds: int
    detected: int
    median: float | None
    p90: float | None
    pre: int
    seeds_with_pre: int
    delays: list[int | None] = field(default_factory=list)
    first_detectors: dict[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def all_detected(self) -> bool:
        return self.detected == self.seeds


def summarize(outcomes: Sequence[Outcome]) -> Summary:
    delays = [o.delay for o in outcomes]
    found = [d for d in delays if d is not None]
    firsts = Counter(o.detector for o in outcomes if o.detector)
    return Summary(
        seeds=len(outcomes), detected=len(found),
        median=float(np.median(found)) if found else None,
        p90=float(np.percentile(found, 90)) if found else None,
        pre=sum(o.pre for o in outcomes), seeds_with_pre=sum(1 for o in outcomes if o.pre),
        delays=delays, first_detectors=dict(firsts.most_common()),
        other=sum(o.other for o in outcomes))


# --------------------------------------------------------------------------- stationary

Signal = tuple[int, int, str, str, str]  # stream seed, position, feature, kind, detector


@dataclass
class Stationary:
    """False alarms on the stationary streams (every stream seed added up)."""

    events: int = 0  # per feature, streamdrift defaults (all stream seeds)
    raw_events: int = 0  # per feature, raw baselines (all stream seeds)
    sweep_events: int = 0  # per feature, each variant (first stream seed only)
    counts: dict[str, dict[str, int]] = field(  # method -> feature -> detections
        default_factory=lambda: {m: dict.fromkeys((f.name for f in FEATURES), 0)
                                 for m in METHODS})
    signals: dict[str, list[Signal]] = field(default_factory=dict)  # streamdrift, variants
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))


def run_stationary(result: Stationary, stream: int, n: int, raw_n: int, sweep_n: int,
                   variants: dict[str, DetectorConfig], base_seed: int,
                   progress: Callable[[str], None]) -> None:
    """One pass over one seed of the stationary streams, chunk by chunk, feeding every method:
    streamdrift's defaults for ``n`` events, the raw baselines for ``raw_n``, each variant
    for ``sweep_n``."""
    names = [f.name for f in FEATURES]
    rngs = [np.random.default_rng([base_seed, 2, stream, j]) for j in range(len(FEATURES))]
    banks: dict[str, tuple[DetectorBank, int]] = {"streamdrift": (DetectorBank(DEFAULT), n)}
    for key, config in variants.items():
        if key != DEFAULT_KEY and sweep_n:
            banks[f"variant:{key}"] = (DetectorBank(config), sweep_n)
    raw: dict[str, list[Any]] = {m: [None] * len(FEATURES) for m in RAW_METHODS}
    seconds = result.seconds
    total = max(n, raw_n, sweep_n)
    last_report = time.monotonic()
    for start in range(0, total, STATIONARY_CHUNK):
        size = min(STATIONARY_CHUNK, total - start)
        t = time.perf_counter()
        columns = [f.make(rng, size) for f, rng in zip(FEATURES, rngs, strict=True)]
        seconds["generate"] += time.perf_counter() - t
        for b0 in range(0, size, STATIONARY_BATCH):
            active = [(k, bank) for k, (bank, horizon) in banks.items() if start + b0 < horizon]
            if not active:
                break
            b1 = min(size, b0 + STATIONARY_BATCH)
            t = time.perf_counter()
            batch = EventBatch()
            rows = zip(*(values[b0:b1] for values, _ in columns), strict=True)
            for i, row in enumerate(rows):
                batch.append(MODEL, None, dict(zip(names, row, strict=True)), None,
                             start + b0 + i)
            seconds["events"] += time.perf_counter() - t
            for key, bank in active:
                t = time.perf_counter()
                result.signals.setdefault(key, []).extend(
                    (stream, s.position, s.feature, s.kind, s.detector)
                    for s in bank.update(batch))
                seconds[key] += time.perf_counter() - t
        if start < raw_n:
            take = min(size, raw_n - start)
            for j, (name, (_, numbers)) in enumerate(zip(names, columns, strict=True)):
                part = numbers[:take]
                values = part[~np.isnan(part)].tolist()  # raw detectors skip nulls
                for method in RAW_METHODS:
                    t = time.perf_counter()
                    hits, raw[method][j] = raw_detections(RAW_FACTORIES[method], values, start,
                                                          raw[method][j])
                    result.counts[method][name] += len(hits)
                    seconds[method] += time.perf_counter() - t
        if time.monotonic() - last_report > 30 or start + size == total:
            last_report = time.monotonic()
            progress(f"stationary stream {stream}: {start + size:,}/{total:,} events; so far "
                     + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()
                                 if not k.startswith("variant:"))
                     + f", variants {_variant_seconds(seconds):.0f}s")
    result.events += n
    result.raw_events += raw_n
    result.sweep_events = max(result.sweep_events, sweep_n)
    result.signals.setdefault("streamdrift", [])
    counts = result.counts["streamdrift"]
    for s, _, feature, _, _ in result.signals["streamdrift"]:
        if s == stream:
            counts[feature] += 1


# --------------------------------------------------------------------------- model budget

BUDGET_SIZES = (5, 10, 20, 50, 100)  # features of one model
BUDGET_DELAY_SIZES = (1, 10, 20, 100)
BUDGET_DELAY_SCENARIOS = ("mean_0.5", "scale_x2", "missing")
# Settings loose enough for false alarms to be counted in a short run (ADWIN delta 1e-3,
# Page-Hinkley drift allowance 0.03 and threshold 0.12), with the model budget off and on;
# the split is relative, so it divides any per-series rate alike.
STRESS = replace(BASE, group="stress", adwin_delta=1e-3, ph_delta=0.03, ph_threshold=0.12)


def _model_batches(columns: list[list[Any]], names: list[str], start: int
                   ) -> Iterable[EventBatch]:
    n = len(columns[0])
    for b0 in range(0, n, STATIONARY_BATCH):
        batch = EventBatch()
        rows = zip(*(c[b0:b0 + STATIONARY_BATCH] for c in columns), strict=True)
        for i, row in enumerate(rows):
            batch.append(MODEL, None, dict(zip(names, row, strict=True)), None, start + b0 + i)
        yield batch


def run_budget_false_alarms(events: int, base_seed: int, progress: Callable[[str], None]
                            ) -> dict[str, Any]:
    """Whole-model false alarms of one stationary model of S features (the 20 FEATURES
    cycled), S in BUDGET_SIZES, under STRESS settings with the model budget off and on."""
    configs = {"off": replace(STRESS, budget=False).config(),
               "on": replace(STRESS, budget=True).config()}
    out: dict[str, Any] = {}
    for size in BUDGET_SIZES:
        names = [f"s{j:03d}" for j in range(size)]
        makers = [FEATURES[j % len(FEATURES)].make for j in range(size)]
        rngs = [np.random.default_rng([base_seed, 3, size, j]) for j in range(size)]
        banks = {k: DetectorBank(c) for k, c in configs.items()}
        alarms: dict[str, Counter[str]] = {k: Counter() for k in configs}
        for start in range(0, events, STATIONARY_CHUNK):
            n = min(STATIONARY_CHUNK, events - start)
            columns = [make(rng, n)[0] for make, rng in zip(makers, rngs, strict=True)]
            for batch in _model_batches(columns, names, start):
                for k, bank in banks.items():
                    alarms[k].update(s.detector for s in bank.update(batch))
        out[str(size)] = {k: {"false_alarms": sum(c.values()), "detectors": dict(c)}
                          for k, c in alarms.items()}
        progress(f"model budget: {size} features, {events:,} events: "
                 + ", ".join(f"{k} {v['false_alarms']}" for k, v in out[str(size)].items()))
    return out


def run_budget_delays(seeds: int, n0: int, n1: int, base_seed: int,
                      progress: Callable[[str], None]) -> dict[str, dict[str, Summary]]:
    """Delay of one changing feature ``x`` (a change scenario) in a model of S features,
    the others stationary normal, with the defaults (model budget on)."""
    out: dict[str, dict[str, Summary]] = {}
    for key in BUDGET_DELAY_SCENARIOS:
        sc = SCENARIO_BY_KEY[key]
        per_size: dict[str, Summary] = {}
        for size in BUDGET_DELAY_SIZES:
            outcomes = []
            for seed in range(seeds):
                rng = np.random.default_rng([base_seed, 1, SCENARIOS.index(sc), seed])
                values, _ = sc.make(rng, n0, n1)
                noise = np.random.default_rng([base_seed, 4, size, seed]).normal(
                    0.0, 1.0, (n0 + n1, size - 1)).tolist()
                names = ["x"] + [f"s{j:03d}" for j in range(1, size)]
                bank = DetectorBank(DEFAULT)
                hits: list[int] = []
                for b0 in range(0, n0 + n1, CHANGE_BATCH):
                    batch = EventBatch()
                    for i in range(b0, min(n0 + n1, b0 + CHANGE_BATCH)):
                        batch.append(MODEL, None, dict(zip(names, [values[i], *noise[i]],
                                                           strict=True)), None, i)
                    hits += [s.position for s in bank.update(batch)
                             if s.feature == "x" and s.kind == sc.kind]
                outcomes.append(Outcome(*score(hits, n0, n0 + n1)))
            per_size[str(size)] = summarize(outcomes)
        out[key] = per_size
        progress(f"model budget delays: {key}, {seeds} seeds")
    return out


def budget_section(fa: dict[str, Any], delays: dict[str, dict[str, Summary]], events: int,
                   seeds: int) -> list[str]:
    free = DEFAULT.false_alarm_budget.series
    lines = [
        "## Model-level false-alarm budget",
        "",
        f"`detectors.false_alarm_budget` (default: on, `series: {free}`): a model of S > {free} "
        f"monitored series divides each series' false-alarm rate by S / {free} (every ADWIN "
        "delta divided by it, Page-Hinkley's threshold raised to match), so the whole model "
        f"raises about what {free} series would. Measured on one stationary model of S features "
        f"(the {len(FEATURES)} distributions above, cycled), {events:,} events each, under "
        f"settings loose enough to count false alarms in a short run ({STRESS.changes}; the "
        "split is relative, it divides any per-series rate alike): false alarms of the whole "
        "model per million model events (count in parentheses), and per series.",
        "",
        "| features S | split S/" + str(free) + " | budget off: model FA per 1M events | "
        "budget off: per series | budget on: model FA per 1M events | budget on: per series |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size, row in fa.items():
        s = int(size)
        cells = [size, f"{max(1.0, s / free):g}"]
        for k in ("off", "on"):
            count = row[k]["false_alarms"]
            cells += [f"{_rate(per_million(count, events))} ({count})",
                      _rate(per_million(count, events * s))]
        lines.append(_row(cells))
    lines += [
        "",
        f"What it costs: the delay of a change in one feature of a model of S features (the "
        f"others stationary), defaults with the budget on, {seeds} seeds each (S = 1 is a "
        "model without a split; with the budget off every S gives S = 1's delays).",
        "",
        "| scenario | " + " | ".join(f"S = {s}: median (p90)" for s in BUDGET_DELAY_SIZES) + " |",
        "|---" + "|---:" * len(BUDGET_DELAY_SIZES) + "|",
    ]
    for key, per_size in delays.items():
        lines.append(_row([SCENARIO_BY_KEY[key].label,
                           *(_cell(per_size[str(s)]) for s in BUDGET_DELAY_SIZES)]))
    return lines


# --------------------------------------------------------------------------- production-like

# Rows of issue 10: skew from a reference file, dependent and seasonal stationary streams,
# small shifts, a feature constant through the warm-up. Data: bench/production_streams.py.
PROD_RAW = ("adwin", "ph")
SEASONALITY = {"period": 86_400, "buckets": 96}
EVENTS_PER_MINUTE = 10.0  # the daily-cycle streams (issue 10: 7 days = 100,800 events)
TARGET_SKEW_DELAY = 3_000
TARGET_CODES_DELAY = 1_000
TARGET_DEPENDENT_FA = 1.0  # per 1M feature-events
TARGET_SHIFT_ON_CYCLE_DELAY = 3_000
TARGET_SMALL_SHIFT = {"mean_0.25": 5_000}  # the change scenario above, caught within
TARGET_CONSTANT_DELAY = 500


def new_config(**settings: Any) -> DetectorConfig | str:
    """The defaults with ``settings``, or "needs detectors.KEY" while DetectorConfig does not
    know a key yet (pydantic's ``extra_forbidden``); any other refusal is raised."""
    try:
        return DetectorConfig(**settings)
    except ValidationError as exc:
        unknown = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if not unknown or len(unknown) != len(exc.errors()):
            raise
        return "needs " + ", ".join(f"detectors.{k}" for k in sorted(unknown))


Hit = tuple[int, str, str, str]  # position, feature, kind, detector


class Feed:
    """One ``DetectorBank`` fed columns of events (feature -> values) in batches of ``batch``
    rows of model ``MODEL``, positions from ``start``, event times if given."""

    def __init__(self, config: DetectorConfig, batch: int = CHANGE_BATCH) -> None:
        self.bank = DetectorBank(config)
        self.batch = batch
        self.hits: list[Hit] = []

    def feed(self, columns: dict[str, list[Any]], start: int = 0,
             times: list[float] | None = None) -> None:
        names = list(columns)
        n = len(columns[names[0]])
        for b0 in range(0, n, self.batch):
            b1 = min(n, b0 + self.batch)
            batch = EventBatch()
            rows = zip(*(columns[k][b0:b1] for k in names), strict=True)
            for i, row in enumerate(rows, start=b0):
                batch.append(MODEL, None, dict(zip(names, row, strict=True)), None, start + i,
                             time=None if times is None else times[i])
            self.hits.extend((s.position, s.feature, s.kind, s.detector)
                             for s in self.bank.update(batch))

    def alarms(self, feature: str, since: int | None = None) -> int:
        """Signals of any kind of ``feature`` (at or after ``since``): false alarms where
        nothing changed."""
        return sum(1 for p, f, _, _ in self.hits if f == feature
                   and (since is None or p >= since))

    def detections(self, feature: str) -> list[int]:
        return [p for p, f, kind, _ in self.hits if f == feature and kind == "data_drift"]

    def outcome(self, feature: str, change: int, end: int) -> Outcome:
        pre, delay = score(self.detections(feature), change, end)
        first = min(((p, d) for p, f, k, d in self.hits
                     if f == feature and k == "data_drift" and p >= change), default=None)
        return Outcome(pre, delay, first[1] if first else None)

    def detectors(self, features: Iterable[str]) -> Counter[str]:
        wanted = set(features)
        return Counter(d for _, f, _, d in self.hits if f in wanted)


class RawFeed:
    """river's ADWIN and PageHinkley (defaults), one per feature, one update per value,
    carried over successive calls; positions from ``start`` (negative: a reference prefix)."""

    def __init__(self) -> None:
        self.detectors: dict[tuple[str, str], Any] = {}
        self.hits: dict[str, dict[str, list[int]]] = {m: defaultdict(list) for m in PROD_RAW}

    def feed(self, numbers: dict[str, FloatArray], start: int = 0) -> None:
        for feature, xs in numbers.items():
            values = xs.tolist()
            for m in PROD_RAW:
                hits, self.detectors[m, feature] = raw_detections(
                    RAW_FACTORIES[m], values, start, self.detectors.get((m, feature)))
                self.hits[m][feature] += hits

    def alarms(self, method: str, feature: str, since: int = 0) -> int:
        return sum(1 for p in self.hits[method][feature] if p >= since)

    def outcome(self, method: str, feature: str, change: int, end: int) -> Outcome:
        return Outcome(*score(self.hits[method][feature], change, end))


@dataclass
class Alarms:
    """False alarms over an exposure of feature-events."""

    count: int = 0
    feature_events: int = 0

    def add(self, count: int, feature_events: int) -> None:
        self.count += count
        self.feature_events += feature_events

    @property
    def per_million(self) -> float:
        return per_million(self.count, self.feature_events)

    @property
    def upper(self) -> float:
        """95% Poisson upper bound, per million feature-events."""
        return per_million(poisson_upper(self.count), self.feature_events)

    def text(self) -> str:
        if not self.feature_events:
            return "-"
        return (f"{_rate(self.per_million)} ({self.count:,}; <= {self.upper:.2f})"
                if self.count == 0 else f"{_rate(self.per_million)} ({self.count:,})")

    def json(self) -> dict[str, Any]:
        return {"alarms": self.count, "feature_events": self.feature_events,
                "per_million": self.per_million, "upper_95_per_million": self.upper}


def worst(s: Summary) -> float | None:
    """The largest delay when every seed detected, else None."""
    found = [d for d in s.delays if d is not None]
    return float(max(found)) if found and s.all_detected else None


def _delays_text(s: Summary) -> str:
    return (f"median {_delay(s.median)}, p90 {_delay(s.p90)}, max {_delay(worst(s))}, "
            f"detected {_share(s)}, FA {s.pre}")


def _within(s: Summary, bound: int) -> bool:
    """Caught within ``bound`` events on every seed, and no detection before the change."""
    w = worst(s)
    return w is not None and w <= bound and s.pre == 0


# -- 1. skew from the first event against a reference file

SKEW = {  # kind -> (the feature that differs, label)
    "location": ("x", "location: x ~ N(0.5, 1)"),
    "scale": ("x", "scale: x ~ N(0, 1.5^2)"),
    "shape": ("x", "shape: x bimodal, same mean and variance"),
    "categories": ("c", "categories: c at 20/30/50 % (reference 60/30/10)"),
    "codes": ("code", f"{ps.CODES:,} codes all replaced by new ones"),
}
SKEW_FEATURES = ("x", "c", "code")


@dataclass
class SkewResult:
    seeds: int
    events: int
    reference_events: int
    switch: int
    outcomes: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)
    control: dict[str, Alarms] = field(default_factory=dict)  # method -> controls' alarms
    control_detectors: Counter[str] = field(default_factory=Counter)
    skipped: str | None = None
    seconds: float = 0.0

    def summaries(self) -> dict[str, dict[str, Summary]]:
        return {k: {m: summarize(o) for m, o in per.items()} for k, per in self.outcomes.items()}


def run_skew(seeds: int, n: int, ref_n: int, switch: int, base_seed: int, tmp: Path,
             progress: Callable[[str], None]) -> SkewResult:
    """Per seed: a reference file of ``ref_n`` events (x, c, code), then one live stream of
    ``n`` events per kind of ``production_streams.SKEW_KINDS``, fed to
    ``DetectorConfig(reference_file=...)``; the raw baselines see the reference's values
    first, then the live stream (their only way to know the reference)."""
    t0 = time.perf_counter()
    out = SkewResult(seeds, n, ref_n, switch,
                     control={m: Alarms() for m in ("streamdrift", *PROD_RAW)})
    for seed in range(seeds):
        codes, new_codes = ps.code_sets(np.random.default_rng([base_seed, 5, 0, seed]))
        ref = ps.skew_reference(np.random.default_rng([base_seed, 5, 1, seed]), ref_n, codes)
        path = ps.write_reference(
            tmp / f"skew-{seed}.jsonl", MODEL, {k: v[0] for k, v in ref.items()},
            ps.event_times(ref_n, EVENTS_PER_MINUTE, ps.START - ref_n * 60 / EVENTS_PER_MINUTE
                           ).tolist())
        config = new_config(reference_file=str(path))
        if isinstance(config, str):
            out.skipped = config
            break
        for index, kind in enumerate(ps.SKEW_KINDS):
            rng = np.random.default_rng([base_seed, 5, 2 + index, seed])
            live = ps.skew_stream(kind, rng, n, codes, new_codes, switch)
            sd = Feed(config)
            sd.feed({k: v[0] for k, v in live.items()})
            changed = SKEW[kind][0] if kind in SKEW else None
            change = switch if kind == "codes" else 0
            # The raw baselines' cost is per value: they watch the changed feature, or every
            # feature of the stream where nothing differs (their controls).
            watched = [changed] if changed else list(SKEW_FEATURES)
            raw = RawFeed()
            raw.feed({k: ref[k][1] for k in watched}, -ref_n)
            raw.feed({k: live[k][1] for k in watched}, 0)
            if changed:
                per = out.outcomes.setdefault(kind, {})
                per.setdefault("streamdrift", []).append(sd.outcome(changed, change, n))
                for m in PROD_RAW:
                    per.setdefault(m, []).append(raw.outcome(m, changed, change, n))
            controls = [f for f in SKEW_FEATURES if f != changed]
            out.control["streamdrift"].add(sum(sd.alarms(f) for f in controls),
                                           n * len(controls))
            out.control_detectors.update(sd.detectors(controls))
            if not changed:
                for m in PROD_RAW:
                    out.control[m].add(sum(raw.alarms(m, f) for f in controls),
                                       n * len(controls))
        progress(f"skew from the reference: seed {seed}")
    out.seconds = time.perf_counter() - t0
    return out


def skew_section(r: SkewResult) -> list[str]:
    lines = [
        f"## Skew from the first event (reference file of {r.reference_events:,} events)",
        "",
        f"A reference file of {r.reference_events:,} events: x ~ N(0, 1), a category c at "
        f"a/b/c = 60/30/10 %, and `code`, uniform over {ps.CODES:,} zip-code-like strings. Each "
        f"live stream of {r.events:,} events follows the same law except one feature, from "
        f"its first event (the codes: from event {r.switch:,}, every code replaced by one of "
        f"{ps.CODES:,} new ones); its other features are controls. {r.seeds} seeds (a new "
        "reference per seed). streamdrift: `DetectorConfig(reference_file=...)`; adwin and ph "
        "see the reference's values first, then the live stream. Delay from the live stream's "
        "first event (the codes: from the switch); FA: detections of the changed feature "
        "before that (for the raw baselines: within the reference part), over all seeds. "
        "Controls: streamdrift's alarms on the features that do not differ, in every stream; "
        "the raw baselines' in the stream where nothing differs.",
        "",
    ]
    if r.skipped:
        return [*lines, f"Not run: {r.skipped}.", ""]
    summaries = r.summaries()
    head = ["difference from the reference"]
    for m in ("streamdrift", *PROD_RAW):
        head += [f"{m}: detected", f"{m}: median", f"{m}: p90", f"{m}: max", f"{m}: FA"]
    lines += [_row(head), "|---" + "|---:" * (len(head) - 1) + "|"]
    for kind, (_, label) in SKEW.items():
        cells = [label]
        for m in ("streamdrift", *PROD_RAW):
            s = summaries[kind][m]
            cells += [_share(s), _delay(s.median), _delay(s.p90), _delay(worst(s)), f"{s.pre:,}"]
        lines.append(_row(cells))
    cells = ["features that match the reference: FA per 1M feature-events (count)"]
    for m in ("streamdrift", *PROD_RAW):
        cells += ["-", "-", "-", "-", f"**{r.control[m].text()}**"]
    lines += [_row(cells), ""]
    firsts = ", ".join(f"{SKEW[k][0]} ({k}): " + (", ".join(
        f"{d} {c}" for d, c in summaries[k]["streamdrift"].first_detectors.items()) or "-")
        for k in SKEW)
    lines += [f"streamdrift's first detector per seed: {firsts}. Its alarms on the controls: "
              + (", ".join(f"{d} {c}" for d, c in r.control_detectors.most_common()) or "none")
              + ".", ""]
    return lines


def skew_targets(r: SkewResult) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    summaries = r.summaries() if not r.skipped else {}
    for kind, (_, label) in SKEW.items():
        bound = TARGET_CODES_DELAY if kind == "codes" else TARGET_SKEW_DELAY
        target = (f"skew from the reference, {label}: caught within {bound:,} events, every "
                  "seed, no alert before")
        if r.skipped:
            out.append(_not_run(target, r.skipped))
            continue
        s = summaries[kind]["streamdrift"]
        out.append({"target": target, "measured": _delays_text(s), "pass": _within(s, bound)})
    target = (f"skew from the reference: features that match it stay quiet (<= "
              f"{TARGET_FA_PER_MILLION} false alarms per 1M feature-events)")
    if r.skipped:
        out.append(_not_run(target, r.skipped))
    else:
        c = r.control["streamdrift"]
        out.append({"target": target, "measured": _alarms_text(c),
                    "pass": c.per_million <= TARGET_FA_PER_MILLION})
    return out


def _not_run(target: str, why: str) -> dict[str, Any]:
    return {"target": target, "measured": f"not run: {why}", "pass": None}


def _alarms_text(a: Alarms) -> str:
    return (f"{_rate(a.per_million)} per 1M ({a.count:,} in {a.feature_events:,} "
            f"feature-events; 95% upper bound {a.upper:.2f})")


# -- 2. dependent stationary streams

DEPENDENT_MODES = ("warm-up reference", "reference file")


@dataclass
class DependentResult:
    streams: int
    events: int
    reference_events: int
    alarms: dict[str, dict[str, Alarms]] = field(default_factory=dict)  # method -> process
    detectors: dict[str, Counter[str]] = field(default_factory=dict)  # streamdrift mode
    skipped: dict[str, str] = field(default_factory=dict)  # mode -> why
    seconds: float = 0.0


def run_dependent(streams: int, n: int, ref_n: int, base_seed: int, tmp: Path,
                  progress: Callable[[str], None]) -> DependentResult:
    """Per stream seed: ``n`` events of one model whose features are the processes of
    ``production_streams.DEPENDENT`` (no change), fed to the defaults with a warm-up
    reference and with a reference file of ``ref_n`` events of the same processes (another
    seed); the raw baselines from event 0."""
    t0 = time.perf_counter()
    names = list(ps.DEPENDENT)
    methods = [*(f"streamdrift, {m}" for m in DEPENDENT_MODES), *PROD_RAW]
    out = DependentResult(streams, n, ref_n,
                          alarms={m: {p: Alarms() for p in names} for m in methods})
    for stream in range(streams):
        def rngs(kind: int, stream: int = stream) -> dict[str, np.random.Generator]:
            return {p: np.random.default_rng([base_seed, 6, kind, stream, j])
                    for j, p in enumerate(names)}

        ref = ps.DependentStreams(rngs(1)).draw(ref_n)
        path = ps.write_reference(
            tmp / f"dependent-{stream}.jsonl", MODEL, {k: v.tolist() for k, v in ref.items()},
            ps.event_times(ref_n, EVENTS_PER_MINUTE, ps.START - ref_n * 60 / EVENTS_PER_MINUTE
                           ).tolist())
        feeds: dict[str, Feed] = {}
        for mode, config in zip(DEPENDENT_MODES, (new_config(),
                                                  new_config(reference_file=str(path))),
                                strict=True):
            if isinstance(config, str):
                out.skipped[mode] = config
            else:
                feeds[mode] = Feed(config, STATIONARY_BATCH)
        live = ps.DependentStreams(rngs(0))
        raw = RawFeed()
        last = time.monotonic()
        for start in range(0, n, STATIONARY_CHUNK):
            cols = live.draw(min(STATIONARY_CHUNK, n - start))
            values = {k: v.tolist() for k, v in cols.items()}
            for feed in feeds.values():
                feed.feed(values, start)
            raw.feed(cols, start)
            if time.monotonic() - last > 30:
                last = time.monotonic()
                progress(f"dependent streams: stream {stream}, {start:,}/{n:,} events")
        for mode, feed in feeds.items():
            for p in names:
                out.alarms[f"streamdrift, {mode}"][p].add(feed.alarms(p), n)
            out.detectors.setdefault(mode, Counter()).update(feed.detectors(names))
        for m in PROD_RAW:
            for p in names:
                out.alarms[m][p].add(raw.alarms(m, p), n)
        progress(f"dependent streams: stream {stream} done")
    out.seconds = time.perf_counter() - t0
    return out


def dependent_section(r: DependentResult) -> list[str]:
    methods = list(r.alarms)
    lines = [
        "## Dependent stationary streams (no change)",
        "",
        f"One model of {len(ps.DEPENDENT)} features, each a stationary process of unit "
        f"variance, {r.streams} stream seed(s) of {r.events:,} events; no change, so every "
        f"signal is a false alarm. streamdrift with the defaults: its warm-up reference, and "
        f"a reference file of {r.reference_events:,} events of the same processes (another "
        "seed); adwin and ph from event 0. False alarms per million feature-events (count; "
        "95% Poisson upper bound when 0).",
        "",
        _row(["process", *methods]),
        "|---" + "|---:" * len(methods) + "|",
    ]
    for p, label in ps.DEPENDENT.items():
        cells = [label]
        for m in methods:
            mode = m.removeprefix("streamdrift, ")
            cells.append(f"not run: {r.skipped[mode]}" if mode in r.skipped
                         else r.alarms[m][p].text())
        lines.append(_row(cells))
    lines.append("")
    for mode, c in r.detectors.items():
        lines.append(f"streamdrift ({mode}) detectors that fired: "
                     + (", ".join(f"{d} {k}" for d, k in c.most_common()) or "none") + ".")
    return [*lines, ""]


def dependent_targets(r: DependentResult) -> list[dict[str, Any]]:
    out = []
    for mode in DEPENDENT_MODES:
        for p, label in ps.DEPENDENT.items():
            target = (f"stationary {label}, {mode}: <= {TARGET_DEPENDENT_FA:g} false alarm per "
                      "1M feature-events")
            if mode in r.skipped:
                out.append(_not_run(target, r.skipped[mode]))
                continue
            a = r.alarms[f"streamdrift, {mode}"][p]
            measured = _alarms_text(a)
            if a.per_million <= TARGET_DEPENDENT_FA < a.upper:
                measured += " - too few feature-events to show the target at 95%"
            out.append({"target": target, "measured": measured,
                        "pass": a.per_million <= TARGET_DEPENDENT_FA})
    return out


# -- 3. daily cycle

@dataclass(frozen=True)
class CycleRun:
    key: str
    label: str
    reference: bool  # the reference file (day 1 of the process, another seed)
    seasonal: bool  # detectors.seasonality = SEASONALITY
    shift: bool = False  # load + 0.5 from day 4 noon


CYCLE_RUNS = (
    CycleRun("warmup", "no seasonality, warm-up reference", False, False),
    CycleRun("reference", "no seasonality, reference file (a day)", True, False),
    CycleRun("seasonal_reference", "seasonality, reference file (a day)", True, True),
    CycleRun("seasonal_first_day", "seasonality, reference from the stream's first day",
             False, True),
    CycleRun("seasonal_shift", "seasonality, reference file, load +0.5 from day 4 noon",
             True, True, shift=True),
)
CYCLE_FEATURES = ("load", "flat")
CYCLE_AMPLITUDE = 2.0
SMALL_CYCLE_AMPLITUDE = 0.3
SHIFT_ON_CYCLE = 0.5


@dataclass
class CycleResult:
    seeds: int
    days: int
    events: int
    shift_at: int
    alarms: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # run, method
    detectors: dict[str, Counter[str]] = field(default_factory=dict)
    shift: dict[str, list[Outcome]] = field(default_factory=dict)  # method -> per seed
    skipped: dict[str, str] = field(default_factory=dict)
    small_seeds: int = 0
    small_events: int = 0
    small: dict[str, int] = field(default_factory=dict)  # method -> alarms
    small_detectors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def run_cycle(seeds: int, days: int, small_seeds: int, small_n: int, base_seed: int,
              tmp: Path, progress: Callable[[str], None]) -> CycleResult:
    """Per seed: ``days`` days at ``EVENTS_PER_MINUTE`` of ``load`` (a +-2 sd daily sine plus
    unit noise) and ``flat`` (noise) from a midnight, a reference file of the day before
    (another seed), and each of ``CYCLE_RUNS``; then ``small_seeds`` streams of ``small_n``
    events of a +-0.3 sd cycle, no seasonality, warm-up reference."""
    t0 = time.perf_counter()
    per_day = int(ps.DAY * EVENTS_PER_MINUTE / 60)
    n = days * per_day
    shift_at = int(3.5 * per_day)
    times = ps.event_times(n, EVENTS_PER_MINUTE)
    ref_times = ps.event_times(per_day, EVENTS_PER_MINUTE, ps.START - ps.DAY)
    out = CycleResult(seeds, days, n, shift_at)
    methods = ("streamdrift", *PROD_RAW)
    for run in CYCLE_RUNS:
        out.alarms[run.key] = {m: dict.fromkeys(CYCLE_FEATURES, 0) for m in methods}
    for seed in range(seeds):
        rng = np.random.default_rng([base_seed, 7, 0, seed])
        load = ps.daily_cycle(rng, times, CYCLE_AMPLITUDE)
        live = {"load": load, "flat": rng.normal(0.0, 1.0, n)}
        shifted = {**live, "load": load + np.where(np.arange(n) >= shift_at, SHIFT_ON_CYCLE, 0.0)}
        rng = np.random.default_rng([base_seed, 7, 1, seed])
        ref = {"load": ps.daily_cycle(rng, ref_times, CYCLE_AMPLITUDE),
               "flat": rng.normal(0.0, 1.0, per_day)}
        path = ps.write_reference(tmp / f"cycle-{seed}.jsonl", MODEL,
                                  {k: v.tolist() for k, v in ref.items()}, ref_times.tolist())
        raws: dict[tuple[bool, bool], RawFeed] = {}
        for run in CYCLE_RUNS:
            settings: dict[str, Any] = {}
            if run.reference:
                settings["reference_file"] = str(path)
            if run.seasonal:
                settings["seasonality"] = SEASONALITY
            config = new_config(**settings)
            data = shifted if run.shift else live
            raw = raws.get((run.reference, run.shift))
            if raw is None:
                raw = raws[run.reference, run.shift] = RawFeed()
                if run.reference:
                    raw.feed(ref, -per_day)
                raw.feed(data, 0)
            for m in PROD_RAW:
                for f in CYCLE_FEATURES:
                    out.alarms[run.key][m][f] += raw.alarms(m, f)
            if run.shift:
                for m in PROD_RAW:
                    out.shift.setdefault(m, []).append(raw.outcome(m, "load", shift_at, n))
            if isinstance(config, str):
                out.skipped[run.key] = config
                continue
            sd = Feed(config, STATIONARY_BATCH)
            sd.feed({k: v.tolist() for k, v in data.items()}, 0, times.tolist())
            for f in CYCLE_FEATURES:
                out.alarms[run.key]["streamdrift"][f] += sd.alarms(f)
            out.detectors.setdefault(run.key, Counter()).update(sd.detectors(CYCLE_FEATURES))
            if run.shift:
                out.shift.setdefault("streamdrift", []).append(sd.outcome("load", shift_at, n))
        progress(f"daily cycle: seed {seed}")
    out.small_seeds, out.small_events = small_seeds, small_n
    out.small = dict.fromkeys(methods, 0)
    small_times = ps.event_times(small_n, EVENTS_PER_MINUTE)
    for seed in range(small_seeds):
        xs = ps.daily_cycle(np.random.default_rng([base_seed, 7, 2, seed]), small_times,
                            SMALL_CYCLE_AMPLITUDE)
        sd = Feed(DEFAULT, STATIONARY_BATCH)
        sd.feed({"x": xs.tolist()}, 0, small_times.tolist())
        out.small["streamdrift"] += sd.alarms("x")
        out.small_detectors.update(sd.detectors(["x"]))
        raw = RawFeed()
        raw.feed({"x": xs}, 0)
        for m in PROD_RAW:
            out.small[m] += raw.alarms(m, "x")
        progress(f"small daily cycle: seed {seed}")
    out.seconds = time.perf_counter() - t0
    return out


def cycle_section(r: CycleResult) -> list[str]:
    methods = ("streamdrift", *PROD_RAW)
    lines = ["## Daily cycle", ""]
    if r.seeds:
        lines += cycle_tables(r)
    if r.small_seeds:
        per_day = ps.DAY / 60 * EVENTS_PER_MINUTE
        exposure = r.small_events * r.small_seeds
        lines += [
            f"A smaller cycle: x = {SMALL_CYCLE_AMPLITUDE:g} sin(2 pi t / 1 day) + N(0, 1) at "
            f"{EVENTS_PER_MINUTE:g} events a minute, {r.small_seeds} seed(s) of "
            f"{r.small_events:,} events ({r.small_events / per_day:.1f} days), no "
            "seasonality, warm-up reference: alerts "
            + ", ".join(f"{m} {r.small[m]:,} ({_rate(per_million(r.small[m], exposure))} "
                        "per 1M)" for m in methods)
            + "; streamdrift detectors: "
            + (", ".join(f"{d} {k}" for d, k in r.small_detectors.most_common()) or "none")
            + ".",
            "",
        ]
    return lines


def cycle_tables(r: CycleResult) -> list[str]:
    methods = ("streamdrift", *PROD_RAW)
    seed_days = r.seeds * r.days
    lines = [
        f"{r.days} days at {EVENTS_PER_MINUTE:g} events a minute ({r.events:,} events) from a "
        f"midnight: `load` = {CYCLE_AMPLITUDE:g} sin(2 pi t / 1 day) + N(0, 1), `flat` = "
        f"N(0, 1); {r.seeds} seed(s). The reference file is the day before, drawn from the "
        f"same process (another seed). Seasonality: `detectors.seasonality: "
        f"{{period: {SEASONALITY['period']}, buckets: {SEASONALITY['buckets']}}}`. Alerts over "
        f"all seeds (per seed and day). adwin and ph see the reference's values first when the "
        "row has a reference file, and know nothing of seasons.",
        "",
        _row(["run", *(f"{m}: {f}" for m in methods for f in CYCLE_FEATURES)]),
        "|---" + "|---:" * (len(methods) * len(CYCLE_FEATURES)) + "|",
    ]
    for run in CYCLE_RUNS:
        if run.shift:
            continue
        cells = [run.label]
        for m in methods:
            for f in CYCLE_FEATURES:
                if m == "streamdrift" and run.key in r.skipped:
                    cells.append(f"not run: {r.skipped[run.key]}")
                else:
                    k = r.alarms[run.key][m][f]
                    cells.append(f"{k:,} ({k / seed_days:.2f}/day)" if seed_days else "-")
        lines.append(_row(cells))
    shift = next(run for run in CYCLE_RUNS if run.shift)
    lines += [
        "",
        f"The same with `load` + {SHIFT_ON_CYCLE:g} (half its noise sd) from day 4 noon (event "
        f"{r.shift_at:,}) on top of the cycle, with seasonality and the reference file: delay "
        "from the shift, FA = detections of `load` before it; alarms of `flat` (the control).",
        "",
        _row(["method", "detected", "median", "p90", "max", "FA on load", "alarms on flat"]),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in methods:
        if m == "streamdrift" and shift.key in r.skipped:
            lines.append(_row([m, f"not run: {r.skipped[shift.key]}", "", "", "", "", ""]))
            continue
        s = summarize(r.shift.get(m, []))
        lines.append(_row([m, _share(s), _delay(s.median), _delay(s.p90), _delay(worst(s)),
                           f"{s.pre:,}", f"{r.alarms[shift.key][m]['flat']:,}"]))
    for key, c in r.detectors.items():
        lines.append("")
        lines.append(f"streamdrift detectors ({key}): "
                     + (", ".join(f"{d} {k}" for d, k in c.most_common()) or "none") + ".")
    return [*lines, ""]


def cycle_targets(r: CycleResult) -> list[dict[str, Any]]:
    out = []
    for run in CYCLE_RUNS:
        if not run.seasonal or run.shift:
            continue
        target = (f"daily cycle, {run.label}: 0 alerts over {r.days} days on load and flat, "
                  "every seed")
        if run.key in r.skipped:
            out.append(_not_run(target, r.skipped[run.key]))
            continue
        a = r.alarms[run.key]["streamdrift"]
        out.append({"target": target,
                    "measured": ", ".join(f"{f} {a[f]:,}" for f in CYCLE_FEATURES)
                    + f" over {r.seeds} seed(s)",
                    "pass": sum(a.values()) == 0})
    shift = next(run for run in CYCLE_RUNS if run.shift)
    target = (f"daily cycle, {shift.label}: caught within {TARGET_SHIFT_ON_CYCLE_DELAY:,} "
              "events, every seed, no alert before")
    if shift.key in r.skipped:
        out.append(_not_run(target, r.skipped[shift.key]))
    else:
        s = summarize(r.shift["streamdrift"])
        out.append({"target": target,
                    "measured": _delays_text(s)
                    + f"; alarms on flat {r.alarms[shift.key]['streamdrift']['flat']}",
                    "pass": _within(s, TARGET_SHIFT_ON_CYCLE_DELAY)})
    return out


# -- 4. a shift too small to matter

SMALL_SHIFT = 0.03


@dataclass
class SmallShiftResult:
    seeds: int
    before: int
    after: int
    alerts: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # method -> per
    # seed: (signals before the change, after it)
    detectors: Counter[str] = field(default_factory=Counter)
    no_floor: str | None = None  # why the min_effect 0 column did not run
    seconds: float = 0.0

    def total(self, method: str) -> tuple[int, int]:
        per = self.alerts.get(method, [])
        return sum(b for b, _ in per), sum(a for _, a in per)


def run_small_shift(seeds: int, before: int, after: int, base_seed: int,
                    progress: Callable[[str], None]) -> SmallShiftResult:
    """Per seed: N(0, 1) for ``before`` events, N(0.03, 1) for ``after``; the defaults with a
    warm-up reference, the same with ``min_effect`` 0 (no effect floor: what the floor
    holds back), the raw baselines from event 0. Every signal counts as an alert."""
    t0 = time.perf_counter()
    out = SmallShiftResult(seeds, before, after)
    try:
        no_floor = new_config(min_effect=0.0)
    except ValidationError as exc:  # a floor that must be positive: the column says so
        no_floor = f"detectors.min_effect 0 refused: {exc.errors()[0]['msg']}"
    if isinstance(no_floor, str):
        out.no_floor = no_floor
    configs = {"streamdrift": DEFAULT} | ({} if isinstance(no_floor, str)
                                          else {NO_FLOOR: no_floor})
    for seed in range(seeds):
        rng = np.random.default_rng([base_seed, 8, 0, seed])
        xs = np.concatenate((rng.normal(0.0, 1.0, before), rng.normal(SMALL_SHIFT, 1.0, after)))
        for name, config in configs.items():
            sd = Feed(config, STATIONARY_BATCH)
            sd.feed({"x": xs.tolist()})
            after_change = sd.alarms("x", before)
            out.alerts.setdefault(name, []).append((sd.alarms("x") - after_change,
                                                    after_change))
            if name == "streamdrift":
                out.detectors.update(sd.detectors(["x"]))
        raw = RawFeed()
        raw.feed({"x": xs})
        for m in PROD_RAW:
            after_change = raw.alarms(m, "x", before)
            out.alerts.setdefault(m, []).append((raw.alarms(m, "x") - after_change,
                                                 after_change))
        progress(f"small shift {SMALL_SHIFT} sd: seed {seed}")
    out.seconds = time.perf_counter() - t0
    return out


NO_FLOOR = "streamdrift, min_effect 0"


def small_shift_section(r: SmallShiftResult, summaries: dict[str, dict[str, Summary]],
                        change_seeds: int) -> list[str]:
    methods = ("streamdrift", *PROD_RAW)
    totals = {m: (f"not run: {r.no_floor}" if m == NO_FLOOR and r.no_floor
                  else "{:,} / {:,}".format(*r.total(m)))
              for m in ("streamdrift", NO_FLOOR, *PROD_RAW)}
    return [
        "## Small shifts from a warm-up reference",
        "",
        f"x ~ N(0, 1) for {r.before:,} events, then N({SMALL_SHIFT:g}, 1) for {r.after:,} events, "
        f"{r.seeds} seed(s); streamdrift with the defaults (warm-up reference) and with "
        "`min_effect: 0` (no effect floor), adwin and ph from event 0. A shift this small is "
        "not worth a page: every alert counts, before and after the change. The 0.25 sd row "
        f"is the change scenario of the first table ({change_seeds} seeds, delay from the "
        "change).",
        "",
        _row(["shift", *(f"{m}: alerts before / after the change" for m in totals)]),
        "|---" + "|---:" * len(totals) + "|",
        _row([f"{SMALL_SHIFT:g} sd", *totals.values()]),
        "",
        _row(["shift", *(f"{m}: detected, median (p90, max)" for m in methods)]),
        "|---" + "|---:" * len(methods) + "|",
        _row(["0.25 sd", *(
            f"{_share(s)}, {_delay(s.median)} ({_delay(s.p90)}, {_delay(worst(s))})"
            for s in (summaries["mean_0.25"][m] for m in methods))]),
        "",
        f"streamdrift detectors on the {SMALL_SHIFT:g} sd streams: "
        + (", ".join(f"{d} {k}" for d, k in r.detectors.most_common()) or "none") + ".",
        "",
    ]


def small_shift_targets(r: SmallShiftResult, summaries: dict[str, dict[str, Summary]]
                        ) -> list[dict[str, Any]]:
    alerts = sum(r.total("streamdrift"))
    out: list[dict[str, Any]] = [{
        "target": f"{SMALL_SHIFT:g} sd shift: 0 alerts in {r.after:,} events after it, "
                  "every seed",
        "measured": f"{alerts} alert(s) over {r.seeds} seed(s) of {r.before + r.after:,} events",
        "pass": alerts == 0}]
    for key, bound in TARGET_SMALL_SHIFT.items():
        s = summaries[key]["streamdrift"]
        out.append({"target": f"{SCENARIO_BY_KEY[key].label}: caught within {bound:,} events, "
                              "every seed, no alert before",
                    "measured": _delays_text(s), "pass": _within(s, bound)})
    return out


# -- 5. constant through the warm-up, then varying (../shared/cases/c02)

CONSTANT_G_UNTIL = 3_000


@dataclass
class ConstantResult:
    seeds: int
    events: int
    starts: dict[str, int]  # feature -> where it starts varying
    outcomes: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)
    quiet: dict[str, int] = field(default_factory=dict)  # method -> alarms of k
    seconds: float = 0.0


def run_constant(seeds: int, n: int, base_seed: int, progress: Callable[[str], None]
                 ) -> ConstantResult:
    """Per seed: ``f`` 0.0 for the warm-up then N(0, 1), ``g`` 0.0 for 3,000 events then
    N(0, 1), ``k`` 0.0 throughout; the defaults, the raw baselines from event 0."""
    t0 = time.perf_counter()
    starts = {"f": DEFAULT.warmup, "g": CONSTANT_G_UNTIL}
    out = ConstantResult(seeds, n, starts, quiet=dict.fromkeys(("streamdrift", *PROD_RAW), 0))
    index = np.arange(n)
    for seed in range(seeds):
        rng = np.random.default_rng([base_seed, 9, 0, seed])
        cols = {f: np.where(index < start, 0.0, rng.normal(0.0, 1.0, n))
                for f, start in starts.items()}
        cols["k"] = np.zeros(n)
        sd = Feed(DEFAULT)
        sd.feed({k: v.tolist() for k, v in cols.items()})
        raw = RawFeed()
        raw.feed(cols)
        for f, start in starts.items():
            per = out.outcomes.setdefault(f, {})
            per.setdefault("streamdrift", []).append(sd.outcome(f, start, n))
            for m in PROD_RAW:
                per.setdefault(m, []).append(raw.outcome(m, f, start, n))
        out.quiet["streamdrift"] += sd.alarms("k")
        for m in PROD_RAW:
            out.quiet[m] += raw.alarms(m, "k")
    progress(f"constant through the warm-up: {seeds} seeds")
    out.seconds = time.perf_counter() - t0
    return out


def constant_section(r: ConstantResult) -> list[str]:
    methods = ("streamdrift", *PROD_RAW)
    head = ["feature"]
    for m in methods:
        head += [f"{m}: detected", f"{m}: median", f"{m}: p90", f"{m}: max", f"{m}: FA"]
    lines = [
        "## Constant through the warm-up, then varying",
        "",
        f"As `../shared/cases/c02`: `f` is 0.0 for the warm-up ({DEFAULT.warmup:,} events) "
        f"then N(0, 1), `g` 0.0 for {CONSTANT_G_UNTIL:,} events then N(0, 1), `k` 0.0 "
        f"throughout; {r.seeds} seeds of {r.events:,} events, the defaults. Delay from the "
        "start of variation; FA: detections before it.",
        "",
        _row(head),
        "|---" + "|---:" * (len(head) - 1) + "|",
    ]
    for f, start in r.starts.items():
        cells = [f"{f} (varies from {start:,})"]
        for m in methods:
            s = summarize(r.outcomes[f][m])
            cells += [_share(s), _delay(s.median), _delay(s.p90), _delay(worst(s)), f"{s.pre:,}"]
        lines.append(_row(cells))
    cells = ["k (constant): alarms"]
    for m in methods:
        cells += ["-", "-", "-", "-", f"**{r.quiet[m]:,}**"]
    return [*lines, _row(cells), ""]


def constant_targets(r: ConstantResult) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f, start in r.starts.items():
        s = summarize(r.outcomes[f]["streamdrift"])
        out.append({"target": f"constant for {start:,} events, then N(0, 1): caught within "
                              f"{TARGET_CONSTANT_DELAY} events, every seed, no alert before",
                    "measured": _delays_text(s), "pass": _within(s, TARGET_CONSTANT_DELAY)})
    out.append({"target": "a feature constant throughout stays quiet",
                "measured": f"{r.quiet['streamdrift']} alarm(s) over {r.seeds} seeds of "
                            f"{r.events:,} events", "pass": r.quiet["streamdrift"] == 0})
    return out


# -- joint (multivariate) drift (issue 17)

TARGET_JOINT_DELAY = 3_000
TARGET_JOINT_FA = 1.0  # multivariate alarms per 1M model events
JOINT_CHANGE = 10_000
JOINT_CONFIG = DetectorConfig(multivariate={"enabled": True})


@dataclass
class JointResult:
    seeds: int
    events: int
    stationary_events: int
    outcomes: list[Outcome] = field(default_factory=list)  # the multivariate series
    feature_alarms: int = 0  # per-feature alerts on the correlation flip (none expected)
    stationary: dict[str, Alarms] = field(default_factory=dict)  # stream -> multivariate
    seconds: float = 0.0


def _factor_stream(rng: np.random.Generator, n: int, phi: float, features: int = 20
                   ) -> dict[str, list[float]]:
    """``features`` features loading on two AR(1) factors (coefficient ``phi``, unit
    variance) plus independent noise of sd 0.5: correlated across features and, with
    phi > 0, in time."""
    shocks = rng.normal(size=(n, 2)) * math.sqrt(1.0 - phi * phi)
    factors = np.asarray(lfilter([1.0], [1.0, -phi], shocks, axis=0))
    loadings = rng.uniform(-1.0, 1.0, size=(2, features))
    x = factors @ loadings + 0.5 * rng.normal(size=(n, features))
    return {f"f{j:02d}": x[:, j].tolist() for j in range(features)}


def run_joint(seeds: int, n: int, stationary_n: int, base_seed: int,
              progress: Callable[[str], None]) -> JointResult:
    """Per seed: ``income`` and ``loan`` correlated +0.8 until JOINT_CHANGE, then
    independent, three more N(0, 1) features, every marginal N(0, 1) throughout; and two
    stationary streams of 20 correlated features (independent and AR(1) phi 0.9 factors)."""
    t0 = time.perf_counter()
    out = JointResult(seeds, n, stationary_n)
    index = np.arange(n)
    for seed in range(seeds):
        rng = np.random.default_rng([base_seed, 10, 0, seed])
        income, noise = rng.normal(size=n), rng.normal(size=n)
        loan = np.where(index < JOINT_CHANGE, 0.8 * income + 0.6 * noise, noise)
        cols = {"income": income.tolist(), "loan": loan.tolist(),
                **{f"o{j}": rng.normal(size=n).tolist() for j in range(3)}}
        sd = Feed(JOINT_CONFIG)
        sd.feed(cols)
        out.outcomes.append(sd.outcome(MULTIVARIATE, JOINT_CHANGE, n))
        out.feature_alarms += sum(sd.alarms(f) for f in cols)
    progress(f"joint: correlation flip, {seeds} seeds")
    for i, (name, phi) in enumerate((("independent factors", 0.0),
                                     ("AR(1) factors, phi 0.9", 0.9))):
        rng = np.random.default_rng([base_seed, 10, 1, i])
        sd = Feed(JOINT_CONFIG)
        sd.feed(_factor_stream(rng, stationary_n, phi))
        out.stationary[name] = Alarms(sd.alarms(MULTIVARIATE), stationary_n)
        progress(f"joint: stationary, {name}: {stationary_n:,} events")
    out.seconds = time.perf_counter() - t0
    return out


def joint_section(r: JointResult) -> list[str]:
    s = summarize(r.outcomes)
    lines = [
        "## Joint drift: the multivariate reconstruction error",
        "",
        f"`income` and `loan` correlated +0.8 until event {JOINT_CHANGE:,}, then independent, "
        f"beside three independent features; every marginal N(0, 1) throughout ({r.seeds} "
        f"seeds of {r.events:,} events, the defaults with `multivariate: {{enabled: true}}`). "
        "Delay from the change to the first `multivariate` alert; FA: its alerts before the "
        "change.",
        "",
        "| series | detected | median | p90 | max | FA | per-feature alerts |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| multivariate | {_share(s)} | {_delay(s.median)} | {_delay(s.p90)} | "
        f"{_delay(worst(s))} | {s.pre:,} | **{r.feature_alarms:,}** |",
        "",
        f"Stationary streams of 20 features loading on two factors ({r.stationary_events:,} "
        "events each): `multivariate` alerts per million model events.",
        "",
        "| stream | multivariate alarms per 1M events |",
        "|---|---:|",
    ]
    for name, a in r.stationary.items():
        lines.append(f"| {name} | {a.text()} |")
    return [*lines, ""]


def joint_targets(r: JointResult) -> list[dict[str, Any]]:
    s = summarize(r.outcomes)
    alarms = sum(a.count for a in r.stationary.values())
    events = sum(a.feature_events for a in r.stationary.values())
    return [
        {"target": f"correlation +0.8 -> 0 with fixed marginals: caught by `multivariate` "
                   f"within {TARGET_JOINT_DELAY:,} events, every seed; every per-feature "
                   "monitor silent",
         "measured": f"{_delays_text(s)}; per-feature alerts {r.feature_alarms}",
         "pass": _within(s, TARGET_JOINT_DELAY) and r.feature_alarms == 0},
        {"target": f"<= {TARGET_JOINT_FA:g} multivariate false alarm per 1M model events on "
                   "stationary correlated streams (dependent in time too)",
         "measured": f"{alarms} alarm(s) in {events:,} model events "
                     f"({per_million(alarms, events):.2f} per 1M)",
         "pass": per_million(alarms, events) <= TARGET_JOINT_FA},
    ]


# -- all of them

@dataclass
class Production:
    """The production-like rows; a row is None when its seeds (or events) were set to 0."""

    skew: SkewResult | None = None
    dependent: DependentResult | None = None
    cycle: CycleResult | None = None
    small_shift: SmallShiftResult | None = None
    constant: ConstantResult | None = None
    joint: JointResult | None = None

    @property
    def seconds(self) -> dict[str, float]:
        return {k: r.seconds for k, r in vars(self).items() if r is not None}


def run_production(args: argparse.Namespace, progress: Callable[[str], None]) -> Production:
    out = Production()
    with tempfile.TemporaryDirectory(prefix="streamdrift-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.skew_seeds:
            out.skew = run_skew(args.skew_seeds, args.skew_events, args.reference_events,
                                args.switch_at, args.seed, tmp, progress)
        if args.dependent_streams and args.dependent_events:
            out.dependent = run_dependent(args.dependent_streams, args.dependent_events,
                                          args.reference_events, args.seed, tmp, progress)
        if args.cycle_seeds or args.small_cycle_seeds:
            out.cycle = run_cycle(args.cycle_seeds, args.cycle_days, args.small_cycle_seeds,
                                  args.small_cycle_events, args.seed, tmp, progress)
    if args.small_shift_seeds:
        out.small_shift = run_small_shift(args.small_shift_seeds, args.before,
                                          args.small_shift_after, args.seed, progress)
    if args.constant_seeds:
        out.constant = run_constant(args.constant_seeds, args.constant_events, args.seed,
                                    progress)
    if args.joint_seeds:
        out.joint = run_joint(args.joint_seeds, args.joint_events, args.joint_stationary_events,
                              args.seed, progress)
    return out


def production_targets(p: Production, summaries: dict[str, dict[str, Summary]]
                       ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if p.skew:
        out += skew_targets(p.skew)
    if p.dependent:
        out += dependent_targets(p.dependent)
    if p.cycle and p.cycle.seeds:
        out += cycle_targets(p.cycle)
    if p.small_shift:
        out += small_shift_targets(p.small_shift, summaries)
    if p.constant:
        out += constant_targets(p.constant)
    if p.joint:
        out += joint_targets(p.joint)
    return out


def production_sections(p: Production, summaries: dict[str, dict[str, Summary]],
                        change_seeds: int) -> list[str]:
    out: list[str] = []
    if p.skew:
        out += skew_section(p.skew)
    if p.dependent:
        out += dependent_section(p.dependent)
    if p.cycle:
        out += cycle_section(p.cycle)
    if p.small_shift:
        out += small_shift_section(p.small_shift, summaries, change_seeds)
    if p.constant:
        out += constant_section(p.constant)
    if p.joint:
        out += joint_section(p.joint)
    return out


def production_paragraph(p: Production) -> str:
    """The production-like rows in words, from the numbers (for the README)."""
    parts: list[str] = []
    if p.skew and not p.skew.skipped:
        r = p.skew
        s = {k: v["streamdrift"] for k, v in r.summaries().items()}

        def found(kind: str) -> str:
            x = s[kind]
            if not x.all_detected:
                return _caught(x)
            return f"after a median {_delay(x.median)} events (worst seed {_delay(worst(x))})"

        parts.append(
            f"Against a reference file of {r.reference_events:,} events, streams that differ "
            f"from it from their first event were caught: a 0.5 sd location shift "
            f"{found('location')}, a 1.5x scale {found('scale')}, a bimodal shape of the same "
            f"mean and variance {found('shape')}, a category mix 60/30/10 -> 20/30/50 % "
            f"{found('categories')}, and the switch of all {ps.CODES:,} codes of a "
            f"zip-code-like feature to new ones {found('codes')} after the switch "
            f"({r.seeds} seeds each). Features that matched the reference raised "
            f"{_rate(r.control['streamdrift'].per_million)} false alarms per million "
            f"feature-events. Raw ADWIN, fed the reference first, caught the location shift "
            f"{_caught(r.summaries()['location']['adwin'])}.")
    if p.dependent:
        r2 = p.dependent
        modes = [m for m in DEPENDENT_MODES if m not in r2.skipped]
        parts.append(
            "With no change at all, dependent streams raised per million feature-events: "
            + "; ".join(f"{label}: " + ", ".join(
                f"{_rate(r2.alarms['streamdrift, ' + m][p_].per_million)} ({m})"
                for m in modes)
                + f", raw ADWIN {_rate(r2.alarms['adwin'][p_].per_million)}, raw Page-Hinkley "
                f"{_rate(r2.alarms['ph'][p_].per_million)}"
                for p_, label in ps.DEPENDENT.items())
            + f" ({r2.streams} x {r2.events:,} events each).")
    if p.cycle and p.cycle.seeds:
        r3 = p.cycle

        def cyc(key: str) -> str:
            if key in r3.skipped:
                return f"not measured ({r3.skipped[key]})"
            a = r3.alarms[key]["streamdrift"]
            return f"{a['load']:,} alerts on `load` and {a['flat']:,} on `flat`"

        shift = (f"was not measured ({r3.skipped['seasonal_shift']})"
                 if "seasonal_shift" in r3.skipped else
                 "was caught " + _caught(summarize(r3.shift["streamdrift"])))
        parts.append(
            f"A +-{CYCLE_AMPLITUDE:g} sd daily cycle over {r3.days} days ({r3.seeds} seed(s)) "
            f"raised {cyc('reference')} without seasonality (reference file of one day), "
            f"{cyc('seasonal_reference')} with `seasonality` and that file, "
            f"{cyc('seasonal_first_day')} with `seasonality` learnt from the first day; a "
            f"+{SHIFT_ON_CYCLE:g} sd shift on top of the cycle {shift}.")
    if p.cycle and p.cycle.small_seeds:
        r3 = p.cycle
        parts.append(
            f"A +-{SMALL_CYCLE_AMPLITUDE:g} sd daily cycle without seasonality raised "
            f"{r3.small['streamdrift']:,} alerts in {r3.small_seeds * r3.small_events:,} events "
            f"(raw ADWIN {r3.small['adwin']:,}, raw Page-Hinkley {r3.small['ph']:,}).")
    if p.small_shift:
        _, a = p.small_shift.total("streamdrift")
        parts.append(f"A {SMALL_SHIFT:g} sd shift raised {a:,} alert(s) in the "
                     f"{p.small_shift.after:,} events after it ({p.small_shift.seeds} seed(s)).")
    if p.constant:
        f = summarize(p.constant.outcomes["f"]["streamdrift"])
        parts.append(f"A feature constant through the warm-up was caught "
                     f"{_caught(f)} after it began to vary.")
    return " ".join(parts)


def _caught(s: Summary) -> str:
    """How a row was caught, to follow "caught": "after a median 120 events" or "on none of
    20 seeds"."""
    if not s.detected:
        return f"on none of {s.seeds} seeds"
    text = f"after a median {_delay(s.median)} events"
    return text if s.all_detected else f"{text}, on {_share(s)} seeds"


def production_json(p: Production) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.skew:
        r = p.skew
        out["skew"] = {
            "seeds": r.seeds, "events": r.events, "reference_events": r.reference_events,
            "switch": r.switch, "skipped": r.skipped,
            "scenarios": {k: {m: _summary_json(s) for m, s in per.items()}
                          for k, per in r.summaries().items()},
            "controls": {m: a.json() for m, a in r.control.items()},
            "control_detectors": dict(r.control_detectors)}
    if p.dependent:
        r2 = p.dependent
        out["dependent"] = {
            "streams": r2.streams, "events": r2.events,
            "reference_events": r2.reference_events, "skipped": r2.skipped,
            "processes": ps.DEPENDENT,
            "alarms": {m: {k: a.json() for k, a in per.items()} for m, per in r2.alarms.items()},
            "detectors": {k: dict(c) for k, c in r2.detectors.items()}}
    if p.cycle:
        r3 = p.cycle
        out["daily_cycle"] = {
            "seeds": r3.seeds, "days": r3.days, "events": r3.events,
            "events_per_minute": EVENTS_PER_MINUTE, "shift_at": r3.shift_at,
            "seasonality": SEASONALITY, "skipped": r3.skipped,
            "runs": {run.key: run.label for run in CYCLE_RUNS}, "alarms": r3.alarms,
            "shift": {m: _summary_json(summarize(o)) for m, o in r3.shift.items()},
            "detectors": {k: dict(c) for k, c in r3.detectors.items()},
            "small_cycle": {"amplitude": SMALL_CYCLE_AMPLITUDE, "seeds": r3.small_seeds,
                            "events": r3.small_events, "alarms": r3.small,
                            "detectors": dict(r3.small_detectors)}}
    if p.small_shift:
        r4 = p.small_shift
        out["small_shift"] = {
            "shift_sd": SMALL_SHIFT, "seeds": r4.seeds, "before": r4.before, "after": r4.after,
            "alerts_before_after": r4.alerts, "detectors": dict(r4.detectors),
            "min_effect_0_skipped": r4.no_floor}
    if p.constant:
        r5 = p.constant
        out["constant_then_varies"] = {
            "seeds": r5.seeds, "events": r5.events, "starts": r5.starts,
            "features": {f: {m: _summary_json(summarize(o)) for m, o in per.items()}
                         for f, per in r5.outcomes.items()},
            "constant_alarms": r5.quiet}
    if p.joint:
        r6 = p.joint
        out["joint"] = {
            "seeds": r6.seeds, "events": r6.events, "change": JOINT_CHANGE,
            "multivariate": _summary_json(summarize(r6.outcomes)),
            "per_feature_alerts": r6.feature_alarms,
            "stationary": {k: a.json() for k, a in r6.stationary.items()}}
    return out


def _variant_seconds(seconds: dict[str, float]) -> float:
    return sum(v for k, v in seconds.items() if k.startswith("variant:"))


def per_million(count: float, feature_events: int) -> float:
    return count / feature_events * 1e6 if feature_events else float("nan")


def poisson_upper(k: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after observing ``k`` events.

    >>> round(poisson_upper(0), 3)
    2.996
    """
    lo, hi = 0.0, 10.0 + 10.0 * k
    for _ in range(200):
        mid = (lo + hi) / 2
        cdf = sum(math.exp(-mid + i * math.log(mid) - math.lgamma(i + 1)) for i in range(k + 1))
        lo, hi = (mid, hi) if cdf > 1 - level else (lo, mid)
    return (lo + hi) / 2


# --------------------------------------------------------------------------- report

def _delay(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _rate(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}" if x >= 0.01 else f"{x:.3f}"


def _share(s: Summary) -> str:
    return f"{s.detected}/{s.seeds}"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def fa_rate(st: Stationary, method: str) -> float:
    n = st.events if method == "streamdrift" else st.raw_events
    return per_million(sum(st.counts[method].values()), n * len(FEATURES))


def main_table(summaries: dict[str, dict[str, Summary]], st: Stationary) -> list[str]:
    head = ["scenario"]
    for m in METHODS:
        head += [f"{m}: detected", f"{m}: median", f"{m}: p90", f"{m}: FA"]
    lines = [_row(head), "|---" + "|---:" * (len(head) - 1) + "|"]
    for sc in SCENARIOS:
        cells = [sc.label]
        for m in METHODS:
            s = summaries[sc.key][m]
            cells += [_share(s), _delay(s.median), _delay(s.p90), f"{s.pre:,}"]
        lines.append(_row(cells))
    cells = [f"stationary, {len(FEATURES)} features: FA per 1M feature-events"]
    for m in METHODS:
        cells += ["-", "-", "-", f"**{_rate(fa_rate(st, m))}**"]
    lines.append(_row(cells))
    return lines


def feature_table(st: Stationary) -> list[str]:
    lines = [_row(["feature", "distribution", *METHODS, "streamdrift detectors"]),
             "|---|---" + "|---:" * len(METHODS) + "|---|"]
    by_feature: dict[str, Counter[str]] = {f.name: Counter() for f in FEATURES}
    for _, _, feature, _, detector in st.signals["streamdrift"]:
        by_feature[feature][detector] += 1
    for f in FEATURES:
        cells = [f.name, f.description]
        for m in METHODS:
            n = st.events if m == "streamdrift" else st.raw_events
            cells.append(_rate(per_million(st.counts[m][f.name], n)))
        cells.append(", ".join(f"{d} {c}" for d, c in by_feature[f.name].most_common()) or "-")
        lines.append(_row(cells))
    return lines


@dataclass
class SweepRow:
    variant: Variant
    false_alarms: int
    fa_per_million: float
    detectors: dict[str, int]  # which detectors raised the false alarms
    scenarios: dict[str, Summary]

    @property
    def default(self) -> bool:
        return self.variant.key == DEFAULT_KEY

    @property
    def all_detected(self) -> bool:
        return all(s.all_detected for s in self.scenarios.values())


def sweep_rows(summaries: dict[str, dict[str, Summary]], st: Stationary) -> list[SweepRow]:
    rows = []
    for v in VARIANTS:
        name = "streamdrift" if v.key == DEFAULT_KEY else f"variant:{v.key}"
        alarms = [s for s in st.signals[name] if s[0] == 0 and s[1] < st.sweep_events]
        rows.append(SweepRow(
            v, len(alarms), per_million(len(alarms), st.sweep_events * len(FEATURES)),
            dict(Counter(s[4] for s in alarms).most_common()),
            {sc: summaries[sc][f"variant:{v.key}"] for sc in SWEEP_SCENARIOS}))
    return rows


def _cell(s: Summary) -> str:
    text = f"{_delay(s.median)} ({_delay(s.p90)})"
    return text if s.all_detected else f"{text}, {_share(s)}"


def sweep_table(rows: list[SweepRow]) -> list[str]:
    head = ["group", "ADWIN delta", "PH block", "PH delta", "PH threshold", "spread block",
            "missing block", "FA per 1M (count)",
            *(f"{SCENARIO_BY_KEY[sc].label}: median (p90)" for sc in SWEEP_SCENARIOS)]
    lines = [_row(head), "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in rows:
        v = r.variant
        mark = "**" if r.default else ""
        fa = _fa_text(r)
        lines.append(_row([
            v.group + (" **(defaults)**" if r.default else ""),
            *(f"{mark}{x}{mark}" for x in (
                f"{v.adwin_delta:g}", str(v.ph_block), f"{v.ph_delta:g}", f"{v.ph_threshold:g}",
                f"{v.spread_block}", f"{v.missing_block}", fa,
                *(_cell(r.scenarios[sc]) for sc in SWEEP_SCENARIOS)))]))
    return lines


def targets(summaries: dict[str, dict[str, Summary]], st: Stationary) -> list[dict[str, Any]]:
    sd = {k: v["streamdrift"] for k, v in summaries.items()}
    alarms = sum(st.counts["streamdrift"].values())
    exposure = st.events * len(FEATURES)
    rate = per_million(alarms, exposure)
    upper = per_million(poisson_upper(alarms), exposure)
    measured = (f"{_rate(rate)} ({alarms} in {exposure:,} feature-events; "
                f"95% upper bound {upper:.3f})")
    if rate <= TARGET_FA_PER_MILLION < upper:
        measured += " - too few feature-events to show the target at 95%"
    out: list[dict[str, Any]] = [{
        "target": f"false alarms <= {TARGET_FA_PER_MILLION} per 1M feature-events (stationary)",
        "measured": measured,
        "pass": rate <= TARGET_FA_PER_MILLION,
    }]
    for key, bound in TARGET_MEDIAN_DELAY.items():
        s = sd[key]
        out.append({
            "target": f"{SCENARIO_BY_KEY[key].label}: median delay <= {bound:,} events",
            "measured": f"{_delay(s.median)} (p90 {_delay(s.p90)}, detected {_share(s)})",
            "pass": s.median is not None and s.median <= bound and s.all_detected,
        })
    missed = [f"{SCENARIO_BY_KEY[k].label} {_share(s)}" for k, s in sd.items()
              if not s.all_detected]
    out.append({
        "target": "every injected change detected on every seed",
        "measured": "all" if not missed else "missed: " + "; ".join(missed),
        "pass": not missed,
    })
    return out


def lorden_delay(shift_sd: float, fa_per_million: float) -> float:
    """Lorden's asymptotic lower bound on the mean delay of any detector that raises false
    alarms at most at this rate, for a known mean shift of a normal: log(ARL0) / KL."""
    return math.log(1e6 / fa_per_million) / (shift_sd**2 / 2)


def _fa_text(r: SweepRow) -> str:
    fired = ", ".join(f"{d} {c}" for d, c in r.detectors.items())
    return f"{_rate(r.fa_per_million)} ({r.false_alarms}{': ' + fired if fired else ''})"


def reading(summaries: dict[str, dict[str, Summary]], st: Stationary,
            rows: list[SweepRow]) -> list[str]:
    """The defaults' place on the trade-off, in words, from the numbers."""
    exposure = st.sweep_events * len(FEATURES)
    default = next(r for r in rows if r.default)

    def med(r: SweepRow | None, sc: str) -> str:
        s = summaries[sc]["streamdrift"] if r is None else r.scenarios[sc]
        return _delay(s.median)

    out = [
        f"- A 0.5 sd mean shift moves the mean of the rank stream from 0.5 to about 0.64 "
        f"(a rank's sd is 0.29, so 0.48 of its sd). No detector can average much less than "
        f"{lorden_delay(0.5, TARGET_FA_PER_MILLION):.0f} events for such a shift while raising "
        f"at most {TARGET_FA_PER_MILLION} false alarms per million events (Lorden's asymptotic "
        f"bound ln(ARL) / KL, with ARL = 1e7 events and KL = 0.5^2/2 nats on the normal "
        f"itself; {lorden_delay(0.478, TARGET_FA_PER_MILLION):.0f} on ranks). The issue's 150 "
        f"events leave little room: a test must be tuned to this very shift (a Page-Hinkley "
        f"drift allowance near half of it), which makes it slower on smaller shifts.",
    ]
    lower = [r for r in rows if r.variant.group.startswith("a:")
             and r.variant.adwin_delta == BASE.adwin_delta
             and r.variant.ph_threshold != BASE.ph_threshold]
    if lower:
        out.append(
            f"- The defaults (Page-Hinkley on blocks of {BASE.ph_block} ranks, drift allowance "
            f"{BASE.ph_delta:g}, threshold {BASE.ph_threshold:g}) take a 0.5 sd median of "
            f"{med(None, 'mean_0.5')} events with {default.false_alarms} false alarms in the "
            f"sweep's {exposure:,} feature-events; "
            + "; ".join(f"threshold {r.variant.ph_threshold:g}: {med(r, 'mean_0.5')} events, "
                        f"FA {_fa_text(r)}" for r in lower)
            + f". Page-Hinkley fires at block ends, so its delays move in steps of "
            f"{BASE.ph_block} events.")
        below = [r for r in lower if r.variant.ph_threshold < BASE.ph_threshold]
        if below:
            nxt = max(below, key=lambda r: r.variant.ph_threshold)
            up = per_million(poisson_upper(nxt.false_alarms), exposure)
            out.append(
                f"- Why the defaults sit there: the next lower threshold "
                f"({nxt.variant.ph_threshold:g}) takes {med(nxt, 'mean_0.5')} events on 0.5 sd "
                f"and raised {nxt.false_alarms} false alarms ({_rate(nxt.fa_per_million)} per "
                f"million, 95% upper bound {up:.2f}): "
                + ("not shown to stay under" if up > TARGET_FA_PER_MILLION else "under")
                + f" the {TARGET_FA_PER_MILLION} target; the defaults keep a margin (all "
                f"stationary streams: "
                f"{sum(st.counts['streamdrift'].values())} alarm(s) in "
                f"{st.events * len(FEATURES):,} feature-events). Their drift allowance "
                f"({BASE.ph_delta:g}) is about a third of the 0.5 sd shift in ranks (0.14): "
                f"tuned to that shift, it is slower on a 0.25 sd shift (0.07 in ranks) than "
                f"the previous defaults (drift allowance 0.03, threshold 0.4; group b).")
    ok = [r for r in rows if r.fa_per_million <= TARGET_FA_PER_MILLION and r.all_detected
          and r.scenarios["mean_0.5"].median is not None]
    if ok:
        best = min(ok, key=lambda r: (r.scenarios["mean_0.5"].median or 0, r.fa_per_million))
        upper = per_million(poisson_upper(best.false_alarms), exposure)
        out.append(
            f"- Fastest swept point on 0.5 sd with measured FA <= {TARGET_FA_PER_MILLION} per "
            f"million and every swept change found: {best.variant.changes}: median "
            f"{med(best, 'mean_0.5')} events, FA {_fa_text(best)}, 95% upper bound "
            f"{upper:.2f}" + (" - not resolved by this many feature-events; a longer run "
                              "decides" if upper > TARGET_FA_PER_MILLION else "")
            + f". It pays on smaller shifts: 0.25 sd median {med(best, 'mean_0.25')} (p90 "
            f"{_delay(best.scenarios['mean_0.25'].p90)}) against the defaults' "
            f"{med(None, 'mean_0.25')} (p90 "
            f"{_delay(summaries['mean_0.25']['streamdrift'].p90)}).")
    deltas = [r for r in rows if r.variant.group.startswith("a:")
              and r.variant.ph_threshold == BASE.ph_threshold]
    if deltas:
        out.append(
            "- ADWIN's delta (same Page-Hinkley) sets the delays of the spread and missing "
            "detectors: "
            + "; ".join(f"{r.variant.adwin_delta:g}: sd x2 {med(r, 'scale_x2')}, shape "
                        f"{med(r, 'shape')}, missing {med(r, 'missing')}, FA {_fa_text(r)}"
                        for r in deltas) + ".")
    single = [r for r in rows if r.variant.group.startswith("c:")]
    if single:
        out.append(
            "- ADWIN on block means is less sensitive than on single values, by far more than "
            "one block: river's ADWIN cut test adds a term (2/3) ln(2/delta') / n that counts "
            "n in blocks, not values, so block means of 5 or 10 raise it 5 or 10 times while "
            "the variance term stays the same. Single values: "
            + "; ".join(f"{r.variant.changes}: sd x2 {med(r, 'scale_x2')}, shape "
                        f"{med(r, 'shape')}, missing {med(r, 'missing')}, FA {_fa_text(r)}"
                        for r in single)
            + f" (defaults: sd x2 {med(None, 'scale_x2')}, shape {med(None, 'shape')}, missing "
            f"{med(None, 'missing')}). Throughput is not measured here.")
    return out


def readme_paragraph(summaries: dict[str, dict[str, Summary]], st: Stationary, streams: int,
                     seeds: int, command: str) -> str:
    sd = {k: v["streamdrift"] for k, v in summaries.items()}
    alarms = sum(st.counts["streamdrift"].values())
    exposure = st.events * len(FEATURES)
    detected_all = all(s.all_detected for s in sd.values())
    half, scale = sd["mean_0.5"], sd["scale_x2"]
    half_target = TARGET_MEDIAN_DELAY["mean_0.5"]
    missed_half = half.median is None or half.median > half_target
    return (
        f"On {len(FEATURES)} stationary features of very different distributions "
        f"({streams} streams of {st.events // streams:,} events each: normals at scales 1e-3 to "
        f"1e6, uniforms, Poisson counts, lognormal, Pareto, Student-t(3), flags, constant and "
        f"near-constant values, categoricals of up to 100,000 levels, some with nulls), "
        f"streamdrift's defaults raised {alarms} false alarm{'' if alarms == 1 else 's'} in "
        f"{exposure:,} feature-events ({_rate(per_million(alarms, exposure))} per million, 95% "
        f"upper bound {per_million(poisson_upper(alarms), exposure):.2f}); raw river ADWIN "
        f"raised {_rate(fa_rate(st, 'adwin'))} per million and raw Page-Hinkley "
        f"{_rate(fa_rate(st, 'ph'))}. Over {seeds} seeds per scenario, a 0.5 standard-deviation "
        f"mean shift was found after a median {_delay(half.median)} events (p90 "
        f"{_delay(half.p90)}; raw ADWIN {_delay(summaries['mean_0.5']['adwin'].median)}"
        + (f"; the issue's target was {half_target}, see the trade-off" if missed_half else "")
        + f"), a doubled standard deviation after {_delay(scale.median)} (p90 "
        f"{_delay(scale.p90)}; raw ADWIN {_delay(summaries['scale_x2']['adwin'].median)}), and "
        + ("every injected change (mean shifts of 0.25 to 1 sd, scale x2, a shape change at "
           "constant mean and variance, a categorical frequency swap, a new category at 5%, "
           "missing values from 1% to 10%) was detected on every seed"
           if detected_all else
           "not every injected change was detected on every seed (see the table)")
        + f". `{command}` reproduces it (bench/quality.py, about {{runtime}})."
    )


# --------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="3 seeds, 1 stationary stream of 100,000 events, no sweep, small "
                        "production-like rows, no files")
    p.add_argument("--seeds", type=int, help="seeds per change scenario (default 50; quick 3)")
    p.add_argument("--events", type=int,
                   help="stationary events per feature and stream (default 1,000,000; "
                        "quick 100,000)")
    p.add_argument("--raw-events", type=int,
                   help="the same for the raw baselines (default: --events)")
    p.add_argument("--stationary-seeds", type=int,
                   help="independent stationary streams (default 3; quick 1)")
    p.add_argument("--before", type=int, default=10_000, help="events before the change")
    p.add_argument("--after", type=int, default=10_000, help="events after the change")
    p.add_argument("--seed", type=int, default=0, help="base seed of every random stream")
    sweep = p.add_mutually_exclusive_group()
    sweep.add_argument("--sweep", dest="sweep", action="store_true", default=None,
                       help="run the trade-off sweep (default unless --quick)")
    sweep.add_argument("--no-sweep", dest="sweep", action="store_false")
    p.add_argument("--sweep-events", type=int,
                   help="stationary events per feature for each swept variant, first stream "
                        "only (default: --events)")
    p.add_argument("--budget-events", type=int,
                   help="events of each model in the model-budget section (default 200,000; "
                        "quick 20,000; 0 skips the section)")
    p.add_argument("--budget-seeds", type=int,
                   help="seeds per scenario and model size for the budget's delays "
                        "(default 10; quick 2)")
    prod = p.add_argument_group("production-like rows (issue 10); a count of 0 skips its row")
    prod.add_argument("--skew-seeds", type=int,
                      help="seeds of the skew-from-the-reference rows (default 20; quick 3)")
    prod.add_argument("--skew-events", type=int, default=50_000,
                      help="live events of each skew stream")
    prod.add_argument("--reference-events", type=int, default=5_000,
                      help="events of the skew and dependent reference files (rounded up to "
                           f"a multiple of {ps.SESSION_LENGTH})")
    prod.add_argument("--switch-at", type=int, default=10_000,
                      help="live event at which every code of the 5,000-code feature changes")
    prod.add_argument("--dependent-events", type=int,
                      help="events of each dependent stream (default 1,000,000; quick "
                           f"100,000; rounded up to a multiple of {ps.SESSION_LENGTH})")
    prod.add_argument("--dependent-streams", type=int,
                      help="seeds of the dependent streams (default 3; quick 1)")
    prod.add_argument("--cycle-seeds", type=int, help="seeds of the daily cycle (default 10; "
                                                      "quick 1)")
    prod.add_argument("--cycle-days", type=int, default=7,
                      help="days of the daily cycle (at least 4: the shift is at day 4 noon)")
    prod.add_argument("--small-cycle-events", type=int,
                      help="events of the +-0.3 sd cycle (default 600,000; quick 100,000)")
    prod.add_argument("--small-cycle-seeds", type=int,
                      help="seeds of the +-0.3 sd cycle (default 3; quick 1)")
    prod.add_argument("--small-shift-after", type=int,
                      help="events after the 0.03 sd shift (default 1,000,000; quick 100,000)")
    prod.add_argument("--small-shift-seeds", type=int,
                      help="seeds of the 0.03 sd shift (default 5; quick 1)")
    prod.add_argument("--constant-seeds", type=int,
                      help="seeds of the constant-through-the-warm-up row (default 20; quick 3)")
    prod.add_argument("--constant-events", type=int, default=20_000,
                      help="events of each constant-through-the-warm-up stream")
    prod.add_argument("--joint-seeds", type=int,
                      help="seeds of the correlation flip (default 20; quick 3; 0 skips the "
                           "joint rows)")
    prod.add_argument("--joint-events", type=int, default=20_000,
                      help="events per correlation-flip stream (default 20000)")
    prod.add_argument("--joint-stationary-events", type=int,
                      help="events per stationary correlated stream (default 1000000; "
                           "quick 100000)")
    p.add_argument("--out", type=Path,
                   help="write OUT.md and OUT.json (default bench/results/quality; "
                        "--quick: nothing)")
    args = p.parse_args(argv)
    quick = args.quick
    args.seeds = args.seeds or (3 if quick else 50)
    args.events = args.events or (100_000 if quick else 1_000_000)
    args.raw_events = args.raw_events or args.events
    if args.budget_events is None:
        args.budget_events = 20_000 if quick else 200_000
    args.budget_seeds = args.budget_seeds or (2 if quick else 10)
    args.stationary_seeds = args.stationary_seeds or (1 if quick else 3)
    if args.sweep is None:
        args.sweep = not quick
    args.sweep_events = min(args.sweep_events or args.events, args.events) if args.sweep else 0
    if args.out is None and not quick:
        args.out = RESULTS_DIR / "quality"

    def default(value: int | None, full: int, quick_value: int) -> int:
        return value if value is not None else quick_value if quick else full

    def whole_sessions(n: int) -> int:
        return -(-n // ps.SESSION_LENGTH) * ps.SESSION_LENGTH

    args.skew_seeds = default(args.skew_seeds, 20, 3)
    args.reference_events = whole_sessions(args.reference_events)
    args.dependent_events = whole_sessions(default(args.dependent_events, 1_000_000, 100_000))
    args.dependent_streams = default(args.dependent_streams, 3, 1)
    args.cycle_seeds = default(args.cycle_seeds, 10, 1)
    args.small_cycle_events = default(args.small_cycle_events, 600_000, 100_000)
    args.small_cycle_seeds = default(args.small_cycle_seeds, 3, 1)
    args.small_shift_after = default(args.small_shift_after, 1_000_000, 100_000)
    args.small_shift_seeds = default(args.small_shift_seeds, 5, 1)
    args.constant_seeds = default(args.constant_seeds, 20, 3)
    args.joint_seeds = default(args.joint_seeds, 20, 3)
    args.joint_stationary_events = default(args.joint_stationary_events, 1_000_000, 100_000)
    if args.cycle_seeds and args.cycle_days < 4:
        p.error("--cycle-days must be at least 4 (the shift starts at day 4 noon)")
    if args.skew_seeds and not 0 < args.switch_at < args.skew_events:
        p.error("--switch-at must fall within --skew-events")
    if args.constant_seeds and args.constant_events <= CONSTANT_G_UNTIL:
        p.error(f"--constant-events must exceed {CONSTANT_G_UNTIL:,}")
    return args


def _summary_json(s: Summary) -> dict[str, Any]:
    return {"seeds": s.seeds, "detected": s.detected, "median_delay": s.median,
            "p90_delay": s.p90, "pre_change_alarms": s.pre,
            "seeds_with_pre_change_alarms": s.seeds_with_pre, "delays": s.delays,
            "first_detectors": s.first_detectors, "other_kind_signals": s.other}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    started = datetime.now(UTC)
    command = "python bench/quality.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    command = command.strip()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:5.0f}s] {msg}", file=sys.stderr, flush=True)

    variants = {v.key: v.config() for v in VARIANTS} if args.sweep else {}
    assert BASE.config() == DEFAULT, "Variant must rebuild the defaults exactly"

    # Change scenarios.
    t0 = time.perf_counter()
    outcomes: dict[str, dict[str, list[Outcome]]] = {}
    for sc in SCENARIOS:
        per_method: dict[str, list[Outcome]] = {}
        extra = variants if sc.key in SWEEP_SCENARIOS else {}
        for seed in range(args.seeds):
            for name, o in run_change(sc, seed, args.before, args.after, args.seed,
                                      extra).items():
                per_method.setdefault(name, []).append(o)
        outcomes[sc.key] = per_method
        progress(f"change scenario {sc.key}: {args.seeds} seeds, "
                 f"{len(per_method)} methods and variants")
    change_seconds = time.perf_counter() - t0
    summaries = {sc: {m: summarize(os_) for m, os_ in per.items()}
                 for sc, per in outcomes.items()}

    # Stationary streams.
    t0 = time.perf_counter()
    st = Stationary()
    for stream in range(args.stationary_seeds):
        run_stationary(st, stream, args.events, args.raw_events,
                       args.sweep_events if stream == 0 else 0, variants, args.seed, progress)
    stationary_seconds = time.perf_counter() - t0

    # Model-level budget.
    t0 = time.perf_counter()
    budget_fa: dict[str, Any] = {}
    budget_delays: dict[str, dict[str, Summary]] = {}
    if args.budget_events:
        budget_fa = run_budget_false_alarms(args.budget_events, args.seed, progress)
        budget_delays = run_budget_delays(args.budget_seeds, args.before, args.after,
                                          args.seed, progress)
    budget_seconds = time.perf_counter() - t0

    # Production-like rows (issue 10).
    prod = run_production(args, progress)
    runtime = time.perf_counter() - t_start

    goals = targets(summaries, st) + production_targets(prod, summaries)
    rows = sweep_rows(summaries, st) if variants else []
    paragraph = readme_paragraph(summaries, st, args.stationary_seeds, args.seeds, command)
    paragraph = paragraph.replace("{runtime}", f"{runtime / 60:.0f} min" if runtime >= 90
                                  else f"{runtime:.0f} s")
    fe = len(FEATURES)
    md: list[str] = [
        "# Detection quality: streamdrift's defaults against raw river detectors",
        "",
        f"Change scenarios: {args.seeds} seeds each, {args.before:,} events before the change "
        f"and {args.after:,} after (streamdrift's reference: the first {DEFAULT.warmup:,}). Per "
        "method: seeds on which the change was detected (a detection at or after the change, "
        "within the stream), median and 90th percentile of the delay in events over the "
        f"detected seeds, and FA: detections before the change, summed over the {args.seeds} "
        f"seeds. Last row: {fe} stationary features, {args.stationary_seeds} independent "
        f"streams of {args.events:,} events (raw baselines {args.raw_events:,}), no change; "
        "FA = false alarms per million feature-events.",
        "",
        *main_table(summaries, st),
        "",
        "Methods: **streamdrift** `DetectorBank(DetectorConfig())` through `EventBatch` "
        "(all its detectors; the missing scenario counts only `data_quality` signals); "
        "**adwin** `river.drift.ADWIN()`, **ph** `river.drift.PageHinkley()`, **dummy** "
        "`river.drift.DummyDriftDetector()` (fires every 300 values whatever they are: it "
        "'detects' everything with a delay under 300 and pays for it in false alarms), each "
        "with river's defaults, one update per raw value from event 0, reset by river after "
        "each detection. Categorical values reach the raw detectors as their level's index "
        "(levels by decreasing base frequency, a new level next), the missing scenario as the "
        "indicator 1.0 null / 0.0 present.",
        "",
        "## Targets for the defaults",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(_row([g["target"], g["measured"],
                {True: "PASS", False: "**FAIL**", None: "not run"}[g["pass"]]])
          for g in goals),
        "",
        "## Which streamdrift detector fired first",
        "",
        "| scenario | first detection after the change, per seed | signals of another kind |",
        "|---|---|---:|",
        *(_row([sc.label, ", ".join(f"{d} {c}" for d, c in summaries[sc.key]["streamdrift"]
                                    .first_detectors.items()) or "-",
                str(summaries[sc.key]["streamdrift"].other)]) for sc in SCENARIOS),
        "",
        f"## Stationary streams: false alarms per million events, per feature "
        f"(streamdrift {st.events:,} events per feature, raw baselines {st.raw_events:,})",
        "",
        *feature_table(st),
        "",
        *production_sections(prod, summaries, args.seeds),
    ]
    if rows:
        md += [
            "## Trade-off: false alarms against delay",
            "",
            f"streamdrift with its knobs changed (every other setting at its default). FA: "
            f"false alarms per million feature-events on the first {st.sweep_events:,} events "
            f"of the first stationary stream ({st.sweep_events * fe:,} feature-events, so one "
            f"alarm is {per_million(1, st.sweep_events * fe):.2f} per million; count in "
            f"parentheses). Delays: median (p90) over the same {args.seeds} seeds as above, "
            "followed by the share detected when not all. ADWIN delta applies to every ADWIN; "
            "PH block/delta/threshold are Page-Hinkley's block of ranks, drift allowance and "
            "threshold; spread and missing block: the ADWINs on block means (1: on single "
            "values, clock 32).",
            "",
            *sweep_table(rows),
            "",
            "Reading:",
            "",
            *reading(summaries, st, rows),
            "",
        ]
    if budget_fa:
        md += [*budget_section(budget_fa, budget_delays, args.budget_events, args.budget_seeds),
               ""]
    md += [
        "## Run",
        "",
        f"- command: `{command}`",
        f"- seeds: change scenarios 0..{args.seeds - 1} (numpy `default_rng([{args.seed}, 1, "
        f"scenario, seed])`), stationary streams 0..{args.stationary_seeds - 1} "
        f"(`default_rng([{args.seed}, 2, stream, feature])`)",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; runtime {runtime:.0f} s (change scenarios "
        f"{change_seconds:.0f} s, stationary {stationary_seconds:.0f} s, of which "
        + ", ".join(f"{k} {v:.0f} s" for k, v in st.seconds.items()
                    if not k.startswith("variant:"))
        + (f", swept variants {_variant_seconds(st.seconds):.0f} s" if rows else "")
        + (f"; model budget {budget_seconds:.0f} s" if budget_fa else "")
        + "".join(f"; {k} {v:.0f} s" for k, v in prod.seconds.items())
        + f"); CPUs: {os.cpu_count()}",
        f"- production-like rows: skew {args.skew_seeds} seeds x {args.skew_events:,} events "
        f"(reference {args.reference_events:,}; `default_rng([{args.seed}, 5, ...])`), "
        f"dependent {args.dependent_streams} x {args.dependent_events:,} events ([.., 6, ..]), "
        f"daily cycle {args.cycle_seeds} seeds x {args.cycle_days} days and +-0.3 sd cycle "
        f"{args.small_cycle_seeds} x {args.small_cycle_events:,} events ([.., 7, ..]), "
        f"0.03 sd shift {args.small_shift_seeds} x ({args.before:,} + "
        f"{args.small_shift_after:,}) events ([.., 8, ..]), constant through the warm-up "
        f"{args.constant_seeds} x {args.constant_events:,} events ([.., 9, ..]), joint "
        f"{args.joint_seeds} x {args.joint_events:,} events and 2 x "
        f"{args.joint_stationary_events:,} stationary events ([.., 10, ..])",
        f"- Python {platform.python_version()}, river {version('river')}, numpy "
        f"{np.__version__}",
        "",
        "README paragraph:",
        "",
        f"> {paragraph}",
        "",
    ]
    prod_paragraph = production_paragraph(prod)
    if prod_paragraph:
        md += ["README paragraph (production-like streams):", "", f"> {prod_paragraph}", ""]
    report = "\n".join(md)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(report)
        data = {
            "command": command, "date": started.isoformat(), "runtime_seconds": runtime,
            "seeds": args.seeds, "before": args.before, "after": args.after,
            "base_seed": args.seed,
            "scenarios": {sc: {m: _summary_json(s) for m, s in per.items()
                               if not m.startswith("variant:")}
                          for sc, per in summaries.items()},
            "stationary": {
                "streams": args.stationary_seeds, "events_per_feature": st.events,
                "raw_events_per_feature": st.raw_events,
                "features": {f.name: f.description for f in FEATURES},
                "false_alarms": st.counts,
                "streamdrift_signals": st.signals["streamdrift"],
                "seconds": dict(st.seconds),
            },
            "targets": goals,
            "sweep": {
                "events_per_feature": st.sweep_events,
                "variants": [{
                    "group": r.variant.group, "key": r.variant.key, "default": r.default,
                    "false_alarms": r.false_alarms, "fa_per_million": r.fa_per_million,
                    "false_alarm_detectors": r.detectors,
                    "scenarios": {sc: _summary_json(s) for sc, s in r.scenarios.items()},
                } for r in rows],
            },
            "budget": {
                "events_per_model": args.budget_events, "stress_variant": STRESS.key,
                "series_free": DEFAULT.false_alarm_budget.series,
                "false_alarms": budget_fa, "delay_seeds": args.budget_seeds,
                "delays": {sc: {size: _summary_json(s) for size, s in per.items()}
                           for sc, per in budget_delays.items()},
            },
            "production": production_json(prod),
            "readme_paragraph": paragraph,
            "readme_paragraph_production": prod_paragraph,
        }
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
        progress(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
