"""The operating side against real servers: a real Prometheus scrapes a real run.

Prometheus (Debian's package, installed by .ci/run) loads the shipped rules and
scrapes `streamdrift run` on the local broker; every PromQL expression of the
rules and of the Grafana dashboard must parse and, where the run produced its
metrics, return data; the drift rule must fire for the drifted feature only.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dashboard import dashboard_queries
from tests.integration.conftest import REPO, Running, free_port, metric, streamdrift, wait_until

pytestmark = pytest.mark.integration

_FILTER = re.compile(r"==|!=|>|<|\bunless\b|\band\b")
RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))


def _api(port: int, path: str, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error
        return dict(json.loads(exc.read()))


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], int]]:
    """Start a Prometheus that scrapes the given metrics port every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed (Debian package `prometheus`, see .ci/run)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(target_port: int) -> int:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULES],
            "scrape_configs": [{"job_name": "streamdrift",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))

        def up() -> bool:
            assert procs[-1].poll() is None, (tmp_path / "prometheus.log").read_text()
            try:  # 503 with a plain-text body until it has started
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready",
                                            timeout=10) as response:
                    return response.status == 200
            except OSError:  # refused, or an HTTPError
                return False

        wait_until(up, 60, "Prometheus to answer")
        return port

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def _rule_expressions() -> list[tuple[str, str]]:
    out = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return out


def test_rules_and_dashboard_against_a_real_prometheus(
        bootstrap: str, names: Callable[[str], str], spawn: Callable[..., Running],
        prometheus: Callable[[int], int]) -> None:
    assert RULES, "no rule files in deploy/prometheus/rules"
    events = names("events")
    made = streamdrift("simulate", "--bootstrap-servers", bootstrap, "--topic", events,
                       "--events", "6000", "--seed", "5", "--drift-at", "3000",
                       "--drift-feature", "balance", "--shift", "2", "--invalid-rate", "0.01")
    assert made.returncode == 0, made.stderr
    run = spawn("--bootstrap-servers", bootstrap, "--events-topic", events, "--alerts-topic",
                names("alerts"), "--dlq-topic", names("dlq"), "--group-id", names("group"),
                env_extra={"STREAMDRIFT_KAFKA__STATISTICS_INTERVAL_SECONDS": "1"})
    port = prometheus(run.metrics_port)

    def series(query: str) -> list[dict[str, Any]]:
        answer = _api(port, "query", query=query)
        assert answer["status"] == "success", (query, answer)
        return list(answer["data"]["result"])

    wait_until(lambda: bool(series('sum(streamdrift_events_total) >= 5900')), 90,
               "Prometheus to scrape every event of the run",
               progress=lambda: metric(run, "streamdrift_events_total"))

    def drift_alerts() -> set[tuple[str, str, str]]:
        alerts = _api(port, "alerts")["data"]["alerts"]
        return {(a["labels"].get("model_id", ""), a["labels"].get("feature", ""),
                 a["labels"].get("kind", "")) for a in alerts
                if a["labels"]["alertname"] == "StreamdriftDriftDetected"
                and a["state"] == "firing"}

    wait_until(lambda: bool(drift_alerts()), 60, "StreamdriftDriftDetected to fire")
    produced = {s["metric"]["__name__"] for s in series('{__name__=~"streamdrift_.+"}')}
    expressions = [(f"rule {name}", expr) for name, expr in _rule_expressions()]
    expressions += [(f"dashboard {where}", expr) for where, expr in dashboard_queries()]
    # rate() and friends need a few samples of each series in their window. A failed
    # scrape (the run's endpoint not up yet, or too slow on a loaded machine) still
    # adds an `up` sample, so count the samples of the rated counters themselves.
    rated = {name for _, expr in expressions
             for name in re.findall(r"\b(?:rate|irate|increase)\((streamdrift_[a-z_]+)", expr)}
    wait_until(lambda: all(series(f"min(count_over_time({name}[1m])) >= 5")
                           for name in sorted(rated & produced)), 120,
               "five scrapes of every counter the rules and the dashboard rate")
    assert drift_alerts() == {("credit-risk", "balance", "data_drift")}

    missing_data = []
    for what, expr in expressions:
        answer = _api(port, "query", query=expr)
        assert answer["status"] == "success", f"{what}: {expr}: {answer.get('error')}"
        used = set(re.findall(r"\bstreamdrift_[a-z_]+\b", expr))
        # An expression over metrics this run produced must return data; alert rules and
        # filtering expressions are exempt, since being empty is what they may mean here.
        quiet_allowed = what.startswith("rule Streamdrift") or bool(_FILTER.search(expr))
        if used and used <= produced and not quiet_allowed and not answer["data"]["result"]:
            missing_data.append(f"{what}: {expr}")
    assert not missing_data, "no data for:\n" + "\n".join(missing_data)
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(120) == 0, run.log()
