"""The command line explains itself: every option described with its default (a snapshot
of each --help), defaults equal to the config schema's, and --version without the
detectors (parsing imports only the standard library)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream import cli
from stream.config import AppConfig
from stream.simulate import FEATURES

SNAPSHOT = Path(__file__).parent / "snapshots" / "cli_help.txt"
REPO = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _all_help(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    parser = cli.build_parser()
    parts = [f"$ streamdrift --help\n{parser.format_help()}"]
    for name, sub in _subparsers(parser).items():
        parts.append(f"$ streamdrift {name} --help\n{sub.format_help()}")
    return "\n".join(parts)


def test_help_matches_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to the CLI's text shows up here; to accept it, run
    ``UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_cli_help.py`` and review the diff."""
    text = _all_help(monkeypatch)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")


def test_every_option_is_described_with_its_default() -> None:
    for name, sub in _subparsers(cli.build_parser()).items():
        # One of a required pair (--input | --topic) has no default: it is the choice.
        chosen = {id(a) for group in sub._mutually_exclusive_groups if group.required
                  for a in group._group_actions}
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = action.option_strings[-1]
            assert action.help, f"{name} {flag} has no description"
            if id(action) in chosen or isinstance(action, argparse._StoreTrueAction):
                continue  # a choice of a required pair, or a switch (off unless given)
            assert "default" in action.help, f"{name} {flag}: no default in {action.help!r}"


def _config_default(key: str) -> object:
    node: object = AppConfig()
    for part in key.split("."):
        node = getattr(node, part)
    return node


def test_the_defaults_in_the_help_are_the_config_schemas() -> None:
    checked = 0
    for name, sub in _subparsers(cli.build_parser()).items():
        for action in sub._actions:
            if "." not in action.dest:  # not a config key
                continue
            default = _config_default(action.dest)
            shown = "none" if default is None else str(default)
            assert f"{action.dest}; default: {shown})" in (action.help or "") or (
                f"default: {shown})" in (action.help or "")), (name, action.dest, default)
            checked += 1
    assert checked >= 10


def test_simulated_feature_choices_are_the_simulators() -> None:
    assert cli.SIMULATED_FEATURES == FEATURES


def test_version_answers_without_importing_the_detectors() -> None:
    probe = ("import sys\n"
             "from stream.cli import main\n"
             "try:\n    main(['--version'])\nexcept SystemExit as exc:\n    code = exc.code\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('detectors', 'river', 'numpy', 'confluent_kafka', 'pydantic', 'pandas'))\n"
             "print(code, heavy)\n")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=True)
    elapsed = time.monotonic() - began
    assert done.stdout.startswith("streamdrift 0.1.0\n"), done.stdout
    assert done.stdout.splitlines()[-1] == "0 []", done.stdout  # exit 0, nothing heavy
    print(f"--version in {elapsed:.2f} s (a whole interpreter start)")  # measured, not asserted
