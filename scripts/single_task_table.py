"""Single-task test accuracy per task (mean, min, max over seeds) of a project folder's demo runs.

    python scripts/single_task_table.py RUN_FOLDER [--suite demo] [--out FILE.md]

Reads ``results/<suite>/runs/<group>/shared/single_task/seed*/receipt.json`` under
RUN_FOLDER: the first row of Tables 3 and 5, the measure of the stand-ins'
difficulty (issue 30: every task between 35% and 90%).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--suite", default="demo")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    acc: dict[tuple[str, str], list[float]] = {}
    for r in sorted((args.root / "results" / args.suite / "runs").glob("*/shared/single_task/seed*/receipt.json")):
        for k, v in json.loads(r.read_text())["metrics"].items():
            if k.startswith("test_acc/") and k != "test_acc/mean":
                acc.setdefault((r.parts[-5], k.removeprefix("test_acc/")), []).append(100 * v)
    made_by = "python scripts/single_task_table.py " + " ".join(sys.argv[1:])
    lines = [f"Single-task test accuracy (%) of suite {args.suite}'s runs. Made by: `{made_by}`.", "",
             "| group | task | seeds | mean | min | max |", "|---|---|---|---|---|---|"]
    for (g, t), v in sorted(acc.items()):
        lines.append(f"| {g} | {t} | {len(v)} | {sum(v) / len(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        args.out.write_text(md)


if __name__ == "__main__":
    main()
