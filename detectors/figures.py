"""The figures alerts carry: summaries that neither overflow nor round small values away.

An alert is read by a person and compared byte for byte by tests and consumers. Fixed
decimals did neither job: ``round(x, 6)`` writes a latency of 4e-7 s as 0, and a sum of
squares of 1e300 values overflows to ``inf`` (null in JSON) with a numpy warning.

- ``significant`` keeps ``SIGNIFICANT_DIGITS`` significant decimal digits, whatever the
  magnitude (Python's correctly rounded float formatting, so the same double always
  gives the same figure on every platform).
- ``mean_std`` computes on the values divided by a power of two that brings them into
  [-1, 1]: the division and the multiplication back are exact, so the result is the
  plain computation's bit for bit wherever that one neither overflows nor underflows,
  and finite for any finite doubles (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2nd ed., 2002, section 27.8, on scaling to avoid overflow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: Significant decimal digits of every figure in an alert's ``stats``.
SIGNIFICANT_DIGITS = 6


def significant(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant decimal digits (half to even on the
    exact binary value, as Python's ``format`` rounds); 0 and non-finite values as given
    (-0.0 reads 0.0).

    >>> significant(4.123456789e-7), significant(3.0039428e300), significant(0.3612345678)
    (4.12346e-07, 3.00394e+300, 0.361235)
    >>> significant(1234567.0), significant(-0.0), significant(12.0)
    (1234570.0, 0.0, 12.0)
    """
    if x == 0.0 or not math.isfinite(x):
        return x + 0.0
    return float(format(x, f".{digits - 1}e"))


def mean_std(values: Sequence[float] | npt.NDArray[np.float64], exact_mean: bool = False
             ) -> tuple[float, float]:
    """Population mean and standard deviation (ddof 0) of finite ``values``, without
    overflow or underflow: finite for any finite doubles, no numpy warning.

    The mean is numpy's (pairwise summation), or with ``exact_mean`` ``math.fsum``'s
    (correctly rounded sum, Shewchuk 1997); the standard deviation is numpy's ``std``.
    Either is bit for bit the unscaled computation's when that one stays in range.
    ValueError for no values.

    >>> mean_std([1e300, 3e300])
    (2e+300, 1e+300)
    >>> mean_std([1.7e308, -1.7e308, 1.7e308, -1.7e308])
    (0.0, 1.7e+308)
    >>> m, s = mean_std([1e-300, 3e-300]); (significant(m), significant(s))
    (2e-300, 1e-300)
    >>> mean_std([4e-07, 8e-07], exact_mean=True)
    (6e-07, 2e-07)
    """
    xs = np.asarray(values, dtype=np.float64)
    if not xs.size:
        raise ValueError("mean_std: no values")
    largest = max(abs(float(xs.min())), abs(float(xs.max())))
    e = math.frexp(largest)[1] if largest else 0
    ys = np.ldexp(xs, -e) if e else xs
    mean = math.fsum(ys.tolist()) / ys.size if exact_mean else float(ys.mean())
    return math.ldexp(mean, e), math.ldexp(float(ys.std()), e)
