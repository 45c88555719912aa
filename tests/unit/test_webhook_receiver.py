"""deploy/webhook/receiver.py, the compose stack's stand-in retrainer: it answers
Alertmanager's webhook with 200 and logs one line per alert; anything else is refused."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", REPO / "deploy" / "webhook" / "receiver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def url() -> Iterator[str]:
    server = _module().serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


PAYLOAD = {  # Alertmanager's webhook, version 4, as the retraining-trigger route sends it
    "version": "4", "status": "firing", "receiver": "retraining-trigger",
    "groupLabels": {"alertname": "StreamdriftDriftDetected", "model_id": "credit-risk",
                    "kind": "data_drift"},
    "alerts": [{"status": "firing", "labels": {
        "alertname": "StreamdriftDriftDetected", "model_id": "credit-risk",
        "feature": name, "kind": "data_drift", "detector": "adwin"}}
        for name in ("income", "age")],
}


def test_a_webhook_is_answered_and_each_alert_logged(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert post(f"{url}/hooks/drift", json.dumps(PAYLOAD).encode()) == 200
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("received 2 alert(s), status firing, group ")
    assert out[1:] == [
        f"retrain? firing StreamdriftDriftDetected model_id=credit-risk feature={name} "
        "kind=data_drift detector=adwin" for name in ("income", "age")]


def test_other_paths_and_bodies_are_refused(url: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert post(f"{url}/other", b"{}") == 404
    assert post(f"{url}/hooks/drift", b"not json") == 400
    assert "refused: not an Alertmanager payload" in capsys.readouterr().out
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
        assert response.status == 200
