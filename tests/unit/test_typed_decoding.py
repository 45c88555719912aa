"""The typed decoder (msgspec) on the hot path: it takes only what the other paths
would accept as it is, and gives exactly what they give."""

from __future__ import annotations

import random

import orjson
import pytest

from stream.events import _decode_columns, _decode_records, _decode_typed, decode_batch
from stream.records import RecordBatch

LIMIT = 10_000


def _batch(*values: bytes) -> RecordBatch:
    batch = RecordBatch()
    for i, value in enumerate(values):
        batch.append("t", 0, i, 1_795_705_000_000 + i, None, value)
    return batch


def test_typed_and_record_decoding_agree_on_valid_batches() -> None:
    rng = random.Random(11)
    stamps: list[object] = ["2026-11-26T15:00:00Z", "2026-11-26T16:00:00.250+01:00", 1795705200,
                            1795705200.5, None]
    predictions: list[object] = [None, 0.25, "yes", True, {"a": 0.7, "b": 0.3}, 3]
    for trial in range(40):
        batch = RecordBatch()
        stamp = rng.choice(stamps)
        for i in range(rng.randint(1, 60)):
            event: dict[str, object] = {
                "event_id": f"e-{i}", "model_id": rng.choice(["m1", "m2"]),
                "features": {"x": rng.random(), "c": rng.choice(["a", "b", None, True, 3]),
                             "n": rng.randint(-(2**63), 2**63 - 1)},
                "prediction": rng.choice(predictions), "label": rng.choice([None, 1, "no"]),
            }
            if stamp is not None:
                event["timestamp"] = stamp
            if rng.random() < 0.5:
                event["model_version"] = rng.choice(["7", 8, None])
            batch.append("t", rng.randint(0, 2), i, 1_795_705_000_000 + i, None,
                         orjson.dumps(event))
        typed = _decode_typed(batch, LIMIT)
        assert typed is not None, trial
        slow = _decode_records(batch, LIMIT)
        assert typed.events == slow.events
        assert typed.event_ids == slow.event_ids
        assert typed.event_times == slow.event_times
        assert typed.rejected == slow.rejected == []


VALID = b'{"event_id":"e","model_id":"m","features":{"x":1.5}'


@pytest.mark.parametrize("value", [
    VALID + b',"request_id":"r-1"}',  # unknown keys: msgspec would skip them unchecked
    VALID + b',"extra":1e400}',
    b'{"event_id":"e","model_id":"m","features":{"x":18446744073709551615}}',  # orjson: int
    b'{"event_id":"e","model_id":"m","features":{"x":123456789012345678901234567890}}',
    '{"event_id":"é","model_id":"m","features":{"x":1}}'.encode(),  # bounds count chars
    b'{"event_id":"\\u00e9","model_id":"m","features":{"x":1}}',
])
def test_what_msgspec_reads_unlike_orjson_is_left_to_the_other_paths(value: bytes) -> None:
    batch = _batch(value)
    assert _decode_typed(batch, LIMIT) is None
    assert decode_batch(batch, LIMIT) == _decode_records(batch, LIMIT)


def test_a_batch_with_unknown_keys_still_takes_the_column_path() -> None:
    batch = _batch(*(VALID + b',"request_id":"r-%d"}' % i for i in range(5)))
    assert _decode_typed(batch, LIMIT) is None
    columns = _decode_columns(batch, LIMIT)
    assert columns is not None and len(columns.events[("t", 0)]) == 5


@pytest.mark.parametrize(("value", "reason"), [
    (b'{"event_id":"","model_id":"m","features":{"x":1}}', "empty_field"),
    (b'{"event_id":"e","model_id":"m","features":{"":1}}', "empty_field"),
    (b'{"event_id":"e","model_id":"m","features":{"x":[1]}}', "wrong_type"),
    (b'{"event_id":"e","model_id":"m","features":{"x":1e999}}', "non_finite_number"),
    (b'{"event_id":"e","model_id":"m"}', "missing_field"),
    (b'{"event_id":"e","model_id":7,"features":{"x":1}}', "wrong_type"),
    (b'{"event_id":"' + b"e" * 300 + b'","model_id":"m","features":{"x":1}}',
     "name_too_long"),
])
def test_a_record_the_typed_decoder_refuses_gets_its_documented_reason(
        value: bytes, reason: str) -> None:
    batch = _batch(VALID + b"}", value)
    assert _decode_typed(batch, LIMIT) is None
    decoded = decode_batch(batch, LIMIT)
    assert [(r.row, r.reason) for r in decoded.rejected] == [(1, reason)]
    assert decoded.event_ids == {0: "e"}


def test_names_and_categories_at_their_bounds_stay_on_the_typed_path() -> None:
    name, category = "n" * 256, "c" * 256
    event = {"event_id": name, "model_id": "m", "features": {name: category}}
    batch = _batch(orjson.dumps(event))
    typed = _decode_typed(batch, LIMIT)
    assert typed is not None
    assert typed.events[("t", 0)].features == [{name: category}]
    longer = {"event_id": "e", "model_id": "m", "features": {"x": category + "c"}}
    batch = _batch(orjson.dumps(longer))
    assert _decode_typed(batch, LIMIT) is None  # capped by the record path, and counted
    assert decode_batch(batch, LIMIT).capped == 1
