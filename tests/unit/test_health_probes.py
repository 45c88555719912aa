"""/healthz and /readyz on the metrics port: what container and Kubernetes probes see."""

from __future__ import annotations

import urllib.error
import urllib.request

from stream.metrics import Metrics


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_probes_report_their_state_and_metrics_stay_served() -> None:
    state = {"ready": False}
    metrics = Metrics()
    server = metrics.serve("127.0.0.1", 0, live=lambda: (True, "polling"),
                           ready=lambda: (state["ready"], "why: no partitions assigned"))
    port = server.port
    assert _get(port, "/healthz") == (200, "polling\n")
    assert _get(port, "/readyz") == (503, "why: no partitions assigned\n")
    state["ready"] = True
    assert _get(port, "/readyz")[0] == 200
    status, body = _get(port, "/metrics")
    assert status == 200 and "streamdrift_build_info" in body
    server.close()
