"""`streamdrift simulate` and `streamdrift replay` on files: reproducible, byte for byte."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main
from tests.processes import isolated_process_state  # noqa: F401 (autouse)


def simulate(path: Path, *args: str) -> bytes:
    assert main(["simulate", "--output", str(path), *args]) == 0
    return path.read_bytes()


@pytest.fixture
def fast_config(tmp_path: Path) -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text("kafka:\n  batch_size: 500\ndetectors:\n  warmup: 200\n", encoding="utf-8")
    return path


DRIFTING = ["--events", "4000", "--drift-at", "2000", "--drift-feature", "balance",
            "--shift", "1.5"]


def test_simulate_is_reproducible_by_seed(tmp_path: Path) -> None:
    first = simulate(tmp_path / "a.jsonl", "--events", "2000", "--seed", "7")
    second = simulate(tmp_path / "b.jsonl", "--events", "2000", "--seed", "7")
    other = simulate(tmp_path / "c.jsonl", "--events", "2000", "--seed", "8")
    assert first == second
    assert first != other
    lines = first.splitlines()
    assert len(lines) == 2000
    assert orjson.loads(lines[0])["event_id"] == "e-000000000"


def test_simulate_drift_moves_only_the_drift_feature(tmp_path: Path) -> None:
    plain = simulate(tmp_path / "plain.jsonl", "--events", "4000", "--seed", "3")
    drifted = simulate(tmp_path / "drift.jsonl", "--seed", "3", *DRIFTING)
    before = [orjson.loads(line) for line in plain.splitlines()]
    after = [orjson.loads(line) for line in drifted.splitlines()]
    assert before[:2000] == after[:2000]
    changed = {name for b, a in zip(before[2000:], after[2000:], strict=True)
               for name in b["features"] if b["features"][name] != a["features"][name]}
    assert changed == {"balance"}


def test_replay_of_a_file_twice_gives_byte_identical_alerts(
        tmp_path: Path, fast_config: Path) -> None:
    events = tmp_path / "events.jsonl"
    simulate(events, "--seed", "5", "--invalid-rate", "0.02", *DRIFTING)
    outputs = []
    for name in ("first.jsonl", "second.jsonl"):
        out = tmp_path / name
        assert main(["replay", "--config", str(fast_config), "--input", str(events),
                     "--output", str(out)]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0], "the drifting file must produce alerts for the comparison to mean much"
    assert outputs[0] == outputs[1]
    alerts = [orjson.loads(line) for line in outputs[0].splitlines()]
    assert {(a["feature"], a["kind"]) for a in alerts} == {("balance", "data_drift")}
    assert alerts[0]["source"]["topic"] == "events.jsonl"
    assert alerts[0]["source"]["offset"] >= 2000


def test_replay_writes_rejected_lines_to_the_dlq_file(tmp_path: Path, fast_config: Path) -> None:
    events = tmp_path / "events.jsonl"
    simulate(events, "--events", "1000", "--seed", "5", "--invalid-rate", "0.05")
    dlq = tmp_path / "dlq.jsonl"
    assert main(["replay", "--config", str(fast_config), "--input", str(events),
                 "--output", str(tmp_path / "alerts.jsonl"), "--dlq-output", str(dlq)]) == 0
    lines = events.read_bytes().splitlines()
    letters = [orjson.loads(line) for line in dlq.read_bytes().splitlines()]
    assert letters
    for letter in letters:
        offset = letter["source"]["offset"]
        assert letter["reason"]
        assert letter["source"]["topic"] == "events.jsonl"
        assert letter["value"] == lines[offset].decode("utf-8", "backslashreplace")
    valid = sum(line.startswith(b'{"event_id":"e-') for line in lines)
    assert valid + len(letters) == len(lines)


def test_replay_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["replay", "--input", str(tmp_path / "absent.jsonl")]) == 2
