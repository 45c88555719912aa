"""bench/quality.py's joint rows alone, at full size (the multivariate series, issue 17).

    python bench/multivariate.py [--seeds 20] [--events 20000] [--stationary-events 1000000]
                                 [--out bench/results/multivariate]

The rows and their targets are ``quality.run_joint``'s (see bench/quality.py's docs, "joint"):
a correlation flip +0.8 -> 0 with fixed marginals, and two stationary streams of 20
features on two factors. ``python bench/quality.py`` runs them with every other row;
this runs them alone, since no other row uses the multivariate series (it is off by
default) and the other rows' results do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from quality import joint_section, joint_targets, run_joint  # bench/ is on sys.path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--stationary-events", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0, help="base seed (quality.py's --seed)")
    p.add_argument("--out", type=Path, default=RESULTS / "multivariate")
    args = p.parse_args(argv)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    result = run_joint(args.seeds, args.events, args.stationary_events, args.seed,
                       lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}",
                                       file=sys.stderr))
    targets = joint_targets(result)
    command = "python bench/multivariate.py" + (" " + " ".join(argv) if argv else "")
    md = [*joint_section(result), "| target | measured | |", "|---|---|---|",
          *[f"| {t['target']} | {t['measured']} | {'PASS' if t['pass'] else 'FAIL'} |"
            for t in targets], "",
          f"- command: `{command}`; date: {started:%Y-%m-%d %H:%M} UTC; runtime "
          f"{time.perf_counter() - t0:.0f} s", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(md))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "date": started.isoformat(), "targets": targets,
         "delays": [o.delay for o in result.outcomes],
         "per_feature_alerts": result.feature_alarms,
         "stationary": {k: a.json() for k, a in result.stationary.items()}}, indent=2) + "\n")
    print("\n".join(md))
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
