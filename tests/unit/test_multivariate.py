"""detectors.multivariate: a change in how features move together, which no per-feature
monitor can see, is caught from the PCA reconstruction error; quiet when nothing changes;
the same alerts whatever the batches and across a snapshot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors import DetectorBank, DetectorConfig, EventBatch, detect
from detectors.codec import decode, encode
from detectors.multivariate import MULTIVARIATE, Reconstruction
from tests.batches import model_batches

CHANGE = 15_000
#: The multivariate series is off by default.
JOINT = DetectorConfig(multivariate={"enabled": True})  # type: ignore[arg-type]


def _flip(seed: int, n: int = 30_000, others: int = 3) -> list[dict[str, Any]]:
    """income and loan correlated +0.8 until CHANGE, then independent; every feature
    N(0, 1) throughout (the marginals never change)."""
    rng = np.random.default_rng(seed)
    income, noise = rng.normal(size=n), rng.normal(size=n)
    loan = np.where(np.arange(n) < CHANGE, 0.8 * income + 0.6 * noise, noise)
    rest = rng.normal(size=(n, others))
    return [{"model_id": "m", "features": {"income": float(income[i]), "loan": float(loan[i]),
                                            **{f"o{j}": float(rest[i, j]) for j in range(others)}}}
            for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_correlation_flip_is_caught_by_the_multivariate_monitor_alone(seed: int) -> None:
    found = detect(_flip(seed), JOINT)
    assert [s.feature for s in found] == [MULTIVARIATE]  # every per-feature monitor silent
    alert = found[0]
    assert alert.kind == "data_drift"
    assert CHANGE <= alert.position < CHANGE + 3000
    top_two = list(alert.stats["contributors"])[:2]
    assert sorted(top_two) == ["income", "loan"]
    assert alert.stats["after"]["mean"] > alert.stats["before"]["mean"]


def _alerts(batches: list[EventBatch], bank: DetectorBank) -> list[Any]:
    return [s for b in batches for s in bank.update(b)]


def test_the_same_alerts_for_any_batch_size_and_across_a_snapshot() -> None:
    events = _flip(5, n=20_000)
    whole = _alerts(model_batches(events, len(events)), DetectorBank(JOINT))
    assert [s.feature for s in whole] == [MULTIVARIATE]
    for size in (7, 997, 3000):
        assert _alerts(model_batches(events, size), DetectorBank(JOINT)) == whole
    batches = model_batches(events, 1000)
    bank = DetectorBank(JOINT)
    got = _alerts(batches[:8], bank)  # the PCA fitted, its error series warming up
    bank = decode(encode(bank), DetectorBank)
    got += _alerts(batches[8:], bank)
    assert got == whole


def test_stationary_correlated_features_raise_nothing() -> None:
    """20 features sharing two AR(1) factors (phi 0.9: dependent in time too)."""
    rng = np.random.default_rng(7)
    n = 60_000
    factors = np.zeros((n, 2))
    shocks = rng.normal(size=(n, 2))
    for i in range(1, n):
        factors[i] = 0.9 * factors[i - 1] + np.sqrt(1 - 0.81) * shocks[i]
    loadings = rng.uniform(-1, 1, size=(2, 20))
    x = factors @ loadings + 0.5 * rng.normal(size=(n, 20))
    events = [{"model_id": "m", "features": {f"f{j}": float(x[i, j]) for j in range(20)}}
              for i in range(n)]
    assert [s for s in detect(events, JOINT) if s.feature == MULTIVARIATE] == []


def test_drift_score_and_off_switch() -> None:
    events = _flip(3, n=4000)
    bank = DetectorBank(JOINT)
    _alerts(model_batches(events, 1000), bank)
    scores = {f: s for _, f, s in bank.drift_scores()}
    assert set(scores[MULTIVARIATE]) == {"psi", "jensen_shannon", "wasserstein"}
    off = DetectorBank(DetectorConfig())  # the default: off
    _alerts(model_batches(events, 1000), off)
    assert MULTIVARIATE not in {f for _, f, _ in off.drift_scores()}


def test_one_numeric_feature_is_no_joint() -> None:
    rng = np.random.default_rng(4)
    events = [{"model_id": "m", "features": {"x": float(rng.normal()), "c": "ab"[i % 2]}}
              for i in range(3000)]
    bank = DetectorBank(JOINT)
    _alerts(model_batches(events, 500), bank)
    joint = bank.models["m"].multivariate
    assert joint is not None and joint.unfitted and joint.pca is None


def test_missing_values_are_imputed_and_rows_without_features_skipped() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(500, 3))
    rows[::7, 1] = np.nan
    pca = Reconstruction(rows, 0.65)
    errors = pca.errors(np.array([[np.nan, np.nan, np.nan], [0.0, np.nan, 0.0]]))
    assert np.isfinite(errors).all()
    assert errors[0] == pytest.approx(0.0, abs=1e-9)  # all imputed: the mean itself


def test_categorical_features_enter_the_joint_by_their_shares() -> None:
    """A channel whose mix with income changes (web buyers get richer) while income's and
    the channel's own distributions stay put: only the joint sees it."""
    rng = np.random.default_rng(11)
    n = 30_000
    web = rng.random(n) < 0.5
    income = rng.normal(size=n)
    # Before: income is high on the web and low in the shop; after: independent of it.
    tied = np.where(web, np.abs(income), -np.abs(income))
    income = np.where(np.arange(n) < CHANGE, tied, income)
    rest = rng.normal(size=(n, 2))
    events = [{"model_id": "m", "features": {
        "income": float(income[i]), "channel": "web" if web[i] else "shop",
        "returning": bool(rest[i, 0] > 0), "o": float(rest[i, 1])}} for i in range(n)]
    found = detect(events, JOINT)
    joint = [s for s in found if s.feature == MULTIVARIATE]
    assert joint and CHANGE <= joint[0].position < CHANGE + 3000
    assert {s.feature for s in found} == {MULTIVARIATE}
    monitor = DetectorBank(JOINT)
    _alerts(model_batches(events[:3000], 1000), monitor)
    mv = monitor.models["m"].multivariate
    assert mv is not None and set(mv.features) == {"income", "channel", "returning", "o"}
    shares = {name: enc for name, enc in zip(mv.features, mv.encoders, strict=True)}
    assert shares["income"] is None and shares["o"] is None
    channel = shares["channel"]
    assert channel is not None and set(channel[0]) == {"web", "shop"} and channel[1] == 0.0
    assert shares["returning"] is not None and set(shares["returning"][0]) == {"true", "false"}


def test_an_event_far_off_the_scale_gives_a_finite_error_and_no_warning() -> None:
    rng = np.random.default_rng(2)
    pca = Reconstruction(rng.normal(size=(500, 3)), 0.65)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # as the c14 tests
        errors = pca.errors(np.array([[1e300, -1.7e308, 5e-324], [0.0, 0.0, 0.0]]))
    assert np.isfinite(errors).all() and errors[0] > errors[1]
