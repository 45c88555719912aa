"""Drift scores people already know: PSI, Jensen-Shannon distance, Wasserstein-1.

Each compares a window of recent values with a reference. They measure how far
apart two distributions are (an effect size), not whether the gap is more than
noise: they come with no test and no false-alarm rate. Without drift they are
still positive on a finite window, and shrink as the window grows (PSI about
``(bins - 1) / n`` over ``n`` values).

Numeric features are compared on the reference's quantile bins
(``reference_edges``, ``bin_shares``) for PSI and Jensen-Shannon, and on the raw
values for Wasserstein-1; categorical features on category shares. numpy only:
this module imports nothing else of ``detectors``.

>>> reference = np.sort(np.arange(1000.0))
>>> edges = reference_edges(reference, bins=10)
>>> expected, observed = bin_shares(edges, reference), bin_shares(edges, reference + 100.0)
>>> round(psi(expected, observed), 4), round(jensen_shannon(expected, observed), 4)
(0.7594, 0.2495)
>>> round(wasserstein1(reference, reference + 100.0), 9)
100.0
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Smallest share PSI gives a bin (see ``psi``).
PSI_FLOOR = 1e-4


def _shares(weights: npt.ArrayLike, name: str) -> FloatArray:
    """Non-negative weights per bin scaled to sum to 1."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not w.size:
        raise ValueError(f"{name}: expected a non-empty 1-D array of shares")
    total = float(w.sum())  # NaN or inf if any share is: one pass checks all
    if not math.isfinite(total) or float(w.min()) < 0.0:
        raise ValueError(f"{name}: shares must be finite and non-negative")
    if total <= 0.0:
        raise ValueError(f"{name}: shares sum to 0")
    return w / total


def _pair(expected: npt.ArrayLike, observed: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    e, o = _shares(expected, "expected"), _shares(observed, "observed")
    if e.size != o.size:
        raise ValueError(f"expected has {e.size} bins, observed {o.size}")
    return e, o


def psi(expected: npt.ArrayLike, observed: npt.ArrayLike, floor: float = PSI_FLOOR) -> float:
    """Population stability index of ``observed`` shares against ``expected`` ones.

    ``PSI = sum_i (o_i - e_i) * ln(o_i / e_i)`` over the bins (or categories) ``i``,
    in nats (natural logarithm); it is the symmetrised Kullback-Leibler divergence
    ``KL(o || e) + KL(e || o)``, 0 for equal shares, unbounded above.

    Inputs are shares per bin (or counts: each is divided by its sum), the same bins in
    the same order. An empty bin would make the logarithm infinite, so every share is
    first raised to at least ``floor`` and the shares renormalised to sum to 1; with the
    default 1e-4 a bin empty on one side and holding a share ``s`` on the other adds
    about ``s * ln(s / 1e-4)``. Raises ValueError for shares that are negative, not
    finite, all zero, or of different lengths, and for ``floor`` outside (0, 1).

    Source: the credit-scoring definition (Siddiqi, *Credit Risk Scorecards*, 2006;
    its statistical properties in Yurdakul, *Statistical Properties of Population
    Stability Index*, 2018). Common reading: below 0.1 no significant change, 0.1 to
    0.25 a moderate one, above 0.25 a significant one.

    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 6)
    0.274653
    >>> psi([1, 1, 2], [1, 1, 2])
    0.0
    >>> round(psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]), 4)  # the empty bin floored to 1e-4
    0.7124
    """
    if not 0.0 < floor < 1.0:
        raise ValueError(f"floor must be in (0, 1), got {floor}")
    e, o = _pair(expected, observed)
    e = np.maximum(e, floor)
    o = np.maximum(o, floor)
    e /= e.sum()
    o /= o.sum()
    return max(0.0, float(np.sum((o - e) * np.log(o / e))))


def _kl2(p: FloatArray, m: FloatArray) -> float:
    """KL(p || m) in bits, with 0 * log(0 / m) = 0 (m > 0 wherever p > 0)."""
    seen = p > 0.0
    return float(np.sum(p[seen] * np.log2(p[seen] / m[seen])))


def jensen_shannon(expected: npt.ArrayLike, observed: npt.ArrayLike) -> float:
    """Jensen-Shannon distance between two share vectors, in [0, 1].

    With ``m = (e + o) / 2``: ``JSD = (KL(e || m) + KL(o || m)) / 2`` in bits (base-2
    logarithms), and the distance is ``sqrt(JSD)``, a metric: 0 for equal shares, 1 for
    shares with no bin in common. Unlike PSI it needs no floor: an empty bin contributes
    0 (the convention 0 * log 0 = 0), and ``m`` is positive wherever a share is.

    Inputs as for ``psi`` (shares or counts, divided by their sums; ValueError for
    negative, non-finite, all-zero or mismatched inputs).

    Source: Lin, *Divergence measures based on the Shannon entropy*, IEEE Trans. Inf.
    Theory 37(1), 1991; the distance as in ``scipy.spatial.distance.jensenshannon(e, o,
    base=2)``.

    >>> jensen_shannon([1, 0], [0, 1]), jensen_shannon([0.2, 0.8], [2, 8])
    (1.0, 0.0)
    >>> round(jensen_shannon([0.5, 0.5], [0.25, 0.75]), 6)
    0.220896
    """
    e, o = _pair(expected, observed)
    m = (e + o) / 2.0
    divergence = (_kl2(e, m) + _kl2(o, m)) / 2.0
    return min(1.0, math.sqrt(max(0.0, divergence)))  # rounding can leave [0, 1] by an ulp


def _finite_1d(values: npt.ArrayLike, name: str) -> FloatArray:
    xs = np.asarray(values, dtype=np.float64)
    if xs.ndim != 1 or not xs.size:
        raise ValueError(f"{name}: expected a non-empty 1-D array")
    if not np.isfinite(xs).all():
        raise ValueError(f"{name}: values must be finite")
    return xs


def _exponent(*extremes: float) -> int:
    """e such that every value lies within 2**e in absolute value: dividing by 2**e is
    exact (a power of two) and brings values into [-1, 1], so differences cannot overflow."""
    largest = max(abs(x) for x in extremes)
    return math.frexp(largest)[1] if largest else 0


def _check_sorted(xs: FloatArray, name: str) -> None:
    if (xs[1:] < xs[:-1]).any():
        raise ValueError(f"{name}: must be sorted in ascending order")


def _scaled_std(sorted_sample: FloatArray) -> float:
    e = _exponent(sorted_sample[0], sorted_sample[-1])
    return math.ldexp(float(np.ldexp(sorted_sample, -e).std()), e)


def wasserstein1(reference_sorted: npt.ArrayLike, values: npt.ArrayLike) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples, in the data's units.

    ``W1 = integral |F_ref(t) - F_values(t)| dt`` of the two empirical distribution
    functions (equivalently, of the two quantile functions): the least average distance
    values must move to turn one sample into the other. Moving every value by ``d``
    gives ``|d|``. Exact for the two empirical distributions: the integral is summed over
    the merged sorted support, where both functions are steps (as
    ``scipy.stats.wasserstein_distance``, which it matches).

    ``reference_sorted`` must be sorted ascending; ``values`` need not be. Both must be
    non-empty and finite (ValueError otherwise). Values are divided by a power of two
    that brings them into [-1, 1] before any difference is taken, so samples of any
    finite magnitude (1e300 and -1e300 together) give a finite result without warnings,
    unless the distance itself exceeds the largest float (then ``inf``).

    Source: Villani, *Optimal Transport, Old and New*, 2009, ch. 6 (the Kantorovich-
    Rubinstein distance); for samples on the line, the distance between their
    distribution functions.

    >>> wasserstein1([0.0, 1.0, 3.0], [5.0, 6.0, 8.0])
    5.0
    >>> wasserstein1([0.0, 1.0], [0.0, 3.0])
    1.0
    >>> wasserstein1([-1e300, 1e300], [1e300, 1e300])
    1e+300
    """
    u = _finite_1d(reference_sorted, "reference_sorted")
    _check_sorted(u, "reference_sorted")
    v = np.sort(_finite_1d(values, "values"))
    n, m = u.size, v.size
    e = _exponent(u[0], u[-1], v[0], v[-1])
    merged = np.ldexp(np.concatenate((u, v)), -e)
    order = np.argsort(merged, kind="stable")  # two sorted runs: merged in linear time
    steps = np.diff(merged[order])
    # After the k-th merged value (k = 1 .. n + m - 1) the two distribution functions
    # differ by below / n - (k - below) / m, with ``below`` the reference values among
    # the first k; times n * m, an exact integer. Values tied across the samples are
    # steps of 0 apart, so their order does not matter.
    below = np.cumsum(order[:-1] < n)
    gap = below * (n + m) - np.arange(1, n + m) * n
    try:
        return math.ldexp(float(np.sum(np.abs(gap) * steps)) / (n * m), e)
    except OverflowError:
        return math.inf


def wasserstein1_sd(reference_sorted: npt.ArrayLike, values: npt.ArrayLike,
                    reference_sd: float | None = None) -> float:
    """``wasserstein1`` divided by the reference's standard deviation (dimensionless).

    The unit the README and the bench report: a shift of the whole distribution by
    0.5 reference standard deviations reads 0.5, whatever the feature's unit.
    ``reference_sd`` defaults to the population standard deviation (ddof 0) of
    ``reference_sorted`` (computed without overflow); pass the reference's own when the
    sample is a summary of a larger one. A constant reference (sd 0) has no scale: the
    raw ``wasserstein1`` distance, in data units, is returned then. Errors as for
    ``wasserstein1``. A result past the largest float (values of 1e308 against a
    reference of sd 0.01) is the largest float, not ``inf``: alert figures stay finite,
    as ``figures.mean_std``'s.

    >>> wasserstein1_sd([-1.0, 1.0], [0.0, 2.0])
    1.0
    >>> wasserstein1_sd([5.0, 5.0], [6.0, 7.0])  # constant reference: raw distance
    1.5
    >>> round(wasserstein1_sd([0.9] * 1000, [1.0] * 10, reference_sd=1.1e-16), 9)  # rounding
    0.1
    """
    distance = wasserstein1(reference_sorted, values)
    ref = np.asarray(reference_sorted, dtype=np.float64)
    if reference_sd is None or not math.isfinite(reference_sd):
        reference_sd = _scaled_std(ref)
    # A constant reference's computed sd is rounding noise (1,000 x 0.9 gives ~1e-16):
    # an sd within float rounding of the values' magnitude counts as 0.
    magnitude = float(np.max(np.abs(ref))) if ref.size else 0.0
    scaled = distance / reference_sd if reference_sd > _ROUNDING * magnitude else distance
    return min(scaled, _LARGEST)


_LARGEST = float(np.finfo(np.float64).max)


_ROUNDING = 1e-12


def reference_edges(sorted_sample: npt.ArrayLike, bins: int = 10) -> FloatArray:
    """Inner edges of ``bins`` quantile bins of a reference sample, ascending, distinct.

    The edges are the sample's ``k / bins`` quantiles for k = 1 .. bins - 1 (numpy's
    default linear interpolation, Hyndman & Fan's type 7), so each bin holds about
    ``1 / bins`` of the reference. Bin i holds the values x with
    ``edges[i-1] <= x < edges[i]`` (see ``bin_shares``): the outer bins are open-ended,
    so every value falls in a bin. Equal quantiles (ties, a constant reference) are
    merged, so fewer bins result: a constant reference gives one edge, its value.

    ``sorted_sample`` must be non-empty, finite and sorted ascending; ``bins`` at least
    2 (ValueError otherwise). Computed on values scaled by a power of two, so extreme
    magnitudes do not overflow the interpolation.

    >>> reference_edges(np.arange(11.0), bins=5).tolist()
    [2.0, 4.0, 6.0, 8.0]
    >>> reference_edges([3.0, 3.0, 3.0]).tolist()
    [3.0]
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    xs = _finite_1d(sorted_sample, "sorted_sample")
    _check_sorted(xs, "sorted_sample")
    e = _exponent(xs[0], xs[-1])
    inner = np.quantile(np.ldexp(xs, -e), np.arange(1, bins) / bins)
    return np.unique(np.ldexp(inner, e))


def bin_shares(edges: npt.ArrayLike, values: npt.ArrayLike) -> FloatArray:
    """Share of ``values`` in each of the ``len(edges) + 1`` bins the inner ``edges`` cut.

    Bin 0 holds values below ``edges[0]``, bin i values in ``[edges[i-1], edges[i])``,
    the last bin values at or above ``edges[-1]``: a value equal to an edge goes to the
    bin on its right, as ``np.searchsorted(edges, value, side='right')``. Shares sum to
    1; an empty bin has share 0 (``psi`` floors it, ``jensen_shannon`` needs nothing).

    ``edges`` must be sorted ascending; ``values`` non-empty and not NaN (infinities fall
    in the outer bins); ValueError otherwise.

    >>> bin_shares([1.0, 2.0], [0.5, 1.0, 1.5, 2.0]).tolist()
    [0.25, 0.5, 0.25]
    """
    cuts = np.asarray(edges, dtype=np.float64)
    if cuts.ndim != 1:
        raise ValueError("edges: expected a 1-D array")
    _check_sorted(cuts, "edges")
    xs = np.asarray(values, dtype=np.float64)
    if xs.ndim != 1 or not xs.size:
        raise ValueError("values: expected a non-empty 1-D array")
    if np.isnan(xs).any():
        raise ValueError("values: NaN has no bin")
    counts = np.bincount(np.searchsorted(cuts, xs, side="right"), minlength=cuts.size + 1)
    shares: FloatArray = counts / xs.size
    return shares
