"""The backtest report: one self-contained HTML file (plotly.js and styles inlined).

Nothing is fetched when the file is opened: the plotting library (plotly.js, from the
``plotly`` package's own copy, ``plotly.offline.get_plotlyjs``) sits in the page's head,
styles in a ``<style>`` element, the table sorting in a few lines of script. It shows,
for each config:

- its file, hash, detector settings, the input's event-time range and its counts;
- per model, an alert timeline (event time x feature, coloured by kind) and, when labels
  or class probabilities exist, the rolling error rate and estimated accuracy;
- per feature, the drift scores after every batch over event time (PSI, Jensen-Shannon,
  Wasserstein) with the PSI level 0.25 (the ``StreamdriftFeatureDriftScoreHigh`` rule's)
  and the feature's alerts marked, and at each data-drift alert the reference's shares
  beside those of the values up to the alert (``stream.backtest.distributions``);
- a sortable table of alerts, with ``stats.attribution`` beside prediction and concept
  drift alerts;
- with ``--truth``, the configs side by side, the best per criterion marked.

Each figure's div has an id listed in the JSON of ``<script id="figure-index">``; once
the page has drawn them, a script copies the data plotly holds for each (trace names,
x, y) into ``<script id="plotted">``, so a test can read what was drawn.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from stream import __version__
from stream.config import AppConfig
from stream.events import format_time
from stream.truth import CRITERIA, KnownDrift, criterion

if TYPE_CHECKING:
    from stream.backtest import ConfigRun, RecordedAlert

#: The PSI level drawn on score plots: the "significant shift" reading the Prometheus
#: rule StreamdriftFeatureDriftScoreHigh alerts on.
PSI_LEVEL = 0.25
#: Distribution figures per feature (the first alerts; the table lists every alert).
MAX_DISTRIBUTIONS = 12

KIND_COLOURS = {"data_drift": "#1f77b4", "prediction_drift": "#d62728",
                "concept_drift": "#9467bd", "data_quality": "#ff7f0e"}
SCORE_NAMES = ("psi", "jensen_shannon", "wasserstein")

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1em 2em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:after { content: " \\2195"; color: #aaa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #dff5df; font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: .5em; }
.note { color: #666; font-size: .9em; }
code, pre { background: #f6f6f6; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var down = th.dataset.order !== "asc";
      th.dataset.order = down ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return down ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

# After every figure is drawn: what plotly holds for each, for tests (see the docstring).
PLOTTED_SCRIPT = """
window.addEventListener("load", function () {
  var index = JSON.parse(document.getElementById("figure-index").textContent);
  var plain = function (v) { return v == null ? null : Array.from(v); };
  var out = {};
  Object.keys(index).forEach(function (id) {
    var div = document.getElementById(id);
    out[id] = (div && div.data || []).map(function (t) {
      return {name: t.name, x: plain(t.x), y: plain(t.y)};
    });
  });
  var holder = document.getElementById("plotted");
  holder.textContent = JSON.stringify(out);
  holder.dataset.ready = "1";
});
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _slug(*parts: object) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "_", str(p)) for p in parts)


def _x(time: float | None, position: int, by_time: bool) -> Any:
    return format_time(time) if by_time else position


class _Figures:
    """Figures to place in the page, and the index the tests read."""

    def __init__(self) -> None:
        self.index: dict[str, dict[str, Any]] = {}

    def html(self, fig: go.Figure, div_id: str, toolbar: bool = True, **about: Any) -> str:
        self.index[div_id] = about
        fig.update_layout(margin={"l": 60, "r": 20, "t": 40, "b": 40},
                          template="plotly_white")
        return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                               config={"displaylogo": False, "responsive": True,
                                       "displayModeBar": toolbar}))


def _alert_timeline(figs: _Figures, i: int, model_id: str, alerts: list[RecordedAlert],
                    by_time: bool, span: tuple[float | None, float | None]) -> str:
    fig = go.Figure()
    for kind, colour in KIND_COLOURS.items():
        mine = [a for a in alerts if a.alert["kind"] == kind]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[_x(a.time, a.position, by_time) for a in mine],
            y=[a.alert["feature"] for a in mine], mode="markers", name=kind,
            marker={"color": colour, "size": 11, "symbol": "diamond"},
            text=[f"{a.alert['detector']} at position {a.position}" for a in mine],
            hovertemplate="%{y}: %{text}<br>%{x}<extra>" + kind + "</extra>"))
    fig.update_layout(title=f"Alerts of {model_id}", height=max(220, 120 + 30 * len(
        {a.alert["feature"] for a in alerts})),
        xaxis_title="event time" if by_time else "input position")
    if by_time and span[0] is not None and span[1] is not None:  # the whole input
        fig.update_xaxes(range=[format_time(span[0]), format_time(span[1])])
    return figs.html(fig, _slug("alerts", i, model_id), config=i, model_id=model_id,
                     figure="alerts")


def _performance(figs: _Figures, i: int, model_id: str, run: ConfigRun, by_time: bool
                 ) -> str:
    samples = [p for p in run.performance if p.model_id == model_id]
    if not samples:
        return ""
    fig = go.Figure()
    for name in ("error_rate", "estimated_accuracy"):
        points = [(p, getattr(p, name)) for p in samples if getattr(p, name) is not None]
        if points:
            fig.add_trace(go.Scatter(x=[_x(p.time, p.position, by_time) for p, _ in points],
                                     y=[v for _, v in points], mode="lines", name=name))
    if not fig.data:
        return ""
    fig.update_layout(title=f"Performance of {model_id} (rolling window)", height=300)
    return figs.html(fig, _slug("performance", i, model_id), config=i, model_id=model_id,
                     figure="performance")


def _scores(figs: _Figures, i: int, model_id: str, feature: str, run: ConfigRun,
            alerts: list[RecordedAlert], by_time: bool) -> str:
    samples = [s for s in run.scores if s.model_id == model_id and s.feature == feature]
    fig = go.Figure()
    partitions = sorted({s.partition for s in samples})
    for partition in partitions:
        mine = [s for s in samples if s.partition == partition]
        for name in SCORE_NAMES:
            points = [s for s in mine if name in s.scores]
            if not points:
                continue
            fig.add_trace(go.Scatter(
                x=[_x(s.time, s.position, by_time) for s in points],
                y=[s.scores[name] for s in points], mode="lines",
                name=name if len(partitions) == 1 else f"{name} p{partition}"))
    if alerts:  # marked along the top; the hover tells the window's own scores
        top = max([PSI_LEVEL, *(v for s in samples for v in s.scores.values())]) * 1.1
        fig.add_trace(go.Scatter(
            x=[_x(a.time, a.position, by_time) for a in alerts], y=[top] * len(alerts),
            mode="markers", name="alerts",
            marker={"color": [KIND_COLOURS.get(a.alert["kind"], "#000") for a in alerts],
                    "size": 12, "symbol": "triangle-down"},
            text=[f"{a.alert['kind']} / {a.alert['detector']}: window "
                  + ", ".join(f"{k} {v}" for k, v in a.alert["stats"].get("scores", {}).items())
                  for a in alerts],
            hovertemplate="%{text}<br>%{x}<extra></extra>"))
    fig.add_hline(y=PSI_LEVEL, line_dash="dot", line_color="#888",
                  annotation_text=f"PSI {PSI_LEVEL}", annotation_position="top left")
    fig.update_layout(title=f"{model_id} / {feature}: drift scores", height=320,
                      yaxis_title="score", xaxis_title="event time" if by_time
                      else "input position")
    return figs.html(fig, _slug("scores", i, model_id, feature), config=i,
                     model_id=model_id, feature=feature, figure="scores")


def _distribution(figs: _Figures, i: int, n: int, recorded: RecordedAlert) -> str:
    d = recorded.distribution
    if d is None:
        return ""
    alert = recorded.alert
    fig = go.Figure()
    fig.add_trace(go.Bar(x=d["labels"], y=d["reference"], name="reference"))
    fig.add_trace(go.Bar(x=d["labels"], y=d["current"], name=f"current ({d['current_n']})"))
    fig.update_layout(title={"text": f"{alert['feature']}, {alert['detector']} at "
                                     f"{alert.get('event_time') or recorded.position}",
                             "font": {"size": 13}},
                      barmode="group", height=300, width=560,
                      yaxis_title="share", legend={"orientation": "h", "y": -0.45})
    return figs.html(fig, _slug("dist", i, n), False, config=i, model_id=alert["model_id"],
                     feature=alert["feature"], alert_id=alert["alert_id"],
                     figure="distribution")


def _effects(stats: dict[str, Any]) -> str:
    parts = []
    before, after = stats.get("before", {}), stats.get("after", {})
    for key in ("mean", "error_rate", "estimated_accuracy", "rate"):
        if key in before or key in after:
            parts.append(f"{key} {before.get(key, '?')} &rarr; {after.get(key, '?')} "
                         f"(n {after.get('n', '?')})")
    if "top" in after:
        parts.append("after: " + ", ".join(f"{_e(k)} {v}" for k, v in after["top"].items()))
    if "departure" in stats:
        parts.append(f"departure {stats['departure']}")
    if stats.get("contributors"):  # the multivariate series: where the joint moved
        parts.append("contributors: " + ", ".join(
            f"{_e(k)} {v}" for k, v in stats["contributors"].items()))
    return "<br>".join(parts)


def _segment(alert: dict[str, Any]) -> str:
    """``feature=value`` of a segment series' alert (``detectors.segments``), else ''."""
    segment = alert.get("segment")
    return "" if not segment else f"{segment['feature']}={segment['value']}"


def _attribution(stats: dict[str, Any]) -> str:
    ranked = stats.get("attribution")
    if not ranked:
        return ""
    return "<ol>" + "".join(f"<li>{_e(r['feature'])} (JS {r['jensen_shannon']})</li>"
                            for r in ranked) + "</ol>"


def _cell(value: Any, sort: Any = None, num: bool = False, raw: bool = False) -> str:
    shown = value if raw else _e(value)
    key = _e(value if sort is None else sort)
    return f'<td data-v="{key}"{" class=num" if num else ""}>{shown}</td>'


def _alert_table(alerts: list[RecordedAlert]) -> str:
    head = ("event time", "position", "model", "feature", "segment", "kind", "detector", "PSI",
            "JS",
            "Wasserstein", "effect", "source", "attribution")
    rows = []
    for a in alerts:
        al = a.alert
        stats = al.get("stats", {})
        scores = stats.get("scores", {})
        src = al.get("source", {})
        cells = (
            _cell(al.get("event_time") or "", a.time if a.time is not None else ""),
            _cell(a.position, num=True), _cell(al["model_id"]), _cell(al["feature"]),
            _cell(_segment(al)), _cell(al["kind"]), _cell(al["detector"]),
            _cell(scores.get("psi", ""), num=True),
            _cell(scores.get("jensen_shannon", ""), num=True),
            _cell(scores.get("wasserstein", ""), num=True),
            _cell(_effects(stats), "", raw=True),
            _cell(f"{src.get('topic')}[{src.get('partition')}]@{src.get('offset')}",
                  a.position),
            _cell(_attribution(stats), "", raw=True))
        ident = _e(al["alert_id"])
        rows.append(f'<tr id="alert-{ident}" title="alert_id {ident}">{"".join(cells)}</tr>')
    return ('<table class="sortable alerts"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _truth_table(summary: dict[str, Any], runs: list[ConfigRun]) -> str:
    configs = summary["configs"]
    if not configs or "truth" not in configs[0]:
        return ""
    best = summary.get("best", {})
    head = "".join(f"<th>{_e(run.name)}</th>" for run in runs)
    rows = []
    for name in CRITERIA:
        cells = []
        for j, c in enumerate(configs):
            value = criterion(c["truth"], name)
            is_best = j in best.get(name, []) and len(configs) > 1
            shown = "&ndash;" if value is None else f"{value:g}"
            cells.append(f'<td class="num{" best" if is_best else ""}">{shown}'
                         f'{" &#9733;" if is_best else ""}</td>')
        rows.append(f"<tr><th>{_e(name)}</th>{''.join(cells)}</tr>")
    counts = "".join(f'<td class="num">{c["truth"]["detected"]} / {c["truth"]["drifts"]}</td>'
                     for c in configs)
    rows.insert(0, f"<tr><th>detected / known drifts</th>{counts}</tr>")
    return ("<h2>Against the known drifts</h2><p class=note>Best per criterion marked "
            "&#9733; (alerts per drift: closest to 1). Definitions: docs/contracts.md, "
            "backtest.</p>"
            f'<table class="truth"><thead><tr><th>criterion</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _config_table(summary: dict[str, Any]) -> str:
    head = ("config", "hash", "records", "events", "rejected", "labels", "alerts",
            "first event", "last event")
    rows = []
    for c in summary["configs"]:
        rows.append("<tr>" + "".join(_cell(c[k], num=isinstance(c[k], int)) for k in (
            "config", "config_hash", "records", "events", "rejected", "labels", "alerts",
            "first_event_time", "last_event_time")) + "</tr>")
    return ('<table class="configs"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _pairs(alerts: Iterable[RecordedAlert], run: ConfigRun) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for s in run.scores:
        seen.setdefault((s.model_id, s.feature), None)
    for a in alerts:
        seen.setdefault((a.alert["model_id"], a.alert["feature"]), None)
    return list(seen)


def _config_section(figs: _Figures, i: int, run: ConfigRun, config: AppConfig) -> str:
    by_time = run.first_time is not None
    settings = orjson.dumps(config.detectors.model_dump(mode="json"),
                            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    parts = [f'<h2 id="config-{i}">{_e(run.name)} <small>(config_hash '
             f"{_e(run.config_hash)})</small></h2>",
             f"<details><summary>detector settings</summary><pre>{_e(settings)}</pre>"
             "</details>",
             f"<p>{run.records:,} records: {run.events:,} events, {run.rejected:,} rejected, "
             f"{run.labels:,} labels; {run.feature_events:,} feature-events; "
             f"{len(run.alerts)} alerts; event time {_e(format_time(run.first_time))} to "
             f"{_e(format_time(run.last_time))}.</p>"]
    models = sorted({s.model_id for s in run.scores} | {a.alert["model_id"]
                                                        for a in run.alerts})
    for model_id in models:
        alerts = [a for a in run.alerts if a.alert["model_id"] == model_id]
        parts.append(f"<h3>Model {_e(model_id)}</h3>")
        if alerts:
            parts.append(_alert_timeline(figs, i, model_id, alerts, by_time,
                                         (run.first_time, run.last_time)))
        else:
            parts.append("<p>No alerts.</p>")
        parts.append(_performance(figs, i, model_id, run, by_time))
        for m, feature in _pairs(alerts, run):
            if m != model_id:
                continue
            mine = [a for a in alerts if a.alert["feature"] == feature]
            parts.append(_scores(figs, i, model_id, feature, run, mine, by_time))
            dists = [_distribution(figs, i, run.alerts.index(a), a)
                     for a in mine if a.distribution is not None][:MAX_DISTRIBUTIONS]
            if dists:
                parts.append("<p class=note>At each alert: the shares of the reference in "
                             "force beside those of the feature's values up to the alert's "
                             "event (the alert's window, at least 250 values)."
                             f"</p><div class=grid>{''.join(dists)}</div>")
    parts.append("<h3>Alerts</h3><p class=note>Click a column to sort.</p>")
    parts.append(_alert_table(run.alerts))
    return "\n".join(parts)


def render(runs: list[ConfigRun], summary: dict[str, Any], configs: list[AppConfig],
           known: list[KnownDrift]) -> str:
    """The report's HTML text (see the module docstring)."""
    figs = _Figures()
    sections = [_config_section(figs, i, run, config)
                for i, (run, config) in enumerate(zip(runs, configs, strict=False))]
    truth_note = (f"<p>{len(known)} known drifts from the truth file.</p>" if known else "")
    index = orjson.dumps(figs.index).decode().replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamdrift backtest: {_e(summary['input'])}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head><body>
<h1>streamdrift backtest</h1>
<p>Input: <code>{_e(summary['input'])}</code>. streamdrift {__version__}.</p>
{_config_table(summary)}
{truth_note}
{_truth_table(summary, runs)}
{''.join(sections)}
<script type="application/json" id="figure-index">{index}</script>
<script type="application/json" id="plotted"></script>
<script>{SORT_SCRIPT}</script>
<script>{PLOTTED_SCRIPT}</script>
</body></html>
"""


def write(path: str | Path, runs: list[ConfigRun], summary: dict[str, Any],
          configs: list[AppConfig], known: list[KnownDrift]) -> None:
    """Write the report to ``path`` (UTF-8)."""
    Path(path).write_text(render(runs, summary, configs, known), encoding="utf-8")
