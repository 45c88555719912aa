"""A DetectorBank encoded mid-stream (detectors.codec) and decoded behaves as one that never
stopped."""

from __future__ import annotations

import numpy as np

from detectors import DetectorBank, DetectorConfig, EventBatch
from detectors.bank import DriftSignal
from detectors.codec import decode, encode


def _batches(seed: int, n: int, size: int) -> list[EventBatch]:
    rng = np.random.default_rng(seed)
    income = np.concatenate([rng.normal(100, 15, n // 2), rng.normal(112, 15, n - n // 2)])
    spread = np.concatenate([rng.normal(0, 1, n // 2), rng.normal(0, 2.5, n - n // 2)])
    country = rng.choice(["DE", "FR", "ES"], size=n, p=[0.5, 0.3, 0.2])
    country[n // 2:][rng.random(n - n // 2) < 0.3] = "NEW"
    out: list[EventBatch] = []
    for start in range(0, n, size):
        batch = EventBatch()
        for i in range(start, min(n, start + size)):
            batch.append("m", "1", {"income": float(income[i]), "spread": float(spread[i]),
                                    "country": str(country[i]),
                                    "flag": None if rng.random() < 0.02 else 1.0},
                         float(rng.random()), i)
        out.append(batch)
    return out


def test_restored_bank_gives_the_same_signals_as_one_that_never_stopped() -> None:
    batches = _batches(seed=3, n=12_000, size=700)
    config = DetectorConfig(warmup=300)
    uninterrupted = DetectorBank(config)
    expected: list[DriftSignal] = [s for b in batches for s in uninterrupted.update(b)]
    assert {s.feature for s in expected} >= {"income", "spread", "country"}

    for cut in (3, 8, 12):  # before the change, right after it, late
        bank = DetectorBank(config)
        got = [s for b in batches[:cut] for s in bank.update(b)]
        bank = decode(encode(bank), DetectorBank)  # what a changelog would carry
        got += [s for b in batches[cut:] for s in bank.update(b)]
        assert got == expected, f"cut at batch {cut}"


def test_snapshot_size_stays_bounded_as_the_stream_grows() -> None:
    config = DetectorConfig(warmup=300)
    bank = DetectorBank(config)
    sizes = []
    for i, batch in enumerate(_batches(seed=4, n=20_000, size=1000)):
        bank.update(batch)
        if i in (4, 19):
            sizes.append(len(encode(bank)))
    # Reference samples and ADWIN's buckets are bounded: 4x more events, not 4x more state.
    assert sizes[1] < 1.5 * sizes[0], sizes
