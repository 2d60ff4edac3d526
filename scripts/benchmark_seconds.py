"""Job-seconds of a suite's run by rule, from Snakemake's benchmark files (docs/performance.md).

    python scripts/benchmark_seconds.py [ROOT] [--suite demo]

Sums the ``s`` column of every ``logs/<suite>/benchmarks/<rule>/**.tsv`` under
ROOT (default: this checkout) per rule; fetch, prepare, tables and figures keep
no benchmark file.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def seconds(root: Path, suite: str) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    base = root / "logs" / suite / "benchmarks"
    for tsv in sorted(base.rglob("*.tsv")):
        rule = tsv.relative_to(base).parts[0].removesuffix(".tsv")
        rule = rule if rule != "sweep" else f"sweep {tsv.relative_to(base).parts[1]}"
        with tsv.open() as f:
            s = sum(float(r["s"]) for r in csv.DictReader(f, delimiter="\t"))
        n, total = out.get(rule, (0, 0.0))
        out[rule] = (n + 1, total + s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, nargs="?", default=Path(__file__).resolve().parents[1])
    ap.add_argument("--suite", default="demo")
    args = ap.parse_args()
    rows = seconds(args.root, args.suite)
    print("| rule | jobs | job-seconds |\n|---|---|---|")
    for rule, (n, s) in sorted(rows.items()):
        print(f"| {rule} | {n} | {s:.0f} |")
    print(f"| total | {sum(n for n, _ in rows.values())} | {sum(s for _, s in rows.values()):.0f} |")


if __name__ == "__main__":
    main()
