"""`streamdrift simulate` stops soon after SIGTERM even when its broker went away.

Before, its producer waited for room in librdkafka's full local queue until the queued
records expired (``message.timeout.ms``, 5 minutes), without looking at the signal, and
then flushed for 60 s more. Found when an aborted `make demo` cleanup stopped the broker
before the producer. Now a signal ends the wait for room, and the records the broker has
not taken within ``SIMULATE_STOP_FLUSH_SECONDS`` are reported (exit 3) instead of waited
for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.cli import EXIT_UNAVAILABLE, SIMULATE_STOP_FLUSH_SECONDS
from tests.integration.conftest import end_offsets, free_port, wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
LAUNCHER = str(REPO / "deploy" / "local-kafka.sh")


def test_sigterm_stops_simulate_while_its_broker_is_away(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(free_port()),
           "KAFKA_STATE_DIR": str(tmp_path / "kafka"), "KAFKA_START_TIMEOUT": "600"}
    started = subprocess.run([LAUNCHER, "start"], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=900, check=False)
    assert started.returncode == 0, started.stderr
    bootstrap = f"localhost:{port}"
    log = tmp_path / "simulate.log"
    simulate: subprocess.Popen[bytes] | None = None
    try:
        with log.open("w") as out:  # as fast as it can: the queue fills once the broker goes
            simulate = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "simulate", "--topic", "sim-stop",
                 "--events", "50000000", "--bootstrap-servers", bootstrap],
                cwd=REPO, env=os.environ, stdout=out, stderr=subprocess.STDOUT)
        process = simulate
        wait_until(lambda: sum(end_offsets(bootstrap, "sim-stop").values()) > 0
                   or process.poll() is not None, 300, "simulated records on the topic")
        assert simulate.poll() is None, log.read_text()
        stopped = subprocess.run([LAUNCHER, "stop"], env=env, cwd=REPO, capture_output=True,
                                 text=True, timeout=300, check=False)
        assert stopped.returncode == 0, stopped.stderr
        # librdkafka logs the broker it lost: the producer is queueing for nobody now.
        wait_until(lambda: "Connection refused" in log.read_text()
                   or "brokers are down" in log.read_text(), 120, "the producer to lose its broker")
        began = time.monotonic()
        simulate.send_signal(signal.SIGTERM)
        rc = simulate.wait(timeout=SIMULATE_STOP_FLUSH_SECONDS + 120)  # a hang fails here
        took = time.monotonic() - began
    finally:
        if simulate is not None and simulate.poll() is None:
            simulate.kill()
            simulate.wait(60)
        subprocess.run([LAUNCHER, "stop"], env=env, cwd=REPO, capture_output=True,
                       timeout=300, check=False)
    text = log.read_text()
    assert rc == EXIT_UNAVAILABLE, text[-3000:]
    assert f"not acknowledged within {SIMULATE_STOP_FLUSH_SECONDS:.0f}s" in text, text[-3000:]
    # The flush's bound and the exit, not librdkafka's 5 minutes.
    assert took < SIMULATE_STOP_FLUSH_SECONDS + 30, (took, text[-3000:])
    assert "Traceback" not in text
