"""`streamdrift backtest` on files: replay's alerts byte for byte, a summary per config."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stream.cli import main


@pytest.fixture(autouse=True)
def isolated_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("STREAMDRIFT_"):
            monkeypatch.delenv(name)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def write_config(path: Path, warmup: int, batch_size: int = 500) -> Path:
    path.write_text(f"kafka:\n  batch_size: {batch_size}\ndetectors:\n  warmup: {warmup}\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 events, balance +1.5 sd from event 3,000, 1 % invalid records."""
    path = tmp_path_factory.mktemp("bt") / "events.jsonl"
    assert main(["simulate", "--output", str(path), "--events", "6000", "--drift-at", "3000",
                 "--drift-feature", "balance", "--shift", "1.5", "--invalid-rate", "0.01",
                 "--seed", "4"]) == 0
    return path


def test_backtest_output_is_byte_identical_to_replay(tmp_path: Path, stream_file: Path) -> None:
    config = write_config(tmp_path / "a.yaml", warmup=200)
    # A different batch size for the second config: only the first one's alerts are written.
    other = write_config(tmp_path / "b.yaml", warmup=400, batch_size=77)
    assert main(["replay", "--config", str(config), "--input", str(stream_file),
                 "--output", str(tmp_path / "replay.jsonl")]) == 0
    assert main(["backtest", "--config", str(config), "--config", str(other),
                 "--input", str(stream_file), "--report", str(tmp_path / "r.html"),
                 "--output", str(tmp_path / "backtest.jsonl")]) == 0
    replayed = (tmp_path / "replay.jsonl").read_bytes()
    assert replayed.count(b"\n") >= 1  # the drift was caught: there is something to compare
    assert (tmp_path / "backtest.jsonl").read_bytes() == replayed


def test_summary_names_each_config_by_its_file_with_its_counts(tmp_path: Path,
                                                                stream_file: Path) -> None:
    a = write_config(tmp_path / "a.yaml", warmup=200)
    b = write_config(tmp_path / "b.yaml", warmup=1000)
    summary = tmp_path / "summary.json"
    assert main(["backtest", "--config", str(a), "--config", str(b), "--input",
                 str(stream_file), "--report", str(tmp_path / "r.html"),
                 "--summary", str(summary)]) == 0
    result = orjson.loads(summary.read_bytes())
    assert result["input"] == str(stream_file)
    configs = result["configs"]
    assert [c["config"] for c in configs] == [str(a), str(b)]
    assert configs[0]["config_hash"] != configs[1]["config_hash"]
    lines = stream_file.read_bytes().splitlines()
    for c in configs:
        assert c["records"] == len(lines)
        assert c["events"] + c["rejected"] == len(lines)
        assert c["rejected"] > 0
        assert c["first_event_time"] == "2026-01-01T00:00:00.000Z"
    # The same alerts as a replay of each config alone.
    for c, path in zip(configs, (a, b), strict=True):
        out = tmp_path / f"{path.stem}.jsonl"
        assert main(["replay", "--config", str(path), "--input", str(stream_file),
                     "--output", str(out)]) == 0
        alerts = [orjson.loads(x) for x in out.read_bytes().splitlines()]
        assert c["alerts"] == len(alerts)
        kinds: dict[str, int] = {}
        for alert in alerts:
            kinds[alert["kind"]] = kinds.get(alert["kind"], 0) + 1
        assert c["alerts_by_kind"] == kinds


def test_backtest_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["backtest", "--input", str(tmp_path / "absent.jsonl"),
                 "--report", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


def test_backtest_refuses_from_to_with_a_file(tmp_path: Path, stream_file: Path) -> None:
    assert main(["backtest", "--input", str(stream_file), "--from", "0",
                 "--report", str(tmp_path / "r.html")]) == 2
