"""The paper's comparison tables as pure functions of run records (SPEC 7).

``summarise`` turns long records (one row per run and metric) into a table of
mean and standard deviation over seeds; ``to_markdown``, ``to_latex`` and
``to_csv`` render it. Test accuracy per task, our extra average column, and
for MTAL its kernel sharing ratio beside its accuracy. The best mean per
accuracy column is marked in bold.
"""

from __future__ import annotations

import pandas as pd

AVERAGE = "Average"
SHARING = "Kernel sharing"

# Display names, in the paper's row order.
DISPLAY = {
    "single_task": "Single-task",
    "hard_sharing": "Multi-task (hard sharing)",
    "mtda": "MTDA",
    "cross_stitch": "Cross-Stitch",
    "nddr_cnn": "NDDR-CNN",
    "soft_sharing": "Soft sharing",
    "mtal": "MTAL",
    "mtal_prior": "MTAL (task prior)",
}


def summarise(records: pd.DataFrame, group: str, rows: list[tuple[str, str]],
              tasks: list[str]) -> pd.DataFrame:
    """Rows: methods; columns: (column, "mean"|"std"|"n") for tasks, Average, sharing.

    ``rows`` are (run setting, method); a method run in the setting ``shared``
    (no use for R) is labelled as shared between the two settings' tables.
    """
    sel = records[records.group == group]
    out = {}
    order = {m: i for i, m in enumerate(DISPLAY)}
    for setting, method in sorted(rows, key=lambda r: order.get(r[1], len(order))):
        m = sel[(sel.method == method) & (sel.setting == setting)]
        row = {}
        for col, metric in [*[(t, f"test_acc/{t}") for t in tasks], (AVERAGE, "test_acc/mean"),
                            (SHARING, "sharing/total")]:
            values = m[m.metric == metric].sort_values("seed")["value"]
            if col != SHARING and values.empty:
                raise ValueError(f"no {metric} for {method} in {group}/{setting}")
            row[(col, "mean")] = values.mean() if len(values) else float("nan")
            row[(col, "std")] = values.std(ddof=1) if len(values) > 1 else (0.0 if len(values) else float("nan"))
            row[(col, "n")] = len(values)
        row[("_shared", "")] = setting == "shared"
        out[method] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    shared = table.pop(("_shared", ""))
    table.attrs["shared"] = set(shared.index[shared.astype(bool)])
    return table


def _best(table: pd.DataFrame) -> dict[str, set]:
    best = {}
    for col in table.columns.get_level_values(0).unique():
        if col == SHARING:
            continue
        means = table[(col, "mean")]
        best[col] = set(means.index[means >= means.max() - 1e-12])
    return best


def _cells(table: pd.DataFrame, bold: tuple[str, str]) -> list[list[str]]:
    best = _best(table)
    rows = []
    for method in table.index:
        row = [DISPLAY.get(method, method) + (" (shared)" if method in table.attrs.get("shared", ()) else "")]
        for col in table.columns.get_level_values(0).unique():
            mean, std = table.loc[method, (col, "mean")], table.loc[method, (col, "std")]
            if pd.isna(mean):
                row.append("–")
                continue
            cell = f"{100 * mean:.1f} ± {100 * std:.1f}"
            if col in best and method in best[col]:
                cell = f"{bold[0]}{cell}{bold[1]}"
            row.append(cell)
        rows.append(row)
    return rows


def header(table: pd.DataFrame) -> list[str]:
    return ["Method", *table.columns.get_level_values(0).unique()]


def to_markdown(table: pd.DataFrame, caption: str) -> str:
    head = header(table)
    lines = [caption, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in _cells(table, ("**", "**"))]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, caption: str) -> str:
    def esc(s: str) -> str:
        return s.replace("_", r"\_").replace("%", r"\%").replace("±", r"$\pm$")

    head = header(table)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(caption)}}}",
             r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule",
             " & ".join(esc(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in _cells(table, (r"\textbf{", "}"))]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    flat = table.copy()
    flat.columns = [f"{col}/{stat}" for col, stat in flat.columns]
    flat.index.name = "method"
    return flat.to_csv(float_format="%.6f")
