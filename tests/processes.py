"""A pytest fixture for tests that call the CLI's ``main`` in this process."""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def isolated_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STREAMDRIFT_* variables from the caller; the signal handlers replay installs are
    put back, so Ctrl-C still stops pytest, and so is the garbage collector as a loop
    sets it (``cli._collect_less``). Import it into a test module to use it there."""
    for name in list(os.environ):
        if name.startswith("STREAMDRIFT_"):
            monkeypatch.delenv(name)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    thresholds = gc.get_threshold()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    gc.set_threshold(*thresholds)
    gc.unfreeze()
