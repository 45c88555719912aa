"""Open a page in Debian's headless Chromium and report what happened, for tests.

The browser is driven over the Chrome DevTools Protocol on a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes, the browser reading
fd 3 and writing fd 4), so no client library is needed. For one page it records every
request the page made (``Network.requestWillBeSent``), every console message
(``Runtime.consoleAPICalled``), uncaught exception (``Runtime.exceptionThrown``) and
browser log entry (``Log.entryAdded``: e.g. a failed load), evaluates expressions once
the page has loaded, and takes a screenshot. Only the page's own session is watched:
the browser's background traffic is not the page's.

    from tests.browser import CHROMIUM, open_page

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); nothing
fetches a browser at run time.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# As the machine's probe runs it: no sandbox as root, no GPU, and none of the browser's
# own background connections (this machine's network is closed to them).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--remote-debugging-pipe"]


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, process: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.process = process
        self._write = write_fd
        self._read = read_fd
        self._next = 0
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._read, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = orjson.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._replies[message["id"]] = message
                        self._cond.notify_all()
                else:
                    self.events.put(message)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, orjson.dumps(message) + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise TimeoutError(f"no answer to {method} within {timeout}s")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result


def _launch(profile: str) -> _Pipe:
    assert CHROMIUM is not None
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # High numbers first, so that placing them at 3 and 4 cannot clobber each other.
    high_r = os.dup(to_browser_r)
    high_w = os.dup(from_browser_w)
    while high_r < 5 or high_w < 5:
        high_r, high_w = os.dup(high_r), os.dup(high_w)

    def place() -> None:
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        pass_fds=(3, 4, high_r, high_w), preexec_fn=place)  # dup2 only
    for fd in (to_browser_r, from_browser_w, high_r, high_w):
        os.close(fd)
    return _Pipe(process, to_browser_w, from_browser_r)


def open_page(url: str, expressions: dict[str, str] | None = None,
              ready: str = "document.readyState === 'complete'", width: int = 1280,
              height: int = 2400, scale: float = 0.5, timeout: float = 90.0) -> PageVisit:
    """Load ``url``, wait until ``ready`` (a JavaScript expression) is true, evaluate each
    of ``expressions`` (name -> JavaScript; the value by JSON), take a PNG screenshot of
    the top ``width`` x ``height`` pixels (scaled by ``scale``), and return what the page
    did. TimeoutError when the page is not ready within ``timeout`` seconds."""
    visit = PageVisit()
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        pipe = _launch(profile)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget",
                                {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Network", "Runtime", "Log", "Page"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session=session)
            pipe.call("Page.navigate", {"url": url}, session=session)
            deadline = time.monotonic() + timeout
            while True:
                done = pipe.call("Runtime.evaluate", {"expression": f"Boolean({ready})",
                                                      "returnByValue": True}, session=session)
                if done.get("result", {}).get("value") is True:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready within {timeout}s")
                time.sleep(0.2)
            for name, expression in (expressions or {}).items():
                found = pipe.call("Runtime.evaluate", {"expression": expression,
                                                       "returnByValue": True},
                                  session=session)
                visit.values[name] = found.get("result", {}).get("value")
            shot = pipe.call("Page.captureScreenshot", {
                "format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height,
                                          "scale": scale}}, session=session)
            visit.screenshot = base64.b64decode(shot["data"])
            time.sleep(0.5)  # events still on their way
        finally:
            with contextlib.suppress(TimeoutError, RuntimeError, OSError):
                pipe.call("Browser.close", timeout=10)
            try:
                pipe.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pipe.process.kill()
                pipe.process.wait()
    while not pipe.events.empty():
        event = pipe.events.get()
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in params.get("args", []))
            visit.console.append((params.get("type", ""), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            visit.exceptions.append(str(details.get("exception", {}).get("description")
                                        or details.get("text")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            visit.log_errors.append(f"{params['entry'].get('text')} {params['entry'].get('url')}")
    return visit


def png_colours(png: bytes, step: int = 8) -> set[tuple[int, ...]]:
    """The distinct pixel colours of an 8-bit RGB or RGBA PNG (non-interlaced), sampling
    every ``step``-th pixel of every ``step``-th row (PNG, RFC 2083: chunks, zlib, the
    five row filters)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, data, header = 8, b"", b""
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind = png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            data += body
        pos += 12 + length
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(data)
    stride = width * bpp
    previous = bytearray(stride)
    colours: set[tuple[int, ...]] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[i - bpp] if i >= bpp else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        if y % step == 0:
            for x in range(0, width, step):
                colours.add(tuple(line[x * bpp:x * bpp + 3]))
        previous = line
    return colours
