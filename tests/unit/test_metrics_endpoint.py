"""The metrics endpoint holds: idle connections cannot starve /healthz, threads stay
bounded, TLS and basic auth from a Prometheus exporter web config file (stream/web.py).

Every connection here is to 127.0.0.1 and closed by the test.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import resource
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from stream.cli import EXIT_CONFIG, main
from stream.config import ConfigError
from stream.metrics import HealthApp, Metrics
from stream.web import MAX_CONNECTIONS, WORKERS, MetricsServer, WebConfig, load_web_config

IDLE = 500


@pytest.fixture(autouse=True)
def _room_for_sockets() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@contextlib.contextmanager
def _idle(port: int, n: int, send: bytes = b"") -> Iterator[list[socket.socket]]:
    """``n`` connections that send ``send`` (nothing by default) and then wait."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if send:
                s.sendall(send)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def _closed_by_server(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _get(conn: http.client.HTTPConnection, path: str,
         headers: dict[str, str] | None = None) -> tuple[int, str, http.client.HTTPResponse]:
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(), response
    finally:
        conn.close()


def test_idle_connections_do_not_starve_healthz_and_threads_stay_bounded() -> None:
    threads_before = threading.active_count()
    server = Metrics().serve("127.0.0.1", 0, live=lambda: (True, "polling"))
    try:
        with _idle(server.port, IDLE) as idle:
            # Answered although IDLE connections came first and never sent a byte.
            status, body, _ = _get(http.client.HTTPConnection("127.0.0.1", server.port,
                                                              timeout=20), "/healthz")
            assert (status, body) == (200, "polling\n")
            # The selector thread and at most WORKERS workers, not a thread per connection.
            assert threading.active_count() <= threads_before + 1 + WORKERS
            # Past MAX_CONNECTIONS waiting, the oldest idle ones were closed.
            _wait(lambda: sum(_closed_by_server(s) for s in idle) >= IDLE - MAX_CONNECTIONS,
                  20, "the oldest idle connections to be closed")
    finally:
        server.close()


def test_partial_request_heads_do_not_hold_the_workers() -> None:
    server = Metrics().serve("127.0.0.1", 0)
    try:
        with _idle(server.port, 4 * WORKERS, send=b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
            status, _, _ = _get(http.client.HTTPConnection("127.0.0.1", server.port,
                                                           timeout=20), "/healthz")
            assert status == 200
    finally:
        server.close()


def test_a_connection_without_a_request_is_closed_after_the_header_timeout() -> None:
    app = HealthApp(lambda environ, start: [], lambda: (True, "ok"), lambda: (True, "ok"))
    server = MetricsServer(app, "127.0.0.1", 0, header_timeout=0.5)
    try:
        with _idle(server.port, 3) as idle:
            _wait(lambda: all(_closed_by_server(s) for s in idle), 20,
                  "idle connections to be closed")
    finally:
        server.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_tls_and_basic_auth_from_a_web_config_file(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"scrape-pw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    path = tmp_path / "web.yml"
    # Relative paths are read beside the web config file.
    path.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
                    f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = Metrics().serve("127.0.0.1", 0, web=load_web_config(path))
    trust = ssl.create_default_context(cafile=str(cert))

    def https() -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", server.port, timeout=20, context=trust)

    try:
        status, _, response = _get(https(), "/metrics")
        assert status == 401 and "Basic" in response.headers["WWW-Authenticate"]
        assert _get(https(), "/metrics", _basic("prometheus", "wrong"))[0] == 401
        assert _get(https(), "/metrics", _basic("nobody", "scrape-pw"))[0] == 401
        for _ in range(2):  # the second time from the cache of good credentials
            status, body, _ = _get(https(), "/metrics", _basic("prometheus", "scrape-pw"))
            assert status == 200 and "streamdrift_build_info" in body
        assert _get(https(), "/healthz")[:2] == (200, "ok\n")  # probes stay open
        with pytest.raises((OSError, http.client.HTTPException)):
            _get(http.client.HTTPConnection("127.0.0.1", server.port, timeout=20), "/healthz")
        # Connections that never start the TLS handshake do not hold it up either.
        with _idle(server.port, IDLE // 5):
            assert _get(https(), "/healthz")[0] == 200
    finally:
        server.close()


@pytest.mark.parametrize(("text", "message"), [
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: []\n",
     "tls_server_config.cipher_suites: unknown key"),
    ("tls_server_config:\n  cert_file: /no/such.pem\n  key_file: {key}\n",
     "tls_server_config.cert_file: Path does not point to a file"),
    ("tls_server_config:\n  cert_file: {key}\n  key_file: {key}\n",
     "tls_server_config: cannot load the certificate or key"),
    ("basic_auth_users:\n  prometheus: hunter2-plain\n",
     "basic_auth_users: Value error, prometheus: not a bcrypt hash"),
    ("http_server_config:\n  http2: false\n", "http_server_config: unknown key"),
])
def test_a_bad_web_config_is_refused_with_the_key_path(tmp_path: Path, text: str,
                                                       message: str) -> None:
    cert, key = _self_signed(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(text.format(cert=cert, key=key))
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    assert f"metrics.web_config_file ({path}): {message}" in str(info.value)
    assert "hunter2-plain" not in str(info.value)


def test_check_config_checks_the_web_config_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: not-a-hash\n")
    config = tmp_path / "streamdrift.yaml"
    config.write_text(f"metrics:\n  web_config_file: {web}\n")
    assert main(["check-config", str(config)]) == EXIT_CONFIG
    assert "not a bcrypt hash" in capsys.readouterr().err
    web.write_text("{}\n")
    assert main(["check-config", str(config)]) == 0
    assert WebConfig().ssl_context() is None
