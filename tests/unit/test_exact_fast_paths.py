"""Fast paths that must give the very same numbers as the plain computation they replace:
a detection never depends on which path computed it."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.reference import NumericReference
from detectors.stats import cusum
from detectors.stats.search import SORT_FROM, search_sorted

finite = st.floats(allow_nan=False, width=64)
values = st.one_of(finite, st.sampled_from([math.inf, -math.inf, 0.0, -0.0, 1.0]))
# A reference's own mean and std are not what is tested: finite values keep them finite.
ref_values = st.one_of(st.floats(-1e150, 1e150), st.sampled_from([0.0, -0.0, 1.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=300), st.lists(values, min_size=0, max_size=400),
       st.sampled_from(["left", "right"]))
def test_search_sorted_is_searchsorted(ref: list[float], keys: list[float], side: str) -> None:
    a = np.sort(np.asarray(ref, dtype=np.float64))
    k = np.asarray(keys, dtype=np.float64)
    assert search_sorted(a, k, side).tolist() == np.searchsorted(a, k, side).tolist()  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(ref_values, min_size=1, max_size=300),
       st.lists(values, min_size=0, max_size=400))
def test_ranks_in_key_order_equal_ranks_one_by_one(ref: list[float], keys: list[float]) -> None:
    """Above SORT_FROM keys the ranks are looked up in sorted order; each key's rank must
    be the one it gets alone (bit for bit, ties and -0.0 included)."""
    r = NumericReference(ref)
    k = np.asarray(keys, dtype=np.float64)
    together = r.ranks(k)
    alone = np.concatenate([r.ranks(k[i:i + 1]) for i in range(k.size)]) if k.size else k
    assert together.tobytes() == alone.tobytes()


@settings(max_examples=200, deadline=None)
@given(st.lists(ref_values, min_size=1, max_size=300, unique=True),
       st.lists(values, min_size=0, max_size=400), st.booleans())
def test_tie_free_ranks_equal_the_lookup_tables(ref: list[float], keys: list[float],
                                                 summarized: bool) -> None:
    """A tie-free reference keeps no below/mid tables (``NumericReference._tables``): the
    ranks, law and sample it computes from each value's index must be, bit for bit, the
    ones read from the tables a reference with ties keeps."""
    r = (NumericReference.summarizing(ref * 3, len(ref)) if summarized
         else NumericReference(ref))
    if r._tables is not None:  # 0.0 and -0.0 are one value: a tie
        return
    sample = np.sort(np.asarray(ref, dtype=np.float64))
    distinct, first, counts = np.unique(sample, return_index=True, return_counts=True)
    below = np.append(first, sample.size) / sample.size
    mid = ((2.0 * first + counts) / (2.0 * sample.size)).astype(np.float64)
    k = np.asarray(keys, dtype=np.float64)
    i = np.searchsorted(distinct, k, side="left")
    at = np.minimum(i, distinct.size - 1)
    assert r.ranks(k).tobytes() == np.where(distinct[at] == k, mid[at], below[i]).tobytes()
    support, shares = r.law()
    assert support.tobytes() == mid.tobytes()
    assert shares.tobytes() == np.diff(below).astype(np.float64).tobytes()
    assert r.sorted_sample().tobytes() == sample.tobytes()


def test_sorted_path_is_taken_on_a_batch() -> None:
    r = NumericReference(np.random.default_rng(0).normal(size=5000))
    keys = np.random.default_rng(1).normal(size=SORT_FROM * 4)
    assert r.ranks(keys).tobytes() == r._sorted_ranks(keys).tobytes()


def test_remembered_threshold_is_the_solved_one() -> None:
    n = 5000
    support = (np.arange(n) + 0.5) / n
    probs = np.full(n, 1.0 / n)
    args = (50.0, 0.03, 4e5)
    first = cusum.threshold_for_mean(support, probs, *args)
    again = cusum.threshold_for_mean(support.copy(), probs.copy(), *args)
    solved = cusum._threshold_for_mean(support, probs, *args)
    assert first == again == solved
    # A different law or setting is solved again, not confused with the remembered one.
    assert cusum.threshold_for_mean(support, probs, 50.0, 0.04, 4e5) != first
    skewed = probs.copy()
    skewed[-1] *= 2.0
    assert cusum.threshold_for_mean(support, skewed, *args) != first


def test_memo_is_bounded() -> None:
    memo = cusum._Memo(2)
    for i in range(5):
        memo.remember(bytes([i]), float(i))
    assert memo.get(bytes([0])) is None and memo.get(bytes([4])) == 4.0
    assert len(memo._items) == 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=300),
       st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=300))
def test_search_sorted_on_category_hashes(seen: list[int], keys: list[int]) -> None:
    a = np.unique(np.asarray(seen, dtype=np.uint32))
    k = np.asarray(keys, dtype=np.uint32)
    assert search_sorted(a, k).tolist() == np.searchsorted(a, k).tolist()
