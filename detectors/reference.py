"""Warm-up references that turn raw values into bounded streams.

A detector on raw values is tuned in data units and trips on outliers. A
value's mid-rank in a reference sample (a probability integral transform)
lies in [0, 1] whatever the unit or tail of the feature, so ADWIN's bound
holds and one default setting fits every feature.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from heapq import nlargest
from itertools import compress
from typing import Any, overload
from zlib import crc32

import numpy as np
import numpy.typing as npt

from detectors.figures import mean_std
from detectors.stats.scores import bin_shares, reference_edges
from detectors.stats.search import search_sorted, sorted_order


class NumericReference:
    """A sorted reference sample and the mid-rank transform into [0, 1].

    >>> ref = NumericReference([3.0, 1.0, 2.0, 2.0])
    >>> ref.ranks([0.0, 1.0, 2.0, 9.0]).tolist()
    [0.0, 0.125, 0.5, 1.0]
    >>> ref.mean, ref.n
    (2.0, 4)

    A constant feature maps every usual value to 0.5, so it cannot drift by
    noise:

    >>> NumericReference([5.0] * 100).ranks([5.0, 5.0]).tolist()
    [0.5, 0.5]
    """

    def __init__(self, sample: Sequence[float] | npt.NDArray[np.float64]) -> None:
        ordered = np.sort(np.asarray(sample, dtype=np.float64))
        if not ordered.size:
            raise ValueError("a reference needs at least one value")
        self.n = int(ordered.size)
        self._kept = self.n  # values behind the ranks (``summarizing`` keeps a larger n)
        self._bins: tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self.mean, self.std = mean_std(ordered)  # finite for any finite values
        # One binary search per value instead of two: for each distinct reference value,
        # the share of the sample below it and its mid-rank; a sentinel past the end.
        # Without ties both follow from the value's index k (k / n and (2k + 1) / 2n), so
        # a tie-free reference keeps only its values: 8 bytes each, in memory and in a
        # snapshot, instead of 24.
        distinct, first, counts = np.unique(ordered, return_index=True, return_counts=True)
        self._distinct = compact_sorted(distinct, ties=distinct.size < self.n)
        self._tables: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        if self._distinct.size < self.n:
            below = np.append(first, self.n) / self.n
            mid = ((2.0 * first + counts) / (2.0 * self.n)).astype(np.float64)
            self._tables = (below, mid)

    @classmethod
    def summarizing(cls, sample: Sequence[float] | npt.NDArray[np.float64], size: int
                    ) -> NumericReference:
        """A reference of at most ``size`` evenly spaced order statistics of ``sample``,
        with the whole sample's mean, std and n (a reference file can hold millions of
        values; a series' state keeps ``size``).

        >>> ref = NumericReference.summarizing(range(100_000), size=1000)
        >>> ref.n, ref.mean, ref.ranks([25_000.0]).round(3).tolist()
        (100000, 49999.5, [0.25])
        """
        ordered = np.sort(np.asarray(sample, dtype=np.float64))
        if ordered.size <= size:
            return cls(ordered)
        picks = ((np.arange(size) + 0.5) * (ordered.size / size)).astype(np.int64)
        ref = cls(ordered[picks])
        ref.n, (ref.mean, ref.std) = int(ordered.size), mean_std(ordered)
        return ref

    def law(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The distinct mid-ranks of the reference and their shares: the in-control law
        of a new value's rank (``anchored.RankLaw``).

        >>> support, shares = NumericReference([1.0, 2.0, 2.0, 3.0]).law()
        >>> support.tolist(), shares.tolist()
        ([0.125, 0.5, 0.875], [0.25, 0.5, 0.25])
        """
        below, mid = self._below_mid()
        return mid, np.diff(below).astype(np.float64)

    def _below_mid(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Each distinct value's share of the sample below it (then 1.0) and mid-rank."""
        if self._tables is not None:
            return self._tables
        k = np.arange(self._distinct.size + 1)
        mid = ((2.0 * k[:-1] + 1) / (2.0 * self._kept)).astype(np.float64)
        return k / self._kept, mid

    def sorted_sample(self) -> npt.NDArray[np.float64]:
        """The sorted values the ranks come from: the whole sample, or for a reference made
        by ``summarizing`` its order statistics (``n``, ``mean``, ``std`` stay the whole
        sample's).

        >>> NumericReference([3.0, 1.0, 2.0, 2.0]).sorted_sample().tolist()
        [1.0, 2.0, 2.0, 3.0]
        """
        if self._tables is None:
            return self._distinct.astype(np.float64)
        counts = np.rint(np.diff(self._tables[0]) * self._kept).astype(np.int64)
        return np.repeat(self._distinct.astype(np.float64), counts)

    def quantile_bins(self, bins: int = 10
                      ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Inner edges of ``bins`` quantile bins of the reference, and the reference's share
        in each (``detectors.stats.scores.reference_edges`` and ``bin_shares``); kept.

        >>> edges, shares = NumericReference(range(100)).quantile_bins(4)
        >>> edges.tolist(), shares.tolist()
        ([24.75, 49.5, 74.25], [0.25, 0.25, 0.25, 0.25])
        """
        if self._bins is None or self._bins[0] != bins:
            sample = self.sorted_sample()
            edges = reference_edges(sample, bins)
            self._bins = (bins, edges, bin_shares(edges, sample))
        return self._bins[1], self._bins[2]

    @property
    def compact(self) -> bool:
        """Are the reference's values held as float32 (``compact_sorted``)?"""
        return self._distinct.dtype == np.float32

    def float32_bound(self) -> float:
        """For a compact reference: the magnitude up to which float32's spacing is at
        most ``1 / COMPACT_GAPS`` of the mean gap between the reference's values (as
        ``compact_sorted`` asks at their largest magnitude), a power of two; past it a
        value is not resolved as the reference is (``monitors.compact_window`` keeps it
        as it is). ``inf`` for a reference that is not compact.

        >>> NumericReference(np.arange(1001.0) / 1000).float32_bound()  # gap 1e-3
        16.0
        """
        distinct = self._distinct
        if distinct.dtype != np.float32:
            return math.inf
        gap = (float(distinct[-1]) - float(distinct[0])) / (distinct.size - 1)
        return math.ldexp(1.0, 24 + math.floor(math.log2(gap / COMPACT_GAPS)))

    def ranks(self, values: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Mid-rank of each value in the reference, scaled to [0, 1]. A compact reference
        ranks each value's nearest float32 (``compact_sorted``)."""
        xs = np.asarray(values, dtype=np.float64)
        compact = self.compact
        order = sorted_order(xs)
        if order is None:
            return self._sorted_ranks(nearest_float32(xs) if compact else xs)
        # Searched and looked up in key order (``stats.search``): the same ranks.
        keys: npt.NDArray[np.floating[Any]] = xs[order]
        if compact:  # in order, the extremes say whether any key is past float32's range
            keys = (keys.astype(np.float32) if keys[0] >= -FLOAT32_MAX and
                    keys[-1] <= FLOAT32_MAX else nearest_float32(keys))
        out = np.empty(xs.size, dtype=np.float64)
        out[order] = self._sorted_ranks(keys)
        return out

    def _sorted_ranks(self, xs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        distinct = self._distinct
        i = np.searchsorted(distinct, xs, side="left")
        at = np.minimum(i, distinct.size - 1)
        if self._tables is None:
            # No ties: a value in the sample, at k, has mid-rank (2k + 1) / 2n, any other
            # value the share k / n below it (= 2k / 2n: the same quotient, exact integers).
            ranks: npt.NDArray[np.float64] = (2 * i + (distinct[at] == xs)) / (2.0 * self._kept)
            return ranks
        below, mid = self._tables
        ranks = np.where(distinct[at] == xs, mid[at], below[i])
        return ranks


def compact_sorted(distinct: npt.NDArray[np.float64], ties: bool = False
                   ) -> npt.NDArray[np.floating[Any]]:
    """Strictly increasing reference values as float32 when float32 resolves them (half
    the memory and changelog bytes), else as they are.

    float32 resolves them when there are two or more, each is zero or of a magnitude in
    float32's normal range (no overflow, no subnormal), they stay distinct once rounded,
    and float32's spacing ``e`` at the largest magnitude is at most ``1 / COMPACT_GAPS``
    of the mean gap between them, ``R / (d - 1)`` over their range ``R``.

    Ranks then differ from float64's only for a value whose nearest float32 is a reference
    value's while the value itself is not: it ranks as a tie (that value's mid-rank)
    instead of just below or above, a change of half that value's share of the reference
    (``1 / 2n`` without ties). A new value meets a reference value's float32 with
    probability about ``e`` over the gap around it: about ``1 / COMPACT_GAPS`` or less
    where the reference is spread evenly. The reference's law (its distinct values and
    their shares), hence every threshold, is float64's. Features with a large offset
    against their spread (epoch seconds, values like 1000 +- 10) keep float64.

    With ``ties`` (values of the sample repeated: a share each of more than ``1 / n``)
    a tie moves a rank by half that share; integer values past ``2 ** 24``, where
    float32 skips integers, keep float64 then (amounts in cents at a few price points
    that all go up by one would each round onto their old point, and not move).

    >>> compact_sorted(np.array([0.1, 0.2, 0.3])).dtype
    dtype('float32')
    >>> compact_sorted(np.array([1000.0, 1000.05, 1000.1])).dtype  # e = 6e-5: too coarse
    dtype('float64')
    >>> compact_sorted(np.array([0.0, 1e39])).dtype  # past float32's range
    dtype('float64')
    >>> compact_sorted(np.array([1e-300, 1.0])).dtype  # 1e-300 would become 0.0
    dtype('float64')
    >>> compact_sorted(np.array([5.0])).dtype  # a constant: a near value must not tie
    dtype('float64')
    >>> compact_sorted(np.array([2e7, 5e7]), ties=True).dtype  # 2e7 + 1: no float32
    dtype('float64')
    """
    if distinct.size < 2:
        return distinct
    lo, hi = float(distinct[0]), float(distinct[-1])
    largest = max(abs(lo), abs(hi))
    if largest > FLOAT32_MAX:
        return distinct
    spacing = float(np.spacing(np.float32(largest)))
    if spacing * COMPACT_GAPS > (hi - lo) / (distinct.size - 1):
        return distinct
    magnitudes = np.abs(distinct)
    if magnitudes[magnitudes > 0.0].min() < FLOAT32_TINY:
        return distinct
    if ties and largest > FLOAT32_INTEGERS and bool((distinct == np.rint(distinct)).all()):
        return distinct
    narrow = distinct.astype(np.float32)
    if not bool((narrow[1:] > narrow[:-1]).all()):
        return distinct
    return narrow


def nearest_float32(xs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """Each value's nearest float32; past float32's range +-inf (in the same order)."""
    with np.errstate(over="ignore"):
        return xs.astype(np.float32)


#: float32's spacing must be this many times finer than the mean gap of a reference's
#: values for it to be kept as float32 (``compact_sorted``).
COMPACT_GAPS = 1024
#: The smallest normal float32 (below it float32 loses relative precision) and the
#: largest finite one.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Past it float32 does not hold every integer.
FLOAT32_INTEGERS = float(2 ** 24)


class CategoryCounter:
    """Counts categories in bounded memory (space-saving sketch).

    Exact while fewer than ``capacity`` distinct values were seen; past that,
    the rarest entry is replaced, so heavy hitters survive and state is bounded.

    >>> c = CategoryCounter(capacity=2)
    >>> for v in ["a", "a", "b", "c", "a"]:
    ...     c.add(v)
    >>> c.top(1)
    [('a', 3)]
    >>> len(c.counts) <= 2
    True
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.total = 0

    def add(self, value: str) -> None:
        self.total += 1
        counts = self.counts
        if value in counts:
            counts[value] += 1
        elif len(counts) < self.capacity:
            counts[value] = 1
        else:
            # min() over the dict is O(capacity), paid only by new values past capacity.
            rarest = min(counts, key=lambda k: (counts[k], k))
            counts[value] = counts.pop(rarest) + 1

    def top(self, k: int) -> list[tuple[str, int]]:
        """The k most frequent categories, ties broken by name (deterministic)."""
        return nlargest(k, self.counts.items(), key=lambda kv: (kv[1], _reverse_key(kv[0])))


#: Categories a ``CategoryWindow`` holds as one-byte codes; past them, a list of str.
MAX_CODES = 256


class CategoryWindow(Sequence[str]):
    """The last values of a categorical series, oldest first.

    While they hold at most ``MAX_CODES`` distinct categories (stale names included: the
    categories the window has held, in the order they came, those no value holds any
    more dropped when room is needed), each value is a one-byte code into ``names``,
    where a list of str holds an 8-byte pointer a value. Past that (ids, free text:
    codes would save little, and a name index would cost as much as the list) the
    window is a list of str (``values``), coded again once a window's worth of values
    later it holds at most half of ``MAX_CODES`` categories.

    Immutable: ``then`` returns a new window, so a window read before an update
    (``attribution.recent_values``) keeps what it held. A read-only sequence of str:
    ``len``, iteration, an index or a slice (a list), ``==`` with a window or a list.
    Its values never depend on the batches that brought them (its codes may). Names
    are interned (``sys.intern``), except str subclasses (numpy.str_), kept as they are.

    >>> w = CategoryWindow().then(["DE", "FR", "DE"], 4).then(["US", "US"], 4)
    >>> list(w), w.names, w.codes.tolist(), w.values
    (['FR', 'DE', 'US', 'US'], ('DE', 'FR', 'US'), [1, 0, 2, 2], None)
    >>> w[-2:], w[0], len(w), w == ['FR', 'DE', 'US', 'US']
    (['US', 'US'], 'FR', 4, True)
    >>> ids = CategoryWindow().then([f"id{i}" for i in range(300)], 1000)
    >>> ids.values[-1], len(ids.names), len(ids)
    ('id299', 0, 300)
    """

    __slots__ = ("codes", "names", "unchecked", "values")

    def __init__(self, names: tuple[str, ...] = (),
                 codes: npt.NDArray[np.uint8] | None = None,
                 values: list[str] | None = None, unchecked: int = 0) -> None:
        self.names = names
        self.codes = np.zeros(0, dtype=np.uint8) if codes is None else codes
        #: The window as a list, past ``MAX_CODES`` categories (``names`` and ``codes``
        #: empty then), and how many values came since its categories were counted.
        self.values = values
        self.unchecked = unchecked

    def then(self, values: Sequence[str], size: int) -> CategoryWindow:
        """This window followed by ``values``: the last ``size`` of them all."""
        tail = list(values[-size:]) if size > 0 else []
        if self.values is not None:
            return self._listed(tail, size)
        kept = self.codes[max(0, self.codes.size + len(tail) - size):]
        names = self.names
        index = dict(zip(names, range(len(names)), strict=True))
        try:  # the usual batch: every category known already
            fresh = np.fromiter(map(index.__getitem__, tail), dtype=np.uint8, count=len(tail))
        except KeyError:  # new ones: codes after the others' (sorted among themselves)
            distinct = set(tail)
            if len(names) + len(distinct.difference(index)) > MAX_CODES:
                held = np.bincount(kept, minlength=len(names)) > 0  # drop names no value holds
                names = tuple(compress(names, held.tolist()))
                kept = (np.cumsum(held) - 1).astype(np.uint8)[kept]
            new = sorted(map(_interned, distinct.difference(names)))
            if len(names) + len(new) > MAX_CODES:  # too many categories for a byte
                listed = list(map(names.__getitem__, kept.tolist()))
                return CategoryWindow(values=listed)._listed(tail, size)
            names = (*names, *new)
            index = dict(zip(names, range(len(names)), strict=True))
            fresh = np.fromiter(map(index.__getitem__, tail), dtype=np.uint8, count=len(tail))
        return CategoryWindow(names, np.concatenate((kept, fresh)))

    def _listed(self, tail: list[str], size: int) -> CategoryWindow:
        """``then`` for a window held as a list."""
        try:
            interned = list(map(sys.intern, tail))
        except TypeError:  # a str subclass (numpy.str_) cannot be interned: as it is
            interned = list(map(_interned, tail))
        held = self.values or []
        listed = (held + interned)[-size:] if size > 0 else []
        unchecked = self.unchecked + len(tail)
        if unchecked >= max(size, 1):  # a window's worth since its categories were counted
            if len(set(listed)) <= MAX_CODES // 2:
                return CategoryWindow().then(listed, size)
            unchecked = 0
        return CategoryWindow(values=listed, unchecked=unchecked)

    def __len__(self) -> int:
        return len(self.values) if self.values is not None else int(self.codes.size)

    def __iter__(self) -> Iterator[str]:
        if self.values is not None:
            return iter(self.values)
        return map(self.names.__getitem__, self.codes.tolist())

    @overload
    def __getitem__(self, key: int) -> str: ...
    @overload
    def __getitem__(self, key: slice) -> list[str]: ...
    def __getitem__(self, key: int | slice) -> str | list[str]:
        if self.values is not None:
            return self.values[key]
        if isinstance(key, slice):
            return list(map(self.names.__getitem__, self.codes[key].tolist()))
        return self.names[int(self.codes[key])]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CategoryWindow | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _interned(value: str) -> str:
    return sys.intern(value) if type(value) is str else value


def _reverse_key(name: str) -> tuple[int, ...]:
    # nlargest picks the largest key; negated code points make 'a' beat 'b' on ties.
    return tuple(-ord(ch) for ch in name)


def category_hash(name: str) -> int:
    """A stable 32-bit hash of a category name (CRC-32 of its UTF-8 bytes): the same in
    every process, unlike ``hash``.

    >>> category_hash("DE")
    3547999713
    """
    return crc32(name.encode("utf-8", "surrogatepass"))


class SeenCategories:
    """Every distinct category of a reference, as hashes, bounded in memory.

    Past ``capacity`` distinct values, new ones are counted (``overflow``) instead of
    kept: to a live stream they are as good as unseen. ``unseen_share`` is the
    Good-Turing estimate of the probability that a new draw is a category this set
    does not hold: the share of reference values seen exactly once, plus the overflow
    (Good 1953).

    >>> seen = SeenCategories(capacity=3)
    >>> seen.add_many(["a", "a", "b", "c", "d", "d"])
    >>> seen.overflow, round(seen.unseen_share(), 3)
    (2, 0.667)
    """

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._counts: dict[int, int] = {}
        #: Exact counts by name while no value overflowed (a warm-up's reference
        #: frequencies: the space-saving sketch overstates its entries past capacity).
        self.names: dict[str, int] = {}
        self.total = 0
        self.overflow = 0

    def add_many(self, values: Sequence[str]) -> None:
        counts, names = self._counts, self.names
        for v in values:
            if v in names:
                names[v] += 1
                counts[category_hash(v)] += 1
                continue
            key = category_hash(v)
            if key in counts:
                counts[key] += 1
                names[v] = names.get(v, 0) + 1
            elif len(counts) < self.capacity:
                counts[key] = 1
                names[v] = 1
            else:
                self.overflow += 1
        self.total += len(values)

    @property
    def exact(self) -> bool:
        return not self.overflow

    def add_counts(self, counts: dict[str, int]) -> None:
        for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            key = category_hash(name)
            if key in self._counts or len(self._counts) < self.capacity:
                self._counts[key] = self._counts.get(key, 0) + count
            else:
                self.overflow += count
            self.total += count

    def unseen_share(self) -> float:
        if not self.total:
            return 1.0
        singletons = sum(1 for c in self._counts.values() if c == 1)
        return min(1.0, (singletons + self.overflow) / self.total)

    def hashes(self) -> npt.NDArray[np.uint32]:
        return np.asarray(sorted(self._counts), dtype=np.uint32)


class CategoricalReference:
    """Reference frequencies of the top categories; the rest pooled as 'other'.

    Each category maps to the midpoint of its slice of the cumulative
    distribution (categories in order of reference frequency), so a shift of
    mass between frequent and rare categories moves the mean of the stream.

    >>> ref = CategoricalReference({"a": 6, "b": 3, "c": 1}, total=10, max_categories=2)
    >>> ref.frequencies
    {'a': 0.6, 'b': 0.3}
    >>> [round(r, 3) for r in ref.ranks(["a", "b", "c", "new"])]
    [0.3, 0.75, 0.95, 0.95]
    >>> ref.is_known("c")
    False
    """

    def __init__(self, counts: dict[str, int], total: int, max_categories: int,
                 seen: SeenCategories | None = None) -> None:
        if total <= 0:
            raise ValueError("a reference needs at least one value")
        if seen is None:
            seen = SeenCategories()
            seen.add_counts(counts)
        elif seen.exact and seen.names:
            counts = seen.names
        #: Hashes of every category the reference saw (bounded), and the Good-Turing
        #: probability that a new draw is none of them.
        self.seen = seen.hashes()
        self.unseen_share = seen.unseen_share()
        counter = CategoryCounter(capacity=max(len(counts), 1))
        counter.counts = dict(counts)
        top = counter.top(max_categories)
        self.n = total
        self.frequencies = {name: count / total for name, count in top}
        self._rank: dict[str, float] = {}
        cumulative = 0.0
        for name, freq in self.frequencies.items():
            self._rank[name] = cumulative + freq / 2.0
            cumulative += freq
        self.other_frequency = max(0.0, 1.0 - cumulative)
        self._other_rank = cumulative + self.other_frequency / 2.0 if self.other_frequency else 1.0

    def is_known(self, value: str) -> bool:
        return value in self._rank

    def was_seen(self, values: Sequence[str]) -> npt.NDArray[np.bool_]:
        """For each value: did the reference see it (at all, not only among the top)."""
        keys = np.fromiter(map(category_hash, values), dtype=np.uint32, count=len(values))
        at = np.minimum(search_sorted(self.seen, keys), max(self.seen.size - 1, 0))
        return self.seen[at] == keys if self.seen.size else np.zeros(len(values), dtype=bool)

    def law(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The ranks of the top categories and of 'other', and their shares."""
        support = list(self._rank.values())
        shares = list(self.frequencies.values())
        if self.other_frequency:
            support.append(self._other_rank)
            shares.append(self.other_frequency)
        return np.asarray(support), np.asarray(shares)

    def ranks(self, values: Sequence[str]) -> list[float]:
        get, other = self._rank.get, self._other_rank
        return [get(v, other) for v in values]


@dataclass(frozen=True, slots=True)
class NumericSeed:
    """Every value of a numeric series in a reference file, sorted (see ``reference_file``),
    and the event time of each (epoch seconds, NaN if unknown), for seasonal references."""

    values: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True, slots=True)
class CategoricalSeed:
    """Category counts of a categorical series in a reference file."""

    counts: dict[str, int]
    total: int


Seed = NumericSeed | CategoricalSeed


def change_point(xs: Sequence[float] | npt.NDArray[np.float64]) -> int:
    """Where the mean of ``xs`` most likely changed: the first index after the split.

    The maximum of the standardized CUSUM; used only when an alert is written,
    to report the data after the change rather than a detector's whole window.

    >>> change_point([0.0] * 30 + [1.0] * 10)
    30
    """
    values = np.asarray(xs, dtype=np.float64)
    n = values.size
    if n < 4:
        return 0
    cusum = np.cumsum(values - values.mean())[:-1]
    k = np.arange(1, n)
    score = np.abs(cusum) / np.sqrt(k * (n - k) / n)
    return int(np.argmax(score)) + 1
