"""`streamdrift simulate` and `streamdrift replay` on files: reproducible, byte for byte."""

from __future__ import annotations

import socket
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


# --- Mistakes a user makes: exit 2 with what is wrong, before any work -------------------


@pytest.mark.parametrize("args", [
    ["replay", "--input", "{events}", "--output", "{missing}/alerts.jsonl"],
    ["replay", "--input", "{events}", "--dlq-output", "{tmp}"],
    ["simulate", "--output", "{missing}/events.jsonl"],
    ["backtest", "--input", "{events}", "--report", "{missing}/report.html"],
    ["backtest", "--input", "{events}", "--report", "{tmp}/r.html", "--summary", "{tmp}"],
])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    """Before, a FileNotFoundError or IsADirectoryError traceback (exit 1), for backtest
    after the whole replay."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"")
    filled = [a.format(events=events, missing=tmp_path / "absent", tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(filled)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and ("no directory" in err or "is a directory" in err)
    assert "Traceback" not in err


@pytest.mark.parametrize("args, says", [
    (["--events", "-5"], "--events: -5: must be at least 0"),
    (["--invalid-rate", "2"], "--invalid-rate: 2: must be at least 0 and at most 1"),
    (["--missing-rate", "-1"], "--missing-rate"),
    (["--error-rate", "7"], "--error-rate"),
    (["--label-delay", "-4"], "--label-delay"),
    (["--drift-at", "1", "--drift-period", "0"], "--drift-period: 0: must be at least 1"),
    (["--models", ""], "--models: at least one model id"),
    (["--models", ",,"], "--models"),
    (["--rate", "0"], "--rate: 0: must be more than 0"),
    (["--events", "ten"], "--events: 'ten' is not an integer"),
])
def test_simulate_refuses_values_out_of_range(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    """Before: --models '' or --drift-period 0 raised ZeroDivisionError, the others wrote
    a stream that is not what was asked (an empty file, rates past 1, negative delays)."""
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--output", str(tmp_path / "e.jsonl"), *args])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "e.jsonl").exists()


def test_simulate_says_when_the_drift_comes_after_the_last_event(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["simulate", "--output", str(tmp_path / "e.jsonl"), "--events", "100",
                 "--drift-at", "500"]) == 0
    assert "--drift-at 500 is past the last event (100 events): nothing changes" in caplog.text


def test_replay_of_fewer_events_than_the_warm_up_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before, `replay: 500 records ... 0 alerts` and nothing else: as if nothing drifted."""
    events = tmp_path / "short.jsonl"
    simulate(events, "--events", "500")
    assert main(["replay", "--input", str(events), "--output", str(tmp_path / "a.jsonl"),
                 "--no-progress"]) == 0
    assert ("replay: 8 of 8 series were still warming up when the input ended "
            "(credit-risk/income" in caplog.text)
    assert "detectors.warmup=1000 present values first" in caplog.text


def test_replay_of_enough_events_does_not_say_warming_up(
        tmp_path: Path, fast_config: Path, caplog: pytest.LogCaptureFixture) -> None:
    events = tmp_path / "long.jsonl"
    simulate(events, "--events", "4000")
    assert main(["replay", "--input", str(events), "--config", str(fast_config),
                 "--output", str(tmp_path / "a.jsonl"), "--no-progress"]) == 0
    assert "warming up" not in caplog.text


def test_run_refuses_a_metrics_port_in_use_before_it_contacts_kafka(
        caplog: pytest.LogCaptureFixture) -> None:
    """Before, an OSError traceback (exit 1) once the topics and changelog were made."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No broker at localhost:1: a run that got that far would exit 3, not 2.
        assert main(["run", "--metrics-port", str(port),
                     "--bootstrap-servers", "localhost:1"]) == 2
    assert f"metrics.port {port} on 0.0.0.0:" in caplog.text
    assert "pick another with --metrics-port or metrics.port" in caplog.text


@pytest.mark.parametrize("args, says", [
    (["--labels-topic", "labels"], "--labels-topic goes with --topic"),
    (["--from", "2026-01-01T00:06:00Z", "--to", "2026-01-01T00:04:00Z"],
     "--from must be before --to"),
])
@pytest.mark.parametrize("command", ["replay", "backtest"])
def test_replay_and_backtest_refuse_flags_that_select_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, command: str, args: list[str],
        says: str) -> None:
    """Before: exit 0 and no alerts, the labels topic ignored for a file, or every line
    outside --from/--to."""
    events = tmp_path / "events.jsonl"
    simulate(events, "--events", "100")
    extra = ["--report", str(tmp_path / "r.html")] if command == "backtest" else []
    assert main([command, "--input", str(events), *args, *extra]) == 2
    assert says in caplog.text


def test_log_level_takes_any_case(tmp_path: Path) -> None:
    assert main(["simulate", "--output", str(tmp_path / "e.jsonl"), "--events", "10",
                 "--log-level", "debug"]) == 0


def test_ctrl_c_outside_a_loop_exits_130_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate writing a file had no handler: a KeyboardInterrupt traceback."""
    import stream.simulate

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(stream.simulate, "generate", interrupted)
    assert main(["simulate", "--output", str(tmp_path / "e.jsonl")]) == 130
    err = capsys.readouterr().err
    assert "streamdrift: interrupted" in err and "Traceback" not in err
