"""How far two runs of a suite's tables lie apart, in units of their 95% CI, and which verdicts agree.

    python scripts/compare_runs.py A B [--suite demo] [--out FILE.md]

A and B are project folders that each ran the suite (for instance with
different thread counts, as another machine reduces in another order). For
every table, method and column it prints |mean_A - mean_B| over the CI
half-width (the smaller of the two runs'); below 1 everywhere means the
second run lands inside the first run's intervals.

Then (issue 30) what a reader concludes from each run: every claim row's verdict
(claims.csv: supported / contradicted / inconclusive) and every significant
difference of the comparison tables (a method's Holm-adjusted p against the
table's reference below 0.05, with its sign), side by side, and which agree.
``--out`` writes that as Markdown (the two folders' names, the command).
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


ALPHA = 0.05


def verdicts(a: Path, b: Path, suite: str) -> pd.DataFrame:
    """Each claim row's verdict in both runs (claims.csv), and whether they agree."""
    ta, tb = (pd.read_csv(x / "reports" / suite / "tables" / "claims.csv") for x in (a, b))
    key = ["claim", "reading"]
    for t in (ta, tb):
        t["reading"] = t["reading"].fillna("–")
    m = ta[key + ["verdict", "deciding", "effect", "p_holm"]].merge(
        tb[key + ["verdict", "deciding", "effect", "p_holm"]], on=key, how="outer", suffixes=("_a", "_b"))
    m["agree"] = m.verdict_a == m.verdict_b
    m["order"] = m.claim.str.extract(r"(\d+)", expand=False).astype(int)
    return m.sort_values(["order", "reading"], ascending=[True, False]).drop(columns="order")


def significant(a: Path, b: Path, suite: str) -> pd.DataFrame:
    """Every (table, method) difference against the table's reference: significant
    (Holm p < ALPHA) with its sign, or not, in each run."""
    rows = []
    for csv_a in sorted((a / "reports" / suite / "tables").glob("table*.csv")):
        ta = pd.read_csv(csv_a)
        if "p_vs_mtal_holm" not in ta.columns:
            continue
        tb = pd.read_csv(b / "reports" / suite / "tables" / csv_a.name)
        ta, tb = ta.set_index("method"), tb.set_index("method")
        ref = [m for m in ta.index if pd.isna(ta.loc[m, "p_vs_mtal_holm"])]
        for m in ta.index:
            if m in ref or m not in tb.index:
                continue
            call = []
            for t in (ta, tb):
                p = t.loc[m, "p_vs_mtal_holm"]
                diff = t.loc[m, "Average/mean"] - (t.loc[ref[0], "Average/mean"] if ref else 0.0)
                call.append(("higher" if diff > 0 else "lower") if p < ALPHA else "n.s.")
            rows.append({"table": csv_a.stem, "method": m, "a": call[0], "b": call[1],
                         "p_a": ta.loc[m, "p_vs_mtal_holm"], "p_b": tb.loc[m, "p_vs_mtal_holm"],
                         "agree": call[0] == call[1]})
    return pd.DataFrame(rows)


def decided(v: pd.Series) -> int:
    return int(v.isin(["supported", "contradicted"]).sum())


def agreement_md(a: Path, b: Path, suite: str, labels: tuple[str, str], command: str) -> str:
    v, s = verdicts(a, b, suite), significant(a, b, suite)
    la, lb = labels
    both = v[v.agree & v.verdict_a.isin(["supported", "contradicted"])]
    lines = [f"Two runs of suite {suite}: A = {la}, B = {lb}. Made by: `{command}`.", "",
             f"Claim rows: {len(v)}; decided (supported or contradicted) in A: {decided(v.verdict_a)}, "
             f"in B: {decided(v.verdict_b)}, the same verdict in both: {len(both)}; "
             f"verdicts that agree (decided or not): {int(v.agree.sum())} of {len(v)}.", "",
             "| claim | reading | verdict A | verdict B | agree | deciding (A) | effect A | p A | effect B | p B |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in v.itertuples():
        lines.append(f"| {r.claim} | {r.reading} | {r.verdict_a} | {r.verdict_b} | {'yes' if r.agree else '**no**'} | "
                     f"{r.deciding_a} | {r.effect_a:+.4f} | {r.p_holm_a:.3f} | {r.effect_b:+.4f} | {r.p_holm_b:.3f} |")
    if len(s):
        sig = s[(s.a != "n.s.") | (s.b != "n.s.")]
        lines += ["", f"Differences against the table's reference (MTAL; Holm p < {ALPHA}), Tables 2-5: "
                      f"{len(s)} in all; significant in A: {int((s.a != 'n.s.').sum())}, in B: "
                      f"{int((s.b != 'n.s.').sum())}, significant in both with the same sign: "
                      f"{int(((s.a != 'n.s.') & s.agree).sum())}; every call (significant or not) agrees in "
                      f"{int(s.agree.sum())} of {len(s)}.", "",
                  "| table | method | A | B | p A | p B | agree |", "|---|---|---|---|---|---|---|"]
        for r in sig.itertuples():
            lines.append(f"| {r.table} | {r.method} | {r.a} | {r.b} | {r.p_a:.3f} | {r.p_b:.3f} | "
                         f"{'yes' if r.agree else '**no**'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--suite", default="demo")
    ap.add_argument("--labels", nargs=2, default=None, help="what tells the runs apart (default: the folders)")
    ap.add_argument("--out", type=Path, help="write the verdicts' and significant differences' agreement here (.md)")
    args = ap.parse_args()
    d = distances(args.a, args.b, args.suite)
    worst = d.sort_values("ratio", ascending=False).head(5)
    print(worst.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    avg = d[d.column == "Average"]
    print(f"largest |diff| / CI half-width: all columns {d.ratio.max():.3f}, Average column {avg.ratio.max():.3f}; "
          f"identical cells {int((d['diff'] == 0).sum())}/{len(d)}")
    if (args.a / "reports" / args.suite / "tables" / "claims.csv").exists():
        import sys

        labels = tuple(args.labels) if args.labels else (str(args.a), str(args.b))
        command = "python scripts/compare_runs.py " + " ".join(sys.argv[1:])
        md = agreement_md(args.a, args.b, args.suite, labels, command)
        print(md)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(md)


if __name__ == "__main__":
    main()
