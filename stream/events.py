"""Decode and validate raw event records (DESIGN.md's event contract).

The hot path parses with orjson and validates the whole batch in one call of
a strict pydantic ``TypeAdapter``; only when that fails are the rows with
errors classified. Every rejected record gets one reason from a fixed set
(``REASONS``), so the metric's label values stay bounded.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter, methodcaller
from typing import Annotated, Any, NotRequired, Required  # pydantic needs it on 3.11

import orjson
from pydantic import (
    AllowInfNan,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

from detectors.bank import EventBatch
from detectors.concept_drift import LabelBatch
from stream.records import RecordBatch

REASONS = (
    "empty_value",  # no bytes, or a tombstone
    "oversized",  # more bytes than limits.max_record_bytes
    "not_utf8",
    "not_json",
    "non_finite_number",  # NaN, Infinity, or a number too large for a double
    "not_object",  # valid JSON, but not an object
    "missing_field",  # event_id, model_id or features absent
    "empty_field",  # event_id or model_id empty
    "wrong_type",  # a field of the wrong type, e.g. a feature value that is a list
    "bad_timestamp",  # neither RFC 3339 nor epoch seconds
)

Finite = Annotated[StrictFloat, AllowInfNan(False)]
Number = StrictInt | Finite
NonEmpty = Annotated[StrictStr, StringConstraints(min_length=1)]
# Floats first: the usual value, and union validation tries members in this order.
FeatureValue = Finite | StrictInt | StrictStr | StrictBool | None


class Event(TypedDict, total=False):
    """One feature/prediction event. Unknown top-level keys are allowed and ignored."""

    __pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[misc]

    event_id: Required[NonEmpty]
    model_id: Required[NonEmpty]
    features: Required[dict[str, FeatureValue]]
    model_version: NotRequired[StrictStr | StrictInt | None]
    timestamp: NotRequired[StrictStr | Number | None]
    prediction: NotRequired[StrictBool | Number | StrictStr | dict[str, Number] | None]
    label: NotRequired[StrictBool | Number | StrictStr | None]


_EVENTS = TypeAdapter(list[Event])


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not a valid event: its row in the batch, the reason, a detail."""

    row: int
    reason: str
    detail: str


@dataclass(slots=True)
class DecodedBatch:
    """The valid events of a batch, per source partition, plus the rejected rows.

    ``events`` positions are rows of the RecordBatch; ``event_ids`` and
    ``event_times`` (epoch seconds or None) are indexed by row too.
    """

    events: dict[tuple[str, int], EventBatch] = field(default_factory=dict)
    event_ids: dict[int, str] = field(default_factory=dict)
    event_times: dict[int, float | None] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


def decode_batch(records: RecordBatch, max_record_bytes: int) -> DecodedBatch:
    """Valid events per partition and rejected records with their reasons.

    A batch of plainly valid events (the usual case) is decoded a column at a
    time; a batch with anything doubtful in it is decoded record by record.
    Both give the same result for the same batch (a unit test pins it).
    """
    return _decode_columns(records, max_record_bytes) or _decode_records(
        records, max_record_bytes)


def _decode_columns(records: RecordBatch, max_record_bytes: int) -> DecodedBatch | None:
    """The whole batch at once, or None as soon as any record needs a closer look."""
    values = records.values
    if not values or not all(values) or max(map(len, values)) > max_record_bytes:  # type: ignore[arg-type]
        return None
    try:
        objs = list(map(orjson.loads, values))  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return None
    if set(map(type, objs)) != {dict}:
        return None
    event_ids, model_ids, features, versions, predictions, labels, timestamps = (
        list(map(methodcaller("get", key), objs)) for key in _FIELDS)
    if not (_non_empty_strings(event_ids) and _non_empty_strings(model_ids)
            and set(map(type, features)) == {dict}
            and set(map(type, chain.from_iterable(map(dict.values, features)))) <= _FEATURE_TYPES
            and set(map(type, versions)) <= _VERSION_TYPES
            and set(map(type, labels)) <= _LABEL_TYPES | _NONE
            and _plain_predictions(predictions)):
        return None
    times = _event_times(timestamps, records.timestamps_ms)
    if times is None:
        return None
    if not set(map(type, versions)) <= _NONE | {str}:
        versions = [None if v is None else str(v) for v in versions]
    out = DecodedBatch(event_ids=dict(enumerate(event_ids)), event_times=dict(enumerate(times)))
    keys = list(zip(records.topics, records.partitions, strict=True))
    partitions = dict.fromkeys(keys)
    for key in partitions:
        rows = (list(range(len(keys))) if len(partitions) == 1
                else [i for i, k in enumerate(keys) if k == key])
        out.events[key] = EventBatch(
            model_ids=_take(model_ids, rows), model_versions=_take(versions, rows),
            features=_take(features, rows), predictions=_take(predictions, rows),
            positions=rows, event_ids=_take(event_ids, rows), times=_take(times, rows),
            labels=_take(labels, rows))
    return out


def _take(column: list[Any], rows: list[int]) -> list[Any]:
    return column if len(rows) == len(column) else [column[i] for i in rows]


_FIELDS = ("event_id", "model_id", "features", "model_version", "prediction", "label",
           "timestamp")


def _non_empty_strings(column: list[Any]) -> bool:
    return set(map(type, column)) == {str} and all(column)


def _plain_predictions(predictions: list[Any]) -> bool:
    kinds = set(map(type, predictions))
    if kinds <= _LABEL_TYPES | _NONE:
        return True
    if kinds - _LABEL_TYPES - _NONE != {dict}:
        return False
    mappings = (p for p in predictions if type(p) is dict)
    return set(map(type, chain.from_iterable(map(dict.values, mappings)))) <= _NUMBER_TYPES


def _event_times(timestamps: list[Any], record_ms: list[int | None]) -> list[float | None] | None:
    """Every event time of the batch, or None if any needs the per-record rules."""
    kinds = set(map(type, timestamps))
    if kinds == {str}:
        try:
            moments = list(map(datetime.fromisoformat, timestamps))
        except ValueError:
            return None
        if None in set(map(attrgetter("tzinfo"), moments)):
            return None  # a time without offset: UTC, the per-record rule says
        return list(map(datetime.timestamp, moments))
    if kinds <= _NUMBER_TYPES:
        if not (min(timestamps) >= 0 and max(timestamps) < _YEAR_10000):
            return None
        return list(map(float, timestamps))
    if kinds == _NONE and None not in record_ms:
        return [ms / 1000.0 for ms in record_ms]  # type: ignore[operator]
    return None


def _decode_records(records: RecordBatch, max_record_bytes: int) -> DecodedBatch:
    out = DecodedBatch()
    accepted: list[tuple[int, dict[str, Any]]] = []
    doubtful: list[tuple[int, dict[str, Any]]] = []
    for row, value in enumerate(records.values):
        obj = _parse(value, max_record_bytes)
        if type(obj) is dict:
            (accepted if plainly_valid(obj) else doubtful).append((row, obj))
        else:
            assert isinstance(obj, Rejected)
            out.rejected.append(Rejected(row, obj.reason, obj.detail))
    if doubtful:  # the contract itself decides, and says why
        bad = _validate([obj for _, obj in doubtful])
        for i, (row, obj) in enumerate(doubtful):
            if i in bad:
                out.rejected.append(Rejected(row, *bad[i]))
            else:
                accepted.append((row, obj))
        accepted.sort(key=lambda item: item[0])
    topics, partitions, stamps = records.topics, records.partitions, records.timestamps_ms
    for row, obj in accepted:
        try:
            when = _event_time(obj.get("timestamp"), stamps[row])
        except ValueError as exc:
            out.rejected.append(Rejected(row, "bad_timestamp", str(exc)))
            continue
        key = (topics[row], partitions[row])
        batch = out.events.get(key)
        if batch is None:
            batch = out.events[key] = EventBatch()
        version = obj.get("model_version")
        batch.append(obj["model_id"], None if version is None else str(version),
                     obj["features"], obj.get("prediction"), row, obj["event_id"], when,
                     obj.get("label"))
        out.event_ids[row] = obj["event_id"]
        out.event_times[row] = when
    out.rejected.sort(key=lambda r: r.row)
    return out


_FEATURE_TYPES = frozenset((float, int, str, bool, type(None)))
_NUMBER_TYPES = frozenset((float, int))
_LABEL_TYPES = frozenset((float, int, str, bool))
_TIMESTAMP_TYPES = frozenset((float, int, str))
_VERSION_TYPES = frozenset((str, int, type(None)))
_NONE = frozenset((type(None),))


def plainly_valid(obj: dict[str, Any]) -> bool:
    """A cheap check that is never wrong when it says yes: then ``Event`` accepts ``obj``.

    It relies on orjson's output (finite floats, str keys). When it says no, the
    pydantic ``Event`` contract validates the record and gives the reason. A
    unit test pins that every yes here is a yes there.
    """
    event_id, model_id, features = obj.get("event_id"), obj.get("model_id"), obj.get("features")
    if not (type(event_id) is str and event_id and type(model_id) is str and model_id
            and type(features) is dict and set(map(type, features.values())) <= _FEATURE_TYPES):
        return False
    version = obj.get("model_version")
    if version is not None and type(version) is not str and type(version) is not int:
        return False
    timestamp = obj.get("timestamp")
    if timestamp is not None and type(timestamp) not in _TIMESTAMP_TYPES:
        return False
    prediction = obj.get("prediction")
    if prediction is not None and type(prediction) not in _LABEL_TYPES and not (
            type(prediction) is dict and set(map(type, prediction.values())) <= _NUMBER_TYPES):
        return False
    label = obj.get("label")
    return label is None or type(label) in _LABEL_TYPES


def _parse(value: bytes | None, max_bytes: int) -> dict[str, Any] | Rejected:
    if not value:
        return Rejected(-1, "empty_value", "record has no value (tombstone or empty)")
    if len(value) > max_bytes:
        return Rejected(-1, "oversized", f"{len(value)} bytes > limit of {max_bytes}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return _classify_parse_error(value, exc)
    if not isinstance(obj, dict):
        return Rejected(-1, "not_object", f"JSON {type(obj).__name__}, expected an object")
    return obj


_NON_FINITE = re.compile(r"(?<![\w\"])-?(NaN|Infinity)(?![\w\"])")


def _classify_parse_error(value: bytes, exc: orjson.JSONDecodeError) -> Rejected:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejected(-1, "not_utf8", f"invalid UTF-8 at byte {err.start}")
    if "infinity" in str(exc):
        return Rejected(-1, "non_finite_number", str(exc))
    try:  # the stdlib parser accepts NaN and Infinity literals; orjson does not
        json.loads(text)
    except ValueError:
        return Rejected(-1, "not_json", str(exc))
    if _NON_FINITE.search(text):
        return Rejected(-1, "non_finite_number", "NaN or Infinity is not a JSON number")
    return Rejected(-1, "not_json", str(exc))  # e.g. a lone surrogate, which orjson refuses


def _validate(objs: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """Rows (indexes into objs) that break the contract, with reason and detail."""
    if not objs:
        return {}
    try:
        _EVENTS.validate_python(objs)
        return {}
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    by_row: dict[int, list[dict[str, Any]]] = {}
    for err in errors:
        by_row.setdefault(int(err["loc"][0]), []).append(dict(err))
    return {row: _reason(errs) for row, errs in by_row.items()}


def _reason(errors: list[dict[str, Any]]) -> tuple[str, str]:
    types = {e["type"] for e in errors}
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"][1:]) or "event"
    if "missing" in types:
        e = next(e for e in errors if e["type"] == "missing")
        return "missing_field", f"{'.'.join(str(p) for p in e['loc'][1:])}: required"
    if "finite_number" in types:
        return "non_finite_number", f"{where}: not a finite number"
    if "string_too_short" in types:
        return "empty_field", f"{where}: must not be empty"
    loc = first["loc"]
    if len(loc) >= 3 and loc[1] == "features":
        got = type(errors[0].get("input")).__name__
        expected = "number, string, boolean or null"
        return "wrong_type", f"features.{loc[2]}: expected {expected}, got {got}"
    return "wrong_type", f"{where}: {first['msg']}"


_YEAR_10000 = 253_402_300_800  # epoch seconds; past it a time cannot be formatted


def _event_time(timestamp: str | float | None, record_ms: int | None) -> float | None:
    if timestamp is None:
        return record_ms / 1000.0 if record_ms is not None else None
    if isinstance(timestamp, str):
        try:
            parsed = datetime.fromisoformat(timestamp)
        except ValueError:
            raise ValueError(f"timestamp: {timestamp[:40]!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(timestamp) or not 0 <= timestamp < _YEAR_10000:
        hint = " (milliseconds?)" if timestamp >= _YEAR_10000 else ""
        raise ValueError(f"timestamp: {timestamp!r} is not epoch seconds{hint}")
    return float(timestamp)


def format_time(epoch_seconds: float | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, the one form alerts carry.

    >>> format_time(1795705200.5)
    '2026-11-26T15:00:00.500Z'
    """
    if epoch_seconds is None:
        return None
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Label(TypedDict):
    """Ground truth that arrives later, on the labels topic (DESIGN.md's label contract)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[misc]

    event_id: Required[NonEmpty]
    model_id: Required[NonEmpty]
    label: Required[StrictBool | Number | StrictStr]
    timestamp: NotRequired[StrictStr | Number | None]


_LABELS = TypeAdapter(list[Label])


@dataclass(slots=True)
class DecodedLabels:
    labels: dict[tuple[str, int], LabelBatch] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


def decode_labels(records: RecordBatch, max_record_bytes: int) -> DecodedLabels:
    """Valid labels per partition and rejected records with their reasons (the same
    reasons as events; a label must have a non-null ``label``)."""
    out = DecodedLabels()
    parsed: list[tuple[int, dict[str, Any]]] = []
    for row, value in enumerate(records.values):
        obj = _parse(value, max_record_bytes)
        if type(obj) is dict:
            parsed.append((row, obj))
        else:
            assert isinstance(obj, Rejected)
            out.rejected.append(Rejected(row, obj.reason, obj.detail))
    bad: dict[int, tuple[str, str]] = {}
    try:
        _LABELS.validate_python([obj for _, obj in parsed])
    except ValidationError as exc:
        by_row: dict[int, list[dict[str, Any]]] = {}
        for err in exc.errors(include_url=False):
            by_row.setdefault(int(err["loc"][0]), []).append(dict(err))
        bad = {i: _reason(errs) for i, errs in by_row.items()}
        for i, (reason, _detail) in bad.items():
            value = parsed[i][1].get("label")
            if reason == "wrong_type" and "label" in parsed[i][1] and (
                    type(value) not in _LABEL_TYPES):
                got = "null" if value is None else type(value).__name__
                bad[i] = (reason, f"label: expected boolean, number or string, got {got}")
    for i, (row, obj) in enumerate(parsed):
        if i in bad:
            out.rejected.append(Rejected(row, *bad[i]))
            continue
        try:
            when = _event_time(obj.get("timestamp"), records.timestamps_ms[row])
        except ValueError as exc:
            out.rejected.append(Rejected(row, "bad_timestamp", str(exc)))
            continue
        key = (records.topics[row], records.partitions[row])
        columns = out.labels.get(key)
        if columns is None:
            columns = out.labels[key] = LabelBatch()
        columns.append(obj["model_id"], obj["event_id"], obj["label"], when, row)
    out.rejected.sort(key=lambda r: r.row)
    return out
