"""A synthetic event stream with an optional injected drift, reproducible by seed.

Numeric features (normal, lognormal, counts), categorical ones, missing
values, a score prediction; from event ``drift_at`` on, ``drift_feature``
moves by ``shift`` standard deviations (a numeric feature) or a share
``min(1, shift / 4)`` of its values becomes a new category (a categorical one).
With ``drift_period`` the drift switches off and on again every that many events.

>>> s = Scenario(events=10, drift_at=2, drift_period=3, drift_feature="country", shift=4.0)
>>> [orjson.loads(v)["features"]["country"] == "NEW" for _, v, _ in generate(s)]
[False, False, True, True, True, False, False, False, True, True]
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from stream.events import format_time

NUMERIC = {  # name: (mean, standard deviation) of the normal it is drawn from
    "income": (5000.0, 1500.0),
    "age": (41.0, 12.0),
    "balance": (1200.0, 800.0),
    "utilization": (0.35, 0.12),
}
CATEGORICAL = {
    "country": (["DE", "FR", "ES", "IT", "NL", "PL"], [0.3, 0.2, 0.15, 0.15, 0.1, 0.1]),
    "device": (["ios", "android", "web"], [0.4, 0.35, 0.25]),
}
FEATURES = (*NUMERIC, "transactions", *CATEGORICAL)
DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# Records that break the event contract, one of each kind, for --invalid-rate.
MALFORMED: tuple[bytes, ...] = (
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'{"model_id": "credit-risk", "features": {}}',
    b'{"event_id": "", "model_id": "credit-risk", "features": {}}',
    b'{"event_id": "bad", "model_id": "credit-risk", "features": [1, 2]}',
    b'{"event_id": "bad", "model_id": "credit-risk", "features": {"income": [1]}}',
    b'{"event_id": "bad", "model_id": "credit-risk", "features": {"income": NaN}}',
)


@dataclass(frozen=True)
class Scenario:
    events: int = 100_000
    seed: int = 0
    models: tuple[str, ...] = ("credit-risk",)
    drift_at: int | None = None
    drift_period: int | None = None  # drift on for this many events, then off, and so on
    drift_feature: str = "income"
    shift: float = 1.0
    missing_rate: float = 0.01
    invalid_rate: float = 0.0
    start: float = DEFAULT_START
    events_per_second: float = 100.0  # event-time spacing
    # Ground truth (generate_labels): the score's class is wrong with probability
    # error_rate, from event concept_at on with concept_error_rate (the features keep
    # their distribution: only the relation to the label changes). Labels come
    # label_delay seconds (mean, exponential) after their event; unlabeled_rate never.
    concept_at: int | None = None
    error_rate: float = 0.1
    concept_error_rate: float = 0.2
    label_delay: float = 30.0
    unlabeled_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.drift_at is not None and self.drift_feature not in FEATURES:
            raise ValueError(f"--drift-feature must be one of {', '.join(FEATURES)}")


def generate(s: Scenario) -> Iterator[tuple[str, bytes, float]]:
    """(key, value, event time): the model id, the JSON event (or a malformed record).

    >>> key, value, when = next(generate(Scenario(events=1, seed=1)))
    >>> key, orjson.loads(value)["event_id"], format_time(when)
    ('credit-risk', 'e-000000000', '2026-01-01T00:00:00.000Z')
    """
    rng = random.Random(s.seed)
    for i in range(s.events):
        model = s.models[i % len(s.models)]
        when = s.start + i / s.events_per_second
        drifting = s.drift_at is not None and i >= s.drift_at and (
            s.drift_period is None or (i - s.drift_at) // s.drift_period % 2 == 0)
        if s.invalid_rate and rng.random() < s.invalid_rate:
            yield model, MALFORMED[i % len(MALFORMED)], when
            continue
        yield model, orjson.dumps(_event(rng, s, i, model, drifting, when)), when


def generate_labels(s: Scenario) -> Iterator[tuple[str, bytes, float]]:
    """(key, value, label time) of the labels of ``generate(s)``'s events, in label-time
    order (docs/contracts.md's label contract); an RNG of its own leaves the events unchanged.

    >>> s = Scenario(events=4, seed=2, error_rate=0.0, label_delay=5.0)
    >>> [orjson.loads(v)["event_id"] for _, v, _ in generate_labels(s)]  # by label time
    ['e-000000000', 'e-000000003', 'e-000000001', 'e-000000002']
    """
    rng = random.Random(f"labels-{s.seed}")
    labels: list[tuple[float, int, str, bytes]] = []
    for i, (model, value, when) in enumerate(generate(s)):
        delay = rng.expovariate(1.0 / s.label_delay) if s.label_delay > 0 else 0.0
        unlabeled = rng.random() < s.unlabeled_rate
        wrong = rng.random() < (s.concept_error_rate if s.concept_at is not None
                                and i >= s.concept_at else s.error_rate)
        if unlabeled or value in MALFORMED:
            continue
        event = orjson.loads(value)
        predicted = event["prediction"] >= 0.5
        label = int(predicted != wrong)
        at = when + delay
        labels.append((at, i, model, orjson.dumps({
            "event_id": event["event_id"], "model_id": model, "label": label,
            "timestamp": format_time(at)})))
    labels.sort(key=lambda item: (item[0], item[1]))
    for at, _i, model, value in labels:
        yield model, value, at


def _event(rng: random.Random, s: Scenario, i: int, model: str, drifting: bool, when: float
           ) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for name, (mean, std) in NUMERIC.items():
        if drifting and name == s.drift_feature:
            mean += s.shift * std
        features[name] = round(rng.gauss(mean, std), 4)
    rate = 4.0 + (s.shift * 2.0 if drifting and s.drift_feature == "transactions" else 0.0)
    features["transactions"] = _poisson(rng, rate)
    for name, (levels, weights) in CATEGORICAL.items():
        value = rng.choices(levels, weights)[0]
        if drifting and name == s.drift_feature and rng.random() < min(1.0, s.shift / 4.0):
            value = "NEW"
        features[name] = value
    if rng.random() < s.missing_rate:
        features["balance"] = None
    z = (features["income"] - 5000.0) / 1500.0 - (features["age"] - 41.0) / 24.0
    score = 1.0 / (1.0 + math.exp(-z))
    return {
        "event_id": f"e-{i:09d}",
        "model_id": model,
        "model_version": "1",
        "timestamp": format_time(when),
        "features": features,
        "prediction": round(score, 4),
        "label": None,
    }


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small rates used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
