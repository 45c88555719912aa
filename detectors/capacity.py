"""The bank's bounds, kept in the open: what is not monitored is named and counted, and a
model idle for long enough makes room for a new one.

``detectors.max_models`` (per bank, i.e. per input partition) and
``detectors.max_features_per_model`` bound memory and time against a producer that
invents names. Past them nothing is watched, so nothing may be silent about it: each
model or (model, feature) left out is named once (``Report.new``, which the run loop
logs with the key to raise) and its events or values are counted (``Report.events``).

With ``detectors.retire_idle_models_seconds`` set, a model that has sent no event for
that long (in event time: the newest event time the bank has seen, minus the model's
newest) is retired when a model the bank has no room for sends an event: its state is
dropped and the newcomer is watched from that event on (a new warm-up). The oldest idle
model goes first. Only models idle at the newcomer's event count, so where a batch is
cut changes nothing: the decision is made event by event, in the batch's order.

>>> from detectors.bank import DetectorBank, EventBatch
>>> from detectors.config import DetectorConfig
>>> bank = DetectorBank(DetectorConfig(max_models=1, retire_idle_models_seconds=3600))
>>> def send(*events):
...     batch = EventBatch()
...     for i, (model, time) in enumerate(events):
...         batch.append(model, None, {"x": 1.0}, None, i, time=time)
...     return bank.update(batch)
>>> _ = send(("old", 0.0))
>>> _ = send(("new", 60.0), ("new", 7200.0))
>>> list(bank.models), bank.capacity.drain()
(['new'], Report(new=[('new', None)], events={'max_models': 1},
                 retired=[('old', 7200.0, 'new')]))
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.bank import DetectorBank, DriftSignal, EventBatch

#: Reasons a series is not monitored, named after the config key that bounds it.
MAX_MODELS = "max_models"
MAX_FEATURES = "max_features_per_model"
REASONS = (MAX_MODELS, MAX_FEATURES)

#: Distinct names remembered per reason and bank; past it, events are still counted but
#: new names are no longer listed (a producer that invents a name per event).
NAMED = 10_000


@dataclass(slots=True)
class Report:
    """What changed since the last ``Capacity.drain``.

    ``new``: (model_id, feature or None for a whole model) newly left unmonitored;
    ``events``: reason -> events of unmonitored models (``max_models``) or values of
    unmonitored features (``max_features_per_model``); ``retired``: (model_id, seconds
    idle, the model it made room for).
    """

    new: list[tuple[str, str | None]] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    retired: list[tuple[str, float, str]] = field(default_factory=list)


class Capacity:
    """Unmonitored models and features of one bank, and the models' idle times."""

    def __init__(self) -> None:
        self.models: dict[str, None] = {}  # unmonitored model ids (an ordered set), capped
        self.features: dict[tuple[str, str], None] = {}  # unmonitored (model, feature)
        self.last_seen: dict[str, float] = {}  # monitored model -> newest event time
        self.now: float | None = None  # newest event time the bank has seen
        self.retired = 0
        self._report = Report()

    # --- models ------------------------------------------------------------------------

    def update(self, bank: DetectorBank, batch: EventBatch,
               update: Callable[[EventBatch], list[DriftSignal]]) -> list[DriftSignal]:
        """``update(batch)`` (the bank's own), cut where a model is retired: the part
        before that event is processed first, so every decision is taken with what the
        bank would know had the batch been cut there (a batch of one event each, say)."""
        idle = bank.config.retire_idle_models_seconds
        signals: list[DriftSignal] = []
        while idle is not None and len(batch) and self._may_retire(batch.times, idle):
            found = self._first_retirement(bank, batch, idle)
            if found is None:
                break
            row, retired, now = found
            if row:
                head, batch = _split(batch, row)
                signals.extend(update(head))
                continue
            newcomer = batch.model_ids[0]
            self._retire(bank, retired, now - self.last_seen[retired], newcomer)
            bank.add_model(newcomer)
            self.models.pop(newcomer, None)
        signals.extend(update(batch))
        return signals

    def admit(self, bank: DetectorBank, rows_by_model: Mapping[str, list[int]]) -> None:
        """Adds the batch's new models to ``bank`` (``add_model``) while it has room, in
        the order of their first event; counts and names the others."""
        known = bank.models
        limit = bank.config.max_models
        for model_id, rows in rows_by_model.items():
            if model_id in known:
                continue
            if len(known) < limit:
                bank.add_model(model_id)
                self.models.pop(model_id, None)
            else:
                self._unmonitored_model(model_id, len(rows))

    def _may_retire(self, times: Sequence[float | None], idle: float) -> bool:
        """Whether a model can be idle at some event of this batch (cheap, conservative:
        the bank's newest time by the batch's end against the oldest time known)."""
        known = [t for t in times if t is not None]
        if not known:
            return False
        oldest, newest = min(known), max(known)
        if self.last_seen:
            oldest = min(oldest, min(self.last_seen.values()))
        if self.now is not None:
            newest = max(newest, self.now)
        return newest - oldest > idle

    def _first_retirement(self, bank: DetectorBank, batch: EventBatch, idle: float
                          ) -> tuple[int, str, float] | None:
        """(row, model to retire, the bank's newest event time then) of the first event
        of a model without room at which a monitored model is idle (the longest idle),
        with every time as of that event; None if there is none in the batch."""
        limit = bank.config.max_models
        monitored = set(bank.models)
        seen = dict(self.last_seen)
        candidates = [(t, m) for m, t in seen.items()]
        heapq.heapify(candidates)
        now = self.now
        for row, (model_id, when) in enumerate(zip(batch.model_ids, batch.times,
                                                   strict=True)):
            if when is not None and (now is None or when > now):
                now = when
            if model_id not in monitored and len(monitored) < limit:
                monitored.add(model_id)  # room: admitted by ``admit``
            if model_id in monitored:
                if when is not None and when > seen.get(model_id, -math.inf):
                    seen[model_id] = when
                    heapq.heappush(candidates, (when, model_id))
                continue
            while candidates and seen.get(candidates[0][1]) != candidates[0][0]:
                heapq.heappop(candidates)  # an older time of a model seen since
            if candidates and now is not None and now - candidates[0][0] > idle:
                return row, candidates[0][1], now
        return None

    def _retire(self, bank: DetectorBank, model_id: str, idle: float, newcomer: str) -> None:
        bank.drop_model(model_id)
        self.last_seen.pop(model_id, None)
        self.forget_model(model_id)
        self.retired += 1
        self._report.retired.append((model_id, idle, newcomer))

    def _unmonitored_model(self, model_id: str, events: int) -> None:
        report = self._report
        report.events[MAX_MODELS] = report.events.get(MAX_MODELS, 0) + events
        if model_id not in self.models and len(self.models) < NAMED:
            self.models[model_id] = None
            report.new.append((model_id, None))

    def observe(self, batch: EventBatch, rows_by_model: Mapping[str, list[int]],
                monitored: Mapping[str, object]) -> None:
        """After an update: each monitored model's newest event time, and the bank's."""
        times = batch.times
        if len(times) != len(batch):
            return
        last_seen = self.last_seen
        complete = None not in times
        for model_id, rows in rows_by_model.items():
            if model_id not in monitored:
                continue
            if complete:
                newest: float | None = max(map(times.__getitem__, rows))  # type: ignore[type-var]
            else:
                newest = max((t for t in map(times.__getitem__, rows) if t is not None),
                             default=None)
            if newest is not None and newest > last_seen.get(model_id, float("-inf")):
                last_seen[model_id] = newest
        newest = max(times) if complete and times else max(  # type: ignore[type-var]
            (t for t in times if t is not None), default=None)
        if newest is not None and (self.now is None or newest > self.now):
            self.now = newest

    # --- features ------------------------------------------------------------------------

    def unmonitored_feature(self, model_id: str, feature: str) -> None:
        """One value of a feature past ``max_features_per_model``."""
        report = self._report
        report.events[MAX_FEATURES] = report.events.get(MAX_FEATURES, 0) + 1
        key = (model_id, feature)
        if key not in self.features and len(self.features) < NAMED:
            self.features[key] = None
            report.new.append((model_id, feature))

    def forget_model(self, model_id: str) -> None:
        """A retired model's features leave the unmonitored list with it."""
        for key in [k for k in self.features if k[0] == model_id]:
            del self.features[key]

    # --- reporting -----------------------------------------------------------------------

    def unmonitored(self) -> dict[str, int]:
        """Reason -> distinct models, or (model, feature) pairs, not monitored now
        (at most ``NAMED`` each)."""
        return {MAX_MODELS: len(self.models), MAX_FEATURES: len(self.features)}

    def drain(self) -> Report:
        """What changed since the last call."""
        report, self._report = self._report, Report()
        return report


def _split(batch: EventBatch, row: int) -> tuple[EventBatch, EventBatch]:
    """The batch's events before ``row`` and from it on (a column of another length than
    the batch's, i.e. an absent one, stays empty)."""
    n = len(batch)
    columns = {f.name: getattr(batch, f.name) for f in fields(batch)}
    head = type(batch)(**{k: (c[:row] if len(c) == n else []) for k, c in columns.items()})
    tail = type(batch)(**{k: (c[row:] if len(c) == n else []) for k, c in columns.items()})
    return head, tail
