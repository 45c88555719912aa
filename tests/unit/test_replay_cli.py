"""`streamdrift replay` on files as a user meets it: gzip, standard input, --from/--to on
event time, a progress display only on a terminal, a summary line, exit 5 when every
record was rejected."""

from __future__ import annotations

import fcntl
import gc
import gzip
import os
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import orjson
import pytest

from stream.cli import EXIT_ALL_REJECTED, GC_THRESHOLDS, main
from stream.simulate import DEFAULT_START
from tests.processes import isolated_process_state  # noqa: F401 (autouse)

REPO = Path(__file__).resolve().parents[2]
CONFIG = "kafka:\n  batch_size: 500\ndetectors:\n  warmup: 200\n"
DRIFTING = ["--events", "4000", "--seed", "5", "--drift-at", "2000", "--drift-feature",
            "balance", "--shift", "1.5", "--invalid-rate", "0.01"]
EVENTS_PER_SECOND = 100  # simulate's event-time spacing in a file


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    assert main(["simulate", "--output", str(path), *DRIFTING]) == 0
    return path


def alerts_of(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def detections(alerts: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """What fired where, without the file's name (which alert_id hashes)."""
    return [(a["feature"], a["kind"], a["detector"], a["source"]["offset"])  # type: ignore[index]
            for a in alerts]


def replay_cli(*args: str, stdin: bytes | None = None, stderr: int | None = subprocess.PIPE,
               ) -> subprocess.CompletedProcess[bytes]:
    """The real console entry point in a child process (its own stdin/stderr)."""
    return subprocess.run([sys.executable, "-m", "stream.cli", "replay", *args], input=stdin,
                          stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, timeout=120,
                          check=False)


def test_a_gzip_file_gives_the_alerts_of_the_plain_file(
        tmp_path: Path, config: Path, events: Path) -> None:
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes()))
    outputs = []
    for source in (events, packed):
        out = tmp_path / f"{source.name}.alerts"
        assert main(["replay", "--config", str(config), "--input", str(source),
                     "--output", str(out)]) == 0
        outputs.append(alerts_of(out))
    plain, unpacked = outputs
    assert plain, "the drifting file must give alerts for the comparison to mean much"
    assert detections(unpacked) == detections(plain)
    assert {a["source"]["topic"] for a in unpacked} == {"events.jsonl.gz"}  # type: ignore[index]


def test_a_gzip_file_is_recognised_by_its_content_not_its_name(
        tmp_path: Path, config: Path, events: Path) -> None:
    disguised = tmp_path / "events.jsonl"  # gzip bytes under a plain name
    disguised.write_bytes(gzip.compress(events.read_bytes()))
    plain = tmp_path / "plain.alerts"
    assert main(["replay", "--config", str(config), "--input", str(events),
                 "--output", str(plain)]) == 0
    out = tmp_path / "disguised.alerts"
    assert main(["replay", "--config", str(config), "--input", str(disguised),
                 "--output", str(out)]) == 0
    assert detections(alerts_of(out)) == detections(alerts_of(plain))


def test_stdin_is_replayed_with_dash(tmp_path: Path, config: Path, events: Path) -> None:
    plain = tmp_path / "plain.alerts"
    assert main(["replay", "--config", str(config), "--input", str(events),
                 "--output", str(plain)]) == 0
    done = replay_cli("--config", str(config), "--input", "-", stdin=events.read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    from_stdin = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert detections(from_stdin) == detections(alerts_of(plain))
    assert {a["source"]["topic"] for a in from_stdin} == {"stdin"}
    # gzip through a pipe too
    packed = replay_cli("--config", str(config), "--input", "-",
                        stdin=gzip.compress(events.read_bytes()))
    assert packed.returncode == 0, packed.stderr.decode()
    assert packed.stdout == done.stdout


def test_from_to_keep_the_events_of_a_file_in_the_time_range(
        tmp_path: Path, config: Path, events: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = events.read_bytes().splitlines()
    # Events 1500..3499 by event time (the file's times are 0.01 s apart from DEFAULT_START).
    start, end = DEFAULT_START + 15.0, DEFAULT_START + 35.0
    dlq = tmp_path / "dlq.jsonl"
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", "--config", str(config), "--input", str(events), "--output",
                 str(out), "--dlq-output", str(dlq), "--from", str(start), "--to",
                 str(end)]) == 0
    in_range = [i for i, line in enumerate(lines)
                if line.startswith(b"{") and b'"timestamp"' in line
                and start <= _time(line) < end]
    assert len(in_range) > 1800  # the range was not empty and held most of 2,000 events
    alerts = alerts_of(out)
    assert alerts, "the drift at 2,000 is inside the range"
    assert all(in_range[0] <= a["source"]["offset"] <= in_range[-1]  # type: ignore[index]
               for a in alerts)
    # Lines without a readable time are passed on (and rejected), never dropped unseen.
    rejected = [orjson.loads(x)["source"]["offset"] for x in dlq.read_bytes().splitlines()]
    assert rejected and all(_time(lines[o]) is None for o in rejected)
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    records = len(in_range) + len(rejected)
    assert summary.startswith(f"replay: {records} records, {len(in_range)} events, "
                              f"{len(rejected)} rejected (")
    assert summary.endswith(f"; {len(lines) - records} lines outside --from/--to")


def _time(line: bytes) -> float | None:
    from stream.sources import event_seconds

    return event_seconds(line)


def test_the_summary_counts_rejections_by_reason(
        tmp_path: Path, config: Path, events: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", "--config", str(config), "--input", str(events), "--output",
                 str(out), "--dlq-output", str(tmp_path / "dlq.jsonl")]) == 0
    letters = [orjson.loads(x) for x in (tmp_path / "dlq.jsonl").read_bytes().splitlines()]
    reasons: dict[str, int] = {}
    for letter in letters:
        reasons[letter["reason"]] = reasons.get(letter["reason"], 0) + 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"replay: 4000 records, {4000 - len(letters)} events, "
                           f"{len(letters)} rejected (")
    for reason, n in reasons.items():
        assert f"{reason} {n}" in last
    assert last.endswith(f", {len(alerts_of(out))} alerts")


def test_a_line_over_the_record_limit_is_cut_not_held_whole(tmp_path: Path) -> None:
    """A line longer than ``limits.max_record_bytes`` (a binary file without line ends,
    given by mistake, is one such line) is read a MiB at a time: its record holds
    the limit + 1 bytes, with the whole line's size and SHA-256 in the dead-letter
    contract's truncation headers; the lines around it are read as they are."""
    import hashlib
    import tracemalloc

    from stream.records import ORIGINAL_SHA256, ORIGINAL_SIZE, TRUNCATED
    from stream.sources import FileSource

    huge = b'{"note": "' + b"x" * 30_000_000 + b'"}'
    body = b'{"a": 1}\r\n' + huge + b"\r\r\n" + b"x" * 2000 + b"\r\n" + b"tail"
    path = tmp_path / "events.jsonl"
    path.write_bytes(body)
    source = FileSource(path, batch_size=10, max_line_bytes=1000)
    tracemalloc.start()
    batch = source.poll()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert batch is not None and source.poll() is None
    assert peak < 8_000_000  # the 30 MB line was never whole (chunks of 1 MiB)
    assert batch.offsets == [0, 1, 2, 3]
    assert batch.values[0] == b'{"a": 1}' and batch.values[3] == b"tail"
    for row, whole in ((1, huge), (2, b"x" * 2000)):
        assert batch.values[row] == whole[:1001]
        assert batch.header_list(row) == [
            (TRUNCATED, b"value"), (ORIGINAL_SIZE, str(len(whole)).encode()),
            (ORIGINAL_SHA256, hashlib.sha256(whole).hexdigest().encode())]
        assert batch.value_size(row) == len(whole)
    assert batch.header_list(0) == [] and batch.value_size(0) == 8
    # at the limit: a line that fits the limit + 1 and its line end is read whole
    exact = tmp_path / "exact.jsonl"
    exact.write_bytes(b"y" * 1000 + b"\r\n" + b"z" * 1001 + b"\n" + b"w" * 1002 + b"\n")
    cut = FileSource(exact, batch_size=10, max_line_bytes=1000).poll()
    assert cut is not None and cut.values[:2] == [b"y" * 1000, b"z" * 1001]
    assert cut.header_list(0) == cut.header_list(1) == []
    assert cut.values[2] == b"w" * 1001 and cut.value_size(2) == 1002


@pytest.mark.parametrize(("content", "crs"), [(1000, 2), (999, 3), (997, 5), (1001, 1),
                                              (1001, 4)])
def test_a_line_that_fits_is_read_whole_whatever_crs_end_it(
        tmp_path: Path, content: int, crs: int) -> None:
    """CRs before the line end are not the value (``rstrip``): a value within the limit
    (+ 1) followed by a run of them is read whole, without truncation headers, however
    far the run goes past the line's read window (found by helper-17: a valid event of
    the limit's size then CR CR LF was rejected as oversized)."""
    from stream.events import decode_batch
    from stream.sources import FileSource

    head = b'{"event_id": "e", "model_id": "m", "features": {"x": "'
    value = head + b"v" * (content - len(head) - 3) + b'"}}'
    assert len(value) == content
    path = tmp_path / "events.jsonl"
    path.write_bytes(value + b"\r" * crs + b"\n" + b"next\n")
    batch = FileSource(path, batch_size=10, max_line_bytes=1000).poll()
    assert batch is not None and batch.values == [value, b"next"]
    assert batch.header_list(0) == [] and batch.value_size(0) == content
    rejected = {r.row: (r.reason, r.detail) for r in decode_batch(batch, 1000).rejected}
    if content <= 1000:
        assert 0 not in rejected
    else:
        assert rejected[0] == ("oversized", f"{content} bytes > limit of 1000")


def test_replay_dead_letters_a_long_line_with_its_whole_size(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text("limits:\n  max_record_bytes: 4096\n", encoding="utf-8")
    events = tmp_path / "events.jsonl"
    long_line = b'{"event_id": "e-2", "model_id": "m", "features": {"x": "' + b"v" * 50_000 + b'"}}'
    events.write_bytes(b'{"event_id": "e-1", "model_id": "m", "features": {"x": 1}}\n'
                       + long_line + b"\n")
    dlq = tmp_path / "dlq.jsonl"
    assert main(["replay", "--config", str(config), "--input", str(events),
                 "--dlq-output", str(dlq)]) == 0
    [letter] = [orjson.loads(x) for x in dlq.read_bytes().splitlines()]
    assert letter["reason"] == "oversized"
    assert letter["error"] == f"{len(long_line)} bytes > limit of 4096"
    assert letter["source"] == {"topic": "events.jsonl", "partition": 0, "offset": 1}
    assert letter["value"] == long_line[:4097].decode()
    assert letter["headers"][:2] == [["streamdrift.truncated", "value"],
                                     ["streamdrift.original.size", str(len(long_line))]]


def test_every_record_rejected_exits_5_with_a_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "events.csv"
    csv.write_text("event_id,model_id,income\ne-1,m,5000\ne-2,m,5100\n", encoding="utf-8")
    assert main(["replay", "--input", str(csv), "--dlq-output",
                 str(tmp_path / "dlq.jsonl")]) == EXIT_ALL_REJECTED
    err = capsys.readouterr().err
    assert "replay: 3 records, 0 events, 3 rejected (not_json 3), 0 alerts" in err
    assert "every record was rejected (the input must be JSON lines" in err


def test_an_empty_input_or_some_valid_records_exit_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert main(["replay", "--input", str(empty)]) == 0
    assert "replay: 0 records, 0 events, 0 rejected, 0 alerts" in capsys.readouterr().err
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b'{"event_id": "e", "model_id": "m", "features": {"x": 1}}\nnope\n')
    assert main(["replay", "--input", str(mixed), "--dlq-output",
                 str(tmp_path / "dlq.jsonl")]) == 0


def test_progress_is_off_when_stderr_is_not_a_terminal(config: Path, events: Path) -> None:
    done = replay_cli("--config", str(config), "--input", str(events), "--output", os.devnull)
    assert done.returncode == 0
    err = done.stderr.decode()
    assert "\r" not in err and "\x1b[" not in err  # no bar redrawn
    assert "B/s" not in err and "%|" not in err
    assert err.strip().splitlines()[-1].startswith("replay: 4000 records")


def _on_a_terminal(*args: str) -> str:
    """Run replay with its stderr on a pseudo-terminal; what the terminal showed."""
    master, slave = os.openpty()
    # A terminal of 120 columns (a fresh pty has 0: tqdm would draw an empty line).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    shown = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's side is closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done = replay_cli(*args, stderr=slave)
    finally:
        os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    assert done.returncode == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def test_progress_is_shown_on_a_terminal_with_events_alerts_and_an_eta(
        config: Path, events: Path) -> None:
    shown = _on_a_terminal("--config", str(config), "--input", str(events),
                           "--output", os.devnull)
    assert "replay: 100%|" in shown  # tqdm's bar over the file's bytes
    assert "events (" in shown and "/s)" in shown and " alerts" in shown
    assert "<00:00" in shown or "<" in shown.split("replay: 100%|")[-1]  # elapsed<remaining
    assert "replay: 4000 records" in shown  # the summary still ends it


def test_no_progress_turns_it_off_on_a_terminal(config: Path, events: Path) -> None:
    shown = _on_a_terminal("--config", str(config), "--input", str(events),
                           "--output", os.devnull, "--no-progress")
    assert "%|" not in shown
    assert "replay: 4000 records" in shown


def test_the_progress_wrapper_hands_the_partition_listener_to_its_source() -> None:
    import io

    from stream.progress import ProgressSource

    class Listening:
        listener: object = None

        def poll(self) -> None:
            return None

        def commit(self, offsets: dict[tuple[str, int], int]) -> None:
            pass

        def close(self) -> None:
            pass

    inner = Listening()
    wrapper = ProgressSource(inner, io.StringIO())
    marker = object()
    wrapper.listener = marker  # what RunLoop does with a source that has a listener
    assert inner.listener is marker
    assert not wrapper.shown  # a StringIO is no terminal


def test_a_replay_runs_with_fewer_cyclic_collections(config: Path, events: Path) -> None:
    """A loop raises the collector's thresholds and freezes what is alive once it starts
    (``cli._collect_less``); the fixture puts both back."""
    gc.unfreeze()
    assert main(["replay", "--input", str(events), "--config", str(config),
                 "--no-progress"]) == 0
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0
