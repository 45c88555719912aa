"""The metrics endpoint's HTTP server: bounded, with optional TLS and basic auth.

prometheus_client's server starts a thread per connection and waits on it without a
timeout, so idle connections pile up threads until ``/healthz`` stops answering. Here
one selector thread owns every connection until its request head (request line and
headers) has arrived in full: an idle, half-open or slow connection costs a file
descriptor, never a thread, and is closed after ``header_timeout`` seconds or when
``max_connections`` newer ones wait. Complete requests go to a fixed pool of
``workers`` threads, which parse them with the standard library (wsgiref) and answer
from the WSGI app with a timeout on each send.

TLS and basic auth come from a web config file in the format of the Prometheus
exporters (exporter-toolkit's ``web-config.yml``: ``tls_server_config`` with
``cert_file``/``key_file``, ``basic_auth_users`` with bcrypt hashes), see
https://prometheus.io/docs/prometheus/latest/configuration/https/. The probes
(``/healthz``, ``/readyz``) stay open: they say only "ok" or why not ready.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import logging
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, FilePath, ValidationError, field_validator

from stream.config import ConfigError

log = logging.getLogger("streamdrift.web")

WORKERS = 4  # threads that answer complete requests
MAX_CONNECTIONS = 256  # connections waiting for their request head; the oldest goes first
HEADER_TIMEOUT = 10.0  # seconds from accept to a complete request head (TLS handshake included)
IO_TIMEOUT = 10.0  # seconds for each send of an answer
MAX_HEAD_BYTES = 16 * 1024  # request line and headers; a scrape sends a few hundred
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # probes: no basic auth

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    """exporter-toolkit's ``tls_server_config`` (the keys streamdrift supports)."""

    cert_file: FilePath
    key_file: FilePath
    client_auth_type: Literal["NoClientCert", "VerifyClientCertIfGiven",
                              "RequireAndVerifyClientCert"] = "NoClientCert"
    client_ca_file: FilePath | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"


class WebConfig(_Strict):
    """A Prometheus exporter web config file: TLS and basic auth of the metrics endpoint.

    >>> WebConfig(basic_auth_users={"prometheus": "not a hash"})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for WebConfig
    basic_auth_users
      Value error, prometheus: not a bcrypt hash ($2a$, $2b$ or $2y$) ...
    """

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = {}

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not user or ":" in user:
                raise ValueError(f"{user!r}: a user name is not empty and has no ':'")
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
                raise ValueError(f"{user}: not a bcrypt hash ($2a$, $2b$ or $2y$)")
        return users

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context, or None without ``tls_server_config``."""
        tls = self.tls_server_config
        if tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = (ssl.TLSVersion.TLSv1_3 if tls.min_version == "TLS13"
                                   else ssl.TLSVersion.TLSv1_2)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_auth_type != "NoClientCert":
            context.verify_mode = (ssl.CERT_REQUIRED
                                   if tls.client_auth_type == "RequireAndVerifyClientCert"
                                   else ssl.CERT_OPTIONAL)
            if tls.client_ca_file is not None:
                context.load_verify_locations(tls.client_ca_file)
        return context


def load_web_config(path: Path, key: str = "metrics.web_config_file") -> WebConfig:
    """Read and check a web config file. Raises ConfigError naming ``key``, the file and
    each bad entry's path (never a hash's value)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: {path}: not valid YAML: {exc}") from None
    tls = data.get("tls_server_config") if isinstance(data, dict) else None
    if isinstance(tls, dict):  # relative paths are the file's neighbours, as in exporter-toolkit
        for name in ("cert_file", "key_file", "client_ca_file"):
            if isinstance(tls.get(name), str) and tls[name] and not Path(tls[name]).is_absolute():
                tls[name] = str(path.parent / tls[name])
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{key} ({path}): {where}: {message}")
        raise ConfigError("\n".join(lines)) from None
    try:
        config.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{key} ({path}): tls_server_config: cannot load the certificate "
                          f"or key: {exc}") from None
    return config


class BasicAuth:
    """WSGI middleware: HTTP basic auth (RFC 7617) against bcrypt hashes, except on
    ``open_paths``. A successful check is remembered (by a SHA-256 of the credentials),
    so a scrape every few seconds does not pay bcrypt's cost each time."""

    _DUMMY = bcrypt.hashpw(b"-", bcrypt.gensalt(4))  # unknown users cost a check too

    def __init__(self, app: WsgiApp, users: dict[str, str],
                 open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app, self.open_paths = app, open_paths
        self.users = {u: h.encode() for u, h in users.items()}
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.open_paths or self._allowed(
                environ.get("HTTP_AUTHORIZATION", "")):
            return self.app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("WWW-Authenticate",
                                             'Basic realm="streamdrift", charset="UTF-8"')])
        return [b"Unauthorized\n"]

    def _allowed(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True
                                                   ).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep:
            return False
        digest = hashlib.sha256(f"{user}\0{password}\0".encode() + (hashed or b"")).digest()
        with self._lock:
            if hashed is not None and digest in self._good:
                return True
        ok = bcrypt.checkpw(password.encode(), hashed or self._DUMMY) and hashed is not None
        if ok:
            with self._lock:
                if len(self._good) > 64:
                    self._good.clear()
                self._good.add(digest)
        return ok


@dataclass(eq=False)
class _Waiting:
    sock: socket.socket
    address: Any
    deadline: float
    fd: int = -1
    head: bytearray = field(default_factory=bytearray)
    handshaken: bool = True


def listen(host: str, port: int) -> socket.socket:
    """The listening socket ``MetricsServer`` serves on (IPv6 for a host with a colon;
    SO_REUSEADDR, as ``socket.create_server`` sets it). OSError if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def bind_error(host: str, port: int) -> OSError | None:
    """Why ``MetricsServer`` could not listen on (host, port) now (a bind tried and let
    go), or None."""
    try:
        listen(host, port).close()
    except OSError as exc:
        return exc
    return None


class MetricsServer:
    """Serves ``app`` on (host, port) until ``close``; see the module doc for the bounds.

    ``port`` is the bound port (useful with port 0). ``tls`` wraps every connection.
    """

    def __init__(self, app: WsgiApp, host: str, port: int, tls: ssl.SSLContext | None = None,
                 workers: int = WORKERS, max_connections: int = MAX_CONNECTIONS,
                 header_timeout: float = HEADER_TIMEOUT, io_timeout: float = IO_TIMEOUT) -> None:
        self.app, self.tls = app, tls
        self.max_connections, self.header_timeout = max_connections, header_timeout
        self.io_timeout = io_timeout
        self._listener = listen(host, port)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.base_environ = {"SERVER_NAME": host, "SERVER_PORT": str(self.port),
                             "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_HOST": "",
                             "CONTENT_LENGTH": "", "SCRIPT_NAME": "",
                             **({"HTTPS": "on"} if tls else {})}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._waiting: dict[int, _Waiting] = {}  # by fd, oldest first
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrics-http")
        self._busy = threading.BoundedSemaphore(workers * 8)  # answers queued or running
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="metrics-http-accept",
                                        daemon=True)
        self._thread.start()

    def get_app(self) -> WsgiApp:  # wsgiref's handler asks the server for the app
        return self.app

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the selector thread: accept, TLS handshake, read the request head ---------

    def _serve(self) -> None:
        try:
            while not self._closed.is_set():
                for key, _ in self._selector.select(timeout=0.25):
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        waiting = self._waiting.get(key.fd)
                        if waiting is not None:
                            self._advance(waiting)
                self._expire()
        finally:
            for waiting in list(self._waiting.values()):
                self._drop(waiting)
            self._selector.close()
            self._listener.close()

    def _accept(self) -> None:
        for _ in range(64):  # then serve the others a turn
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: drop the oldest
                log.warning("metrics endpoint: accept failed: %s", exc)
                if self._waiting:
                    self._drop(next(iter(self._waiting.values())))
                return
            if len(self._waiting) >= self.max_connections:
                self._drop(next(iter(self._waiting.values())))
            sock.setblocking(False)
            waiting = _Waiting(sock, address, time.monotonic() + self.header_timeout)
            if self.tls is not None:
                try:
                    waiting.sock = self.tls.wrap_socket(sock, server_side=True,
                                                        do_handshake_on_connect=False)
                except (OSError, ssl.SSLError):
                    sock.close()
                    continue
                waiting.handshaken = False
            waiting.fd = waiting.sock.fileno()
            self._waiting[waiting.fd] = waiting
            self._selector.register(waiting.sock, selectors.EVENT_READ)

    def _advance(self, waiting: _Waiting) -> None:
        sock = waiting.sock
        try:
            if not waiting.handshaken:
                assert isinstance(sock, ssl.SSLSocket)
                sock.do_handshake()
                waiting.handshaken = True
                self._selector.modify(sock, selectors.EVENT_READ)
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    self._drop(waiting)
                    return
                waiting.head += chunk
                if b"\r\n\r\n" in waiting.head or b"\n\n" in waiting.head:
                    self._dispatch(waiting)
                    return
                if len(waiting.head) > MAX_HEAD_BYTES:
                    self._reply_and_drop(waiting, b"431 Request Header Fields Too Large")
                    return
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except ssl.SSLWantWriteError:  # the handshake waits for room to write: rare
            self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        except (OSError, ssl.SSLError):
            self._drop(waiting)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._waiting:
            oldest = next(iter(self._waiting.values()))
            if oldest.deadline > now:
                return
            self._drop(oldest)

    def _forget(self, waiting: _Waiting) -> None:
        if self._waiting.pop(waiting.fd, None) is not None:
            self._selector.unregister(waiting.fd)

    def _drop(self, waiting: _Waiting) -> None:
        self._forget(waiting)
        waiting.sock.close()

    def _reply_and_drop(self, waiting: _Waiting, status: bytes) -> None:
        with contextlib.suppress(OSError):  # best effort, never blocking this thread
            waiting.sock.send(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
        self._drop(waiting)

    def _dispatch(self, waiting: _Waiting) -> None:
        if not self._busy.acquire(blocking=False):
            self._reply_and_drop(waiting, b"503 Service Unavailable")
            return
        self._forget(waiting)
        self._pool.submit(self._answer, waiting.sock, waiting.address, bytes(waiting.head))

    # --- a worker thread: parse and answer one request ------------------------------

    def _answer(self, sock: socket.socket, address: Any, head: bytes) -> None:
        try:
            sock.settimeout(self.io_timeout)
            _Handler(head, sock, address, self)
        except (OSError, ssl.SSLError):
            pass  # the client went away or stopped reading
        except Exception:  # one bad request must not take a worker down
            log.exception("metrics endpoint: request failed")
        finally:
            self._busy.release()
            with contextlib.suppress(OSError):
                sock.close()


class _Handler(WSGIRequestHandler):
    """wsgiref's request handler over a request head already read (one request per
    connection, HTTP/1.0 style: the connection closes after the answer)."""

    def __init__(self, head: bytes, *args: Any) -> None:
        self._head = head
        super().__init__(*args)

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BytesIO(self._head)
        self.wfile = self.request.makefile("wb")

    def get_stderr(self) -> Any:
        return sys.stderr

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the log
