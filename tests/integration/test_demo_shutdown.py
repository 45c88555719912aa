"""`make demo` stops all it started when its whole process group gets SIGTERM, as
timeout(1), a service manager or a cancelled CI step send it: the producer, streamdrift
run, and the broker it started. Before, the script's `sleep` child died of the same
signal, the cleanup's `kill` of it failed under `set -e`, and the script ended there
with the broker still running (found by running `timeout 90 make demo`)."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import free_port, wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
LAUNCHER = str(REPO / "deploy" / "local-kafka.sh")


def _serving(port: int) -> bool:
    """streamdrift run is up: it serves its metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def test_sigterm_to_the_demos_process_group_stops_the_broker_it_started(
        tmp_path: Path) -> None:
    metrics = free_port()
    env = {**os.environ, "KAFKA_PORT": str(free_port()),
           "KAFKA_CONTROLLER_PORT": str(free_port()), "KAFKA_STATE_DIR": str(tmp_path / "kafka"),
           "KAFKA_START_TIMEOUT": "600", "METRICS_PORT": str(metrics),
           "DEMO_STOP_TIMEOUT": "60"}
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen([str(REPO / "deploy" / "demo.sh")], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # its own process group
    try:
        wait_until(lambda: _serving(metrics) or demo.poll() is not None, 600,
                   "streamdrift run serving its metrics")
        assert demo.poll() is None, log.read_text()
        os.killpg(demo.pid, signal.SIGTERM)  # every process of the group, as timeout(1)
        rc = demo.wait(timeout=300)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(timeout=60)
        left = subprocess.run([LAUNCHER, "status"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=60, check=False)
        if left.returncode == 0:  # still running: stop it, then fail below
            subprocess.run([LAUNCHER, "stop"], env=env, cwd=REPO, capture_output=True,
                           timeout=120, check=False)
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text
    assert "SIGTERM received, shutting down" in text and "done (exit 143)" in text, text
    assert left.returncode == 1, f"the demo's broker was left running: {left.stdout}\n{text}"
