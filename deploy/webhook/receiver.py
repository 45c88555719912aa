"""A stand-in for the retraining service in the compose stack: Alertmanager's
``retraining-trigger`` route POSTs to http://retrainer:8080/hooks/drift and this logs
what arrives, one line per alert, so that the route goes somewhere and shows what a real
retrainer would get. Replace it with your retraining pipeline's endpoint.

Payload: Alertmanager's webhook JSON, version 4 (status, groupLabels, alerts[] with
labels and annotations; prometheus.io/docs/alerting/latest/configuration/#webhook_config).
Standard library only: it runs in the plain Python image.

Usage: python receiver.py [PORT]   (default 8080; GET /healthz answers 200)
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/hooks/drift"
MAX_BYTES = 10 * 1024 * 1024


def describe(payload: dict[str, Any]) -> list[str]:
    """One line per alert of an Alertmanager webhook payload.

    >>> describe({"status": "firing", "groupLabels": {"model_id": "m"}, "alerts": [
    ...     {"status": "firing", "labels": {"alertname": "StreamdriftDriftDetected",
    ...      "model_id": "m", "feature": "income", "kind": "data_drift"}}]})
    ['retrain? firing StreamdriftDriftDetected model_id=m feature=income kind=data_drift']
    """
    lines = []
    for alert in payload.get("alerts") or []:
        labels = alert.get("labels") or {}
        shown = " ".join(f"{key}={labels[key]}" for key in ("model_id", "feature", "kind",
                                                            "detector") if key in labels)
        lines.append(f"retrain? {alert.get('status', payload.get('status', '?'))} "
                     f"{labels.get('alertname', '?')} {shown}".rstrip())
    return lines


class Receiver(BaseHTTPRequestHandler):
    server_version = "streamdrift-webhook-receiver"

    def do_POST(self) -> None:
        if self.path != PATH:
            self._answer(404, f"POST to {PATH}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BYTES:
            self._answer(400, "a JSON body of at most 10 MiB")
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            print(f"refused: not an Alertmanager payload ({exc}): {body[:200]!r}", flush=True)
            self._answer(400, "not JSON")
            return
        group = payload.get("groupLabels") or {}
        print(f"received {len(payload.get('alerts') or [])} alert(s), status "
              f"{payload.get('status')}, group {json.dumps(group, sort_keys=True)}", flush=True)
        for line in describe(payload):
            print(line, flush=True)
        self._answer(200, "ok")

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/healthz" else 404, "ok")

    def _answer(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per alert above is the log


def serve(port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("0.0.0.0", port), Receiver)


if __name__ == "__main__":
    server = serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
    print(f"listening on :{server.server_address[1]}{PATH}", flush=True)
    server.serve_forever()
