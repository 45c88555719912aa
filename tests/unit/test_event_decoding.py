"""decode_batch: each bad record gets one reason code and its row; the rows around it survive."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stream.events import REASONS, DecodedBatch, decode_batch
from stream.records import RecordBatch

TOPIC = "model-events"
RECORD_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the Kafka record timestamp
LIMIT = 512  # limits.max_record_bytes in these tests


def event(event_id: str = "e-1", **fields: Any) -> bytes:
    """A valid event; keyword arguments replace or add top-level fields."""
    body: dict[str, Any] = {"event_id": event_id, "model_id": "credit-risk",
                            "features": {"income": 5230.5}}
    body.update(fields)
    return orjson.dumps(body)


BEFORE = event("e-before")
AFTER = event("e-after")


def decode_between(value: bytes | None) -> DecodedBatch:
    """Decode [valid, value, valid] from one partition; the record under test is row 1."""
    records = RecordBatch()
    for offset, v in enumerate((BEFORE, value, AFTER), start=40):
        records.append(TOPIC, 0, offset, RECORD_MS, b"credit-risk", v)
    return decode_batch(records, LIMIT)


def assert_rejected_between(decoded: DecodedBatch, reason: str) -> str:
    """Row 1 is rejected with ``reason``, rows 0 and 2 decode; returns the detail."""
    assert [(r.row, r.reason) for r in decoded.rejected] == [(1, reason)]
    assert decoded.events[(TOPIC, 0)].positions == [0, 2]
    assert decoded.event_ids == {0: "e-before", 2: "e-after"}
    assert decoded.rejected[0].detail  # the DLQ carries why, not only the code
    return decoded.rejected[0].detail


def test_plain_text_is_not_json() -> None:
    assert_rejected_between(decode_between(b"not json at all"), "not_json")


def test_truncated_json_is_not_json() -> None:
    assert_rejected_between(decode_between(event()[:-5]), "not_json")


def test_invalid_utf8_is_not_utf8() -> None:
    detail = assert_rejected_between(decode_between(b"\xff\xfe\x00garbage"), "not_utf8")
    assert "byte 0" in detail


def test_invalid_utf8_inside_a_json_string_is_not_utf8() -> None:
    value = b'{"event_id": "e-\xff", "model_id": "m", "features": {}}'
    assert_rejected_between(decode_between(value), "not_utf8")


@pytest.mark.parametrize("value", [b"[1, 2, 3]", b'"an event"', b"42", b"null"],
                         ids=["array", "string", "number", "null"])
def test_json_that_is_not_an_object_is_not_object(value: bytes) -> None:
    assert_rejected_between(decode_between(value), "not_object")


@pytest.mark.parametrize("field", ["event_id", "model_id", "features"])
def test_absent_required_field_is_missing_field(field: str) -> None:
    body = orjson.loads(event())
    del body[field]
    detail = assert_rejected_between(decode_between(orjson.dumps(body)), "missing_field")
    assert detail.startswith(field)


@pytest.mark.parametrize("field", ["event_id", "model_id"])
def test_empty_id_is_empty_field(field: str) -> None:
    detail = assert_rejected_between(decode_between(event(**{field: ""})), "empty_field")
    assert detail.startswith(field)


def test_features_not_an_object_is_wrong_type() -> None:
    detail = assert_rejected_between(decode_between(event(features=[1, 2])), "wrong_type")
    assert detail.startswith("features")


@pytest.mark.parametrize("value", [[1], {"a": 1}], ids=["list", "object"])
def test_feature_value_that_is_a_list_or_object_is_wrong_type(value: Any) -> None:
    decoded = decode_between(event(features={"income": 1.0, "history": value}))
    detail = assert_rejected_between(decoded, "wrong_type")
    assert detail.startswith("features.history")


@pytest.mark.parametrize("field, value, detail", [
    ("prediction", [0.1], "prediction: expected number, string, boolean, null or an object "
                          "of class probabilities, got list"),
    ("prediction", {"yes": "high"}, "prediction.yes: expected a number (a class "
                                    "probability), got str"),
    ("label", [1], "label: expected number, string, boolean or null, got list"),
    ("timestamp", True, "timestamp: expected an RFC 3339 string, epoch seconds or null, "
                        "got bool"),
    ("model_version", [1], "model_version: expected string, integer or null, got list"),
])
def test_a_field_of_several_types_says_them_all(field: str, value: Any, detail: str) -> None:
    """Before, the first type pydantic tried: 'prediction.bool: Input should be a valid
    boolean' for a list (helper-16)."""
    decoded = decode_between(event(**{field: value}))
    assert assert_rejected_between(decoded, "wrong_type") == detail


def test_numeric_model_id_is_wrong_type() -> None:
    detail = assert_rejected_between(decode_between(event(model_id=7)), "wrong_type")
    assert detail.startswith("model_id")


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_id": "e", "model_id": "m", "features": {"income": NaN}}',
        b'{"event_id": "e", "model_id": "m", "features": {"income": Infinity}}',
        b'{"event_id": "e", "model_id": "m", "features": {"income": -Infinity}}',
        b'{"event_id": "e", "model_id": "m", "features": {"income": 1e999}}',
        b'{"event_id": "e", "model_id": "m", "features": {}, "prediction": -1e999}',
        b'{"event_id": "e", "model_id": "m", "features": {}, "prediction": {"yes": NaN}}',
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e999", "prediction_-1e999", "probability_NaN"],
)
def test_non_finite_number_is_non_finite_number(value: bytes) -> None:
    assert_rejected_between(decode_between(value), "non_finite_number")


def test_nan_and_infinity_inside_strings_are_plain_strings() -> None:
    decoded = decode_between(event(event_id="NaN", features={"note": "Infinity"}))
    assert decoded.rejected == []
    assert decoded.events[(TOPIC, 0)].features[1] == {"note": "Infinity"}


def test_record_over_the_byte_limit_is_oversized() -> None:
    big = event(features={"note": "x" * LIMIT})
    detail = assert_rejected_between(decode_between(big), "oversized")
    assert str(LIMIT) in detail


def test_record_of_exactly_the_byte_limit_is_accepted() -> None:
    base = event(features={"note": ""})
    exact = event(features={"note": "x" * (LIMIT - len(base))})
    assert len(exact) == LIMIT
    assert decode_between(exact).rejected == []


@pytest.mark.parametrize("value", [b"", None], ids=["empty_bytes", "tombstone"])
def test_empty_value_or_tombstone_is_empty_value(value: bytes | None) -> None:
    assert_rejected_between(decode_between(value), "empty_value")


@pytest.mark.parametrize("timestamp", ["yesterday", "", "26/11/2026 15:00", -5, -0.5],
                         ids=["word", "empty", "locale_date", "negative_int", "negative_float"])
def test_unparseable_timestamp_is_bad_timestamp(timestamp: Any) -> None:
    detail = assert_rejected_between(decode_between(event(timestamp=timestamp)), "bad_timestamp")
    assert detail.startswith("timestamp")


def test_lone_surrogate_escape_is_not_reported_as_non_finite_number() -> None:
    value = b'{"event_id": "e-\\ud800", "model_id": "m", "features": {}}'
    decoded = decode_between(value)
    assert [r.row for r in decoded.rejected] == [1]
    assert decoded.rejected[0].reason in ("not_json", "not_utf8")


def test_every_reason_code_is_reachable_and_rows_stay_sorted() -> None:
    limit = 4096  # room for JSON nested past orjson's 1,024 levels
    bad = [
        (b"", "empty_value"),
        (event(features={"note": "x" * limit}), "oversized"),
        (b"\xff\xfe", "not_utf8"),
        (b"{nope", "not_json"),
        (b'{"event_id": "e", "model_id": "m", "features": {"x": NaN}}', "non_finite_number"),
        (b"[]", "not_object"),
        (b'{"event_id": "e", "model_id": "m"}', "missing_field"),
        (event(model_id=""), "empty_field"),
        (event(features={"x": [1]}), "wrong_type"),
        (event(timestamp="soon"), "bad_timestamp"),
        (b"[" * 1100 + b"]" * 1100, "too_deep"),
        (event(model_id="m" * 300), "name_too_long"),
    ]
    records = RecordBatch()
    expected = []
    for offset, (value, reason) in enumerate(bad):
        records.append(TOPIC, 0, 2 * offset, RECORD_MS, None, event(f"e-{offset}"))
        records.append(TOPIC, 0, 2 * offset + 1, RECORD_MS, None, value)
        expected.append((2 * offset + 1, reason))
    decoded = decode_batch(records, limit)
    assert [(r.row, r.reason) for r in decoded.rejected] == expected
    assert decoded.events[(TOPIC, 0)].positions == list(range(0, 2 * len(bad), 2))
    # detection_failed and clock_skew come from the run loop, after decoding.
    assert {reason for _, reason in bad} == set(REASONS) - {"detection_failed", "clock_skew"}


def test_event_with_every_feature_type_decodes() -> None:
    features = {"income": 5230.5, "children": 2, "country": "DE", "student": False,
                "age": None}
    value = event("e-7", features=features, model_version=7, prediction={"yes": 0.9, "no": 0.1},
                  label=None, extra_field={"ignored": True})
    decoded = decode_between(value)
    assert decoded.rejected == []
    batch = decoded.events[(TOPIC, 0)]
    assert batch.features[1] == features
    assert [type(v) for v in batch.features[1].values()] == [float, int, str, bool, type(None)]
    assert batch.model_ids[1] == "credit-risk"
    assert batch.model_versions[1] == "7"  # an integer version is carried as a string
    assert batch.predictions[1] == {"yes": 0.9, "no": 0.1}
    assert decoded.event_ids[1] == "e-7"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-26T15:00:00Z", 1_795_705_200.0),
        ("2026-11-26T15:00:00.250Z", 1_795_705_200.25),
        ("2026-11-26T16:00:00+01:00", 1_795_705_200.0),
        (1_795_705_200, 1_795_705_200.0),
        (1_795_705_200.5, 1_795_705_200.5),
    ],
    ids=["rfc3339_utc", "rfc3339_millis", "rfc3339_offset", "epoch_int", "epoch_float"],
)
def test_event_time_comes_from_the_timestamp_field(timestamp: Any, expected: float) -> None:
    decoded = decode_between(event(timestamp=timestamp))
    assert decoded.rejected == []
    assert decoded.event_times[1] == expected


@pytest.mark.parametrize("fields", [{}, {"timestamp": None}], ids=["absent", "null"])
def test_event_time_falls_back_to_the_record_timestamp(fields: dict[str, Any]) -> None:
    decoded = decode_between(event(**fields))
    assert decoded.event_times[1] == RECORD_MS / 1000.0


def test_event_time_is_none_without_timestamp_or_record_time() -> None:
    records = RecordBatch()
    records.append("events.jsonl", 0, 0, None, None, event())  # a file line has no record time
    assert decode_batch(records, LIMIT).event_times == {0: None}


def test_events_are_grouped_per_topic_and_partition_in_record_order() -> None:
    layout = [("a", 0), ("a", 1), ("b", 0), ("a", 0), ("a", 1), ("a", 0)]
    records = RecordBatch()
    for row, (topic, partition) in enumerate(layout):
        records.append(topic, partition, 100 + row, RECORD_MS, None, event(f"e-{row}"))
    decoded = decode_batch(records, LIMIT)
    assert list(decoded.events) == [("a", 0), ("a", 1), ("b", 0)]
    assert decoded.events[("a", 0)].positions == [0, 3, 5]
    assert decoded.events[("a", 1)].positions == [1, 4]
    assert decoded.events[("b", 0)].positions == [2]
    assert decoded.event_ids == {row: f"e-{row}" for row in range(len(layout))}


def test_fast_check_never_accepts_what_the_contract_refuses() -> None:
    # decode_batch skips pydantic for events that plainly_valid() accepts; that is only
    # sound if every event it accepts is one the Event contract accepts too.
    import random

    from pydantic import ValidationError

    from stream.events import _EVENTS, plainly_valid

    rng = random.Random(1)
    odd_values: list[object] = [None, "", "x", 0, 1.5, True, [], [1], {}, {"a": 1}, {"a": "b"},
                                {"a": True}, -3, "2026-11-26T15:00:00Z"]
    keys = ["event_id", "model_id", "features", "model_version", "timestamp", "prediction",
            "label", "extra"]
    accepted = refused_by_contract = 0
    for _ in range(5000):
        event: dict[str, object] = {"event_id": "e", "model_id": "m", "features": {"x": 1.0}}
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            if key == "features" and rng.random() < 0.5:
                event["features"] = {"x": rng.choice(odd_values), "y": 2}
            elif rng.random() < 0.2:
                event.pop(key, None)
            else:
                event[key] = rng.choice(odd_values)
        try:
            _EVENTS.validate_python([event])
            valid = True
        except ValidationError:
            valid = False
            refused_by_contract += 1
        if plainly_valid(event):
            accepted += 1
            assert valid, event
    assert accepted > 500 and refused_by_contract > 500  # both sides were exercised


def test_column_and_record_decoding_agree_on_valid_batches() -> None:
    # decode_batch takes the column path for plainly valid batches; it must give exactly
    # what the record-by-record path gives, whatever the mix of optional fields.
    import random

    import orjson

    from stream.events import _decode_columns, _decode_records

    rng = random.Random(7)
    stamps: list[object] = ["2026-11-26T15:00:00Z", "2026-11-26T16:00:00.250+01:00", 1795705200,
                            1795705200.5, None]
    predictions: list[object] = [None, 0.25, "yes", True, {"a": 0.7, "b": 0.3}]
    for trial in range(40):
        batch = RecordBatch()
        stamp = rng.choice(stamps)  # one kind per batch: a mix takes the record path
        for i in range(rng.randint(1, 60)):
            event: dict[str, object] = {
                "event_id": f"e-{i}", "model_id": rng.choice(["m1", "m2"]),
                "features": {"x": rng.random(), "c": rng.choice(["a", "b", None, True, 3])},
                "prediction": rng.choice(predictions), "label": rng.choice([None, 1, "no"]),
            }
            if stamp is not None:
                event["timestamp"] = stamp
            if rng.random() < 0.5:
                event["model_version"] = rng.choice(["7", 8])
            batch.append("t", rng.randint(0, 2), i, 1_795_705_000_000 + i, None,
                         orjson.dumps(event))
        fast = _decode_columns(batch, 10_000)
        assert fast is not None, trial
        slow = _decode_records(batch, 10_000)
        assert fast.events == slow.events
        assert fast.event_ids == slow.event_ids
        assert fast.event_times == slow.event_times
        assert fast.rejected == slow.rejected == []


# ../shared/cases/c11_timestamps.jsonl: nine RFC 3339 spellings, each accepted.
RFC3339_SPELLINGS = [
    ("2026-11-26T15:00:00Z", 1795705200.0),
    ("2026-11-26T15:00:00.123456789Z", 1795705200.123456),
    ("2026-11-26T15:00:00.39Z", 1795705200.39),
    ("2026-11-26T15:00:00.1+01:00", 1795701600.1),
    ("2026-11-26T15:00:00-00:00", 1795705200.0),
    ("2026-11-26t15:00:00z", 1795705200.0),
    ("2026-11-26T15:00:00.123z", 1795705200.123),
    ("2026-11-26 15:00:00Z", 1795705200.0),
    ("2026-11-26T23:59:60Z", 1795737599.999999),  # a leap second: the minute's last microsecond
]


@pytest.mark.parametrize(("timestamp", "seconds"), RFC3339_SPELLINGS)
def test_every_rfc3339_spelling_is_accepted(timestamp: str, seconds: float) -> None:
    decoded = decode_between(event("e-time", timestamp=timestamp))
    assert not decoded.rejected
    assert decoded.event_times[1] == pytest.approx(seconds, abs=1e-6)


def test_a_batch_of_every_rfc3339_spelling_decodes_at_once() -> None:
    records = RecordBatch()
    for offset, (timestamp, _) in enumerate(RFC3339_SPELLINGS):
        records.append(TOPIC, 0, offset, RECORD_MS, b"credit-risk",
                       event(f"e-{offset}", timestamp=timestamp))
    decoded = decode_batch(records, LIMIT)
    assert not decoded.rejected
    assert [decoded.event_times[i] for i in range(len(RFC3339_SPELLINGS))] == pytest.approx(
        [seconds for _, seconds in RFC3339_SPELLINGS], abs=1e-6)


@pytest.mark.parametrize("timestamp", ["2026-11-26T15:00:61Z", "2026-11-26T15:00:60:00Z",
                                       "2026-13-26T15:00:00Z", "yesterday"])
def test_a_timestamp_that_is_not_rfc3339_is_dead_lettered(timestamp: str) -> None:
    decoded = decode_between(event("e-time", timestamp=timestamp))
    assert [(r.row, r.reason) for r in decoded.rejected] == [(1, "bad_timestamp")]
