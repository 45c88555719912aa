"""References from a JSONL file of events, instead of each series' first events.

``detectors.reference_file`` names a file of events in docs/contracts.md's event
contract, one per line (e.g. a day of traffic the model is known to be good
on). Every (model, feature) in it, and every model's prediction, starts with
its reference from the file: no warm-up, detection from the first event. A
series that is not in the file (or has fewer than ``MIN_VALUES`` values in it)
warms up as usual; after an alert every series re-baselines on live data.

A file that breaks the contract is refused, naming the line:

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ref.jsonl"
>>> _ = path.write_text('{"event_id": "1", "model_id": "m", "features": {"x": [1]}}\\n')
>>> load_reference_file(str(path))
Traceback (most recent call last):
...
detectors.reference_file.ReferenceFileError: .../ref.jsonl line 1: features.x: expected number, ...
...got list
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detectors.reference import CategoricalSeed, NumericSeed, Seed
from detectors.values import (
    CONFIDENCE,
    PREDICTION,
    FeatureValue,
    event_time,
    is_number,
    top_class,
)
from detectors.values import category as _category
from detectors.values import is_missing as _is_missing

#: Fewer present values than this in the file: the series warms up on live data instead.
MIN_VALUES = 50


class ReferenceFileError(ValueError):
    """A reference file that cannot be used; the message names the path and line."""

SeriesKey = tuple[str, str, str]  # model_id, kind ("data_drift" | "prediction_drift"), name

class ReferenceFile:
    """The seeds of every series in one reference file.

    It pickles as its path and the digest of its content: a bank restored from a
    snapshot reads the file again and refuses one that changed since (a reference
    that moved under a running detector would change its alerts).
    """

    def __init__(self, path: str, digest: str, seeds: dict[SeriesKey, Seed],
                 labelled: dict[str, list[tuple[Any, Any]]] | None = None) -> None:
        self.path = path
        self.digest = digest
        self.seeds = seeds
        # model_id -> its first (prediction, label) pairs (both present), in file order:
        # they decide the model's task and calibrate its estimated performance.
        self.labelled = labelled or {}

    def seed(self, model_id: str, kind: str, name: str) -> Seed | None:
        return self.seeds.get((model_id, kind, name))

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return load_reference_file, (self.path, self.digest)

_CACHE: dict[tuple[str, str], ReferenceFile] = {}

def load_reference_file(path: str, digest: str | None = None) -> ReferenceFile:
    """The file's references (parsed once per content); with ``digest``, only that content."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReferenceFileError(f"{path}: cannot read reference file: {exc.strerror}") from None
    found = hashlib.sha256(data).hexdigest()
    if digest is not None and found != digest:
        raise ReferenceFileError(f"{path}: changed since this detector state was saved")
    key = (str(Path(path).resolve()), found)
    cached = _CACHE.get(key)
    if cached is None:
        if len(_CACHE) >= 8:
            _CACHE.clear()
        labelled: dict[str, list[tuple[Any, Any]]] = {}
        cached = _CACHE[key] = ReferenceFile(path, found, _parse(path, data, labelled),
                                             labelled)
    return cached

class _Series:
    """Values of one series as they are read. Its kind is the majority's (numbers or
    not), as for a live series; values of the other kind count as missing."""

    __slots__ = ("categories", "numbers", "times")

    def __init__(self) -> None:
        self.numbers: list[float] = []
        self.times: list[float] = []
        self.categories: dict[str, int] = {}

    def add(self, value: FeatureValue, time: float) -> None:
        if _is_missing(value):
            return
        if is_number(value):
            self.numbers.append(float(value))  # type: ignore[arg-type]
            self.times.append(time)
        else:
            name = _category(value)
            self.categories[name] = self.categories.get(name, 0) + 1

    def seed(self) -> Seed | None:
        total = sum(self.categories.values())
        if len(self.numbers) >= total:
            if len(self.numbers) < MIN_VALUES:
                return None
            values = np.asarray(self.numbers, dtype=np.float64)
            order = np.argsort(values, kind="stable")
            return NumericSeed(values[order], np.asarray(self.times, dtype=np.float64)[order])
        if total >= MIN_VALUES:
            return CategoricalSeed(self.categories, total)
        return None

#: Labelled predictions kept per model (the estimate calibrates on its first ones).
MAX_LABELLED = 100_000


def _parse(path: str, data: bytes, labelled: dict[str, list[tuple[Any, Any]]]
           ) -> dict[SeriesKey, Seed]:
    series: dict[SeriesKey, _Series] = {}

    def add(key: SeriesKey, value: FeatureValue) -> None:
        s = series.get(key)
        if s is None:
            s = series[key] = _Series()
        s.add(value, when)

    events = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            event = _event(line)
        except ReferenceFileError as exc:
            raise ReferenceFileError(f"{path} line {number}: {exc}") from None
        events += 1
        model_id, features, prediction, when, label = event
        if label is not None and prediction is not None:
            pairs = labelled.setdefault(model_id, [])
            if len(pairs) < MAX_LABELLED:
                pairs.append((prediction, label))
        for name, value in features.items():
            add((model_id, "data_drift", name), value)
        if isinstance(prediction, Mapping):
            top = top_class(prediction)
            add((model_id, "prediction_drift", PREDICTION), top[0] if top else None)
            add((model_id, "prediction_drift", CONFIDENCE), top[1] if top else None)
        elif prediction is not None:
            add((model_id, "prediction_drift", PREDICTION), prediction)
    if not events:
        raise ReferenceFileError(f"{path}: no events")
    seeds = {key: seed for key, s in series.items() if (seed := s.seed()) is not None}
    return seeds

def _event(line: bytes) -> tuple[str, dict[str, FeatureValue], Any, float, Any]:
    """model_id, features, prediction, time and label (None unless a number, string or
    boolean) of one line, or an error without the line number."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ReferenceFileError(f"not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise ReferenceFileError(f"expected a JSON object, got {_type(event)}")
    for name in ("event_id", "model_id", "features"):
        if name not in event:
            raise ReferenceFileError(f"{name}: missing")
    for name in ("event_id", "model_id"):
        if not isinstance(event[name], str) or not event[name]:
            raise ReferenceFileError(f"{name}: expected a non-empty string, got "
                                     f"{_type(event[name])}")
    features = event["features"]
    if not isinstance(features, dict):
        raise ReferenceFileError(f"features: expected an object, got {_type(features)}")
    for name, value in features.items():
        if not (is_number(value) or value is None or isinstance(value, str | bool)):
            raise ReferenceFileError(f"features.{name}: expected number, string, boolean or "
                                     f"null, got {_type(value)}")
    prediction = event.get("prediction")
    if isinstance(prediction, dict):
        for cls, p in prediction.items():
            if not is_number(p):
                raise ReferenceFileError(f"prediction.{cls}: expected a number, got {_type(p)}")
    elif not (prediction is None or is_number(prediction) or isinstance(prediction, str | bool)):
        raise ReferenceFileError(f"prediction: expected number, string, object of class "
                                 f"probabilities or null, got {_type(prediction)}")
    when = event_time(event.get("timestamp"))
    # Only seasonal references use the time; a series with any NaN time is not seasonal.
    label = event.get("label")
    if not (is_number(label) or isinstance(label, str | bool)):
        label = None
    return (event["model_id"], features, prediction, math.nan if when is None else when,
            label)


def _type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null",
             int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)
