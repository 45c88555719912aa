"""``CategoryWindow`` (the categorical monitor's recent values as codes) under adversarial
input: it must read exactly as the list of str it replaced, whatever the batches, the
window size, the number of distinct categories (code dtype up and down, stale names
dropped and codes remapped) or the strings themselves; monitors and banks built on it
must fire the same alerts for any batch cuts and any snapshot point.

Past ``MAX_CODES`` categories a window is a list again: a name index for ids or free
text cost as much as the list, and rebuilding it each update made one-value updates of
such windows ~20x slower (found by these tests on the first version)."""

from __future__ import annotations

import copy
import json
import random
import sys
from typing import Any

import numpy as np
import pytest

from detectors import codec
from detectors.attribution import rank_features, values_until
from detectors.bank import DetectorBank, EventBatch
from detectors.config import CategoricalSettings, DetectorConfig
from detectors.monitors import CategoricalMonitor, Policy
from detectors.reference import MAX_CODES, CategoryWindow

ODD = ["", "\ud800", "é", "e\u0301", "😀", "\x00", " ", "x" * 100_000, "DE", "de"]
#: What events can bring (a lone surrogate is refused at decoding, and by the codec).
EVENT_ODD = [v for v in ODD if v != "\ud800"]


def _model_run(values: list[Any], size: int, cuts: list[int]) -> CategoryWindow:
    """Feed ``values`` cut at ``cuts`` and check each window against a plain list."""
    plain: list[Any] = []
    window = CategoryWindow()
    at = 0
    for step in cuts:
        chunk = values[at:at + step]
        before, held = window, list(window)
        window = window.then(chunk, size)
        assert list(before) == held  # a window read before an update keeps what it held
        plain = (plain + chunk)[-size:] if size > 0 else []
        assert list(window) == plain and len(window) == len(plain)
        if window.values is None:  # coded: one byte a value into at most MAX_CODES names
            names = len(window.names)
            assert int(window.codes.max(initial=0)) < max(names, 1) <= MAX_CODES
            assert window.codes.dtype == np.uint8
        else:  # a list: nothing else held
            assert window.names == () and window.codes.size == 0
        at += step
    assert at >= len(values)
    return window


def _cuts(rng: random.Random, n: int, biggest: int) -> list[int]:
    cuts, total = [], 0
    while total < n:
        step = rng.choice([0, 1, rng.randrange(1, biggest)])
        cuts.append(step)
        total += step
    return cuts


@pytest.mark.parametrize("size", [0, 1, 2, 64, 65, 300, 10**9])
def test_a_window_reads_as_the_list_it_replaced_for_any_size_and_cuts(size: int) -> None:
    rng = random.Random(size % 1000)
    values = [rng.choice(ODD) if rng.random() < 0.3 else f"v{int(rng.expovariate(1 / 80))}"
              for _ in range(3000)]
    values += [f"u{i}" for i in range(400)] + ["a", "b"] * 300  # names up, then dropped
    window = _model_run(values, size, _cuts(rng, len(values), 200))
    assert window == CategoryWindow().then(values, size)  # one batch: the same values


def test_a_window_becomes_a_list_past_max_codes_and_coded_again_when_few() -> None:
    size = 70_000
    values = [f"u{i}" for i in range(140_000)] + [f"s{i % 5}" for i in range(160_000)]
    seen = set()
    rng = random.Random(2)
    plain: list[str] = []
    window = CategoryWindow()
    at = 0
    while at < len(values):
        step = rng.randrange(1, 30_000)
        chunk = values[at:at + step]
        window = window.then(chunk, size)
        plain = (plain + chunk)[-size:]
        seen.add("list" if window.values is not None else "codes")
        at += step
        assert window[-1] == plain[-1] and window[0] == plain[0] and len(window) == len(plain)
    assert list(window) == plain
    assert seen == {"list", "codes"}
    assert window.values is None and len(window.names) <= MAX_CODES


def test_indexing_and_slicing_match_a_list() -> None:
    values = ["a", "b", "", "c", "a", "😀", "b"]
    window = CategoryWindow().then(values, 100)
    n = len(values)
    for i in range(-n - 3, n + 3):
        if -n <= i < n:
            assert window[i] == values[i]
            assert window[np.int64(i)] == values[i]  # type: ignore[call-overload]
        else:
            with pytest.raises(IndexError):
                window[i]
    bounds = [None, -n - 5, -3, -1, 0, 1, 3, n, n + 5]
    for start in bounds:
        for stop in bounds:
            for step in [None, 1, 2, 3, -1, -2, n + 1]:
                key = slice(start, stop, step)
                assert window[key] == values[key], key
    with pytest.raises(ValueError):
        window[::0]
    assert list(reversed(window)) == values[::-1]
    assert window.index("c") == 3 and window.count("a") == 2 and "😀" in window
    assert "z" not in window


def test_equality_with_lists_tuples_and_windows_cut_differently() -> None:
    values = [f"v{i % 300}" for i in range(1000)]
    one = CategoryWindow().then(values, 500)
    other = CategoryWindow()
    for i in range(0, 1000, 7):
        other = other.then(values[i:i + 7], 500)
    assert one == other
    assert not one != other  # noqa: SIM202 (__ne__ from __eq__)
    assert one == values[-500:] and values[-500:] == one
    assert one != values[-499:] and one != values[-500:][::-1]
    assert (one == "v0") is False and one != 5
    assert one == tuple(values[-500:])  # unlike the list it replaced (a list != a tuple)
    assert CategoryWindow() == [] and CategoryWindow().then(["a"], 0) == []
    with pytest.raises(TypeError):
        hash(one)


def test_odd_strings_and_str_subclasses_come_back_as_given() -> None:
    window = CategoryWindow().then(ODD, 100)
    assert list(window) == ODD
    assert [len(v) for v in window] == [len(v) for v in ODD]
    mixed = CategoryWindow().then([np.str_("a"), "a", "b"], 10)
    assert mixed == ["a", "a", "b"]
    back = codec.decode(codec.encode(CategoryWindow().then(EVENT_ODD, 100)), CategoryWindow)
    assert back == EVENT_ODD and back.codes.dtype == np.uint8


@pytest.mark.parametrize("kinds", [20, 300])
def test_a_window_survives_copy_and_codec_coded_or_listed(kinds: int) -> None:
    names = [f"u{i}" for i in range(kinds)]
    window = CategoryWindow().then(names, 300).then(names[:100], 300)
    assert (window.values is not None) == (kinds > MAX_CODES)
    back = codec.decode(codec.encode(window), CategoryWindow)
    assert back == window and back.names == window.names and back.values == window.values
    assert back.unchecked == window.unchecked
    assert back.then(["new"], 300) == window.then(["new"], 300)
    assert copy.deepcopy(window) == window


def test_rank_features_reads_a_window_as_its_list() -> None:
    rng = random.Random(4)
    values = [rng.choice("abc") for _ in range(600)] + [rng.choice("cde") for _ in range(400)]
    window = CategoryWindow().then(values, 1000)
    assert rank_features({"c": window}, 200) == rank_features({"c": list(values)}, 200)
    assert values_until(window, ["x", None, 3.0, "y"], 3, 1000) == [*values, "x", "y"][-1000:]


def _monitor_stream(seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for regime in range(6):
        k = [4, 300, 40][regime % 3]
        for _ in range(1500):
            if regime % 2:
                out.append(f"c{min(int(rng.expovariate(3 / k)), k)}")
            else:
                odd = rng.random() >= 0.9
                out.append(rng.choice(EVENT_ODD) if odd else f"c{rng.randrange(k)}")
    return out


def _detections(m: CategoricalMonitor, values: list[str], cuts: list[int],
                snapshot: bool = False) -> tuple[list[str], CategoricalMonitor]:
    out, at = [], 0
    for step in cuts:
        chunk = values[at:at + step]
        out += [json.dumps([d.position, d.detector, d.stats], sort_keys=True)
                for d in m.update(chunk, range(at, at + len(chunk)))]
        at += step
        out.append(json.dumps(m.scores(), sort_keys=True))
        if snapshot:
            data = codec.encode(m)
            m = codec.decode(data, CategoricalMonitor)
            assert codec.encode(m) == data
    return out, m


@pytest.mark.parametrize("window", [1, 10, 250, 1000])
def test_a_categorical_monitor_fires_the_same_for_any_cuts_and_snapshots(window: int) -> None:
    values = _monitor_stream(window)

    def monitor() -> CategoricalMonitor:
        return CategoricalMonitor(CategoricalSettings(), warmup=300, warmup_after_alert=120,
                                  recent_window=window, policy=Policy())

    whole, m = _detections(monitor(), values, [len(values)])
    hits = [h for h in whole if h.startswith("[")]
    assert len(hits) >= 2  # warm-ups after alerts are exercised
    rng = random.Random(window)
    for _ in range(2):
        cuts = _cuts(rng, len(values), 700)
        got, other = _detections(monitor(), values, cuts, snapshot=True)
        assert [h for h in got if h.startswith("[")] == hits
        assert other._recent == m._recent
        assert (other._counter is None) == (other.reference is not None)


def _bank_events(seed: int) -> list[tuple[str, dict[str, Any], Any]]:
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any], Any]] = []
    for i in range(9000):
        shift = (i // 3000) % 2 == 1
        a = rng.choices("pqr", [6, 3, 1] if not shift else [1, 3, 6])[0]
        region = rng.choice(["eu", "us"])
        pred = "yes" if (a == "r" or rng.random() < 0.3) else "no"
        features = {"a": a, "b": rng.choice(["s", "t"]), "h": f"h{rng.randrange(400)}",
                    "region": region, "n": rng.gauss(0, 1),
                    "k": float(i) if i < 8 else rng.choice(["x", "y", "z"])}
        out.append(("m", features, pred))
    return out


def _bank_alerts(events: list[tuple[str, dict[str, Any], Any]], size: int,
                 snapshot_every: int = 0) -> list[str]:
    bank = DetectorBank(DetectorConfig(warmup=600, rebaseline_warmup=300, recent_window=400,
                                       segments=["region"]))
    out = []
    for n, start in enumerate(range(0, len(events), size)):
        batch = EventBatch()
        for i in range(start, min(start + size, len(events))):
            model, features, pred = events[i]
            batch.append(model, None, features, pred, i)
        out += [json.dumps([s.position, s.model_id, s.feature, s.kind, s.detector, s.segment,
                            s.stats], sort_keys=True) for s in bank.update(batch)]
        if snapshot_every and n % snapshot_every == 0:
            bank = codec.decode(codec.encode(bank), DetectorBank)
    out.append(json.dumps(bank.drift_scores(), sort_keys=True))
    return out


def test_prediction_drift_attribution_and_segments_are_the_same_for_any_batches() -> None:
    events = _bank_events(11)
    base = _bank_alerts(events, 500)
    assert any('"prediction_drift"' in a and '"attribution"' in a for a in base)
    assert any('["region", "eu"]' in a or '["region", "us"]' in a for a in base)
    for size in (1, 7, 5000):
        assert _bank_alerts(events, size) == base, size
    assert _bank_alerts(events, 97, snapshot_every=1) == base


def test_a_window_of_distinct_values_holds_its_own_strings_and_no_name_index() -> None:
    """Ids or free text: a list, as before the codes (no names, no codes, no index to
    rebuild on each update), the values interned."""
    window = CategoryWindow()
    for start in range(0, 20_000, 100):
        window = window.then([f"id{i}" for i in range(start, start + 100)], 1000)
        assert window.values is None or (window.names == () and window.codes.size == 0)
    assert window.values is not None and len(window.values) == 1000
    assert window.values[-1] is sys.intern("id19999")


def test_a_feature_whose_kind_flips_in_an_attributed_batch_does_not_break_the_batch() -> None:
    """Attribution handed the provisional categorical monitor's window, taken when the
    batch began, to the numeric monitor the vote switched to: stored_values raised
    ValueError and the whole batch went to the dead-letter topic, its alerts lost (found
    by these tests; older than the codes). ``held_before`` now checks the monitor."""
    rng = random.Random(0)
    bank = DetectorBank(DetectorConfig(warmup=500))

    def feed(lo: int, hi: int) -> list[Any]:
        batch = EventBatch()
        for i in range(lo, hi):
            features: dict[str, Any] = {"a": rng.choice("pq")}
            if i >= 7000:  # a late feature: strings first, then numbers decide its kind
                features["k"] = rng.choice(["x", "y"]) if i < 7005 else rng.random()
            pred = "yes" if rng.random() < (0.8 if i >= 8000 else 0.2) else "no"
            batch.append("m", None, features, pred, i)
        return bank.update(batch)

    feed(0, 7003)  # k's provisional (categorical) monitor holds "x"/"y"
    signals = feed(7003, 12000)  # k turns numeric; the prediction drifts at 8000
    assert any(s.kind == "prediction_drift" for s in signals)
