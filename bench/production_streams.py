"""Seeded production-like streams for bench/quality.py, and their reference files.

Every generator takes a ``numpy.random.Generator`` and returns, per feature, the values
that go into events (floats or strings) and the numbers the raw river baselines see
(a category as its level's index). Nothing here touches the detectors.

- skew from the reference: ``skew_reference`` (x ~ N(0, 1), c at a/b/c = 60/30/10 %,
  ``code`` uniform over 5,000 zip-code-like strings) and ``skew_stream`` (the same law
  except one feature, from the first event; or every code replaced by a new one at
  ``switch``);
- dependent stationary processes of unit marginal variance: ``AR1`` (x_t = phi x_{t-1} +
  sqrt(1 - phi^2) e_t, started from its stationary law) and ``Sessions`` (runs of
  ``SESSION_LENGTH`` events sharing one user's offset ~ N(0, 0.7^2), plus N(0, 0.71^2) noise);
- a daily cycle: ``amplitude * sin(2 pi t / 86400) + N(0, 1)`` at event times ``t``;
- ``write_reference``: a JSONL reference file in docs/contracts.md's event contract (RFC 3339
  timestamps).

>>> rng = np.random.default_rng(0)
>>> xs, state = AR1(0.9).draw(rng, 100_000)
>>> round(float(np.var(xs)), 1), round(float(np.corrcoef(xs[:-1], xs[1:])[0, 1]), 2)
(1.0, 0.9)
>>> round(float(np.var(Sessions().draw(rng, 100_000))), 1)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

FloatArray = npt.NDArray[np.float64]
Series = tuple[list[Any], FloatArray]  # values for events, numbers for the raw detectors

DAY = 86_400.0
# Live streams with event times start at this midnight (a Monday); references before it.
START = datetime(2026, 11, 23, tzinfo=UTC).timestamp()

# --------------------------------------------------------------------------- skew

CATEGORIES = ("a", "b", "c")  # raw detectors see the index
CATEGORY_P: FloatArray = np.array([0.6, 0.3, 0.1])
CATEGORY_P_SKEWED: FloatArray = np.array([0.2, 0.3, 0.5])
CODES = 5_000  # levels of the zip-code-like feature
SHAPE_A = 0.9  # bimodal: 0.5 N(-a, s) + 0.5 N(a, s), a^2 + s^2 = 1 (mean 0, variance 1)

SKEW_KINDS = ("location", "scale", "shape", "categories", "codes", "none")


def code_sets(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Two disjoint sets of ``CODES`` five-digit strings: before and after the switch."""
    picks = rng.choice(100_000, size=2 * CODES, replace=False)
    names = [f"{k:05d}" for k in picks.tolist()]
    return names[:CODES], names[CODES:]


def _normal(rng: np.random.Generator, n: int, mean: float = 0.0, sd: float = 1.0) -> Series:
    xs = rng.normal(mean, sd, n)
    return xs.tolist(), xs


def _bimodal(rng: np.random.Generator, n: int) -> Series:
    s = math.sqrt(1.0 - SHAPE_A**2)
    xs = np.where(rng.random(n) < 0.5, -SHAPE_A, SHAPE_A) + rng.normal(0.0, s, n)
    return xs.tolist(), xs


def _categories(rng: np.random.Generator, n: int, p: FloatArray) -> Series:
    idx = rng.choice(len(p), size=n, p=p)
    return [CATEGORIES[i] for i in idx.tolist()], idx.astype(np.float64)


def _codes(rng: np.random.Generator, n: int, names: Sequence[str], first_index: int) -> Series:
    idx = rng.integers(0, len(names), n)
    return [names[i] for i in idx.tolist()], (idx + first_index).astype(np.float64)


def skew_reference(rng: np.random.Generator, n: int, codes: Sequence[str]
                   ) -> dict[str, Series]:
    """``n`` events of the reference law: x ~ N(0, 1), c at 60/30/10 %, code uniform."""
    return {"x": _normal(rng, n), "c": _categories(rng, n, CATEGORY_P),
            "code": _codes(rng, n, codes, 0)}


def skew_stream(kind: str, rng: np.random.Generator, n: int, codes: Sequence[str],
                new_codes: Sequence[str], switch: int) -> dict[str, Series]:
    """A live stream of ``n`` events that differs from ``skew_reference`` in one way.

    ``kind``: "location" x ~ N(0.5, 1); "scale" x ~ N(0, 1.5^2); "shape" x bimodal (mean 0,
    variance 1); "categories" c at 20/30/50 %; "codes" every code from event ``switch`` on is
    one of ``new_codes`` (raw index ``CODES`` + k); "none" nothing differs. Every feature that
    does not change follows the reference law (a control).
    """
    if kind not in SKEW_KINDS:
        raise ValueError(f"unknown skew kind {kind!r}")
    x = {"location": lambda: _normal(rng, n, 0.5), "scale": lambda: _normal(rng, n, 0.0, 1.5),
         "shape": lambda: _bimodal(rng, n)}.get(kind, lambda: _normal(rng, n))()
    c = _categories(rng, n, CATEGORY_P_SKEWED if kind == "categories" else CATEGORY_P)
    if kind == "codes":
        before, raw_before = _codes(rng, switch, codes, 0)
        after, raw_after = _codes(rng, n - switch, new_codes, CODES)
        code: Series = (before + after, np.concatenate((raw_before, raw_after)))
    else:
        code = _codes(rng, n, codes, 0)
    return {"x": x, "c": c, "code": code}


# --------------------------------------------------------------------------- dependence

@dataclass
class AR1:
    """Stationary AR(1) of unit variance, drawn chunk by chunk (the last value carries over)."""

    phi: float
    last: float | None = None

    def draw(self, rng: np.random.Generator, n: int) -> tuple[FloatArray, float]:
        e = rng.normal(0.0, math.sqrt(1.0 - self.phi**2), n).tolist()
        x = rng.normal() if self.last is None else self.last  # stationary start
        out = [0.0] * n
        phi = self.phi
        for i in range(n):
            x = phi * x + e[i]
            out[i] = x
        self.last = x
        return np.asarray(out), x


SESSION_LENGTH = 20
SESSION_SD = 0.7  # the user's offset
NOISE_SD = 0.71  # within a session: 0.7^2 + 0.71^2 = 0.994


@dataclass
class Sessions:
    """Runs of ``SESSION_LENGTH`` events sharing one offset; chunks of a multiple of it."""

    def draw(self, rng: np.random.Generator, n: int) -> FloatArray:
        if n % SESSION_LENGTH:
            raise ValueError(f"draw a multiple of {SESSION_LENGTH} events, not {n}")
        offsets = np.repeat(rng.normal(0.0, SESSION_SD, n // SESSION_LENGTH), SESSION_LENGTH)
        out: FloatArray = offsets + rng.normal(0.0, NOISE_SD, n)
        return out


DEPENDENT = {"ar1_0.5": "AR(1), phi = 0.5", "ar1_0.9": "AR(1), phi = 0.9",
             "sessions": f"sessions of {SESSION_LENGTH} events (offset sd {SESSION_SD}, "
                         f"noise sd {NOISE_SD})"}


class DependentStreams:
    """The processes of ``DEPENDENT``, each with its own generator, drawn chunk by chunk."""

    def __init__(self, rngs: Mapping[str, np.random.Generator]) -> None:
        self.rngs = rngs
        self.ar = {"ar1_0.5": AR1(0.5), "ar1_0.9": AR1(0.9)}
        self.sessions = Sessions()

    def draw(self, n: int) -> dict[str, FloatArray]:
        out = {name: ar.draw(self.rngs[name], n)[0] for name, ar in self.ar.items()}
        out["sessions"] = self.sessions.draw(self.rngs["sessions"], n)
        return out


# --------------------------------------------------------------------------- cycle

def event_times(n: int, per_minute: float, start: float = START) -> FloatArray:
    """Epoch seconds of ``n`` evenly spaced events at ``per_minute`` events a minute."""
    out: FloatArray = start + np.arange(n, dtype=np.float64) * (60.0 / per_minute)
    return out


def daily_cycle(rng: np.random.Generator, times: FloatArray, amplitude: float) -> FloatArray:
    """``amplitude`` * sin(2 pi t / 1 day) + N(0, 1) at epoch seconds ``t`` (UTC days)."""
    out: FloatArray = (amplitude * np.sin(2.0 * np.pi * (times % DAY) / DAY)
                       + rng.normal(0.0, 1.0, len(times)))
    return out


# --------------------------------------------------------------------------- files

def rfc3339(t: float) -> str:
    """Epoch seconds as an RFC 3339 UTC timestamp.

    >>> rfc3339(START)
    '2026-11-23T00:00:00Z'
    """
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_reference(path: Path, model: str, columns: Mapping[str, Sequence[Any]],
                    times: Sequence[float]) -> Path:
    """Write one event per row of ``columns`` (feature -> values) to ``path`` (JSONL)."""
    names = list(columns)
    rows = zip(*(columns[k] for k in names), strict=True)
    with path.open("wb") as out:
        for i, (t, row) in enumerate(zip(times, rows, strict=True)):
            out.write(orjson.dumps({"event_id": f"ref-{i}", "model_id": model,
                                    "timestamp": rfc3339(t),
                                    "features": dict(zip(names, row, strict=True))}))
            out.write(b"\n")
    return path
