"""detectors.segments: a shift confined to a 5 % segment is caught by that segment's series
and named; the same alerts whatever the batches and across a snapshot; the model's
false-alarm budget covers the added series."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from detectors import DetectorBank, DetectorConfig, detect
from detectors.codec import decode, encode
from detectors.segments import OTHER, SegmentRouter, budget_groups
from tests.batches import model_batches

CHANGE = 50_000
SHARES = {"DE": 0.4, "FR": 0.3, "US": 0.15, "IT": 0.1, "ES": 0.05}


def _stream(seed: int, n: int = 120_000, shift: float = 0.5) -> tuple[list[dict[str, Any]],
                                                                    np.ndarray]:
    rng = np.random.default_rng(seed)
    country = rng.choice(list(SHARES), p=list(SHARES.values()), size=n)
    x = rng.normal(size=(n, 3))
    hit = (np.arange(n) >= CHANGE) & (country == "ES")
    x[hit, 0] += shift
    events = [{"model_id": "m", "features": {"country": str(country[i]),
                                             **{f"f{j}": float(x[i, j]) for j in range(3)}}}
              for i in range(n)]
    return events, hit


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shift_in_a_five_percent_segment_is_caught_there_and_named(seed: int) -> None:
    events, hit = _stream(seed)
    config = DetectorConfig(segments=["country"])
    found = detect(events, config)
    assert [(s.feature, s.segment) for s in found] == [("f0", ("country", "ES"))]
    # within 3,000 events of that segment's own traffic after the change
    assert int(hit[: found[0].position + 1].sum()) <= 3000
    assert found[0].position >= CHANGE
    # The whole traffic's series see a twentieth of it: nothing in the same stream.
    assert detect(events) == []


def test_the_same_alerts_for_any_batch_size_and_across_a_snapshot() -> None:
    events, _ = _stream(3, n=80_000, shift=1.0)
    config = DetectorConfig(segments=["country"], max_segment_values=3)  # IT, ES pooled
    whole = [s for b in model_batches(events, len(events)) for s in DetectorBank(config).update(b)]
    assert {s.segment for s in whole} == {("country", OTHER)}
    for size in (7, 2000, 3000):
        bank = DetectorBank(config)
        assert [s for b in model_batches(events, size) for s in bank.update(b)] == whole
    batches = model_batches(events, 5000)
    bank = DetectorBank(config)
    got = [s for b in batches[:6] for s in bank.update(b)]
    bank = decode(encode(bank), DetectorBank)
    got += [s for b in batches[6:] for s in bank.update(b)]
    assert got == whole


def test_segment_values_are_the_most_frequent_of_the_first_events() -> None:
    router = SegmentRouter("c", top=2, sample=6)
    rows = list(range(10))
    feats = [{"c": v} for v in ["b", "a", "b", "c", "a", None, "d", "a", True, "other"]]
    routed = router.route(feats, rows)
    assert router.values == ["a", "b"]  # 2 each, then by name; 'c' once
    # d, true (a boolean's category name) and a value called other are none of them.
    assert routed == {OTHER: [6, 8, 9], "a": [7]}
    assert router.other_events == 3


def test_a_pooled_segment_cannot_merge_with_a_value_called_other() -> None:
    router = SegmentRouter("c", top=1, sample=2)
    assert router.route([{"c": "other"}, {"c": "other"}], [0, 1]) == {}
    assert router.route([{"c": "other"}, {"c": "x"}, {}], [2, 3, 4]) == {
        "other": [2], "other*": [3]}


def test_the_budget_is_shared_by_every_group() -> None:
    config = DetectorConfig(segments=["country", "device"], max_segment_values=4)
    assert budget_groups(config) == 1 + 2 * 5
    assert budget_groups(DetectorConfig()) == 1
    bank = DetectorBank(config)
    events, _ = _stream(1, n=2000)
    for b in model_batches(events, 1000):
        bank.update(b)
    assert bank.models["m"].budget_series == pytest.approx(10 / 11)


def test_too_many_segment_features_are_refused_with_the_key() -> None:
    with pytest.raises(ValidationError, match="segments"):
        DetectorConfig(segments=[f"s{i}" for i in range(11)])
