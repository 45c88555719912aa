"""deploy/prometheus and deploy/alertmanager pass their own tools' checks.

promtool (Debian's `prometheus`) and amtool (`prometheus-alertmanager`) are installed by
.ci/run; without them these tests fail rather than skip, so that CI cannot pass on
unchecked rules. The rules' behaviour is in deploy/prometheus/tests/*.yml (promtool's
unit-test format).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))

PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def run(tool: str, *args: str | Path) -> None:
    """Runs `tool args` in the repository; fails with its output unless it exits 0."""
    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(f"{tool} is not installed: it comes with Debian's {PACKAGES[tool]} "
                    f"package (apt-get install {PACKAGES[tool]}; .ci/run installs it)")
    done = subprocess.run([binary, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    output = f"$ {tool} {' '.join(map(str, args))}\n{done.stdout}{done.stderr}"
    print(output)
    assert done.returncode == 0, output


def test_rule_and_test_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["streamdrift.yml", "streamdrift_thresholds.yml"]
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests"


def test_prometheus_config_and_the_rules_it_loads() -> None:
    run("promtool", "check", "config", PROMETHEUS / "prometheus.yml")


def test_rules() -> None:
    run("promtool", "check", "rules", *RULE_FILES)


def test_rule_unit_tests() -> None:
    run("promtool", "test", "rules", *RULE_TESTS)


def test_alertmanager_config() -> None:
    run("amtool", "check-config", ALERTMANAGER_CONFIG)


@pytest.mark.parametrize(("labels", "receivers"), [
    ("alertname=StreamdriftDriftDetected kind=data_drift severity=warning model_id=m",
     "retraining-trigger,ml-team"),
    ("alertname=StreamdriftDriftDetected kind=concept_drift severity=critical model_id=m",
     "retraining-trigger,ml-oncall-pager"),
    ("alertname=StreamdriftDriftDetected kind=prediction_drift severity=warning model_id=m",
     "ml-team"),
    ("alertname=StreamdriftDriftDetected kind=data_quality severity=warning model_id=m",
     "data-producers"),
    ("alertname=StreamdriftDown severity=critical", "ml-oncall-pager"),
    ("alertname=StreamdriftModelSilent severity=warning model_id=m", "ml-team"),
    ("alertname=StreamdriftFeatureDriftScoreHigh severity=warning scope=feature model_id=m",
     "ml-team"),
    ("alertname=SomethingElse", "default"),
])
def test_alertmanager_routes(labels: str, receivers: str) -> None:
    run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receivers}", *labels.split())
