"""Long-run variance of a dependent stationary series, by overlapping batch means.

For a stationary series with variance ``s2`` and autocorrelations ``rho_k``, the
variance of a mean of ``n`` values is about ``s2 * L / n`` with the long-run variance
factor ``L = 1 + 2 sum_k rho_k`` (``L = 1`` for independent values; an AR(1) series
with coefficient ``phi`` has ``L = (1 + phi) / (1 - phi)``). ``n / L`` is the effective
sample size. The overlapping-batch-means estimator (Meketon & Schmeiser 1984; Flegal &
Jones 2010, Ann. Statist. 38) estimates ``s2 * L`` by ``b`` times the variance of the
means of all ``n - b + 1`` windows of ``b`` consecutive values; it is consistent when
the dependence dies out well within ``b`` values, and it underestimates dependence
that lasts longer than ``b`` (the bias is about ``2 sum_k k rho_k / b``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def variance_inflation(values: FloatArray, batch: int) -> float | None:
    """``L``: the long-run variance of ``values`` over their variance, or None when it
    cannot be told (fewer than four batches, or a constant series).

    Three estimates, each good where another is weak, on the same stretch:

    - ``ar1``: the factor of an AR(1) process with the stretch's lag-1 autocorrelation,
      ``(1 + r) / (1 - r)``: precise (r has sd about ``1 / sqrt(n)``) where the
      dependence is geometric, a floor otherwise;
    - ``newey_west``: Bartlett-weighted autocorrelations up to lag ``batch / 2``
      (Newey & West 1987): any dependence shorter than that, with little noise;
    - ``robust_batch_means``: robust to a level shift inside the stretch (a drift that
      starts while it is measured must not pass for dependence and mask itself), but
      noisy.

    ``L = max(ar1, min(newey_west, robust_batch_means))``: a level shift inflates every
    autocorrelation, so Newey-West is capped by the robust estimate.

    >>> rng = np.random.default_rng(1)
    >>> 0.9 < variance_inflation(rng.normal(size=20_000), 100) < 1.1
    True
    >>> x = np.zeros(20_000)
    >>> e = rng.normal(size=20_000)
    >>> for t in range(1, x.size):
    ...     x[t] = 0.8 * x[t - 1] + e[t]
    >>> 8.0 < variance_inflation(x, 100) < 10.0  # (1 + 0.8) / (1 - 0.8) = 9
    True
    >>> shifted = np.concatenate((rng.normal(size=1000), rng.normal(0.5, 1.0, size=1000)))
    >>> variance_inflation(shifted, 100) < 2.5  # Newey-West alone: about 4
    True
    >>> variance_inflation(np.ones(500), 50) is None
    True
    """
    xs = np.asarray(values, dtype=np.float64)
    n = xs.size
    if n < 4 * batch or batch < 2:
        return None
    centred = xs - xs.mean()
    variance = float(np.dot(centred, centred)) / n
    robust = robust_batch_means(xs, batch)
    if variance <= 0.0 or robust is None:
        return None
    lags = max(1, batch // 2)
    autocorrelations = np.array([float(np.dot(centred[:-k], centred[k:])) / n / variance
                                 for k in range(1, lags + 1)])
    weights = 1.0 - np.arange(1, lags + 1) / (lags + 1.0)
    newey_west = 1.0 + 2.0 * float(np.dot(weights, autocorrelations))
    r = min(float(autocorrelations[0]), 0.999)
    ar1 = (1.0 + r) / (1.0 - r)
    return max(ar1, min(newey_west, robust))


def robust_batch_means(values: FloatArray, batch: int) -> float | None:
    """``L`` by overlapping batch means made robust to a level shift: the long-run
    variance from the squared differences between the means of overlapping windows of
    ``batch`` values ``batch`` apart (for normal window means their mean is
    ``2 s2 L / b``), the largest 15 % trimmed (a level shift touches only the windows
    that straddle it); the variance from the median of the variances within
    non-overlapping batches. None for fewer than four batches or a constant series.

    >>> rng = np.random.default_rng(2)
    >>> shifted = np.concatenate((rng.normal(size=1000), rng.normal(2.0, 1.0, size=1000)))
    >>> robust_batch_means(shifted, 100) < 2.5  # without the trimming: about 25
    True
    """
    xs = np.asarray(values, dtype=np.float64)
    n = xs.size
    if n < 4 * batch or batch < 2:
        return None
    batches = n // batch
    within = float(np.median(xs[: batches * batch].reshape(batches, batch).var(axis=1, ddof=1)))
    if within <= 0.0:
        return None
    sums = np.concatenate(([0.0], np.cumsum(xs - xs.mean())))
    means = (sums[batch:] - sums[:-batch]) / batch  # every window of ``batch`` values
    steps = means[batch:] - means[:-batch]
    squares = np.sort(steps * steps)
    kept = squares[: max(1, int(squares.size * _KEPT))]
    long_run = batch * float(kept.mean()) / (2.0 * _TRIMMED_CHI2_1)
    return long_run / within


#: Share of the squared differences kept (the largest 15 % dropped: a level shift
#: touches only the windows that straddle it), and the mean of the kept part of a
#: chi-square variable with one degree of freedom: P(chi2_3 < q) / 0.85, q its 0.85
#: quantile (2.0723), since x f_1(x) = f_3(x).
_KEPT = 0.85
_TRIMMED_CHI2_1 = 0.520533
