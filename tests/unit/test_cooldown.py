"""detectors.cooldown: a series that alerted stays quiet for that many of its model's events,
is reported as drifting meanwhile, and the cooldown does not depend on batch sizes."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors import DetectorBank, DetectorConfig, detect
from detectors.codec import decode, encode
from tests.batches import model_batches


def _two_shifts(n: int = 9000, seed: int = 0) -> list[dict[str, Any]]:
    """income shifts up at 3000 and again at 6000; age never moves."""
    rng = np.random.default_rng(seed)
    level = np.select([np.arange(n) < 3000, np.arange(n) < 6000], [0.0, 2.0], 4.0)
    income = rng.normal(level, 1.0).tolist()
    age = rng.normal(40, 9, n).tolist()
    return [{"model_id": "m", "features": {"income": x, "age": a}}
            for x, a in zip(income, age, strict=True)]


def test_without_cooldown_each_change_alerts() -> None:
    found = detect(_two_shifts(), DetectorConfig(warmup=200))
    assert [s.feature for s in found] == ["income", "income"]
    assert found[0].position >= 3000 and found[1].position >= 6000


def test_cooldown_drops_the_alerts_of_a_series_within_that_many_events() -> None:
    events = _two_shifts()
    first = detect(events, DetectorConfig(warmup=200))[0].position
    found = detect(events, DetectorConfig(warmup=200, cooldown=5000))
    assert [(s.feature, s.position) for s in found] == [("income", first)]
    # Past the cooldown the series alerts again.
    late = detect(events, DetectorConfig(warmup=200, cooldown=2500))
    assert [s.feature for s in late] == ["income", "income"]
    assert late[1].position >= first + 2500


def test_a_missing_rate_alert_starts_the_cooldown_too() -> None:
    rng = np.random.default_rng(3)
    events = [{"model_id": "m", "features": {
        "x": None if (i >= 3000 and rng.random() < 0.5) else float(rng.normal(3 * (i >= 3000)))}}
        for i in range(6000)]
    kinds = [s.kind for s in detect(events, DetectorConfig(warmup=200))]
    assert sorted(kinds) == ["data_drift", "data_quality"]
    assert len(detect(events, DetectorConfig(warmup=200, cooldown=2000))) == 1


def test_drifting_reports_the_series_until_the_cooldown_ends() -> None:
    events = _two_shifts()
    config = DetectorConfig(warmup=200, cooldown=4000)
    bank = DetectorBank(config)
    states = []
    for batch in model_batches(events, 500):
        fired = bank.update(batch)
        states.append((batch.positions[-1], bool(fired), bank.drifting()))
    alert = next(end for end, fired, _ in states if fired)
    for end, _, drifting in states:
        inside = alert <= end < alert + 4000 - 500  # the cooldown counts events of the model
        if inside:
            assert drifting == [("m", "income")], end
        elif end >= alert + 4000 + 500:
            assert drifting == [], end


def test_cooldown_is_the_same_for_any_batch_size_and_across_a_restore() -> None:
    events = _two_shifts()
    config = DetectorConfig(warmup=200, cooldown=2500)
    expected = detect(events, config, batch_size=9000)
    for size in (1, 333, 1000):
        assert detect(events, config, batch_size=size) == expected, size
    batches = model_batches(events, 700)
    bank = DetectorBank(config)
    got = [s for b in batches[:5] for s in bank.update(b)]
    bank = decode(encode(bank), DetectorBank)  # restored mid-cooldown
    got += [s for b in batches[5:] for s in bank.update(b)]
    assert got == expected
