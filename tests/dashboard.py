"""The PromQL of the Grafana dashboard (deploy/grafana/dashboards/streamdrift.json).

Shared by the unit test of the deploy files and the integration test that runs
every expression against a real Prometheus:

    from tests.dashboard import dashboard_expressions

Grafana's variables are replaced by values Prometheus accepts: the template
variables by "match anything", the interval variables by fixed durations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "streamdrift.json"

SUBSTITUTIONS = {
    "model": ".*",
    "feature": ".*",
    "score": "psi",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "5m",
}

# $name, ${name} and ${name:format}; PromQL itself never uses "$".
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


def raw_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every Prometheus annotation, unsubstituted."""
    found = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel.get('title')!r} target {target.get('refId')}",
                          target.get("expr", "")))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            found.append((f"annotation {annotation.get('name')!r}", annotation["expr"]))
    return found


def substitute(expr: str) -> str:
    """Grafana variables replaced; an unknown variable is an error, not a silent pass.

    >>> substitute('rate(x{model_id=~"$model"}[$__rate_interval])')
    'rate(x{model_id=~".*"}[1m])'
    >>> substitute('x{feature=~"${feature:regex}"}')
    'x{feature=~".*"}'
    >>> substitute("x[$nope]")
    Traceback (most recent call last):
    ...
    ValueError: dashboard variable $nope has no test value (tests/dashboard.py SUBSTITUTIONS)
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in SUBSTITUTIONS:
            raise ValueError(f"dashboard variable ${name} has no test value "
                           "(tests/dashboard.py SUBSTITUTIONS)")
        return SUBSTITUTIONS[name]

    return _VARIABLE.sub(value, expr)


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(where, expr) with the variables substituted, ready for Prometheus."""
    return [(where, substitute(expr)) for where, expr in raw_queries(load_dashboard(path))]


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    """Every distinct expression of the dashboard, variables substituted, in order."""
    return list(dict.fromkeys(expr for _where, expr in dashboard_queries(path)))
