"""docs/contracts.md keeps up with the code: every metric, dead-letter reason, alert kind
and detector, DLQ header and CLI flag the code has is documented there, the doc names
no metric, reason, kind or detector the code lacks, and every reference points there.

Alert kinds and detector names have no single list in ``detectors/`` (they are string
literals where each monitor fires), so they are read from its source with ``ast``: the
constants that reach a slot called ``kind`` or ``detector`` (an argument, a class
field, a ``Literal`` annotation, an assignment) and the string constants of tuples that
a typed local (``hit: Hit | None``, ``found: list[tuple[int, str, ...]]``) receives.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectors.concept_drift import ERROR, ERROR_RATE, ESTIMATED_ACCURACY, OUTCOMES
from detectors.values import CONFIDENCE, PREDICTION
from stream import cli, records
from stream.events import REASONS
from stream.metrics import Metrics
from stream.state import REJECT_REASONS

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "docs" / "contracts.md"
DOC = CONTRACTS.read_text(encoding="utf-8")

# --- what the code has -------------------------------------------------------------------


def _exported_metrics() -> dict[str, tuple[str, ...]]:
    """Exposition name -> label names, from the app's own registry (as
    tests/unit/test_deploy_files.py names them: counters end in _total, infos in _info)."""
    metrics = Metrics()
    labels = {m._name: tuple(m._labelnames) for m in vars(metrics).values()
              if hasattr(m, "_labelnames")}
    out = {}
    for family in metrics.registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names = labels.get(family.name, ())
        if family.type == "info":
            names = tuple(sorted({k for s in family.samples for k in s.labels}))
        out[family.name + suffix] = names
    return out


def _trees() -> Iterator[ast.Module]:
    for path in sorted((REPO / "detectors").rglob("*.py")):
        yield ast.parse(path.read_text(encoding="utf-8"), str(path))


def _strings(node: ast.AST | None) -> set[str]:
    """String constants a value expression may evaluate to (``a if c else b`` both)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    if isinstance(node, ast.BoolOp):
        return set().union(*map(_strings, node.values))
    return set()


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


SLOTS = ("kind", "detector")


class _AlertNames(ast.NodeVisitor):
    """Collects, per slot name, the constants that reach it, plus tuple-typed constants."""

    def __init__(self, trees: list[ast.Module]) -> None:
        self.found: dict[str, set[str]] = {slot: set() for slot in SLOTS}
        self.tuple_strings: set[str] = set()
        self.params: dict[str, list[list[str]]] = {}  # callee -> parameter lists
        self.aliases: dict[str, ast.expr] = {}  # module-level type aliases
        for tree in trees:
            for stmt in tree.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and isinstance(stmt.targets[0], ast.Name)
                        and isinstance(stmt.value, ast.Subscript)):
                    self.aliases[stmt.targets[0].id] = stmt.value
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.params.setdefault(node.name, []).append(self._class_params(node))
                elif isinstance(node, ast.FunctionDef):
                    args = [a.arg for a in node.args.posonlyargs + node.args.args]
                    self.params.setdefault(node.name, []).append(
                        args[1:] if args[:1] in (["self"], ["cls"]) else args)
        for tree in trees:
            self.visit(tree)

    @staticmethod
    def _class_params(node: ast.ClassDef) -> list[str]:
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                return [a.arg for a in item.args.args[1:]]
        return [item.target.id for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]

    def visit_Call(self, node: ast.Call) -> None:
        for params in self.params.get(_name(node.func) or "", []):
            for i, arg in enumerate(node.args):
                if i < len(params) and params[i] in SLOTS:
                    self.found[params[i]] |= _strings(arg)
        for kw in node.keywords:
            if kw.arg in SLOTS and _name(node.func) in self.params:
                self.found[kw.arg] |= _strings(kw.value)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id in SLOTS:
                self.found[target.id] |= _strings(node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        name = _name(node.target)
        if name in SLOTS:
            for sub in ast.walk(node.annotation):
                if isinstance(sub, ast.Subscript) and _name(sub.value) == "Literal":
                    self.found[name] |= {c.value for c in ast.walk(sub.slice)
                                         if isinstance(c, ast.Constant)
                                         and isinstance(c.value, str)}
            self.found[name] |= _strings(node.value)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        typed: dict[str, tuple[list[bool], bool]] = {}  # local -> (str slots, is a list)
        for sub in ast.walk(node):
            if isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
                shape = self._tuple_shape(sub.annotation)
                if shape is not None:
                    typed[sub.target.id] = shape
        for sub in ast.walk(node):
            value, target = None, None
            if isinstance(sub, ast.Assign | ast.AnnAssign) and isinstance(sub.value, ast.Tuple):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                target, value = _name(targets[0]), sub.value
                if target in typed and typed[target][1]:
                    continue  # a list is filled by append
            elif (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                  and sub.func.attr == "append" and sub.args
                  and isinstance(sub.args[0], ast.Tuple)):
                target, value = _name(sub.func.value), sub.args[0]
                if target in typed and not typed[target][1]:
                    continue
            if target in typed and value is not None:
                slots = typed[target][0]
                for is_str, element in zip(slots, value.elts, strict=False):
                    if is_str:
                        self.tuple_strings |= _strings(element)
        self.generic_visit(node)

    def _tuple_shape(self, annotation: ast.expr) -> tuple[list[bool], bool] | None:
        """(which elements are ``str``, whether it is a list of them) of an annotation that
        is a tuple type, a list of one, or an alias of either, maybe ``| None``."""
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            return (self._tuple_shape(annotation.left)
                    or self._tuple_shape(annotation.right))
        if isinstance(annotation, ast.Name) and annotation.id in self.aliases:
            return self._tuple_shape(self.aliases[annotation.id])
        if not isinstance(annotation, ast.Subscript):
            return None
        outer = _name(annotation.value)
        if outer == "list":
            inner = self._tuple_shape(annotation.slice)
            return None if inner is None else (inner[0], True)
        if outer == "tuple" and isinstance(annotation.slice, ast.Tuple):
            return [_name(e) == "str" for e in annotation.slice.elts], False
        return None


@pytest.fixture(scope="module")
def alert_names() -> tuple[set[str], set[str]]:
    """(kinds, detectors) the detectors can put in an alert."""
    found = _AlertNames(list(_trees()))
    kinds = found.found["kind"]
    detectors = (found.found["detector"] | found.tuple_strings) - kinds
    return kinds, detectors


# --- what the doc says -------------------------------------------------------------------


def _section(title: str) -> str:
    """The text under a heading (any level) up to the next heading of that level or above."""
    heading = re.search(rf"^(#+) {re.escape(title)}$", DOC, re.M)
    assert heading, f"docs/contracts.md has no section {title!r}"
    body = DOC[heading.end():]
    end = re.search(rf"^#{{1,{len(heading.group(1))}}} ", body, re.M)
    return body[: end.start()] if end else body


def _first_column(section: str) -> set[str]:
    """Backticked names in the first column of the section's tables (header excluded)."""
    names: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and not set(cells[1].strip()) <= set("-: "):
            names |= set(re.findall(r"`([^`]+)`", cells[1]))
    return names


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


# --- metrics -----------------------------------------------------------------------------


def test_every_registered_metric_is_documented_with_its_labels() -> None:
    rows = {line.split("|")[1].strip().strip("`"): line
            for line in _section("Metrics").splitlines() if line.startswith("| `streamdrift_")}
    exported = _exported_metrics()
    assert len(exported) >= 20, exported  # the registry was read
    missing = sorted(set(exported) - set(rows))
    assert not missing, f"metrics the app registers but docs/contracts.md lacks: {missing}"
    for name, labels in exported.items():
        documented = set(re.findall(r"`(\w+)`", rows[name].split("|")[3]))
        assert documented == set(labels), f"{name}: labels {labels}, documented {documented}"


def test_the_doc_names_no_metric_the_app_lacks() -> None:
    exported = set(_exported_metrics())
    allowed = exported | {f"{n}{s}" for n in exported
                          for s in ("_bucket", "_sum", "_count", "_created")}
    unknown = sorted(set(re.findall(r"\bstreamdrift_[a-z_]+[a-z]", DOC)) - allowed)
    assert not unknown, f"docs/contracts.md names metrics the app does not export: {unknown}"


def test_metric_label_values_from_fixed_sets_are_documented() -> None:
    section = _backticked(_section("Metrics"))
    for values, what in ((REJECT_REASONS, "state_rejected reason"), (OUTCOMES, "outcome"),
                         (("psi", "jensen_shannon", "wasserstein"), "score")):
        missing = sorted(set(values) - section)
        assert not missing, f"{what} values not in docs/contracts.md#metrics: {missing}"


# --- dead letters ------------------------------------------------------------------------


def test_every_dlq_reason_is_documented_and_no_other() -> None:
    documented = _first_column(_section("Reasons"))
    assert documented == set(REASONS), (
        f"in the code only: {sorted(set(REASONS) - documented)}; "
        f"in the doc only: {sorted(documented - set(REASONS))}")


def test_every_streamdrift_header_is_documented() -> None:
    # Headers are (name, value) pairs: tuples whose first element names a header; the
    # truncation headers' names are constants of stream/records.py (sinks and the file
    # source use them).
    tree = ast.parse((REPO / "stream" / "sinks.py").read_text(encoding="utf-8"))
    headers = {node.elts[0].value for node in ast.walk(tree)
               if isinstance(node, ast.Tuple) and len(node.elts) == 2
               and isinstance(node.elts[0], ast.Constant)
               and str(node.elts[0].value).startswith("streamdrift.")}
    headers |= {records.TRUNCATED, records.ORIGINAL_SIZE, records.ORIGINAL_SHA256}
    assert {"streamdrift.reason", "streamdrift.source.offset"} <= headers  # the scan works
    missing = sorted(headers - _backticked(_section("Dead letter")))
    assert not missing, f"headers not in docs/contracts.md#dead-letter: {missing}"


# --- alerts ------------------------------------------------------------------------------


def test_alert_names_are_read_from_the_detectors(
        alert_names: tuple[set[str], set[str]]) -> None:
    # The scan must still see the names the detectors have today: if a reshape of
    # detectors/ hides them from it, this fails instead of the checks below passing on
    # nothing.
    kinds, detectors = alert_names
    assert {"data_drift", "prediction_drift", "concept_drift", "data_quality"} <= kinds
    assert {"adwin", "adwin_spread", "page_hinkley", "adwin_unseen", "adwin_missing",
            "cusum_location", "cusum_spread", "chi2", "ddm", "hddm_w"} <= detectors


def test_every_alert_kind_is_documented_and_no_other(
        alert_names: tuple[set[str], set[str]]) -> None:
    kinds, _ = alert_names
    documented = _first_column(_section("`kind`"))
    assert documented == kinds, (f"in the code only: {sorted(kinds - documented)}; "
                                 f"in the doc only: {sorted(documented - kinds)}")


def test_every_alert_detector_is_documented_and_no_other(
        alert_names: tuple[set[str], set[str]]) -> None:
    _, detectors = alert_names
    documented = _first_column(_section("`detector`"))
    assert documented == detectors, (f"in the code only: {sorted(detectors - documented)}; "
                                     f"in the doc only: {sorted(documented - detectors)}")


def test_alert_feature_names_of_predictions_and_concept_drift_are_documented() -> None:
    alert = _backticked(_section("Alert"))
    missing = {PREDICTION, CONFIDENCE, ERROR_RATE, ERROR, ESTIMATED_ACCURACY} - alert
    assert not missing, sorted(missing)


# --- CLI ---------------------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    """(command, long option) of the parser and each subcommand; -h/--help left out."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield command, command
                for _, option in _options(sub):
                    yield command, option
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                yield "", option


def test_every_cli_command_and_flag_is_documented() -> None:
    section = _section("CLI")
    options = list(_options(cli.build_parser()))
    assert len(options) > 30, options  # the parser was walked
    missing = sorted({f"{c} {o}".strip() for c, o in options
                      if not re.search(rf"`{re.escape(o)}[` ]", section)})
    assert not missing, f"not in docs/contracts.md#cli: {missing}"


def test_exit_codes_are_documented() -> None:
    codes = {line.split("|")[1].strip() for line in _section("Exit codes").splitlines()
             if line.startswith("| ")}
    for code in (0, cli.EXIT_CONFIG, cli.EXIT_UNAVAILABLE, cli.EXIT_AUTH, cli.EXIT_ALL_REJECTED):
        assert str(code) in codes, code


def test_cli_help_points_to_the_contracts() -> None:
    assert "docs/contracts.md" in cli.build_parser().format_help()


# --- references --------------------------------------------------------------------------

_SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
              ".cache", "build", "var", "node_modules"}
# Assembled, so that this file does not name them: the team's design document, which is
# not in the repository (users never see it).
_OLD_DOC = "DESIGN" + ".md"
_OLD_NAMES = (_OLD_DOC.lower(), "the design" + " doc")


def _repo_files() -> Iterator[Path]:
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(p in _SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        if path.is_file():
            yield path


def test_no_file_points_to_the_team_design_doc() -> None:
    mentions = []
    for path in _repo_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for number, line in enumerate(text.splitlines(), start=1):
            if any(name in line.lower() for name in _OLD_NAMES):
                mentions.append(f"{path.relative_to(REPO)}:{number}")
    assert not mentions, (f"point to docs/contracts.md instead of {_OLD_DOC} "
                          f"(not in the repository): {mentions}")


def test_readme_points_to_the_contracts() -> None:
    assert "docs/contracts.md" in (REPO / "README.md").read_text(encoding="utf-8")
