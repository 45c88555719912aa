"""The whole path on a real broker: simulate -> run -> alerts, DLQ, metrics; replay; SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.simulate import MALFORMED, Scenario, generate
from tests.integration.conftest import (
    REPO,
    committed_offsets,
    end_offsets,
    free_port,
    read_topic,
    streamdrift,
    wait_until,
)

pytestmark = pytest.mark.integration

# Event times start an hour ago (inside the broker's retention), 100 events per second.
START = float(int(time.time()) - 3600)
SCENARIO = Scenario(events=16_000, seed=11, models=("credit-risk", "churn"), drift_at=8_000,
                    drift_feature="balance", shift=1.5, invalid_rate=0.002, start=START)
MAX_DELAY = 1_500  # events (both models interleaved) from the change to the alert


@dataclass
class LiveRun:
    topics: dict[str, str]
    group: str
    alerts: list[dict[str, object]]
    alert_bytes: list[bytes]
    dead_letters: list[tuple[bytes | None, dict[str, bytes]]]
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    probes: dict[str, tuple[int, str]]
    exit_code: int
    log: str


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _total(metrics: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items()
               if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


def _expected() -> tuple[int, dict[str, int]]:
    valid: dict[str, int] = {}
    invalid = 0
    for key, value, _ in generate(SCENARIO):
        if value in MALFORMED:
            invalid += 1
        else:
            valid[key] = valid.get(key, 0) + 1
    return invalid, valid


@pytest.fixture(scope="module")
def live(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    run_id = uuid.uuid4().hex[:8]
    topics = {k: f"it-{k}-{run_id}" for k in ("events", "alerts", "dlq")}
    group = f"it-group-{run_id}"
    made = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", topics["events"],
                       "--partitions", "3", "--events", str(SCENARIO.events),
                       "--seed", str(SCENARIO.seed), "--models", ",".join(SCENARIO.models),
                       "--drift-at", str(SCENARIO.drift_at), "--drift-feature",
                       SCENARIO.drift_feature, "--shift", str(SCENARIO.shift),
                       "--invalid-rate", str(SCENARIO.invalid_rate), "--start", str(START))
    assert made.returncode == 0, made.stderr
    invalid, valid = _expected()
    port = free_port()
    log_path = tmp_path_factory.mktemp("live") / "run.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "run", "--bootstrap-servers", bootstrap,
             "--events-topic", topics["events"], "--alerts-topic", topics["alerts"],
             "--dlq-topic", topics["dlq"], "--group-id", group, "--metrics-port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env={**os.environ, "STREAMDRIFT_KAFKA__STATISTICS_INTERVAL_SECONDS": "1"})
    try:
        def caught_up() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                m = _scrape(port)
            except OSError:
                return False
            lags = [v for (n, _), v in m.items() if n == "streamdrift_consumer_lag"]
            return (_total(m, "streamdrift_events_total") == sum(valid.values())
                    and _total(m, "streamdrift_events_invalid_total") == invalid
                    and len(lags) == 3 and sum(lags) == 0)  # librdkafka's view: caught up

        def records_seen() -> float:
            try:
                m = _scrape(port)
            except OSError:
                return -1.0
            return (_total(m, "streamdrift_events_total")
                    + _total(m, "streamdrift_events_invalid_total"))

        wait_until(caught_up, 120, "streamdrift run to process every record",
                   progress=records_seen)
        metrics = _scrape(port)
        probes = {path: _probe(port, path) for path in ("/healthz", "/readyz")}
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    alert_msgs = read_topic(bootstrap, topics["alerts"])
    dlq = read_topic(bootstrap, topics["dlq"])
    return LiveRun(
        topics=topics, group=group,
        alerts=[orjson.loads(m.value()) for m in alert_msgs],
        alert_bytes=[m.value() for m in alert_msgs],
        dead_letters=[(m.value(), dict(m.headers() or [])) for m in dlq],
        metrics=metrics, probes=probes, exit_code=exit_code, log=log_path.read_text())


def test_drift_in_one_feature_alerts_for_that_feature_only(live: LiveRun) -> None:
    data_alerts = [a for a in live.alerts if a["kind"] == "data_drift"]
    assert {(a["model_id"], a["feature"]) for a in data_alerts} == {
        ("credit-risk", "balance"), ("churn", "balance")}, live.alerts
    assert not [a for a in live.alerts if a["kind"] != "data_drift"], live.alerts
    for a in data_alerts:
        position = int(str(a["event_id"]).removeprefix("e-"))
        assert SCENARIO.drift_at <= position <= SCENARIO.drift_at + MAX_DELAY, a


def test_alerts_follow_the_contract(live: LiveRun) -> None:
    keys = ["alert_id", "model_id", "model_version", "feature", "segment", "kind", "detector",
            "event_id", "event_time", "source", "stats", "config_hash", "version"]
    for a in live.alerts:
        assert list(a) == keys
        assert a["segment"] is None  # no detectors.segments: every series is the whole traffic
        assert a["source"]["topic"] == live.topics["events"]
        assert set(a["stats"]) >= {"before", "after"}


def test_dead_letters_carry_reason_and_origin(live: LiveRun) -> None:
    invalid, _ = _expected()
    assert len(live.dead_letters) == invalid > 0
    reasons = {h["streamdrift.reason"].decode() for _, h in live.dead_letters}
    assert reasons <= {"not_json", "not_utf8", "not_object", "missing_field", "empty_field",
                       "wrong_type", "non_finite_number"}
    assert len(reasons) >= 4
    for value, headers in live.dead_letters:
        assert value in MALFORMED  # the original bytes, untouched
        assert headers["streamdrift.source.topic"].decode() == live.topics["events"]
        assert int(headers["streamdrift.source.partition"]) in (0, 1, 2)
        assert int(headers["streamdrift.source.offset"]) >= 0
        assert headers["streamdrift.error"]


def test_health_and_readiness_probes_answer_while_consuming(live: LiveRun) -> None:
    assert live.probes["/healthz"][0] == 200
    assert live.probes["/readyz"] == (200, "consuming 3 partitions\n")


def test_consumer_lag_is_reported_per_partition(live: LiveRun) -> None:
    lags = {dict(labels)["partition"]: v for (n, labels), v in live.metrics.items()
            if n == "streamdrift_consumer_lag"}
    assert lags == {"0": 0, "1": 0, "2": 0}


def test_metrics_count_what_was_produced(live: LiveRun) -> None:
    invalid, valid = _expected()
    for model, n in valid.items():
        assert _total(live.metrics, "streamdrift_events_total", model_id=model) == n
    assert _total(live.metrics, "streamdrift_events_invalid_total") == invalid
    assert _total(live.metrics, "streamdrift_drift_alerts_total") == len(live.alerts)
    assert _total(live.metrics, "streamdrift_drift_alerts_total", feature="balance",
                  kind="data_drift") == 2
    assert _total(live.metrics, "streamdrift_batch_duration_seconds_count") > 0
    assert _total(live.metrics, "streamdrift_build_info") == 1
    assert _total(live.metrics, "streamdrift_last_event_timestamp_seconds",
                  model_id="churn") > 1.7e9


def test_sigterm_exits_cleanly_with_offsets_committed(live: LiveRun, bootstrap: str) -> None:
    assert live.exit_code == 0, live.log
    ends = end_offsets(bootstrap, live.topics["events"])
    committed = committed_offsets(bootstrap, live.group, live.topics["events"])
    # Every partition with records is committed to its end; an empty one has nothing to commit.
    assert {p: o for p, o in committed.items() if o >= 0} == {p: o for p, o in ends.items() if o}


def test_replay_of_the_topic_gives_the_same_alerts(live: LiveRun, bootstrap: str,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    done = streamdrift("replay", "--bootstrap-servers", bootstrap, "--topic",
                       live.topics["events"], "--output", str(out))
    assert done.returncode == 0, done.stderr
    replayed = out.read_bytes().splitlines()
    assert sorted(replayed) == sorted(live.alert_bytes)  # byte for byte, alert_id included
    # A replay never commits: its group has no offsets.
    assert "rejected" in done.stderr  # dead letters are reported, not dropped


def test_replay_of_a_time_range_covers_only_that_range(live: LiveRun, bootstrap: str,
                                                       tmp_path: Path) -> None:
    # Record timestamps are event times (100 per second from START); the drift starts at
    # event 8,000. A range that ends before it holds no alert ...
    early = tmp_path / "early.jsonl"
    done = streamdrift("replay", "--bootstrap-servers", bootstrap, "--topic",
                       live.topics["events"], "--from", str(START),
                       "--to", str(START + 7_000 / 100), "--output", str(early))
    assert done.returncode == 0, done.stderr
    assert early.read_bytes() == b""
    assert "replay: 7000 records" in done.stderr  # exactly the events 0..6999, no more
    # ... and one from the start to past the end is the whole topic, alerts included.
    whole = tmp_path / "whole.jsonl"
    done = streamdrift("replay", "--bootstrap-servers", bootstrap, "--topic",
                       live.topics["events"], "--from", str(START),
                       "--to", str(START + 20_000 / 100), "--output", str(whole))
    assert done.returncode == 0, done.stderr
    assert sorted(whole.read_bytes().splitlines()) == sorted(live.alert_bytes)


def test_broker_down_at_start_fails_fast_with_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    done = streamdrift("run", "--bootstrap-servers", f"127.0.0.1:{port}", "--metrics-port", "0",
                       timeout=60, env_extra={"STREAMDRIFT_KAFKA__CONNECT_TIMEOUT_SECONDS": "3"})
    assert done.returncode == 3
    assert "cannot reach Kafka" in done.stderr
