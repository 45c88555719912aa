"""The multivariate monitor on NannyML's synthetic car-loan data (issue 17's check).

    python bench/car_loan.py [--cache DIR] [--out bench/results/car_loan]

NannyML ships a synthetic car-loan dataset in its wheel (``nannyml/datasets/data/``):
50,000 reference rows and 50,000 analysis rows of a binary classifier's inputs (four
numeric features, three categorical). Its documentation's drift examples (data
reconstruction drift, univariate drift) show the inputs change in the analysis
period from its row 25,000 (chunks of 5,000: the sixth chunk on). This script
downloads that wheel from PyPI once (``pip download nannyml==VERSION --no-deps``; no
other part of NannyML is installed or imported), reads the two CSV files, and replays
reference rows then analysis rows through ``detectors.detect`` (one model,
``warmup`` 5,000, the PCA fitted on the first 10,000 reference rows). The change is at
stream position 75,000. Target: the ``multivariate`` series alerts after it and never
before it.

Writes OUT.md and OUT.json (default bench/results/car_loan.*).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors import DetectorConfig, detect
from detectors.multivariate import MULTIVARIATE

VERSION = "0.13.1"
DATA = "nannyml/datasets/data/"
FILES = ("synthetic_car_loan_reference.csv", "synthetic_car_loan_analysis.csv")
NUMERIC = ("car_value", "debt_to_income_ratio", "loan_length", "driver_tenure")
CATEGORICAL = ("salary_range", "repaid_loan_on_prev_car", "size_of_downpayment")
REFERENCE_ROWS = 50_000
CHANGE = REFERENCE_ROWS + 25_000
CONFIG = {"warmup": 5000, "multivariate": {"enabled": True, "fit_events": 10_000}}
RESULTS = Path(__file__).resolve().parent / "results"


def wheel(cache: Path) -> Path:
    """NannyML's wheel, downloaded into ``cache`` once."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"nannyml-{VERSION}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", f"nannyml=={VERSION}",
                        "--no-deps", "--only-binary", ":all:", "-q", "-d", str(cache)],
                       check=True)
        found = sorted(cache.glob(f"nannyml-{VERSION}-*.whl"))
    return found[0]


def events(path: Path) -> list[dict[str, Any]]:
    out = []
    with zipfile.ZipFile(path) as z:
        for name in FILES:
            with z.open(DATA + name) as raw:
                for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")):
                    features: dict[str, Any] = {k: float(row[k]) for k in NUMERIC}
                    features.update({k: row[k] for k in CATEGORICAL})
                    out.append({"model_id": "car_loan", "features": features,
                                "event_id": row["id"]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "streamdrift-bench")
    p.add_argument("--out", type=Path, default=RESULTS / "car_loan")
    args = p.parse_args(argv)
    started = datetime.now(UTC)
    rows = events(wheel(args.cache))
    t0 = time.perf_counter()
    signals = detect(rows, DetectorConfig.model_validate(CONFIG))
    seconds = time.perf_counter() - t0
    alerts: list[dict[str, Any]] = [
        {"position": s.position, "feature": s.feature, "detector": s.detector,
               "contributors": s.stats.get("contributors")} for s in signals]
    joint = [a for a in alerts if a["feature"] == MULTIVARIATE]
    before = [a for a in joint if a["position"] < CHANGE]
    after = [a for a in joint if a["position"] >= CHANGE]
    passed = not before and bool(after)
    command = "python bench/car_loan.py" + (" " + " ".join(argv) if argv else "")
    md = [
        "# The multivariate monitor on NannyML's car-loan data",
        "",
        f"NannyML {VERSION}'s synthetic car-loan data: {REFERENCE_ROWS:,} reference rows then "
        f"{len(rows) - REFERENCE_ROWS:,} analysis rows, one model; the documented change at "
        f"analysis row 25,000 is stream position {CHANGE:,}. Config: `{json.dumps(CONFIG)}`.",
        "",
        "| position | feature | detector | contributors |",
        "|---:|---|---|---|",
        *[f"| {a['position']:,} | {a['feature']} | {a['detector']} | "
          f"{a['contributors'] or ''} |" for a in alerts],
        "",
        f"Target: `multivariate` alerts after {CHANGE:,} and never before: "
        f"**{'PASS' if passed else 'FAIL'}** ({len(before)} before, first after at "
        f"{after[0]['position'] if after else '-'}).",
        "",
        f"- command: `{command}`; date: {started:%Y-%m-%d %H:%M} UTC; detect() {seconds:.1f} s",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(md))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "date": started.isoformat(), "nannyml": VERSION, "change": CHANGE,
         "config": CONFIG, "alerts": alerts, "pass": passed}, indent=2) + "\n")
    print("\n".join(md))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
