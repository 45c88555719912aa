"""Fuzz: no record's bytes can stop the loop (issue 11).

Random and adversarial records (deep nesting, huge numbers, bad UTF-8, odd
timestamps, wrong types, long names and values) go through the real run loop
with in-memory source and sinks, between valid events that warm the detectors
up and then drift, so the adversarial values reach warmed-up monitors and the
alert path. Each record must end processed or dead-lettered, never raised; every
alert must serialize and describe.

Bounded in time: ``max_examples`` and no deadline (a busy 2-core machine makes
per-example timings meaningless); the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import DetectorConfig
from stream.alerts import describe_alert, encode_alert
from stream.config import AppConfig, KafkaConfig, LimitsConfig
from stream.events import REASONS
from stream.loop import RunLoop
from stream.metrics import Metrics
from tests.unit.test_run_loop import (
    TOPIC,
    ListSource,
    RecordingAlertSink,
    RecordingDeadLetterSink,
)

SEEN: Counter[str] = Counter()  # what the examples reached: alerts and each reason

WARMUP = 50
MODEL = "m"

# Quick to fire (a few dozen drifted events), so adversarial values reach the alert path.
_FAST = {"delta": 0.3, "clock": 1}
DETECTORS = DetectorConfig.model_validate({
    "warmup": WARMUP, "false_alarm_budget": {"enabled": False},
    "numeric": {"adwin": _FAST, "spread": _FAST, "page_hinkley": {"block": 5, "threshold": 0.05}},
    "categorical": {"adwin": _FAST, "unseen": _FAST}, "missing": {"block": 1, "adwin": _FAST},
    "concept": {"drift_confidence": 0.3, "warmup": 50, "infer_task_from": 5,
                "estimate": {"calibration_labels": 100, "window": 100}}})

# The detectors' own series: adversarial values go to warmed-up monitors of every kind.
NUMERIC, CATEGORICAL = "x", "c"


def _base(i: int, rng: random.Random, drifted: bool) -> dict[str, Any]:
    shift = 3.0 if drifted else 0.0
    prediction: Any = ({"a": 0.8, "b": 0.2} if i % 2 else round(rng.random(), 3))
    return {"event_id": f"v-{i}", "model_id": MODEL, "timestamp": 1_767_225_600 + i,
            "features": {NUMERIC: rng.gauss(shift, 1.0),
                         CATEGORICAL: rng.choice("pqr" if not drifted else "stu")},
            "prediction": prediction, "label": rng.choice(["a", "b", 1, 0.5])}


def _valid(n: int, seed: int, drifted: bool, start: int) -> list[bytes]:
    rng = random.Random(seed)
    return [orjson.dumps(_base(start + i, rng, drifted)) for i in range(n)]


HUGE_INTS = st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, 10**400, -(10**400)])
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([1e308, -1e308, 5e-324, 1.7976931348623157e308]))
LONG_TEXT = st.integers(200, 5000).map(lambda n: "y" * n)
TEXT = st.one_of(st.text(max_size=20), LONG_TEXT, st.sampled_from(["", "\x00", "\ud800"]))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), HUGE_INTS, FLOATS, TEXT)
JSONISH = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=8)
TIMESTAMPS = st.one_of(
    st.none(), FLOATS, st.integers(), HUGE_INTS, TEXT,
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00",
                     "9999-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z",
                     "2026-11-26T15:00:00+23:59", "2026-02-30T00:00:00Z",
                     "2026-W01-1", "2026-11-26t15:00:00z"]))
NAMES = st.one_of(st.just(NUMERIC), st.just(CATEGORICAL), st.just("prediction"), TEXT)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """Event-shaped objects whose fields may be of any type or value."""
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["event_id"] = draw(st.one_of(st.just("e"), JSONISH))
    else:
        obj["event_id"] = "e"
    obj["model_id"] = draw(st.one_of(st.just(MODEL), st.just(MODEL), JSONISH))
    obj["features"] = draw(st.one_of(
        st.dictionaries(NAMES, st.one_of(SCALAR, JSONISH), max_size=4), JSONISH))
    for key, values in (("timestamp", TIMESTAMPS),
                        ("prediction", st.one_of(SCALAR, st.dictionaries(TEXT, SCALAR,
                                                                         max_size=3),
                                                 JSONISH)),
                        ("label", st.one_of(SCALAR, JSONISH)),
                        ("model_version", st.one_of(SCALAR, JSONISH))):
        if draw(st.booleans()):
            obj[key] = draw(values)
    return obj


def _dumps(obj: Any) -> bytes:
    # The stdlib writes what a careless producer would: NaN, Infinity, 400-digit ints.
    return json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")


def _deep(depth: int, opener: bytes, closer: bytes, inside: bool) -> bytes:
    core = opener * depth + closer * depth
    if not inside:
        return core
    return b'{"event_id": "d", "model_id": "m", "features": {"x": ' + core + b"}}"


RAW = st.one_of(
    st.binary(max_size=64),
    st.builds(_deep, st.integers(900, 5000), st.sampled_from([b"[", b'{"a":[']),
              st.sampled_from([b"]", b"]}"]), st.booleans()),
    st.builds(_deep, st.integers(900, 5000), st.just(b"["), st.just(b"]"), st.just(True)),
    st.builds(lambda b, cut: b[:cut], events().map(_dumps), st.integers(0, 200)),
    st.builds(lambda b, at, junk: b[:at] + junk + b[at:], events().map(_dumps),
              st.integers(0, 80), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])),
)
RECORD = st.one_of(events().map(_dumps), events().map(_dumps), RAW, st.none())


@st.composite
def labels(draw: st.DrawFn) -> Any:
    """Label-shaped objects (docs/contracts.md's label contract) whose fields may be anything."""
    obj: dict[str, Any] = {
        "event_id": draw(st.one_of(st.integers(0, 80).map(lambda i: f"v-{i}"), JSONISH)),
        "model_id": draw(st.one_of(st.just(MODEL), JSONISH)),
        "label": draw(st.one_of(st.sampled_from(["a", "b", 0, 1, 0.5]), SCALAR, JSONISH))}
    if draw(st.booleans()):
        obj["timestamp"] = draw(TIMESTAMPS)
    return obj


LABEL_RECORD = st.one_of(labels().map(_dumps), labels().map(_dumps), RAW, st.none())
LABELS = "labels"


def _valid_labels(n: int) -> list[bytes]:
    return [orjson.dumps({"event_id": f"v-{i}", "model_id": MODEL, "label": "ab"[i % 2],
                          "timestamp": 1_767_225_600 + i}) for i in range(n)]


def _run(adversarial: list[bytes | None], batch_size: int,
         adversarial_labels: list[bytes | None] | None = None) -> None:
    values: list[bytes | None] = []
    values += _valid(WARMUP + 20, 1, drifted=False, start=0)
    values += adversarial
    values += _valid(150, 2, drifted=True, start=1000)
    values += adversarial  # again, now into monitors that have re-baselined or are drifting
    records = [(TOPIC, 0, offset, v) for offset, v in enumerate(values)]
    if adversarial_labels is not None:  # a labels topic too: the join and the label path
        label_values = _valid_labels(40) + adversarial_labels + _valid_labels(80)[40:]
        labelled = [(LABELS, 0, offset, v) for offset, v in enumerate(label_values)]
        records = records[:100] + labelled + records[100:]
        values += label_values
    calls: list[Any] = []
    source = ListSource(records, batch_size, calls)
    alerts = RecordingAlertSink(calls)
    dead = RecordingDeadLetterSink(calls)
    metrics = Metrics()
    config = AppConfig(detectors=DETECTORS,
                       limits=LimitsConfig(max_record_bytes=64 * 1024),
                       kafka=KafkaConfig(labels_topic=LABELS if adversarial_labels is not None
                                         else None))
    loop = RunLoop(source, alerts, dead, config, metrics)
    stats = loop.run()  # raising fails the test

    assert stats.records == len(values)
    # Each record processed (an event, or a label once released) or dead-lettered.
    assert stats.events + stats.labels + stats.rejected == len(values)
    assert len(dead.sent) == stats.rejected
    reasons = {reason for _, _, reason, _ in dead.sent}
    assert reasons <= set(REASONS) - {"detection_failed"}  # the loop's safety net unused
    SEEN["alerts"] += len(alerts.sent)
    for reason in reasons:
        SEEN[reason] += 1
    committed: dict[tuple[str, int], int] = {}
    for commit in source.commits:
        committed.update(commit)
    assert committed[(TOPIC, 0)] == len(records) - (
        len(label_values) if adversarial_labels is not None else 0)
    if adversarial_labels is not None:
        assert committed[(LABELS, 0)] == len(label_values)
        assert stats.labels >= 80  # the valid ones at least went to the detectors
    for alert in alerts.sent:
        assert orjson.loads(encode_alert(alert))["alert_id"] == alert["alert_id"]
        describe_alert(alert)
        if alert["event_time"] is not None:
            assert alert["event_time"].endswith("Z")


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(RECORD, min_size=1, max_size=12), st.sampled_from([1, 7, 500]))
def test_any_record_is_processed_or_dead_lettered_never_raised(
        adversarial: list[bytes | None], batch_size: int) -> None:
    _run(adversarial, batch_size)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(RECORD, max_size=6), st.lists(LABEL_RECORD, min_size=1, max_size=10),
       st.sampled_from([7, 500]))
def test_any_label_record_is_processed_or_dead_lettered_never_raised(
        adversarial: list[bytes | None], adversarial_labels: list[bytes | None],
        batch_size: int) -> None:
    _run(adversarial, batch_size, adversarial_labels)


def test_known_poison_records_are_processed_or_dead_lettered() -> None:
    """The records of issue 11 and their kin, each certainly tried."""
    base = {"event_id": "e", "model_id": MODEL, "features": {NUMERIC: 1.0}}
    poison: list[bytes | None] = [
        b"[" * 2000 + b"]" * 2000,
        b"[" * 5000 + b"]" * 5000,
        _deep(2000, b'{"a":', b"}", True),
        _dumps({**base, "timestamp": "9999-12-31T23:59:59-05:00"}),
        _dumps({**base, "timestamp": "0001-01-01T00:00:00+05:00"}),
        _dumps({**base, "timestamp": 1e300}),
        _dumps({**base, "timestamp": -1.0}),
        _dumps({**base, "timestamp": math.nan}),
        _dumps({**base, "features": {NUMERIC: 10**400}}),
        _dumps({**base, "features": {NUMERIC: 2**64 + 1}}),
        _dumps({**base, "features": {NUMERIC: 1e308}}),
        _dumps({**base, "features": {NUMERIC: -1e308}}),
        _dumps({**base, "features": {"": 1.0}}),
        _dumps({**base, "features": {"n" * 100_000: 1.0}}),
        _dumps({**base, "features": {CATEGORICAL: "v" * 100_000}}),
        _dumps({**base, "features": {NUMERIC: {"nested": [1]}}}),
        _dumps({**base, "prediction": {"a": "high", "b": None}}),
        _dumps({**base, "prediction": {"a": 1e308, "b": -1e308}}),
        _dumps({**base, "prediction": 1e308, "label": -1e308}),
        _dumps({**base, "prediction": {}, "label": "a"}),
        _dumps({**base, "model_id": "m" * 100_000}),
        b"\xff" * 1000,
    ]
    for batch_size in (1, 500):
        _run(poison, batch_size)
