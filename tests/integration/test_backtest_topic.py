"""`streamdrift backtest --topic --from --to --labels-topic` on a real broker: replay's
alerts over the same range (byte for byte, in any order across partitions), concept
drift alerts with their attribution, the models' performance in the report."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.integration.conftest import streamdrift

pytestmark = pytest.mark.integration

EVENTS = 18_000
CHANGE = 9_000
MODELS = ("credit", "fraud", "ads")


def test_backtest_of_a_topic_range_with_labels_matches_replay(
        bootstrap: str, names: Callable[[str], str], tmp_path: Path) -> None:
    events, labels = names("bt-events"), names("bt-labels")
    start = float(int(time.time()))  # record timestamps are event times, 100 per second
    made = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", events,
                       "--labels-topic", labels, "--partitions", "3", "--events", str(EVENTS),
                       "--seed", "8", "--models", ",".join(MODELS), "--concept-at",
                       str(CHANGE), "--error-rate", "0.1", "--concept-error-rate", "0.35",
                       "--label-delay", "2", "--start", str(start))
    assert made.returncode == 0, made.stderr
    config = tmp_path / "streamdrift.yaml"
    config.write_text("kafka:\n  batch_size: 500\ndetectors:\n  concept:\n"
                      "    max_wait_seconds: 60\n", encoding="utf-8")
    # The first 16,000 events' time range: the last 2,000 events are left out.
    span = ["--from", str(start), "--to", str(start + 16_000 / 100)]
    common = ["--config", str(config), "--bootstrap-servers", bootstrap, "--topic", events,
              "--labels-topic", labels, *span]
    replay = tmp_path / "replay.jsonl"
    done = streamdrift("replay", *common, "--output", str(replay))
    assert done.returncode == 0, done.stderr
    out, summary, report = (tmp_path / "bt.jsonl", tmp_path / "summary.json",
                            tmp_path / "report.html")
    done = streamdrift("backtest", *common, "--output", str(out), "--summary", str(summary),
                       "--report", str(report))
    assert done.returncode == 0, done.stderr

    replayed = replay.read_bytes().splitlines()
    assert sorted(out.read_bytes().splitlines()) == sorted(replayed)
    alerts = [orjson.loads(line) for line in replayed]
    concept = [a for a in alerts if a["kind"] == "concept_drift"]
    assert concept, [(a["model_id"], a["feature"], a["kind"]) for a in alerts]
    assert any(a["source"]["topic"] == labels for a in concept)
    for alert in concept:
        if alert["source"]["topic"] == labels:
            # Raised when a label arrived on its topic: no attribution, which would depend on
            # how the two topics interleave (the bytes above would differ run to run).
            assert "attribution" not in alert["stats"]
            continue
        ranked = alert["stats"]["attribution"]
        assert ranked and {r["feature"] for r in ranked} <= {
            "income", "age", "balance", "utilization", "transactions", "country", "device"}

    result = orjson.loads(summary.read_bytes())
    entry = result["configs"][0]
    assert entry["events"] == 16_000  # exactly the range
    assert entry["labels"] > 0
    assert entry["alerts"] == len(alerts)
    assert result["input"].startswith(f"topic {events} from ")
    page = report.read_text(encoding="utf-8")
    index = orjson.loads(re.search(r'id="figure-index">(.*?)</script>', page,
                                   flags=re.S).group(1))
    assert {f["model_id"] for f in index.values() if f["figure"] == "performance"} == set(
        MODELS)
    assert all(a["alert_id"] in page for a in alerts)
