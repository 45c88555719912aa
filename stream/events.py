"""Decode and validate raw event records (docs/contracts.md's event contract).

The hot path decodes a batch of plainly valid events with msgspec's typed JSON
decoder, which checks the contract's types, non-empty ids and string bounds while
it parses (https://jcristharif.com/msgspec/constraints.html); a batch it refuses
is decoded with orjson a column at a time, and a batch with anything doubtful in
it record by record, validated in one call of a strict pydantic ``TypeAdapter``;
only when that fails are the rows with errors classified. Every rejected record
gets one reason from a fixed set (``REASONS``), so the metric's label values stay
bounded.

Decoding is total: whatever a record's bytes, ``decode_batch`` and
``decode_labels`` return (a unit test and a hypothesis fuzz test pin it), and
every time they accept can be formatted by ``format_time``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import attrgetter, is_, methodcaller
from typing import Annotated, Any, NotRequired, Required  # pydantic needs it on 3.11

import msgspec
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
    "bad_timestamp",  # neither RFC 3339 nor epoch seconds, or outside years 1970/1..9999
    "too_deep",  # JSON nested deeper than orjson's limit (1,024 levels)
    "name_too_long",  # event_id, model_id, model_version or a feature name too long
    # Event time too far ahead of the record timestamp, with limits.clock_skew_policy
    # dead_letter (stream/clock.py; never from decoding itself).
    "clock_skew",
    # Not the record's fault: detection or alert building raised on its batch (a bug; the
    # run loop keeps the batch in the DLQ rather than stop on it). Never from decoding.
    "detection_failed",
)

#: Defaults of ``limits.max_name_bytes`` and ``limits.max_category_bytes``.
MAX_NAME_BYTES = 256
MAX_CATEGORY_BYTES = 256
#: orjson refuses JSON nested deeper than this (its documented limit).
MAX_DEPTH = 1024

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
    capped: int = 0  # categorical values longer than max_category_bytes, replaced by a digest


def decode_batch(records: RecordBatch, max_record_bytes: int, *,
                 max_name_bytes: int = MAX_NAME_BYTES,
                 max_category_bytes: int = MAX_CATEGORY_BYTES) -> DecodedBatch:
    """Valid events per partition and rejected records with their reasons.

    A batch of plainly valid events (the usual case) is decoded by a typed decoder
    (``_decode_typed``), else a column at a time (``_decode_columns``); a batch with
    anything doubtful in it is decoded record by record. All give the same result
    for the same batch (unit tests pin it).
    Names (``event_id``, ``model_id``, ``model_version``, feature names) longer
    than ``max_name_bytes`` (UTF-8) are refused; categorical values (string
    feature values, predictions, class names, labels) longer than
    ``max_category_bytes`` are replaced by ``capped_category(value)``.
    """
    limits = {"max_name_bytes": max_name_bytes, "max_category_bytes": max_category_bytes}
    return (_decode_typed(records, max_record_bytes, **limits)
            or _decode_columns(records, max_record_bytes, **limits)
            or _decode_records(records, max_record_bytes, **limits))


_MAX_DOUBLE = 1.7976931348623157e308


@lru_cache(maxsize=8)
def _typed_decoder(max_name_bytes: int, max_category_bytes: int) -> msgspec.json.Decoder[Any]:
    """A msgspec decoder that accepts exactly the events the column path would take
    as they are, and raises ``msgspec.DecodeError`` on anything else.

    Where msgspec reads JSON differently from orjson (the slow paths' parser), the
    types refuse: numbers past a double (orjson: an error) and integers past int64
    (orjson: a float) are out of the bounds below, and unknown keys are refused
    because msgspec skips their values unchecked (orjson refuses ``1e400`` or bad
    UTF-8 in them). String bounds count characters (msgspec's ``max_length``), which
    are bytes only for ASCII text: ``_decode_typed`` checks that first, and checks
    feature names itself.
    """
    finite = Annotated[float, msgspec.Meta(ge=-_MAX_DOUBLE, le=_MAX_DOUBLE)]
    integer = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
    name = Annotated[str, msgspec.Meta(min_length=1, max_length=max_name_bytes)]
    category = Annotated[str, msgspec.Meta(max_length=max_category_bytes)]
    version = Annotated[str, msgspec.Meta(max_length=max_name_bytes)]
    event = msgspec.defstruct("TypedEvent", [
        ("event_id", name),
        ("model_id", name),
        ("features", dict[str, finite | integer | category | bool | None]),
        ("model_version", version | integer | None, None),
        ("timestamp", str | finite | integer | None, None),
        ("prediction", bool | finite | integer | category
         | dict[category, finite | integer] | None, None),
        ("label", bool | finite | integer | category | None, None),
    ], forbid_unknown_fields=True, gc=False)
    return msgspec.json.Decoder(event)


_TYPED_FIELDS = tuple(map(attrgetter, ("event_id", "model_id", "features", "model_version",
                                       "prediction", "label", "timestamp")))


def _decode_typed(records: RecordBatch, max_record_bytes: int, *,
                  max_name_bytes: int = MAX_NAME_BYTES,
                  max_category_bytes: int = MAX_CATEGORY_BYTES) -> DecodedBatch | None:
    """The whole batch through the typed decoder, or None if any record needs more.

    The decoder checks every type and bound of the contract but the feature names'
    while it parses. It takes only records of ASCII bytes without escapes: their
    strings have as many UTF-8 bytes as characters, the unit of its bounds.
    """
    values = records.values
    longest = _longest_within(values, max_record_bytes)
    if longest is None:
        return None
    text = b"".join(values)  # type: ignore[arg-type]
    if not text.isascii() or text.find(b"\\") >= 0:  # no escapes, so chars are bytes
        return None
    decode = _typed_decoder(max_name_bytes, max_category_bytes).decode
    try:
        events = list(map(decode, values))  # type: ignore[arg-type]
    except msgspec.DecodeError:  # ValidationError is one
        return None
    event_ids, model_ids, features, versions, predictions, labels, timestamps = (
        list(map(get, events)) for get in _TYPED_FIELDS)
    # Feature names are plain str to the decoder (a bound on dict keys would cost it
    # its key cache, a third of its time), so they are checked here.
    if any(map(dict.__contains__, features, repeat(""))):
        return None
    if longest - _ENVELOPE > max_name_bytes and max(
            map(len, set(chain.from_iterable(features)))) > max_name_bytes:
        return None
    return _batch_of_columns(records, event_ids, model_ids, features, versions, predictions,
                             labels, timestamps)


def _longest_within(values: list[bytes | None], max_record_bytes: int) -> int | None:
    """The longest record's length when there are records, none empty or null, none over
    ``max_record_bytes`` (the batch may take a whole-batch path); else None (record by
    record)."""
    if not values or not all(values):
        return None
    longest = max(map(len, values))  # type: ignore[arg-type]
    return longest if longest <= max_record_bytes else None


def _decode_columns(records: RecordBatch, max_record_bytes: int, *,
                    max_name_bytes: int = MAX_NAME_BYTES,
                    max_category_bytes: int = MAX_CATEGORY_BYTES) -> DecodedBatch | None:
    """The whole batch at once, or None as soon as any record needs a closer look."""
    values = records.values
    longest = _longest_within(values, max_record_bytes)
    if longest is None:
        return None
    try:
        objs = list(map(orjson.loads, values))  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return None
    if set(map(type, objs)) != {dict}:
        return None
    event_ids, model_ids, features, versions, predictions, labels, timestamps = (
        list(map(methodcaller("get", key), objs)) for key in _FIELDS)
    if set(map(type, features)) != {dict}:
        return None
    feature_values = list(chain.from_iterable(map(dict.values, features)))
    kinds = list(map(type, feature_values))
    if not (_non_empty_strings(event_ids) and _non_empty_strings(model_ids)
            and set(kinds) <= _FEATURE_TYPES
            and set(map(type, versions)) <= _VERSION_TYPES
            and set(map(type, labels)) <= _LABEL_TYPES | _NONE
            and _plain_predictions(predictions)):
        return None
    if any(map(dict.__contains__, features, repeat(""))):
        return None  # an empty feature name
    # A decoded string has at most as many UTF-8 bytes as its JSON text, and an event's
    # JSON has 44 bytes besides any one of its strings: records no longer than a bound
    # plus that cannot hold a string past it. Longer ones: a char is at most 4 bytes.
    if longest - _ENVELOPE > min(max_name_bytes, max_category_bytes) and (
            4 * max(max(map(len, event_ids)), max(map(len, model_ids)), _longest(versions),
                    _longest(list(set(chain.from_iterable(features))))) > max_name_bytes
            or 4 * max(_longest(feature_values, kinds), _longest(predictions),
                       _longest(labels), _longest(_class_names(predictions)))
            > max_category_bytes):
        return None
    return _batch_of_columns(records, event_ids, model_ids, features, versions, predictions,
                             labels, timestamps)


def _batch_of_columns(records: RecordBatch, event_ids: list[Any], model_ids: list[Any],
                      features: list[Any], versions: list[Any], predictions: list[Any],
                      labels: list[Any], timestamps: list[Any]) -> DecodedBatch | None:
    """Columns of valid events as a DecodedBatch per partition, or None if an event time
    needs the per-record rules."""
    times = _event_times(timestamps, records.timestamps_ms)
    if times is None:
        return None
    if not set(map(type, versions)) <= _NONE | {str}:
        versions = [None if v is None else str(v) for v in versions]
    out = DecodedBatch(event_ids=dict(enumerate(event_ids)), event_times=dict(enumerate(times)))
    keys = list(zip(records.topics, records.partitions, strict=True))
    partitions = dict.fromkeys(keys)
    everything = list(range(len(keys)))
    for key in partitions:
        mask = None if len(partitions) == 1 else list(map(key.__eq__, keys))
        out.events[key] = EventBatch(
            model_ids=_take(model_ids, mask), model_versions=_take(versions, mask),
            features=_take(features, mask), predictions=_take(predictions, mask),
            positions=_take(everything, mask), event_ids=_take(event_ids, mask),
            times=_take(times, mask), labels=_take(labels, mask))
    return out


def _take(column: list[Any], mask: list[bool] | None) -> list[Any]:
    return column if mask is None else list(compress(column, mask))


_FIELDS = ("event_id", "model_id", "features", "model_version", "prediction", "label",
           "timestamp")


def _non_empty_strings(column: list[Any]) -> bool:
    return set(map(type, column)) == {str} and all(column)


_ENVELOPE = len(b'{"event_id":"","model_id":"","features":{}}') + 1  # +1: the other id


def _longest(column: list[Any], kinds: list[type] | None = None) -> int:
    """Characters of the column's longest string, 0 without strings (all in C)."""
    types = map(type, column) if kinds is None else kinds
    return max(map(len, compress(column, map(is_, types, repeat(str)))), default=0)


def _class_names(predictions: list[Any]) -> list[str]:
    if dict not in set(map(type, predictions)):
        return []
    return list(chain.from_iterable(p for p in predictions if type(p) is dict))


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
        times = list(map(datetime.timestamp, moments))
        return (list(times) if min(times) >= _YEAR_1 and max(times) < _YEAR_10000
                else None)
    if kinds <= _NUMBER_TYPES:
        if not (min(timestamps) >= 0 and max(timestamps) < _YEAR_10000):
            return None
        return list(map(float, timestamps))
    if kinds == _NONE and None not in record_ms:
        seconds = [ms / 1000.0 for ms in record_ms]  # type: ignore[operator]
        return (list(seconds) if min(seconds) >= 0 and max(seconds) < _YEAR_10000
                else None)
    return None


def _decode_records(records: RecordBatch, max_record_bytes: int, *,
                    max_name_bytes: int = MAX_NAME_BYTES,
                    max_category_bytes: int = MAX_CATEGORY_BYTES) -> DecodedBatch:
    out = DecodedBatch()
    accepted: list[tuple[int, dict[str, Any]]] = []
    doubtful: list[tuple[int, dict[str, Any]]] = []
    for row, value in enumerate(records.values):
        obj = _parse(value, max_record_bytes, records, row)
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
        refused = _check_names(obj, max_name_bytes)
        if refused is not None:
            out.rejected.append(Rejected(row, *refused))
            continue
        out.capped += _cap_categories(obj, max_category_bytes)
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


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _check_names(obj: dict[str, Any], limit: int) -> tuple[str, str] | None:
    """(reason, detail) if a name of a contract-valid event is empty or too long."""
    for key in ("event_id", "model_id", "model_version"):
        value = obj.get(key)
        if type(value) is str and len(value) * 4 > limit and _utf8_len(value) > limit:
            return "name_too_long", (f"{key}: {_utf8_len(value)} bytes > "
                                     f"limits.max_name_bytes ({limit})")
    for name in obj.get("features", ()):
        if not name:
            return "empty_field", "features: a feature name must not be empty"
        if len(name) * 4 > limit and _utf8_len(name) > limit:
            return "name_too_long", (f"features: a name of {_utf8_len(name)} bytes "
                                     f"({name[:40]!r}...) > limits.max_name_bytes ({limit})")
    return None


def capped_category(value: str) -> str:
    """The stable short form of a categorical value past ``limits.max_category_bytes``:
    ``sha256:`` and the first 16 hex digits of the SHA-256 of its UTF-8 bytes
    (FIPS 180-4), so equal long values stay one category and differ from others.

    >>> capped_category("y" * 1000)
    'sha256:7e33ae3f1e88ddf3'
    """
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:16]}"


def _too_long(value: object, limit: int) -> bool:
    return type(value) is str and len(value) * 4 > limit and _utf8_len(value) > limit


def _cap_categories(obj: dict[str, Any], limit: int) -> int:
    """Replaces, in place, categorical values longer than ``limit`` bytes; returns how many."""
    capped = 0
    features = obj.get("features", {})
    for name, value in features.items():
        if _too_long(value, limit):
            features[name] = capped_category(value)
            capped += 1
    for key in ("prediction", "label"):
        value = obj.get(key)
        if type(value) is str and _too_long(value, limit):
            obj[key] = capped_category(value)
            capped += 1
        elif type(value) is dict and any(_too_long(cls, limit) for cls in value):
            obj[key] = {(capped_category(cls) if _too_long(cls, limit) else cls): p
                        for cls, p in value.items()}
            capped += sum(_too_long(cls, limit) for cls in value)
    return capped


def _parse(value: bytes | None, max_bytes: int, records: RecordBatch, row: int
           ) -> dict[str, Any] | Rejected:
    if not value:
        return Rejected(-1, "empty_value", "record has no value (tombstone or empty)")
    if len(value) > max_bytes:  # the whole value's size, if its source cut it short
        return Rejected(-1, "oversized",
                        f"{records.value_size(row)} bytes > limit of {max_bytes}")
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
    message = str(exc)
    if message.startswith("depth limit exceeded"):
        return Rejected(-1, "too_deep", f"JSON nested deeper than {MAX_DEPTH} levels ({message})")
    if "infinity" in message:
        return Rejected(-1, "non_finite_number", message)
    try:  # the stdlib parser accepts NaN and Infinity literals; orjson does not
        json.loads(text)
    except RecursionError:  # the stdlib recurses per level: deep but within orjson's limit
        return Rejected(-1, "too_deep", f"JSON nested too deep to classify ({message})")
    except ValueError:
        return Rejected(-1, "not_json", message)
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
    """The reason and detail of a record's validation errors."""
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
    if len(loc) >= 3 and loc[1] in _EXPECTED:  # a field of several types: say them all
        inner = next((e for e in errors if len(e["loc"]) >= 5), None)
        if inner is not None:  # a class probability that is not a number
            got = type(inner.get("input")).__name__
            return "wrong_type", (f"{loc[1]}.{inner['loc'][3]}: expected a number (a class "
                                  f"probability), got {got}")
        got = type(first.get("input")).__name__
        return "wrong_type", f"{loc[1]}: expected {_EXPECTED[loc[1]]}, got {got}"
    return "wrong_type", f"{where}: {first['msg']}"


#: The types of the event fields that take several, as a rejection's detail says them
#: (docs/contracts.md's event contract).
_EXPECTED = {
    "prediction": "number, string, boolean, null or an object of class probabilities",
    "label": "number, string, boolean or null",
    "timestamp": "an RFC 3339 string, epoch seconds or null",
    "model_version": "string, integer or null",
}


_YEAR_10000 = 253_402_300_800  # epoch seconds; past it a time cannot be formatted
_YEAR_1 = -62_135_596_800  # 0001-01-01T00:00:00Z; before it neither


def _event_time(timestamp: str | float | None, record_ms: int | None) -> float | None:
    """Epoch seconds of an event: its ``timestamp``, else the record's; ValueError if
    that time is not one ``format_time`` can write (years 1..9999 in UTC; epoch seconds
    from 0)."""
    if timestamp is None:
        if record_ms is None:
            return None
        if not 0 <= record_ms < _YEAR_10000 * 1000:
            raise ValueError(f"no timestamp, and the record timestamp {record_ms} ms is "
                             "outside 1970..9999")
        return record_ms / 1000.0
    if isinstance(timestamp, str):
        try:
            parsed = parse_rfc3339(timestamp)
        except ValueError:
            raise ValueError(f"timestamp: {timestamp[:40]!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
        if not _YEAR_1 <= seconds < _YEAR_10000:
            raise ValueError(f"timestamp: {timestamp[:40]!r} is outside years 1..9999 in UTC")
        return seconds
    if not math.isfinite(timestamp) or not 0 <= timestamp < _YEAR_10000:
        hint = " (milliseconds?)" if timestamp >= _YEAR_10000 else ""
        raise ValueError(f"timestamp: {timestamp!r} is not epoch seconds{hint}")
    return float(timestamp)


_LEAP_SECOND = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:)60(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_rfc3339(text: str) -> datetime:
    """A timestamp as Python's ``datetime.fromisoformat`` reads it, and the RFC 3339
    spellings it does not: a lower-case ``t`` or ``z`` (RFC 3339, section 5.6: "T" and
    "Z" may be lower case) and a leap second (``:60``, section 5.7), read as the last
    microsecond of its minute. ValueError for anything else.

    >>> parse_rfc3339("2026-11-26t15:00:00.123z").isoformat()
    '2026-11-26T15:00:00.123000+00:00'
    >>> parse_rfc3339("2026-11-26T23:59:60Z").isoformat()
    '2026-11-26T23:59:59.999999+00:00'
    """
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    upper = text.upper()
    return datetime.fromisoformat(_LEAP_SECOND.sub(r"\g<1>59.999999\g<2>", upper, count=1))


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
    """Ground truth that arrives later, on the labels topic (docs/contracts.md's label contract)."""

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
    capped: int = 0


def decode_labels(records: RecordBatch, max_record_bytes: int, *,
                  max_name_bytes: int = MAX_NAME_BYTES,
                  max_category_bytes: int = MAX_CATEGORY_BYTES) -> DecodedLabels:
    """Valid labels per partition and rejected records with their reasons (the same
    reasons and bounds as events; a label must have a non-null ``label``)."""
    out = DecodedLabels()
    parsed: list[tuple[int, dict[str, Any]]] = []
    for row, value in enumerate(records.values):
        obj = _parse(value, max_record_bytes, records, row)
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
        refused = _check_names(obj, max_name_bytes)
        if refused is not None:
            out.rejected.append(Rejected(row, *refused))
            continue
        out.capped += _cap_categories(obj, max_category_bytes)
        key = (records.topics[row], records.partitions[row])
        columns = out.labels.get(key)
        if columns is None:
            columns = out.labels[key] = LabelBatch()
        columns.append(obj["model_id"], obj["event_id"], obj["label"], when, row)
    out.rejected.sort(key=lambda r: r.row)
    return out
