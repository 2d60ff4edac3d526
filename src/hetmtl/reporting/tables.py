"""The paper's comparison tables as pure functions of run records (SPEC 7).

``summarise`` turns long records (one row per run and metric) into a table of
mean, standard deviation and 95% confidence half-width (Student t) over seeds; ``to_markdown``, ``to_latex`` and
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
    "mtal_common": "MTAL (common start)",
    "mtal_prior": "MTAL (task prior)",
}


def summarise(records: pd.DataFrame, group: str, rows: list[tuple[str, str]],
              tasks: list[str]) -> pd.DataFrame:
    """Rows: methods; columns: (column, "mean"|"std"|"ci"|"n") for tasks, Average,
    sharing; "ci" is the half-width of the 95% t interval of the mean over seeds.

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
            row[(col, "ci")] = ci_halfwidth(values.to_numpy())
            row[(col, "n")] = len(values)
        row[("_shared", "")] = setting == "shared"
        out[method] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    shared = table.pop(("_shared", ""))
    table.attrs["shared"] = set(shared.index[shared.astype(bool)])
    return table


def ci_halfwidth(values, level: float = 0.95) -> float:
    """Half-width of the ``level`` Student-t confidence interval of the mean (NaN below 2 values)."""
    import numpy as np
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))


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
        if (AVERAGE, "ci") in table.columns:
            mean, ci = table.loc[method, (AVERAGE, "mean")], table.loc[method, (AVERAGE, "ci")]
            row.append("–" if pd.isna(ci) else f"[{100 * (mean - ci):.1f}, {100 * (mean + ci):.1f}]")
        p = _pcell(table, method, "*")
        if p is not None:
            row.append(p)
        rows.append(row)
    return rows


def header(table: pd.DataFrame) -> list[str]:
    head = ["Method", *table.columns.get_level_values(0).unique()]
    if (AVERAGE, "ci") in table.columns:
        head.append(f"{AVERAGE} 95% CI")
    return head + (["p vs MTAL (Holm)"] if "pvalues" in table.attrs else [])


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
    flat["shared"] = [m in table.attrs.get("shared", ()) for m in flat.index]
    if "pvalues" in table.attrs:
        flat["p_vs_mtal"] = [table.attrs["pvalues"].get(m, float("nan")) for m in flat.index]
        flat["p_vs_mtal_holm"] = [table.attrs["holm"].get(m, float("nan")) for m in flat.index]
    return flat.to_csv(float_format="%.6f")


# ----------------------------------------------------------------- significance

def paired_pvalues(records: pd.DataFrame, group: str, rows: list[tuple[str, str]],
                   reference: tuple[str, str], metric: str = "test_acc/mean") -> dict[str, float]:
    """Two-sided paired t-test over seeds of each row against ``reference`` (MTAL).

    Pairs are matched by seed; fewer than two common seeds, or identical
    differences, give NaN (no test possible).
    """
    from scipy import stats

    sel = records[(records.group == group) & (records.metric == metric)]

    def series(setting, method):
        s = sel[(sel.setting == setting) & (sel.method == method)]
        return s.set_index("seed")["value"]

    ref = series(*reference)
    out = {}
    for setting, method in rows:
        if (setting, method) == reference:
            continue
        other = series(setting, method)
        common = ref.index.intersection(other.index)
        diff = (ref[common] - other[common]).to_numpy()
        if len(common) < 2 or (diff == diff[0]).all():
            out[method] = float("nan")
        else:
            out[method] = float(stats.ttest_rel(ref[common], other[common]).pvalue)
    return out


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values of one family of tests (NaN: no test, not counted)."""
    tested = sorted((p, k) for k, p in pvalues.items() if not pd.isna(p))
    m, out, running = len(tested), {k: float("nan") for k in pvalues}, 0.0
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def add_significance(table: pd.DataFrame, pvalues: dict[str, float], reference: str) -> pd.DataFrame:
    """Attach the p-values against ``reference`` and their Holm adjustment over the
    table's comparisons (rendered: the adjusted p, * below 0.05)."""
    table = table.copy()
    table.attrs = dict(table.attrs, pvalues=pvalues, holm=holm(pvalues), reference=reference)
    return table


def _pcell(table: pd.DataFrame, method: str, star: str) -> str:
    pv = table.attrs.get("holm")
    if pv is None:
        return None
    if method == table.attrs.get("reference"):
        return "ref."
    p = pv.get(method, float("nan"))
    if pd.isna(p):
        return "n/a"
    return f"{p:.3f}{star if p < 0.05 else ''}"


# ----------------------------------------------------------------- Table 6

def sharing_table(records: pd.DataFrame, columns: list[tuple[str, str, str]], layers: list[str]) -> pd.DataFrame:
    """Table 6: MTAL's kernel sharing ratio per conv layer, the total and the compression.

    ``columns``: (label, group, (setting, method) as "setting/method").
    """
    out = {}
    for label, group, run in columns:
        setting, method = run.split("/")
        sel = records[(records.group == group) & (records.setting == setting) & (records.method == method)]
        col = {}
        for name, metric in [*[(layer, f"sharing/{layer}") for layer in layers],
                             ("Total network", "sharing/total"),
                             ("Compression: unique kernel slots / all kernels", "compression"),
                             ("Compression: parameters in use / unshared", "compression_params"),
                             ("Within-task duplicates (count)", "within_task_duplicates"),
                             ("Average test accuracy", "test_acc/mean")]:
            v = sel[sel.metric == metric]["value"]
            col[name] = (v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0) if len(v) else (float("nan"), float("nan"))
        out[label] = col
    return pd.DataFrame(out)


def sharing_markdown(table: pd.DataFrame, caption: str) -> str:
    head = ["MTAL network", *table.columns]
    lines = [caption, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer in table.index:
        cells = []
        for col in table.columns:
            mean, std = table.loc[layer, col]
            if pd.isna(mean):
                cells.append("–")
            elif "(count)" in layer:
                cells.append(f"{mean:.0f}")
            else:
                cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}")
        lines.append("| " + " | ".join([layer, *cells]) + " |")
    return "\n".join(lines) + "\n"


def sharing_csv(table: pd.DataFrame) -> str:
    rows = ["layer," + ",".join(f"{c}/mean,{c}/std" for c in table.columns)]
    for layer in table.index:
        rows.append(layer + "," + ",".join(f"{table.loc[layer, c][0]:.6f},{table.loc[layer, c][1]:.6f}"
                                           for c in table.columns))
    return "\n".join(rows) + "\n"


def sharing_latex(table: pd.DataFrame, caption: str) -> str:
    md = sharing_markdown(table, caption).splitlines()
    head = md[2].strip("| ").split(" | ")
    body = [line.strip("| ").split(" | ") for line in md[4:]]

    def esc(s):
        return s.replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")

    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(caption)}}}",
             r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule",
             " & ".join(esc(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
