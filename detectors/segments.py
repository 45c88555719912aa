"""Drift inside a segment: every series of a model also watched per value of a segment
feature (``detectors.segments``).

A change confined to a country, channel or device that is 5 % of the traffic moves
the overall distributions by a twentieth and is found late or never. For each
segment feature ``f`` of ``detectors.segments``, a model's events are routed by their
value of ``f`` to one ``ModelMonitors`` per segment value (its features and
predictions, with their own references, calibration and tests; the multivariate
series runs on the whole traffic only), whose alerts carry ``segment = (f, value)``.

The segment values are the ``max_segment_values`` most frequent values of ``f`` in
the model's first ``warmup`` events (ties by name); any other value goes to the
segment ``OTHER``; an event without a value of ``f`` to none. Routing starts after
those events, so it does not depend on where batches are cut. Numbers and booleans
are segment values by their category name (``values.category``).

The model's false-alarm budget (``detectors.false_alarm_budget``) covers the added
series: with ``F`` segment features the model's series form
``G = 1 + F x (max_segment_values + 1)`` groups (the whole traffic and every possible
segment), and each group divides its series' rates as if the budget were
``series / G`` (Bonferroni over the groups), so the whole model still raises about
what ``series`` series would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detectors.config import DetectorConfig
from detectors.values import category, is_missing

#: The segment of values outside the most frequent ones (``other*`` when a chosen value
#: is itself called ``other``).
OTHER = "other"


def budget_groups(config: DetectorConfig) -> int:
    """``G``: the whole traffic and every segment a model's series can run in.

    >>> budget_groups(DetectorConfig(segments=["country"], max_segment_values=3))
    5
    """
    return 1 + len(config.segments) * (config.max_segment_values + 1)


class SegmentRouter:
    """The segment values of one (model, segment feature), chosen once, and the routing
    of a batch's rows to them.

    >>> r = SegmentRouter("country", top=1, sample=4)
    >>> r.route([{"country": c} for c in "ABAB"], [0, 1, 2, 3])  # counting: no routing yet
    {}
    >>> r.values
    ['A']
    >>> r.route([{"country": c} for c in "ABC"] + [{}], [4, 5, 6, 7])
    {'A': [4], 'other': [5, 6]}
    """

    def __init__(self, feature: str, top: int, sample: int) -> None:
        self.feature = feature
        self.top = top
        self.sample = sample
        self.values: list[str] | None = None  # chosen after ``sample`` events
        self._counts: dict[str, int] = {}
        self._seen = 0
        self.other_events = 0  # events routed to OTHER

    def route(self, features: Sequence[Mapping[str, Any]], rows: Sequence[int]
              ) -> dict[str, list[int]]:
        """Segment value -> the rows (from ``rows``) routed to it, in order."""
        start = 0
        if self.values is None:
            take = min(self.sample - self._seen, len(rows))
            counts = self._counts
            for feats in features[:take]:
                v = feats.get(self.feature)
                if v is not None and not is_missing(v):
                    name = category(v)
                    counts[name] = counts.get(name, 0) + 1
            self._seen += take
            if self._seen < self.sample:
                return {}
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            self.values = [k for k, _ in ranked[: self.top]]
            self._counts = {}
            start = take
        chosen = set(self.values)
        other = OTHER + "*" if OTHER in chosen else OTHER
        out: dict[str, list[int]] = {}
        for feats, row in zip(features[start:], rows[start:], strict=True):
            v = feats.get(self.feature)
            if v is None or is_missing(v):
                continue
            name = category(v)
            if name not in chosen:
                name = other
                self.other_events += 1
            out.setdefault(name, []).append(row)
        return out
