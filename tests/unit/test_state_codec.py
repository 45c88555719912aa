"""detectors.codec: detector state as plain data, checked on read, never code.

A decoded bank fires exactly where the original fires; every class a bank of the
bench streams reaches is allowed and round-trips; anything else, and any bytes that
are not a payload this code wrote, is refused with ``CodecError``, at encode time for
what the format cannot hold, at decode time for whatever the bytes are.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pickle
import random
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest

from bench.state import STEADY_EVENTS, bank_for
from detectors import codec
from detectors.bank import DetectorBank, DriftSignal, EventBatch
from detectors.codec import CodecError, allowed_classes, decode, encode
from detectors.concept_drift import LabelBatch
from detectors.config import AdwinSettings, ConceptSettings, DetectorConfig, EstimateSettings
from detectors.monitors import Adwin, BlockMeans

DETECTORS = ("adwin", "ddm", "eddm", "hddm_a", "hddm_w")


def _events(n: int, seed: int, shift: float = 0.0, start: int = 0) -> EventBatch:
    """Numeric, categorical, boolean and missing features; scores, classes, class
    probabilities and regression predictions; labels on most events."""
    rng = random.Random(seed)
    batch = EventBatch()
    for i in range(n):
        s = shift if i > n // 2 else 0.0
        features = {"x": rng.gauss(s, 1.0), "c": rng.choice("abcz" if s else "abcd"),
                    "gap": None if rng.random() < 0.1 + 0.3 * bool(s) else rng.random(),
                    "flag": rng.random() < 0.5}
        kind = i % 4
        prediction = [rng.random(), rng.choice(["cat", "dog"]),
                      {"cat": rng.random(), "dog": rng.random()}, rng.gauss(10.0, 2.0)][kind]
        label = ([int(rng.random() < 0.3 + 0.4 * bool(s)), "cat", "dog",
                  rng.gauss(10.0 + 3 * s, 2.0)][kind] if rng.random() < 0.7 else None)
        batch.append(f"m{kind}", "v1", features, prediction, start + i,
                     f"e{seed}-{i}", 1.7e9 + i, label)
    return batch


def _labels(n: int, seed: int) -> LabelBatch:
    batch = LabelBatch()
    for i in range(n):
        batch.append("m0", f"e{seed}-{i}", i % 3 == 0, 1.7e9 + i, i)
    return batch


def _bank(detector: str) -> DetectorBank:
    config = DetectorConfig(warmup=200, cooldown=50,
                            concept=ConceptSettings(detector=detector, warmup=100,
                                                    estimate=EstimateSettings(
                                                        calibration_labels=100, window=100)))
    bank = DetectorBank(config, join_labels=True)
    bank.update(_events(3000, seed=1))
    bank.update_labels(_labels(500, seed=1))
    return bank


def _wire(signals: list[DriftSignal]) -> bytes:
    return orjson.dumps([dataclasses.asdict(s) for s in signals])


def _classes(data: bytes) -> set[str]:
    return {name for name, _ in _items(data)[1]}


@pytest.mark.parametrize("detector", DETECTORS)
def test_a_decoded_bank_fires_byte_for_byte_where_the_original_fires(detector: str) -> None:
    bank = _bank(detector)
    data = encode(bank)
    copy = decode(data, DetectorBank)
    assert copy is not bank and encode(copy) == data  # the same state, the same bytes
    going_on = _events(4000, seed=2, shift=3.0, start=3000)
    expected = bank.update(going_on)
    assert {s.kind for s in expected} >= {"data_drift", "concept_drift"}
    assert _wire(copy.update(going_on)) == _wire(expected)
    later = _labels(2000, seed=2)
    assert _wire(copy.update_labels(later)) == _wire(bank.update_labels(later))


def test_every_class_a_bank_reaches_is_allowed_and_every_river_class_is_reached() -> None:
    reached: set[str] = set()
    for detector in DETECTORS:
        reached |= _classes(encode(_bank(detector)))
    # bench/state.py's streams: monitors calibrating, and past it (ADWIN, Page-Hinkley)
    for events in (1500, STEADY_EVENTS):
        data = encode(bank_for(0, models=2, events_per_model=events, seed=0))
        reached |= _classes(data)
        assert encode(decode(data, DetectorBank)) == data
    assert reached <= set(allowed_classes())
    river = {name for name in allowed_classes() if name.startswith("river")}
    assert river <= reached, f"allowed but never reached: {sorted(river - reached)}"
    assert {"detectors.bank.DetectorBank", "detectors.monitors.NumericMonitor",
            "detectors.monitors.CategoricalMonitor", "detectors.monitors.MissingMonitor",
            "detectors.concept_drift.LabelJoin", "detectors.concept_drift.OutcomeMonitor",
            "detectors.estimated.EstimatedPerformance", "detectors.estimated.IsotonicCalibration",
            "detectors.performance.ModelTask", "detectors.performance.TaskDecision",
            "detectors.performance.RealizedPerformance", "detectors.config.DetectorConfig",
            "river._river_rust.drift.AdaptiveWindowing"} <= reached


# --- payloads made by hand ------------------------------------------------------------

def _payload(shapes: list[Any], entries: list[Any], root: Any,
             version: int = codec.FORMAT_VERSION,
             fingerprint: str | None = None) -> bytes:
    """A payload made by hand: each entry is ``[index into shapes, values]``, written as
    the encoder does, the first entry of a shape with the shape whole (so shapes are
    numbered in the order their first entries come)."""
    header = {"version": version, "fingerprint": fingerprint or codec.fingerprint()}
    given: set[int] = set()
    items = []
    for shape, values in entries:
        first = shape not in given and 0 <= shape < len(shapes)
        items.append([shapes[shape] if first else shape, values])
        given.add(shape)
    return codec.MAGIC + b"".join(msgpack.packb(x, use_bin_type=True)
                                  for x in (header, *items, [None, root]))


def _items(data: bytes) -> tuple[dict[str, Any], list[Any], list[Any], Any]:
    """``_payload``'s header, shapes, entries and root read back from a payload."""
    items = list(msgpack.Unpacker(io.BytesIO(data[len(codec.MAGIC):]), raw=False,
                                  strict_map_key=False))
    shapes: list[Any] = []
    entries = []
    for shape, values in items[1:-1]:
        if type(shape) is list:
            shapes.append(shape)
            shape = len(shapes) - 1
        entries.append([shape, values])
    assert items[-1][0] is None
    return items[0], shapes, entries, items[-1][1]


def _ext(code: int, value: Any) -> msgpack.ExtType:
    return msgpack.ExtType(code, msgpack.packb(value, use_bin_type=True))


BLOCKS = [["detectors.monitors.BlockMeans", ["size", "_carry"]]]


def _blocks(dtype: str, shape: list[int], data: bytes) -> bytes:
    return _payload(BLOCKS, [[0, [5, _ext(6, [dtype, shape, data])]]], _ext(8, 0))


def test_a_payload_made_by_hand_decodes_to_its_objects() -> None:
    blocks = decode(_blocks("<f8", [2], np.array([1.5, 2.5]).tobytes()), BlockMeans)
    assert blocks.size == 5 and blocks._carry.tolist() == [1.5, 2.5]
    assert blocks.feed([3.5, 4.5, 5.5]) == ([3.5], 2)


@pytest.mark.parametrize(("payload", "reason", "says"), [
    (_blocks("<c16", [1], b"x" * 16), "schema", "dtype '<c16' is not allowed"),
    (_blocks("|O", [1], b"x" * 8), "schema", "dtype '|O' is not allowed"),
    (_blocks("<f8", [3], b"x" * 16), "schema", "does not fit 16 bytes"),
    (_blocks("<f8", [-2], b""), "schema", "bad array shape"),
    (_payload([["os.system", []]], [[0, []]], _ext(8, 0)), "schema", "'os.system' is not allowed"),
    (_payload([["builtins.eval", []]], [[0, []]], None), "schema", "not allowed"),
    (_payload([["detectors.monitors.BlockMeans", ["size", "__class__"]]], [[0, [5, None]]],
              None), "schema", "bad field names"),
    (_payload([["detectors.monitors.BlockMeans", ["size", "extra"]]], [[0, [5, None]]], None),
     "schema", "not slots of the class"),
    (_payload(BLOCKS, [[0, [5, None]], [1, [5, None]]], _ext(8, 0)), "schema",
     "bad object entry"),  # shape 1 was never given
    (_payload(BLOCKS, [[0, [5, None]]], _ext(8, 0))[:-3], "truncated", "ends early"),
    (_payload(BLOCKS, [[0, [5]]], _ext(8, 0)), "schema", "1 values for 2 fields"),
    (_payload(BLOCKS, [], _ext(8, 0)), "schema", "before it is defined"),
    (_payload(BLOCKS, [], None, version=codec.FORMAT_VERSION + 1), "format",
     f"codec version {codec.FORMAT_VERSION + 1}"),
    (_payload(BLOCKS, [], None, fingerprint="0" * 64), "format", "fingerprint differs"),
    (_payload(BLOCKS, [[0, [5, _ext(10, "system")]]], _ext(8, 0)), "schema",
     "has no method system"),
    (_payload(BLOCKS, [[0, [5, [_ext(10, "feed")]]]], _ext(8, 0)), "schema",
     "an own method inside a container"),
])
def test_a_payload_that_breaks_the_schema_is_refused(payload: bytes, reason: str,
                                                     says: str) -> None:
    with pytest.raises(CodecError) as exc:
        decode(payload, BlockMeans)
    assert exc.value.reason == reason and says in str(exc.value)


@pytest.mark.parametrize("array", [
    np.arange(200, dtype=np.int64) % 7,  # a calibration's bins: one byte each
    np.arange(-100, 100, dtype=np.int64),
    np.arange(70_000, dtype=np.int64) - 35_000,
    np.array([0, 2**40] * 40, dtype=np.int64),  # fits no narrower type: kept as it is
    np.arange(100, dtype=np.uint32) * 500,
    np.arange(100, dtype=np.int16).reshape(10, 10),
    np.random.default_rng(0).random(1001) < 0.05,  # a missing-rate window
    np.ones((3, 30), dtype=bool),
    np.array([2, 7, 9], dtype=np.int64),  # too short to narrow
])
def test_integer_and_bool_arrays_stored_narrower_come_back_the_same(array: Any) -> None:
    blocks = BlockMeans(5)
    blocks._carry = array
    data = encode(blocks)
    back = decode(data, BlockMeans)._carry
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes() and back.flags.writeable
    assert encode(decode(data, BlockMeans)) == data
    if array.size >= 64 and np.abs(array).max() < 2**31:  # the point: fewer bytes
        blocks._carry = array[:0]
        assert len(data) - len(encode(blocks)) < array.nbytes


def test_the_garbage_collector_is_left_as_it_was_after_encode_and_decode() -> None:
    """Paused while a bank is walked or built (its full passes would walk every object of
    the process), on again after, whether the payload decoded or not."""
    import contextlib
    import gc

    data = encode(_bank("adwin"))
    assert gc.isenabled()
    for payload in (data, data[:-3], b"SDDC" + b"\x00" * 10):
        with contextlib.suppress(CodecError):
            decode(payload, DetectorBank)
        assert gc.isenabled()
    gc.disable()
    try:
        decode(data, DetectorBank)
        encode(DetectorBank())
        assert not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()


def test_a_decoded_list_of_strings_holds_each_distinct_string_once() -> None:
    """A categorical window of 1,000 values of a few categories: decoded, equal strings are
    one object (memory), and the list is equal to the original (detection)."""
    blocks = BlockMeans(5)
    window = ["".join(("v", str(i % 3))) for i in range(1000)]  # 1,000 objects
    mixed = [*window[:30], None, 7, *window[:30]]  # strings first, then other items
    blocks._carry = [window, tuple(window), {"w": window[:20]}, ["a", "b"], mixed]
    copy = decode(encode(blocks), BlockMeans)
    assert copy._carry == blocks._carry
    assert len({id(v) for v in copy._carry[0]}) == 3
    assert len({id(v) for v in copy._carry[1]}) == 3  # a tuple is a list inside its ext
    assert {id(v) for v in copy._carry[2]["w"]} <= {id(v) for v in copy._carry[0]}
    assert {id(v) for v in copy._carry[4] if type(v) is str} <= {id(v) for v in copy._carry[0]}
    # The same objects a live categorical window holds (it interns its values too).
    assert copy._carry[0][0] is sys.intern("".join(("v", "0")))


def _narrowed(dtype: str, shape: list[int], data: bytes, stored: Any) -> bytes:
    return _payload(BLOCKS, [[0, [5, _ext(6, [dtype, shape, data, stored])]]], _ext(8, 0))


@pytest.mark.parametrize(("payload", "says"), [
    (_narrowed("<i8", [4], b"\x01" * 4, "<f4"), "stored as '<f4'"),
    (_narrowed("<i2", [4], b"\x01" * 16, "<i8"), "stored as '<i8'"),  # wider, not narrower
    (_narrowed("<f8", [4], b"\x01" * 4, "|u1"), "stored as '|u1'"),
    (_narrowed("<i8", [4], b"\x01" * 5, "|u1"), "does not fit 5 bytes"),
    (_narrowed("|b1", [20], b"\x01" * 2, "bits"), "20 bools do not fit 2 bytes"),
    (_narrowed("<i8", [20], b"\x01" * 3, "bits"), "stored as 'bits'"),
    (_narrowed("<i8", [-1], b"", "|u1"), "bad narrowed array"),
    (_narrowed("|O", [1], b"x", "|u1"), "bad narrowed array"),
    (_narrowed("<f8", [100], b"\x01" * 799, "shuffle"), "100 floats do not fit 799 bytes"),
    (_narrowed("<i8", [100], b"\x01" * 800, "shuffle"), "stored as 'shuffle'"),
])
def test_a_narrowed_array_that_does_not_fit_its_claims_is_refused(payload: bytes,
                                                                  says: str) -> None:
    with pytest.raises(CodecError, match=says) as exc:
        decode(payload, BlockMeans)
    assert exc.value.reason == "schema"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_array_is_stored_byte_shuffled_and_read_back_bit_for_bit(dtype: Any) -> None:
    """Every item's first byte, then every item's second, ... (``codec._shuffled``):
    NaN payloads, signed zeros, infinities and subnormals come back as they were."""
    rng = np.random.default_rng(5)
    values = rng.normal(100.0, 3.0, size=(3, 40)).astype(dtype)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, np.finfo(dtype).smallest_subnormal,
                        np.finfo(dtype).max], dtype=dtype)
    values.reshape(-1)[:special.size] = special
    values.reshape(-1)[-1] = np.frombuffer(b"\x01\x00\xc0\x7f" if dtype is np.float32
                                           else b"\x01" + b"\x00" * 5 + b"\xf8\x7f",
                                           dtype)[0]  # a NaN with a payload
    blocks = BlockMeans(5)
    blocks._carry = [values, values[0, :10].copy()]  # 120 items: shuffled; 10: as they are
    data = encode(blocks)
    carry = next(v for v in _items(data)[2][0][1] if type(v) is list)  # the BlockMeans' _carry
    stored = [msgpack.unpackb(x.data) for x in carry]
    assert [len(v) for v in stored] == [4, 3] and stored[0][3] == "shuffle"
    assert stored[0][2] == values.view(np.uint8).reshape(120, -1).T.tobytes()
    copy = decode(data, BlockMeans)._carry
    unsigned = np.uint32 if dtype is np.float32 else np.uint64
    for got, want in zip(copy, blocks._carry, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert (got.view(unsigned) == want.view(unsigned)).all()
        got[0] = 1.0  # writable, not a view of the payload


def test_the_wrong_root_type_and_methods_that_do_not_exist_are_refused() -> None:
    good = _blocks("<f8", [0], b"")
    with pytest.raises(CodecError, match="not a DetectorBank"):
        decode(good, DetectorBank)
    with pytest.raises(CodecError, match="has no method system"):
        decode(_payload(BLOCKS, [[0, [5, None]], [0, [5, _ext(9, [0, "system"])]]],
                        _ext(8, 1)), BlockMeans)
    with pytest.raises(CodecError, match=r"bad method name .__init__."):
        decode(_payload(BLOCKS, [[0, [5, None]], [0, [5, _ext(9, [0, "__init__"])]]],
                        _ext(8, 1)), BlockMeans)


def _edit_adwin_core(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    """The payload with the state bytes of the first compiled ADWIN core changed: ``edit``
    gets its fields (``codec.adwin_fields``) and returns new bytes, or None to have the
    edited fields written back (``codec.adwin_bytes``)."""
    _, shapes, entries, root = _items(data)
    core = next(i for i, (name, _) in enumerate(shapes) if name.endswith("AdaptiveWindowing"))
    assert shapes[core][1] == ["state"]
    entry = next(e for e in entries if e[0] == core)
    fields = codec.adwin_fields(entry[1][0])
    made = edit(fields)
    entry[1][0] = codec.adwin_bytes(fields) if made is None else made
    return _payload(shapes, entries, root)


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda fields: fields.__setitem__(field, value)


def _rows_of_another_size(fields: dict[str, Any]) -> bytes:
    """Rows of max_buckets + 2 columns: bytes of another layout than the head says."""
    wider = dict(fields, max_buckets=fields["max_buckets"] + 1,
                 totals=np.pad(fields["totals"], ((0, 0), (0, 1))),
                 variances=np.pad(fields["variances"], ((0, 0), (0, 1))))
    raw = bytearray(codec.adwin_bytes(wider))
    raw[8 + 4:8 + 4 + 8] = struct.pack("<Q", fields["max_buckets"])  # the head's own value
    return bytes(raw)


@pytest.mark.parametrize(("edit", "says"), [
    (_set("clock", 0), "out of range"),  # a modulo by zero in the compiled code
    (_set("delta", 1.5), "out of range"),
    (_set("delta", math.nan), "out of range"),
    (_set("width", 1e9), "do not add up to its width"),
    (lambda f: f.update(currents=[], totals=f["totals"][:0], variances=f["variances"][:0]),
     "out of range"),
    (lambda f: f["currents"].__setitem__(0, 99), "bad bucket rows"),  # at most max_buckets
    (_rows_of_another_size, "bad bucket rows|another layout"),
    (lambda f: codec.adwin_bytes(f)[:-1], "another layout"),  # truncated
    (lambda f: codec.adwin_bytes(f) + b"\x00", "another layout"),  # bytes after it
    (lambda f: b"\x00" * 40, "shorter than its layout"),
    (lambda f: "not bytes", "shorter than its layout"),
])
def test_a_compiled_adwin_core_gets_only_a_state_it_could_have_made(
        edit: Callable[[dict[str, Any]], Any], says: str) -> None:
    data = encode(_bank("adwin"))
    assert decode(_edit_adwin_core(data, _set("tick", 5)), DetectorBank)  # in range: accepted
    with pytest.raises(CodecError, match=says) as exc:
        decode(_edit_adwin_core(data, edit), DetectorBank)
    assert exc.value.reason == "schema"


def _huge_buckets(fields: dict[str, Any]) -> bytes:
    raw = bytearray(codec.adwin_bytes(fields))
    raw[12:20] = struct.pack("<Q", 10**9)  # max_buckets, after delta (f64) and clock (i32)
    return bytes(raw)


def test_a_core_with_more_buckets_than_allowed_is_refused_before_its_rows_are_read() -> None:
    with pytest.raises(CodecError, match="out of range") as exc:
        decode(_edit_adwin_core(encode(_bank("adwin")), _huge_buckets), DetectorBank)
    assert exc.value.reason == "schema"
    # No row layout of 10^9 columns was made.
    assert max(codec._ROW_DTYPES, default=0) <= 1001
    assert max((size for size, _ in codec._ROW_MARKS), default=0) <= 1001


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    exploit = pickle.dumps(_Exploit(marker))
    for data in (exploit, codec.MAGIC + exploit):
        with pytest.raises(CodecError):
            decode(data, DetectorBank)
    assert not marker.exists()


def test_truncated_or_changed_bytes_give_a_codec_error_and_nothing_else() -> None:
    data = encode(_bank("hddm_w"))
    with pytest.raises(CodecError) as exc:
        decode(data[: len(data) // 2], DetectorBank)
    assert exc.value.reason == "truncated"
    with pytest.raises(CodecError, match="bytes after the payload"):
        decode(data + b"\x00", DetectorBank)
    rng = random.Random(11)
    small = encode(DetectorBank())
    outcomes: dict[str, int] = {}
    for trial in range(3000):
        base = data if trial % 10 == 0 else small
        blob = bytearray(base)
        how = trial % 5
        if how == 0:
            blob = bytearray(rng.randbytes(rng.randrange(1, 400)))
            if trial % 2:
                blob[:0] = codec.MAGIC
        elif how == 1:
            del blob[rng.randrange(len(blob)):]
        elif how == 2:
            for _ in range(rng.randrange(1, 4)):
                blob[rng.randrange(4, len(blob))] = rng.randrange(256)
        elif how == 3:
            at = rng.randrange(4, len(blob))
            blob[at:at] = rng.randbytes(rng.randrange(1, 9))
        else:
            at = rng.randrange(4, len(blob))
            del blob[at:at + rng.randrange(1, 9)]
        try:
            decode(bytes(blob), DetectorBank)
            outcome = "decoded"  # a changed float is still a valid state
        except CodecError as exc:
            outcome = exc.reason
        except BaseException as exc:  # the point: nothing else may escape
            pytest.fail(f"trial {trial}: {type(exc).__name__}: {exc}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert {"format", "truncated", "corrupt", "schema"} <= set(outcomes), outcomes


# --- what cannot be encoded fails when it is written ----------------------------------

class _NotAllowed:
    pass


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("change", "says"), [
    (lambda b: setattr(b, "extra", _NotAllowed()), "_NotAllowed is not an allowed class"),
    (lambda b: setattr(b, "extra", lambda: None), "function is not an allowed class"),
    (lambda b: setattr(b, "extra", print), "a method of a module"),
    (lambda b: setattr(b, "extra", np.array([object()])), "array of dtype object"),
    (lambda b: setattr(b, "extra", 2**70), "OverflowError"),
    (lambda b: setattr(b, "extra", b), "reference cycle through detectors.bank.DetectorBank"),
    (lambda b: (setattr(b, "a", []), setattr(b, "b", b.a)), "a list reached twice"),
    (lambda b: setattr(b, "extra", _nested(100)), "nested deeper than"),
])
def test_what_the_format_cannot_hold_fails_at_encode_time(change: Any, says: str) -> None:
    bank = DetectorBank()
    change(bank)
    with pytest.raises(CodecError, match=says) as exc:
        encode(bank)
    assert exc.value.reason == "unsupported"


def _seasonal_events(start: int, n: int, seed: int, shift: float = 0.0) -> EventBatch:
    rng = random.Random(seed)
    batch = EventBatch()
    for i in range(start, start + n):
        t = 60.0 * i
        load = 2.0 * np.sin(2 * np.pi * t / 86_400) + rng.gauss(0, 1) + (shift if i > 5000 else 0)
        batch.append("m", None, {"load": load, "zip": f"z{rng.randrange(3000)}"}, None, i,
                     time=t)
    return batch


@pytest.mark.parametrize("cut", [800, 2500, 4000])
def test_a_bank_mid_seasonal_warm_up_or_calibration_round_trips(cut: int) -> None:
    """Cut during the seasonal warm-up (a day is 1,440 events), during calibration and
    after it: the decoded bank fires where the original does, with the same bytes."""
    config = DetectorConfig(seasonality={"period": 86_400, "buckets": 24, "min_values": 20})
    bank = DetectorBank(config)
    bank.update(_seasonal_events(0, cut, seed=3))
    data = encode(bank)
    copy = decode(data, DetectorBank)
    assert encode(copy) == data
    classes = _classes(data)
    # The categorical warm-up (1,000 values) keeps its counts until its reference is
    # built, then frees them; the window of categories is held throughout.
    assert ("detectors.reference.SeenCategories" in classes) == (cut < 1000)
    assert "detectors.reference.CategoryWindow" in classes
    going_on = _seasonal_events(cut, 9000 - cut, seed=4, shift=2.0)
    expected = bank.update(going_on)
    assert [s.feature for s in expected] == ["load"]
    assert _wire(copy.update(going_on)) == _wire(expected)


def test_a_river_whose_adwin_layout_changed_is_refused_before_a_snapshot_is_written() -> None:
    """A snapshot stores the core's bytes as they are; the first core a process encodes
    is parsed, so bytes of another layout (a river that changed it) are refused then."""
    adwin = Adwin(AdwinSettings())
    for i in range(500):
        adwin.update(float(i % 2))
    core = adwin._core
    data = encode(adwin)  # this river's layout: accepted

    class Changed:
        def __getstate__(self) -> bytes:
            return bytes(core.__getstate__()) + b"\x00"  # one field more

    with pytest.raises(CodecError, match="layout") as exc:
        codec._AdaptiveWindowing().fields(Changed())
    assert exc.value.reason == "unsupported"
    assert decode(data, Adwin).width == adwin.width


@pytest.mark.parametrize("state", [None, 5, "x", [1.0]])
def test_an_adwin_whose_state_is_not_a_river_core_is_refused(state: Any) -> None:
    """An ``Adwin`` is one entry, its river core's state bytes (``codec._Adwin``)."""
    adwin = Adwin(AdwinSettings())
    adwin.update(1.0)
    data = encode(adwin)
    _, shapes, entries, root = _items(data)
    assert root == msgpack.ExtType(8, msgpack.packb(0))  # the root: the Adwin, entry 0
    assert shapes == [["detectors.monitors.Adwin", ["state"]]]
    assert _payload(shapes, entries, root) == data
    assert decode(data, Adwin).width == adwin.width
    entries[0][1][0] = state
    with pytest.raises(CodecError, match="shorter than its layout") as exc:
        decode(_payload(shapes, entries, root), Adwin)
    assert exc.value.reason == "schema"


@pytest.mark.parametrize("core", [None, 5, "x", [1.0]])
def test_an_adwin_takes_only_a_river_core_as_its_state(core: Any) -> None:
    with pytest.raises(ValueError, match="not one river ADWIN core"):
        Adwin.__new__(Adwin).__setstate__({"_core": core})
