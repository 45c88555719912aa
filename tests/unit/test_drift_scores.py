"""detectors.stats.scores: PSI, Jensen-Shannon distance and Wasserstein-1 give the values
computed by hand (and scipy's, where scipy is installed), follow their conventions for
empty bins, ties and constant references, and stay finite without warnings on extreme
magnitudes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.stats.scores import (
    bin_shares,
    jensen_shannon,
    psi,
    reference_edges,
    wasserstein1,
    wasserstein1_sd,
)

# --- PSI -----------------------------------------------------------------------------------


def test_psi_matches_the_hand_computed_value() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(3.0), rel=1e-12)


def test_psi_is_zero_for_equal_shares_and_symmetric() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    a, b = [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]
    assert psi(a, b) == pytest.approx(psi(b, a), rel=1e-12)


def test_psi_reads_counts_as_shares() -> None:
    assert psi([10, 10], [5, 15]) == pytest.approx(psi([0.5, 0.5], [0.25, 0.75]), rel=1e-12)


def test_psi_floors_empty_bins_then_renormalises() -> None:
    # [1, 0] vs [0, 1]: each side floored to [1, 1e-4] / 1.0001 (mirrored); both bins
    # contribute (1 - 1e-4) / 1.0001 * ln(1e4).
    expected = 2.0 * (1.0 - 1e-4) / (1.0 + 1e-4) * math.log(1e4)
    assert psi([1.0, 0.0], [0.0, 1.0]) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0], floor=1e-12))
    # A coarser floor caps what an empty bin can add.
    assert psi([1.0, 0.0], [0.0, 1.0], floor=0.01) < psi([1.0, 0.0], [0.0, 1.0])


@pytest.mark.parametrize(("expected", "observed", "floor"), [
    ([0.5, 0.5], [1.0], 1e-4),  # different lengths
    ([0.5, -0.5], [0.5, 0.5], 1e-4),
    ([0.0, 0.0], [0.5, 0.5], 1e-4),
    ([math.nan, 1.0], [0.5, 0.5], 1e-4),
    ([], [], 1e-4),
    ([0.5, 0.5], [0.5, 0.5], 0.0),
])
def test_psi_refuses_bad_input(expected: list[float], observed: list[float],
                               floor: float) -> None:
    with pytest.raises(ValueError):
        psi(expected, observed, floor)


def test_psi_without_drift_is_about_bins_minus_one_over_n() -> None:
    # The module docstring's rule of thumb: windows of 1,000 draws from the reference's
    # own law, 10 equal bins, give a PSI of about 9 / 1000 on average.
    rng = np.random.default_rng(5)
    edges = reference_edges(np.sort(rng.normal(size=100_000)))
    values = [psi(np.full(10, 0.1), bin_shares(edges, rng.normal(size=1000)))
              for _ in range(400)]
    assert 0.007 < float(np.mean(values)) < 0.011


# --- Jensen-Shannon distance ---------------------------------------------------------------


def _js_by_hand(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log2(a / c) for a, c in zip(p, m, strict=True) if a > 0)
    kl_q = sum(b * math.log2(b / c) for b, c in zip(q, m, strict=True) if b > 0)
    return math.sqrt((kl_p + kl_q) / 2)


def test_jensen_shannon_matches_the_hand_computed_value() -> None:
    assert jensen_shannon([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        _js_by_hand([0.5, 0.5], [0.25, 0.75]), rel=1e-12)
    assert jensen_shannon([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.2208958, abs=1e-7)
    # An empty bin adds nothing (0 log 0 = 0): m = [0.75, 0.25].
    by_hand = math.sqrt((math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5 * 1.0) / 2)
    assert jensen_shannon([1.0, 0.0], [0.5, 0.5]) == pytest.approx(by_hand, rel=1e-12)


def test_jensen_shannon_lies_in_zero_one() -> None:
    assert jensen_shannon([3, 1], [0.75, 0.25]) == 0.0
    assert jensen_shannon([1, 0, 0], [0, 0.5, 0.5]) == 1.0
    rng = np.random.default_rng(2)
    for _ in range(200):
        p, q = rng.dirichlet(np.ones(5) * 0.3), rng.dirichlet(np.ones(5) * 0.3)
        assert 0.0 <= jensen_shannon(p, q) <= 1.0


def test_jensen_shannon_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        jensen_shannon([1.0, 0.0], [1.0])
    with pytest.raises(ValueError):
        jensen_shannon([1.0, -1.0], [1.0, 1.0])


# --- Wasserstein-1 ---------------------------------------------------------------------------


def test_wasserstein1_matches_hand_computed_values() -> None:
    assert wasserstein1([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]) == 5.0  # every value moves by 5
    assert wasserstein1([0.0, 1.0], [0.0, 3.0]) == 1.0  # |0.5 - 0.5| on [0, 1), 0.5 on [1, 3)
    # Different sizes: |1/2 - 2/3| on [0, 1), |1 - 2/3| on [1, 3): 1/6 + 2/3.
    assert wasserstein1([0.0, 1.0], [0.0, 0.0, 3.0]) == pytest.approx(5 / 6, rel=1e-12)
    assert wasserstein1([2.0], [2.0, 2.0]) == 0.0


def test_wasserstein1_ties_across_samples_and_order_of_values() -> None:
    reference = np.array([0.0, 1.0, 1.0, 2.0])
    # Values equal to reference values, unsorted: the distributions differ only on [1, 2).
    assert wasserstein1(reference, [2.0, 1.0, 0.0, 1.0]) == 0.0
    assert wasserstein1(reference, [1.0, 2.0, 2.0, 0.0]) == pytest.approx(0.25, rel=1e-12)


def test_wasserstein1_is_in_the_datas_units() -> None:
    rng = np.random.default_rng(3)
    reference = np.sort(rng.normal(size=500))
    values = rng.normal(0.4, 1.2, size=700)
    base = wasserstein1(reference, values)
    assert wasserstein1(reference * 1000.0, values * 1000.0) == pytest.approx(base * 1000.0,
                                                                             rel=1e-12)
    assert wasserstein1(reference + 1e6, values + 1e6) == pytest.approx(base, rel=1e-6)


@pytest.mark.filterwarnings("error")
def test_wasserstein1_on_extreme_magnitudes_is_finite_without_warnings() -> None:
    # The reference spans 2e300: differencing unscaled values would overflow to inf.
    assert wasserstein1([-1e300, 1e300], [1e300, 1e300]) == pytest.approx(1e300, rel=1e-12)
    rng = np.random.default_rng(4)
    reference = np.sort(rng.normal(size=300))
    values = rng.normal(0.5, 1.0, size=300)
    scaled = wasserstein1(reference * 1e300, values * 1e300)
    assert scaled == pytest.approx(wasserstein1(reference, values) * 1e300, rel=1e-9)
    assert wasserstein1_sd(reference * 1e300, values * 1e300) == pytest.approx(
        wasserstein1_sd(reference, values), rel=1e-9)
    # An sd that overflowed elsewhere (inf) is recomputed from the sample, without overflow.
    assert wasserstein1_sd(reference * 1e300, values * 1e300, reference_sd=math.inf) == (
        pytest.approx(wasserstein1_sd(reference, values), rel=1e-9))
    assert wasserstein1([5e-324, 1e-323], [5e-324]) == pytest.approx(2.5e-324, abs=5e-324)


def test_wasserstein1_sd_is_in_reference_standard_deviations() -> None:
    reference = [-1.0, 1.0]  # population sd 1
    assert wasserstein1_sd(reference, [-0.5, 1.5]) == 0.5
    assert wasserstein1_sd([0.0, 10.0], [5.0, 15.0]) == 1.0  # sd 5, shift 5
    # An explicit sd (the whole reference's, when the sample is a summary) wins.
    assert wasserstein1_sd([0.0, 10.0], [5.0, 15.0], reference_sd=2.5) == 2.0


def test_wasserstein1_sd_of_a_constant_reference_is_the_raw_distance() -> None:
    assert wasserstein1_sd([3.0, 3.0, 3.0], [3.0, 5.0]) == wasserstein1([3.0, 3.0, 3.0],
                                                                        [3.0, 5.0]) == 1.0
    assert wasserstein1_sd([3.0], [7.0], reference_sd=0.0) == 4.0


@pytest.mark.parametrize(("reference", "values"), [
    ([1.0, 0.0], [0.0]),  # reference not sorted
    ([], [0.0]),
    ([0.0], []),
    ([0.0, math.inf], [0.0]),
    ([0.0], [math.nan]),
])
def test_wasserstein1_refuses_bad_input(reference: list[float], values: list[float]) -> None:
    with pytest.raises(ValueError):
        wasserstein1(reference, values)


# --- bins --------------------------------------------------------------------------------


def test_reference_edges_are_the_inner_quantiles() -> None:
    assert reference_edges(np.arange(11.0), bins=5).tolist() == [2.0, 4.0, 6.0, 8.0]
    # Linear interpolation: the 0.1 quantile of 0 .. 999 lies between 99 and 100.
    edges = reference_edges(np.arange(1000.0))
    assert edges.size == 9
    assert edges == pytest.approx([99.9 * k for k in range(1, 10)])
    # Each bin then holds a tenth of the reference exactly.
    assert bin_shares(edges, np.arange(1000.0)).tolist() == [0.1] * 10


def test_reference_edges_merge_ties() -> None:
    assert reference_edges([4.0] * 50).tolist() == [4.0]
    # 70 % zeros: the 0.1 .. 0.6 quantiles are 0; the 0.7 one interpolates between the
    # last 0 (index 69) and the first 1 (index 70) at 69.3; the 0.8 and 0.9 ones are 1.
    sample = np.array([0.0] * 70 + [1.0] * 30)
    edges = reference_edges(sample)
    assert edges.tolist() == pytest.approx([0.0, 0.3, 1.0])
    assert bin_shares(edges, sample).tolist() == [0.0, 0.7, 0.0, 0.3]


@pytest.mark.filterwarnings("error")
def test_reference_edges_on_extreme_magnitudes() -> None:
    edges = reference_edges([-1e300, 1e300], bins=2)
    assert edges.tolist() == [0.0]
    with pytest.raises(ValueError):
        reference_edges([0.0, 1.0], bins=1)
    with pytest.raises(ValueError):
        reference_edges([1.0, 0.0])


def test_bin_shares_put_a_value_on_an_edge_in_the_right_bin() -> None:
    edges = [1.0, 2.0]
    assert bin_shares(edges, [1.0]).tolist() == [0.0, 1.0, 0.0]
    assert bin_shares(edges, [2.0]).tolist() == [0.0, 0.0, 1.0]
    assert bin_shares(edges, [np.nextafter(1.0, 0.0)]).tolist() == [1.0, 0.0, 0.0]
    assert bin_shares(edges, [-math.inf, math.inf]).tolist() == [0.5, 0.0, 0.5]
    assert bin_shares([], [3.0, 4.0]).tolist() == [1.0]


def test_bin_shares_refuse_bad_input() -> None:
    with pytest.raises(ValueError):
        bin_shares([1.0], [math.nan])
    with pytest.raises(ValueError):
        bin_shares([1.0], [])
    with pytest.raises(ValueError):
        bin_shares([2.0, 1.0], [1.5])


def test_scores_of_a_shifted_reference_by_hand() -> None:
    # Reference 0 .. 999 (bins of 100 values), window shifted by +100: the first bin
    # empties, the last doubles, the eight others keep a tenth.
    reference = np.arange(1000.0)
    edges = reference_edges(reference)
    expected, observed = bin_shares(edges, reference), bin_shares(edges, reference + 100.0)
    assert observed.tolist() == [0.0] + [0.1] * 8 + [0.2]
    # Only the observed side has an empty bin: floored to 1e-4, then all / 1.0001.
    o = [1e-4 / 1.0001] + [0.1 / 1.0001] * 8 + [0.2 / 1.0001]
    by_hand = sum((oi - 0.1) * math.log(oi / 0.1) for oi in o)
    assert psi(expected, observed) == pytest.approx(by_hand, rel=1e-9)
    assert jensen_shannon(expected, observed) == pytest.approx(
        _js_by_hand(expected.tolist(), observed.tolist()), rel=1e-12)
    assert wasserstein1(reference, reference + 100.0) == pytest.approx(100.0, rel=1e-12)
    assert wasserstein1_sd(reference, reference + 100.0) == pytest.approx(
        100.0 / float(np.std(reference)), rel=1e-12)


# --- against scipy, where it happens to be installed (not a dependency) ---------------------


def test_scores_match_scipy() -> None:
    distance = pytest.importorskip("scipy.spatial.distance")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(11)
    for size in (1, 7, 500):
        reference = np.sort(rng.normal(size=1000))
        values = rng.standard_t(3, size=size) + rng.normal()
        assert wasserstein1(reference, values) == pytest.approx(
            stats.wasserstein_distance(reference, values), rel=1e-9)
        rounded = np.round(values)  # ties within and across the samples
        ref_rounded = np.sort(np.round(reference * 2) / 2)
        assert wasserstein1(ref_rounded, rounded) == pytest.approx(
            stats.wasserstein_distance(ref_rounded, rounded), rel=1e-9)
    for _ in range(50):
        p, q = rng.dirichlet(np.ones(8) * 0.5), rng.dirichlet(np.ones(8) * 0.5)
        q[rng.integers(8)] = 0.0  # an empty bin
        assert jensen_shannon(p, q) == pytest.approx(distance.jensenshannon(p, q, base=2),
                                                     rel=1e-9, abs=1e-12)


# --- per-series scores: monitors, bank, alert stats ------------------------------------------

from detectors import DetectorBank, DetectorConfig, EventBatch, detect  # noqa: E402
from detectors.config import CategoricalSettings, NumericSettings  # noqa: E402
from detectors.figures import significant  # noqa: E402
from detectors.monitors import (  # noqa: E402
    CategoricalMonitor,
    NumericMonitor,
    categorical_scores,
    numeric_scores,
)
from detectors.reference import CategoricalReference, NumericReference  # noqa: E402


def test_numeric_scores_wait_for_the_warmup_and_a_full_window() -> None:
    rng = np.random.default_rng(20)
    m = NumericMonitor(NumericSettings(), warmup=300, recent_window=500)
    m.update(rng.normal(size=299), range(299))
    assert m.scores() is None  # warming up
    m.update(rng.normal(size=100), range(299, 399))
    assert not m.warming_up and m.scores() is None  # 399 values in a window of 500
    m.update(rng.normal(size=101), range(399, 500))
    scores = m.scores()
    assert scores is not None and sorted(scores) == ["jensen_shannon", "psi", "wasserstein"]


def test_numeric_scores_are_the_last_window_against_the_reference_sample() -> None:
    rng = np.random.default_rng(21)
    reference = NumericReference(rng.normal(10.0, 2.0, size=1000))
    m = NumericMonitor(NumericSettings(), warmup=1000, recent_window=400, reference=reference)
    shifted = rng.normal(11.0, 2.0, size=1000)  # +0.5 sd
    m.update(shifted, range(1000))
    scores = m.scores()
    assert scores is not None
    # Kept at float32 precision: the reference is compact (reference.compact_sorted).
    assert reference.compact
    window = shifted[-400:].astype(np.float32).astype(np.float64)
    sample = reference.sorted_sample()
    edges = reference_edges(sample)
    assert scores == {
        "psi": psi(bin_shares(edges, sample), bin_shares(edges, window)),
        "jensen_shannon": jensen_shannon(bin_shares(edges, sample), bin_shares(edges, window)),
        "wasserstein": wasserstein1(sample, window) / reference.std,
    }
    assert 0.35 < scores["wasserstein"] < 0.65  # about the 0.5 sd shift
    assert scores["psi"] > 0.1


def test_numeric_scores_of_a_summarized_reference_use_its_order_statistics() -> None:
    values = np.arange(100_000.0)
    reference = NumericReference.summarizing(values, size=1000)
    assert reference.sorted_sample().size == 1000
    scores = numeric_scores(reference, values[:1000] + 0.0)  # the bottom 1 % of the reference
    # Every window value lies in the first decile bin: PSI and JS of [1, 0, ..., 0] vs 0.1s.
    assert scores["psi"] == pytest.approx(psi([0.1] * 10, [1.0] + [0.0] * 9), rel=1e-9)
    assert scores["wasserstein"] == pytest.approx(
        wasserstein1(reference.sorted_sample(), values[:1000]) / float(values.std()), rel=1e-9)


def test_categorical_scores_compare_category_and_other_shares_by_hand() -> None:
    reference = CategoricalReference({"a": 60, "b": 30, "c": 10}, total=100, max_categories=2)
    window = ["a"] * 200 + ["b"] * 300 + ["c"] * 400 + ["new"] * 100
    scores = categorical_scores(reference, window)
    expected, observed = [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]  # c and new pooled in 'other'
    by_hand = sum((o - e) * math.log(o / e) for e, o in zip(expected, observed, strict=True))
    assert scores == {"psi": pytest.approx(by_hand, rel=1e-9),
                      "jensen_shannon": pytest.approx(_js_by_hand(expected, observed),
                                                      rel=1e-9)}
    m = CategoricalMonitor(CategoricalSettings(max_categories=2), warmup=100,
                           recent_window=1000, reference=reference)
    assert m.scores() is None  # empty window
    mixed = window.copy()
    np.random.default_rng(0).shuffle(mixed)  # stationary within the window: no alert
    m.update(mixed, range(len(mixed)))
    assert not m.warming_up
    assert m.scores() == scores


def test_bank_drift_scores_name_features_and_prediction_series() -> None:
    rng = np.random.default_rng(22)
    bank = DetectorBank(DetectorConfig(warmup=200, recent_window=200))
    batch = EventBatch()
    for i in range(600):
        batch.append("credit", "1", {"income": float(rng.normal()), "country": "DE" if i % 3
                                     else "FR"}, {"yes": 0.7, "no": 0.3} if i % 2 else
                     {"yes": 0.2, "no": 0.8}, i)
    bank.update(batch)
    found = {(m, f): s for m, f, s in bank.drift_scores()}
    assert sorted(found) == [("credit", "country"), ("credit", "income"),
                             ("credit", "prediction"), ("credit", "prediction.confidence")]
    assert sorted(found[("credit", "income")]) == ["jensen_shannon", "psi", "wasserstein"]
    assert sorted(found[("credit", "prediction")]) == ["jensen_shannon", "psi"]  # classes
    assert sorted(found[("credit", "prediction.confidence")]) == [
        "jensen_shannon", "psi", "wasserstein"]
    # Stationary series: small scores (PSI about 9 / 200 on ten bins).
    assert all(s["psi"] < 0.15 and s["jensen_shannon"] < 0.2 for s in found.values())
    assert DetectorBank(DetectorConfig(warmup=200)).drift_scores() == []


def _shift_events(n: int, at: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    return [{"model_id": "m", "features": {
        "x": float(rng.normal(1.5 if i >= at else 0.0, 1.0)),
        "c": str(rng.choice(["a", "b", "c"], p=[0.2, 0.3, 0.5] if i >= at else [0.6, 0.3, 0.1])),
    }} for i in range(n)]


def test_alert_stats_carry_the_scores_of_the_values_since_the_change() -> None:
    config = DetectorConfig(warmup=300, recent_window=300)
    events = _shift_events(3000, 1500, seed=23)
    signals = [s for s in detect(events, config) if s.kind == "data_drift"]
    assert {s.feature for s in signals} == {"x", "c"}
    for signal in signals:
        scores = signal.stats["scores"]
        # The values ``after`` summarizes: from the estimated change point up to and
        # including the event that fired.
        n = signal.stats["after"]["n"]
        assert scores["n"] == n and 0 < n <= 300
        column = [e["features"][signal.feature] for e in events]
        window, warmup = column[signal.position + 1 - n:signal.position + 1], column[:300]
        if signal.feature == "x":
            expected = numeric_scores(NumericReference(warmup), np.asarray(window))
            assert sorted(scores) == ["jensen_shannon", "n", "psi", "wasserstein"]
            assert scores["wasserstein"] > 1.0  # the 1.5 sd shift, seen on its own values
        else:
            counts = {k: warmup.count(k) for k in set(warmup)}
            expected = categorical_scores(CategoricalReference(counts, 300, 50), window)
            assert sorted(scores) == ["jensen_shannon", "n", "psi"]
        assert {k: v for k, v in scores.items() if k != "n"} == {
            k: significant(v) for k, v in expected.items()}
        assert scores["psi"] > 0.25


def test_alert_scores_are_the_same_for_any_batch_size() -> None:
    config = DetectorConfig(warmup=300, recent_window=300)
    events = _shift_events(3000, 1500, seed=24)
    whole = detect(events, config, batch_size=len(events))
    assert any("scores" in s.stats for s in whole)
    for size in (1, 7, 250):
        assert detect(events, config, batch_size=size) == whole
