"""detectors.reference_file: series found in a JSONL file of events start from the file's
reference (no warm-up), the others warm up, and a broken file is refused by path and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import DetectorBank, DetectorConfig, EventBatch, detect
from detectors.codec import CodecError, decode, encode
from detectors.reference_file import load_reference_file
from stream.config import ConfigError, load_config


def _write(path: Path, events: list[dict[str, Any]]) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def _reference_events(n: int = 5000, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"event_id": f"r{i}", "model_id": "m",
             "features": {"income": float(rng.normal(100, 15)),
                          "country": str(rng.choice(["DE", "FR", "ES"], p=[0.5, 0.3, 0.2]))},
             "prediction": float(rng.random())} for i in range(n)]


@pytest.fixture
def reference(tmp_path: Path) -> str:
    return _write(tmp_path / "reference.jsonl", _reference_events())


def _live(n: int, shift_at: int, seed: int = 1, **shift: float) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        moved = i >= shift_at
        out.append({"model_id": "m", "features": {
            "income": float(rng.normal(100 + (shift.get("income", 0) if moved else 0), 15)),
            "age": float(rng.normal(40 + (shift.get("age", 0) if moved else 0), 9)),
            "country": str(rng.choice(["DE", "FR", "ES"], p=[0.5, 0.3, 0.2]))},
            "prediction": float(rng.random() + (shift.get("prediction", 0) if moved else 0))})
    return out


def test_series_in_the_file_detect_from_the_first_events(reference: str) -> None:
    events = _live(800, shift_at=100, income=15.0)
    assert detect(events, DetectorConfig()) == []  # the warm-up (1,000 values) is not over
    found = detect(events, DetectorConfig(reference_file=reference))
    assert [(s.feature, s.kind) for s in found] == [("income", "data_drift")]
    # The anchored location test, with the provisional dependence factor of the first
    # calibration stretch (the change detectors wait for the calibrated one).
    assert 100 <= found[0].position < 500
    assert found[0].stats["before"]["n"] == 5000  # the whole file, summarized


def test_series_not_in_the_file_warm_up_as_usual(reference: str) -> None:
    events = _live(3000, shift_at=100, age=9.0)
    config = DetectorConfig(reference_file=reference)
    assert detect(events, config) == detect(events, DetectorConfig())
    other_model = [{**e, "model_id": "other"} for e in _live(800, shift_at=100, income=15.0)]
    assert detect(other_model, config) == []  # the file's references are per model


def test_predictions_and_categories_take_their_reference_from_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ref = [{"event_id": f"r{i}", "model_id": "m", "features": {
        "country": str(rng.choice(["DE", "FR", "ES"], p=[0.5, 0.3, 0.2]))},
        "prediction": {"yes": (p := float(rng.random())), "no": 1 - p}} for i in range(3000)]
    config = DetectorConfig(reference_file=_write(tmp_path / "r.jsonl", ref))
    live = [{"model_id": "m", "features": {"country": "BR" if i >= 100 else "DE"},
             "prediction": {"yes": 0.99, "no": 0.01} if i >= 100 else {"yes": 0.5, "no": 0.5}}
            for i in range(600)]
    found = {(s.feature, s.kind) for s in detect(live, config)}
    assert ("country", "data_drift") in found
    assert ("prediction.confidence", "prediction_drift") in found


def test_a_series_with_few_values_in_the_file_warms_up(tmp_path: Path) -> None:
    ref = [{"event_id": str(i), "model_id": "m", "features": {"income": 100.0 + i}}
           for i in range(20)]
    config = DetectorConfig(reference_file=_write(tmp_path / "r.jsonl", ref))
    events = _live(800, shift_at=100, income=15.0)
    assert detect(events, config) == []


@pytest.mark.parametrize(("line", "message"), [
    (b"{not json", "line 3: not JSON"),
    (b"[1, 2]", "line 3: expected a JSON object, got list"),
    (b'{"event_id": "x", "features": {}}', "line 3: model_id: missing"),
    (b'{"event_id": "x", "model_id": "", "features": {}}',
     "line 3: model_id: expected a non-empty string"),
    (b'{"event_id": "x", "model_id": "m", "features": {"a": {"b": 1}}}',
     "line 3: features.a: expected number, string, boolean or null, got object"),
    (b'{"event_id": "x", "model_id": "m", "features": {"a": 1e999}}',
     "line 3: not JSON (number is infinity"),
    (b'{"event_id": "x", "model_id": "m", "features": {}, "prediction": [0.1]}',
     "line 3: prediction: expected number, string, object of class probabilities or null"),
])
def test_a_broken_line_is_refused_with_the_key_path_and_line(tmp_path: Path, line: bytes,
                                                             message: str) -> None:
    good = orjson.dumps(_reference_events(1)[0])
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good + b"\n\n" + line + b"\n" + good + b"\n")  # the blank line 2 is skipped
    with pytest.raises(ConfigError) as err:
        load_config(overrides={"detectors.reference_file": str(path)})
    assert str(err.value).startswith(f"detectors.reference_file: {path} {message}"), err.value


def test_a_missing_or_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"detectors\.reference_file: .*nope\.jsonl: cannot read"):
        load_config(overrides={"detectors.reference_file": str(tmp_path / "nope.jsonl")})
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match=r"empty\.jsonl: no events"):
        load_config(overrides={"detectors.reference_file": str(tmp_path / "empty.jsonl")})


def _batches(events: list[dict[str, Any]], size: int) -> list[EventBatch]:
    out = []
    for start in range(0, len(events), size):
        batch = EventBatch()
        for i in range(start, min(len(events), start + size)):
            e = events[i]
            batch.append(e["model_id"], None, e["features"], e.get("prediction"), i)
        out.append(batch)
    return out


def test_restored_bank_reads_the_file_again_and_refuses_a_changed_one(
        tmp_path: Path, reference: str) -> None:
    config = DetectorConfig(reference_file=reference)
    batches = _batches(_live(4000, shift_at=2000, income=10.0, age=9.0), 500)
    bank = DetectorBank(config)
    expected = [s for b in batches for s in bank.update(b)]
    assert {s.feature for s in expected} >= {"income", "age"}

    bank = DetectorBank(config)
    got = [s for b in batches[:3] for s in bank.update(b)]
    snapshot = encode(bank)
    assert len(snapshot) < 200_000  # the file's values are not in the state
    restored = decode(snapshot, DetectorBank)
    got += [s for b in batches[3:] for s in restored.update(b)]
    assert got == expected

    Path(reference).write_bytes(Path(reference).read_bytes() + b"\n\n")
    with pytest.raises(CodecError, match="changed since this detector state was saved") as exc:
        decode(snapshot, DetectorBank)
    assert exc.value.reason == "config"


def test_the_file_is_parsed_once_per_content(reference: str) -> None:
    assert load_reference_file(reference) is load_reference_file(reference)
