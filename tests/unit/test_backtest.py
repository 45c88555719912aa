"""`streamdrift backtest` on files: replay's alerts byte for byte, a summary per config."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from stream.cli import main
from tests.unit.test_cli_commands import isolated_process_state  # noqa: F401  # autouse


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


def test_backtest_limits_a_file_by_event_time_as_replay(tmp_path: Path,
                                                       stream_file: Path) -> None:
    """--from/--to on a file keep the same events for backtest as for replay."""
    start = "2026-01-01T00:00:10Z"  # the simulator's events are 10 ms apart from 00:00
    assert main(["replay", "--input", str(stream_file), "--from", start,
                 "--output", str(tmp_path / "replay.jsonl")]) == 0
    assert main(["backtest", "--input", str(stream_file), "--from", start,
                 "--report", str(tmp_path / "r.html"),
                 "--output", str(tmp_path / "bt.jsonl")]) == 0
    assert (tmp_path / "bt.jsonl").read_bytes() == (tmp_path / "replay.jsonl").read_bytes()


# --- --truth -----------------------------------------------------------------------------

START = 1_767_225_600.0  # the simulator's first event time; events are 10 ms apart


@pytest.fixture(scope="module")
def switching_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9,000 events; balance +2 sd on events 3,000..5,999, back from 6,000: three
    hand-countable changes of one feature (at 3,000, 6,000 and, none, at 9,000)."""
    path = tmp_path_factory.mktemp("truth") / "events.jsonl"
    assert main(["simulate", "--output", str(path), "--events", "9000", "--drift-at", "3000",
                 "--drift-period", "3000", "--drift-feature", "balance", "--shift", "2",
                 "--seed", "11"]) == 0
    return path


def replay_alerts(tmp_path: Path, config: Path, events: Path) -> list[dict[str, object]]:
    out = tmp_path / f"replay-{config.stem}.jsonl"
    assert main(["replay", "--config", str(config), "--input", str(events),
                 "--output", str(out)]) == 0
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def test_truth_scores_count_what_a_person_counts(tmp_path: Path, switching_file: Path) -> None:
    config = write_config(tmp_path / "a.yaml", warmup=300)
    truth = tmp_path / "drifts.jsonl"
    truth.write_text(
        '{"model_id": "credit-risk", "feature": "balance", "at": 3000}\n'
        # the way back, as an event time: 6,000 events x 10 ms after the start
        '{"model_id": "credit-risk", "feature": "balance", "at": "2026-01-01T00:01:00Z"}\n'
        # a drift that never happened: missed by any config
        '{"model_id": "credit-risk", "feature": "age", "at": 1000, "until": 2000}\n',
        encoding="utf-8")
    summary = tmp_path / "summary.json"
    assert main(["backtest", "--config", str(config), "--input", str(switching_file),
                 "--truth", str(truth), "--report", str(tmp_path / "r.html"),
                 "--summary", str(summary)]) == 0
    scored = orjson.loads(summary.read_bytes())["configs"][0]["truth"]

    # By hand, from replay's alerts: a file's offset is the input position.
    alerts = replay_alerts(tmp_path, config, switching_file)
    balance = [a for a in alerts if a["feature"] == "balance"]
    first_up = min(a["source"]["offset"] for a in balance if a["source"]["offset"] >= 3000)
    first_down = min(a["source"]["offset"] for a in balance if a["source"]["offset"] >= 6000)
    assert first_up < 6000, "the +2 sd shift was caught before it ended"
    in_spans = [a for a in balance if a["source"]["offset"] >= 3000]
    false = len(alerts) - len(in_spans)
    assert scored["drifts"] == 3
    assert scored["detected"] == 2
    assert scored["detection_rate"] == pytest.approx(2 / 3, abs=1e-6)
    rows = scored["per_drift"]
    assert [r["detected"] for r in rows] == [True, True, False]
    assert rows[0]["delay_events"] == first_up - 3000
    assert rows[1]["delay_events"] == first_down - 6000
    assert rows[0]["delay_seconds"] == pytest.approx((first_up - 3000) * 0.01, abs=1e-3)
    assert rows[1]["delay_seconds"] == pytest.approx((first_down - 6000) * 0.01, abs=1e-3)
    delays = sorted([first_up - 3000, first_down - 6000])
    assert scored["delay_events"]["median"] == pytest.approx(sum(delays) / 2)
    assert scored["delay_events"]["p90"] == pytest.approx(delays[0] + 0.9 * (delays[1]
                                                                             - delays[0]))
    assert scored["false_alarms"] == false
    # 9,000 events x 7 features, every one fed (missing values included)
    assert scored["feature_events"] == 9000 * 7
    assert scored["false_alarms_per_million"] == pytest.approx(false / 0.063, abs=1e-3)
    assert scored["alerts_in_drifts"] == len(in_spans)
    assert scored["alerts_per_drift"] == pytest.approx(len(in_spans) / 3, abs=1e-6)

    # Without the way back in the truth, its alerts are false alarms, ``until`` a time.
    truth.write_text('{"model_id": "credit-risk", "feature": "balance", "at": 3000, '
                     '"until": "2026-01-01T00:01:00Z"}\n', encoding="utf-8")
    assert main(["backtest", "--config", str(config), "--input", str(switching_file),
                 "--truth", str(truth), "--report", str(tmp_path / "r.html"),
                 "--summary", str(summary)]) == 0
    scored = orjson.loads(summary.read_bytes())["configs"][0]["truth"]
    way_back = [a for a in balance if a["source"]["offset"] >= 6000]
    assert way_back
    assert (scored["detected"], scored["false_alarms"]) == (1, false + len(way_back))
    assert scored["alerts_per_drift"] == len(in_spans) - len(way_back)


def test_configs_side_by_side_match_their_separate_runs(tmp_path: Path,
                                                        switching_file: Path) -> None:
    configs = [write_config(tmp_path / "quick.yaml", warmup=300),
               write_config(tmp_path / "slow.yaml", warmup=1500, batch_size=333)]
    truth = tmp_path / "drifts.jsonl"
    truth.write_text('{"model_id": "credit-risk", "feature": "balance", "at": 3000}\n'
                     '{"model_id": "credit-risk", "feature": "balance", "at": 6000}\n',
                     encoding="utf-8")
    together = tmp_path / "together.json"
    args = ["--input", str(switching_file), "--truth", str(truth),
            "--report", str(tmp_path / "r.html")]
    assert main(["backtest", *[a for c in configs for a in ("--config", str(c))], *args,
                 "--summary", str(together)]) == 0
    side_by_side = orjson.loads(together.read_bytes())
    rows = [c["truth"] for c in side_by_side["configs"]]
    assert rows[0] != rows[1]  # the configs differ on this input
    for config, row in zip(configs, rows, strict=True):
        alone = tmp_path / f"{config.stem}.json"
        assert main(["backtest", "--config", str(config), *args, "--summary", str(alone)]) == 0
        assert orjson.loads(alone.read_bytes())["configs"][0]["truth"] == row
    best = side_by_side["best"]
    rates = [r["detection_rate"] for r in rows]
    assert best["detection_rate"] == [i for i, r in enumerate(rates) if r == max(rates)]
    medians = [r["delay_events"]["median"] for r in rows]
    known = [m for m in medians if m is not None]
    assert best["delay_events_median"] == [i for i, m in enumerate(medians) if m == min(known)]


def test_a_bad_truth_line_is_a_usage_error_naming_the_line(
        tmp_path: Path, switching_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    truth = tmp_path / "drifts.jsonl"
    truth.write_text('{"model_id": "m", "at": 1}\n{"model_id": "m", "at": "yesterday"}\n',
                     encoding="utf-8")
    assert main(["backtest", "--input", str(switching_file), "--truth", str(truth),
                 "--report", str(tmp_path / "r.html")]) == 2
    assert "line 2" in caplog.text


def test_a_drift_at_a_position_past_the_input_is_beyond_it_as_one_at_a_later_time(
        tmp_path: Path, switching_file: Path) -> None:
    """A position past the last record was counted as a drift of the input, missed, and
    made the real alerts false alarms; a time past it was already left out."""
    config = write_config(tmp_path / "a.yaml", warmup=300)
    summary = tmp_path / "summary.json"
    scored = []
    for at in ('99999999', '9000', '"2027-01-01T00:00:00Z"'):
        truth = tmp_path / "drifts.jsonl"
        line = '{"model_id": "credit-risk", "feature": "balance", "at": ' + at + "}\n"
        truth.write_text(line, encoding="utf-8")
        assert main(["backtest", "--config", str(config), "--input", str(switching_file),
                     "--truth", str(truth), "--report", str(tmp_path / "r.html"),
                     "--summary", str(summary)]) == 0
        scored.append(orjson.loads(summary.read_bytes())["configs"][0]["truth"])
    for row in scored:
        assert row["drifts"] == 0 and row["per_drift"][0]["beyond_input"] is True
    assert scored[0]["false_alarms"] == scored[2]["false_alarms"] > 0


@pytest.mark.parametrize("span", ['"at": 3000, "until": 100', '"at": 3000, "until": 3000',
                                  '"at": "2026-01-01T00:01:00Z", '
                                  '"until": "2026-01-01T00:00:30Z"'])
def test_a_drift_that_ends_before_it_starts_is_a_usage_error(
        tmp_path: Path, switching_file: Path, caplog: pytest.LogCaptureFixture,
        span: str) -> None:
    truth = tmp_path / "drifts.jsonl"
    truth.write_text('{"model_id": "m", "at": 1}\n{"model_id": "m", ' + span + "}\n",
                     encoding="utf-8")
    assert main(["backtest", "--input", str(switching_file), "--truth", str(truth),
                 "--report", str(tmp_path / "r.html")]) == 2
    assert "line 2: until" in caplog.text and "is not after at" in caplog.text


# --- the report (its rendering in a browser: tests/unit/test_report_in_browser.py) -------


def test_report_is_one_self_contained_file(tmp_path: Path, switching_file: Path) -> None:
    config = write_config(tmp_path / "a.yaml", warmup=300)
    truth = tmp_path / "drifts.jsonl"
    truth.write_text('{"model_id": "credit-risk", "feature": "balance", "at": 3000}\n',
                     encoding="utf-8")
    report = tmp_path / "report.html"
    assert main(["backtest", "--config", str(config), "--config", str(config),
                 "--input", str(switching_file), "--truth", str(truth),
                 "--report", str(report), "--output", str(tmp_path / "a.jsonl")]) == 0
    page = report.read_text(encoding="utf-8")
    # Nothing loaded from elsewhere: no script with a src, no src= or href= in the markup
    # (the browser test watches the requests themselves).
    assert not re.findall(r"<script[^>]*\bsrc", page, flags=re.I)
    markup = re.sub(r"<script.*?</script>", "", page, flags=re.S | re.I)
    assert not re.findall(r"""\b(?:src|href)\s*=""", markup, flags=re.I)
    assert "@import" not in markup and "url(" not in markup
    assert page.count("<script>") >= 3 and "plotly.js v" in page  # the library is inlined
    alerts = (tmp_path / "a.jsonl").read_bytes().splitlines()
    for line in alerts:
        assert orjson.loads(line)["alert_id"] in page
    # One table row per alert, for each of the two configs.
    assert len(re.findall(r'<table class="sortable alerts">', page)) == 2
    rows = re.findall(r"<tbody>(.*?)</tbody>", page, flags=re.S)
    alert_rows = [r.count("<tr id=\"alert-") for r in rows if "credit-risk" in r and "@" in r]
    assert alert_rows == [len(alerts), len(alerts)]
    index = orjson.loads(re.search(r'<script type="application/json" id="figure-index">'
                                   r"(.*?)</script>", page, flags=re.S).group(1))
    features = {f["feature"] for f in index.values() if f["figure"] == "scores"}
    assert {"income", "balance", "country"} <= features
    assert {f["figure"] for f in index.values()} >= {"alerts", "scores", "distribution"}
    assert all(div_id in page for div_id in index)
    assert "&#9733;" in page  # two configs against the truth: the best ones are marked


def test_progress_shows_rate_and_eta_on_a_terminal_only() -> None:
    import io

    from stream.backtest import ConfigRun, Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    run = ConfigRun("a.yaml", "h", records=500)
    shown = Terminal()
    progress = Progress("a.yaml (1/2)", total=1000, out=shown, every=0.0)
    progress.update(run)
    assert "a.yaml (1/2): 500 records" in shown.getvalue()
    assert "records/s" in shown.getvalue() and "ETA" in shown.getvalue()
    piped = io.StringIO()
    Progress("a.yaml", total=1000, out=piped, every=0.0).update(run)
    assert piped.getvalue() == ""


def test_distribution_at_an_alert_is_of_the_values_up_to_its_event(
        tmp_path: Path, switching_file: Path) -> None:
    import numpy as np

    from detectors.stats.scores import bin_shares
    from stream.backtest import QuietDeadLetterSink, run_config
    from stream.config import load_config
    from stream.sources import FileSource

    config = load_config(write_config(tmp_path / "a.yaml", warmup=300, batch_size=700),
                         env={})
    run = run_config("a", config, FileSource(switching_file, 700), QuietDeadLetterSink())
    lines = switching_file.read_bytes().splitlines()
    checked = 0
    for recorded in run.alerts:
        d = recorded.distribution
        if d is None:
            continue
        feature = recorded.alert["feature"]
        values = [orjson.loads(line)["features"].get(feature)
                  for line in lines[:recorded.position + 1]]
        present = [v for v in values if isinstance(v, float | int)][-d["current_n"]:]
        assert d["current_n"] >= 250
        expected = bin_shares(d["edges"], np.asarray(present, dtype=np.float64))
        assert d["current"] == [round(float(x), 6) for x in expected]
        checked += 1
    assert checked >= 2  # the way out and the way back


def test_report_names_segment_alerts_and_the_multivariate_contributors(
        tmp_path: Path, stream_file: Path) -> None:
    config = tmp_path / "seg.yaml"
    config.write_text("detectors:\n  warmup: 300\n  segments: [country]\n", encoding="utf-8")
    report, out = tmp_path / "report.html", tmp_path / "a.jsonl"
    assert main(["backtest", "--config", str(config), "--input", str(stream_file),
                 "--report", str(report), "--output", str(out)]) == 0
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    segmented = [a for a in alerts if a["segment"] is not None]
    assert segmented and all(a["segment"]["feature"] == "country" for a in segmented)
    page = report.read_text(encoding="utf-8")
    for a in segmented:
        assert f"country={a['segment']['value']}" in page
    for a in alerts:
        if a["feature"] == "multivariate":
            assert "contributors: " in page


def test_a_truth_line_naming_what_the_input_never_had_is_warned(
        tmp_path: Path, switching_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A typo in the truth file scored as a missed drift, without a word."""
    truth = tmp_path / "drifts.jsonl"
    truth.write_text('{"model_id": "credit-risk", "feature": "balance", "at": 3000}\n'
                     '{"model_id": "credit-rsk", "feature": "balance", "at": 3000}\n'
                     '{"model_id": "credit-risk", "feature": "balanse", "at": 3000}\n',
                     encoding="utf-8")
    assert main(["backtest", "--input", str(switching_file), "--truth", str(truth),
                 "--report", str(tmp_path / "r.html")]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "--truth line 2: model 'credit-rsk' has no events in the input" in warned
    assert ("--truth line 3: model 'credit-risk' has no feature 'balanse' in the input"
            in warned)
    assert not any("line 1:" in w for w in warned)
