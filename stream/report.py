"""The backtest report: one self-contained HTML file."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson


def write(path: str | Path, runs: list[Any], summary: dict[str, Any], configs: list[Any],
          known: list[Any]) -> None:
    body = html.escape(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    Path(path).write_text(f"<!doctype html><meta charset=utf-8><title>streamdrift backtest"
                          f"</title><pre>{body}</pre>\n", encoding="utf-8")
