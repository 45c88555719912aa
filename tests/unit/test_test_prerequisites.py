"""deploy/test-prerequisites.sh (run first by `make test`): on a machine without the
Prometheus tools or Java it stops at once with the exact command to run, and passes where
everything is there. Run with a PATH of stand-ins, and TEST_INSTALL_TOOLS=0 so it never
installs anything here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "test-prerequisites.sh"
BASICS = ("bash", "id", "printf", "tee", "chmod", "rm", "true")


def machine(tmp_path: Path, tools: tuple[str, ...]) -> dict[str, str]:
    """An environment whose PATH holds the shell basics and stand-ins for ``tools``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in BASICS:
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    for tool in tools:
        stub = bin_dir / tool
        stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        stub.chmod(0o755)
    return {"PATH": str(bin_dir), "TEST_INSTALL_TOOLS": "0", "HOME": str(tmp_path)}


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_missing_prometheus_tools_stop_at_once_with_the_command(tmp_path: Path) -> None:
    done = run(machine(tmp_path, ("java", "mvn", "openssl")))
    assert done.returncode == 1
    assert ("missing promtool prometheus amtool; run: sudo apt-get install "
            "--no-install-recommends prometheus prometheus-alertmanager") in done.stderr
    assert "README" in done.stderr


def test_only_the_packages_of_the_missing_tools_are_named(tmp_path: Path) -> None:
    done = run(machine(tmp_path, ("java", "mvn", "openssl", "promtool", "prometheus")))
    assert done.returncode == 1
    assert "missing amtool; run: sudo apt-get install --no-install-recommends " \
           "prometheus-alertmanager\n" in done.stderr


def test_missing_java_or_maven_is_named_with_a_command(tmp_path: Path) -> None:
    done = run(machine(tmp_path, ("promtool", "prometheus", "amtool", "openssl")))
    assert done.returncode == 1
    assert "missing java mvn" in done.stderr
    assert "apt-get install openjdk-17-jre-headless maven" in done.stderr


def test_everything_present_passes(tmp_path: Path) -> None:
    done = run(machine(tmp_path, ("java", "mvn", "promtool", "prometheus", "amtool",
                                  "openssl")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("prerequisites: ")


@pytest.mark.skipif(os.name != "posix", reason="a POSIX shell script")
def test_make_test_runs_the_check_first() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "\ntest: prerequisites lint\n" in makefile
    assert "\nprerequisites:\n\tdeploy/test-prerequisites.sh\n" in makefile
