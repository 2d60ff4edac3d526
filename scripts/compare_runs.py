"""How far two runs of a suite's tables lie apart, in units of their 95% CI.

    python scripts/compare_runs.py A B [--suite demo]

A and B are project folders that each ran the suite (for instance with
different thread counts, as another machine reduces in another order). For
every table, method and column it prints |mean_A - mean_B| over the CI
half-width (the smaller of the two runs'); below 1 everywhere means the
second run lands inside the first run's intervals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def distances(a: Path, b: Path, suite: str) -> pd.DataFrame:
    rows = []
    for csv_a in sorted((a / "reports" / suite / "tables").glob("*.csv")):
        if "method" not in pd.read_csv(csv_a, nrows=0).columns:
            continue  # not a table of methods with intervals (Table 6's layers, Table 7, the claims, the plan)
        ta = pd.read_csv(csv_a, index_col="method")
        tb = pd.read_csv(b / "reports" / suite / "tables" / csv_a.name, index_col="method")
        for col in [c[:-5] for c in ta.columns if c.endswith("/mean") and f"{c[:-5]}/ci" in ta.columns]:
            for m in ta.index:
                if pd.isna(ta.loc[m, f"{col}/mean"]) and pd.isna(tb.loc[m, f"{col}/mean"]):
                    continue  # a column this method has no value in (kernel sharing of non-MTAL rows)
                ci = min(ta.loc[m, f"{col}/ci"], tb.loc[m, f"{col}/ci"])
                diff = abs(ta.loc[m, f"{col}/mean"] - tb.loc[m, f"{col}/mean"])
                rows.append({"table": csv_a.stem, "method": m, "column": col, "diff": diff, "ci": ci,
                             "ratio": diff / ci if ci > 0 else (0.0 if diff == 0 else float("inf"))})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--suite", default="demo")
    args = ap.parse_args()
    d = distances(args.a, args.b, args.suite)
    worst = d.sort_values("ratio", ascending=False).head(5)
    print(worst.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    avg = d[d.column == "Average"]
    print(f"largest |diff| / CI half-width: all columns {d.ratio.max():.3f}, Average column {avg.ratio.max():.3f}; "
          f"identical cells {int((d['diff'] == 0).sum())}/{len(d)}")


if __name__ == "__main__":
    main()
