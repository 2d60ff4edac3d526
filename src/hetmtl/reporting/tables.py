"""The paper's comparison tables as pure functions of run records (protocol section 7).

``summarise`` turns long records (one row per run and metric) into a table of
mean, standard deviation and 95% confidence half-width (Student t) over seeds; ``to_markdown``, ``to_latex``,
``to_html`` and ``to_csv`` render it. Test accuracy per task, our extra average column, and
for MTAL its kernel sharing ratio beside its accuracy. Emphasis (:func:`best_and_tied`, ours): per
accuracy column the best mean as shown is bold and every method not significantly below it carries
``TIED`` (paired t-test over seeds against the best row, Holm-adjusted over the column); a column
where some row has fewer than two seeds to pair bolds nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AVERAGE = "Average"
SHARING = "Kernel sharing"
TIED = "†"  # beside a cell: not significantly below the column's bold best (best_and_tied)
ALPHA = 0.05  # the level of best_and_tied's tests (ours), as the p column's *


def emphasis_note(what: str = "method") -> str:
    """The rule of the bold and the TIED mark, as the captions' notes state it (one rule, every table)."""
    return (f"Bold: the best mean of a column as shown (one decimal); {TIED}: a {what} not significantly below it "
            f"(two-sided paired t-test over seeds against the bold {what}, Holm-adjusted over the column's "
            f"comparisons, adjusted p >= {ALPHA:g}; the same difference on every seed counts as significant unless it "
            f"is 0). A column where some "
            f"{what} has fewer than two seeds to pair with the best bolds nothing: no best can be told.")


def best_and_tied(shown: dict, per_seed: dict, alpha: float = ALPHA) -> tuple[set, set]:
    """One column's emphasis (ours): (bold, tied). ``shown``: row -> its mean as displayed (rounded);
    ``per_seed``: row -> its values by seed (a Series indexed by seed).

    Bold: the rows whose shown mean is the highest. Tied: every other row whose two-sided paired
    t-test over common seeds against the best row (the bold row of highest unrounded mean), Holm-adjusted
    over the column's comparisons, is not significant at ``alpha`` (identical differences over the seeds:
    tied when they are 0, significant otherwise, the t statistic being infinite). Nothing bold and
    nothing tied when some row has fewer than two seeds in common with the best row: with n < 2 no
    difference can be tested, so no best can be told."""
    from scipy import stats

    shown = {k: v for k, v in shown.items() if not pd.isna(v)}
    if not shown or any(len(per_seed.get(k, ())) < 2 for k in shown):
        return set(), set()
    top = max(shown.values())
    bold = {k for k, v in shown.items() if v == top}
    ref = max(bold, key=lambda k: (per_seed[k].mean(), str(k)))
    pvalues = {}
    for k in shown:
        if k in bold:
            continue
        a, b = per_seed[ref], per_seed[k]
        common = a.index.intersection(b.index)
        if len(common) < 2:
            return set(), set()
        diff = (a[common] - b[common]).to_numpy(dtype=float)
        if np.ptp(diff) <= 1e-12:  # no spread of the differences (float noise aside): t is 0 or infinite
            pvalues[k] = 1.0 if abs(diff[0]) <= 1e-12 else 0.0
        else:
            pvalues[k] = float(stats.ttest_rel(a[common].to_numpy(dtype=float),
                                               b[common].to_numpy(dtype=float)).pvalue)
    adjusted = holm(pvalues)
    return bold, {k for k, p in adjusted.items() if p >= alpha}

def summarise(records: pd.DataFrame, group: str, rows: list[tuple[str, str]],
              tasks: list[str], display: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows: methods; columns: (column, "mean"|"std"|"ci"|"n") for tasks, Average,
    sharing; "ci" is the half-width of the 95% t interval of the mean over seeds.

    ``rows`` are (run setting, method); a method run in the setting ``shared``
    (no use for R) is labelled as shared between the two settings' tables.
    ``display``: the methods' display names (params/report.yaml), in row order;
    the renderers label the rows with them (a method without one: its name).
    """
    display = dict(display or {})
    sel = records[records.group == group]
    out = {}
    order = {m: i for i, m in enumerate(display)}
    runs, seeds = {}, {}
    for setting, method in sorted(rows, key=lambda r: order.get(r[1], len(order))):
        m = sel[(sel.method == method) & (sel.setting == setting)]
        if "run_id" in m.columns:  # the runs behind the row, by seed (the CSV's provenance column)
            runs[method] = [f"seed{seed}:{rid}" for seed, rid in
                            m[["seed", "run_id"]].drop_duplicates().sort_values("seed").itertuples(index=False)]
        row = {}
        for col, metric in [*[(t, f"test_acc/{t}") for t in tasks], (AVERAGE, "test_acc/mean"),
                            (SHARING, "sharing/total")]:
            by_seed = m[m.metric == metric].groupby("seed")["value"].mean()
            values = by_seed.sort_index()
            if col != SHARING and values.empty:
                raise ValueError(f"no {metric} for {method} in {group}/{setting}")
            seeds.setdefault(method, {})[col] = values
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
    table.attrs["display"] = display
    table.attrs["runs"] = runs
    table.attrs["seeds"] = seeds  # method -> column -> values by seed (best_and_tied's tests)
    return table


def display_name(table: pd.DataFrame, method: str) -> str:
    """A row's display name (``summarise``'s ``display``)."""
    return table.attrs.get("display", {}).get(method, method)


def ci_halfwidth(values, level: float = 0.95) -> float:
    """Half-width of the ``level`` Student-t confidence interval of the mean (NaN below 2 values)."""
    import numpy as np
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))


def _best(table: pd.DataFrame) -> dict[str, tuple[set, set]]:
    """Per accuracy column, :func:`best_and_tied` of the means as the table shows them (in %, one
    decimal: two methods shown alike are both best, a difference hidden by the rounding marks nothing)."""
    best = {}
    seeds = table.attrs.get("seeds", {})
    for col in table.columns.get_level_values(0).unique():
        if col == SHARING:
            continue
        shown = (100 * table[(col, "mean")]).round(1)
        per_seed = {m: seeds.get(m, {}).get(col, pd.Series(dtype=float)) for m in table.index}
        best[col] = best_and_tied(shown.to_dict(), per_seed)
    return best


def cells(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rendered table: its cells as text (first column: Method; a cell not significantly below
    its column's best ends in TIED) and a mask of the best mean per accuracy column (the cells every
    renderer sets in bold); :func:`best_and_tied`."""
    best = _best(table)
    rows, bold = [], []
    for method in table.index:
        row = [display_name(table, method) + (" (shared)" if method in table.attrs.get("shared", ()) else "")]
        marks = [False]
        for col in table.columns.get_level_values(0).unique():
            mean, std = table.loc[method, (col, "mean")], table.loc[method, (col, "std")]
            top, tied = best.get(col, (set(), set()))
            row.append("–" if pd.isna(mean) else
                       f"{100 * mean:.1f} ± {100 * std:.1f}" + (f" {TIED}" if method in tied else ""))
            marks.append(not pd.isna(mean) and method in top)
        if (AVERAGE, "ci") in table.columns:
            mean, ci = table.loc[method, (AVERAGE, "mean")], table.loc[method, (AVERAGE, "ci")]
            row.append("–" if pd.isna(ci) else f"[{100 * (mean - ci):.1f}, {100 * (mean + ci):.1f}]")
            marks.append(False)
        p = _pcell(table, method, "*")
        if p is not None:
            row.append(p)
            marks.append(False)
        rows.append(row)
        bold.append(marks)
    head = header(table)
    return pd.DataFrame(rows, columns=head), pd.DataFrame(bold, columns=head)


def header(table: pd.DataFrame) -> list[str]:
    head = ["Method", *table.columns.get_level_values(0).unique()]
    if (AVERAGE, "ci") in table.columns:
        head.append(f"{AVERAGE} 95% CI")
    return head + (["p vs MTAL (Holm)"] if "pvalues" in table.attrs else [])


# ----------------------------------------------------------------- renderers
# Markdown by hand (the README embeds it; pandas' to_markdown needs tabulate);
# LaTeX and HTML with pandas' Styler, from the same cells and bold mask.

def _markdown(text: pd.DataFrame, bold: pd.DataFrame, caption: str, notes: list[str] | tuple = ()) -> str:
    """The caption's line, the table, then its numbered notes."""
    lines = [caption, "", "| " + " | ".join(text.columns) + " |", "|" + "---|" * len(text.columns)]
    for (_, row), (_, marks) in zip(text.iterrows(), bold.iterrows()):
        lines.append("| " + " | ".join(f"**{c}**" if b else c for c, b in zip(row, marks)) + " |")
    if notes:
        lines += ["", *(f"{i}. {note}" for i, note in enumerate(notes, 1))]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """LaTeX's special characters escaped, ± as $\\pm$ and † as $^\\dagger$ (the caption; Styler escapes the
    cells)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text).replace("±", r"$\pm$").replace(TIED, r"$^\dagger$")


def _latex(text: pd.DataFrame, bold: pd.DataFrame, caption: str) -> str:
    styler = (text.style.hide(axis="index")
              .apply(lambda _: np.where(bold.to_numpy(), "textbf:--rwrap;", ""), axis=None)
              .format(lambda s: s.replace("±", r"$\pm$").replace(TIED, r"$^\dagger$"), escape="latex")
              .format_index(escape="latex", axis=1))
    return styler.to_latex(caption=latex_escape(caption), hrules=True, position="t", position_float="centering",
                           column_format="l" + "c" * (len(text.columns) - 1))


HTML_STYLE = [
    {"selector": "", "props": "border-collapse: collapse; font-family: sans-serif; font-size: 0.85em;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; padding-bottom: 0.6em;"},
    {"selector": "th, td", "props": "padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: center;"},
    {"selector": "td:first-child", "props": "text-align: left; white-space: nowrap;"},
]


def _html(text: pd.DataFrame, bold: pd.DataFrame, caption: str, uid: str) -> str:
    import html

    styler = (text.style.hide(axis="index")
              .apply(lambda _: np.where(bold.to_numpy(), "font-weight: bold;", ""), axis=None)
              .format(escape="html").format_index(escape="html", axis=1)
              .set_caption(html.escape(caption)).set_table_styles(HTML_STYLE).set_uuid(uid))
    return styler.to_html(doctype_html=True)


def to_markdown(table: pd.DataFrame, caption: str, notes: list[str] | tuple = ()) -> str:
    return _markdown(*cells(table), caption, notes)


def to_latex(table: pd.DataFrame, caption: str) -> str:
    return _latex(*cells(table), caption)


def to_html(table: pd.DataFrame, caption: str, uid: str = "table") -> str:
    """A whole page (`snakemake --report` shows it inline); best mean per column in bold."""
    return _html(*cells(table), caption, uid)


def to_csv(table: pd.DataFrame) -> str:
    flat = table.copy()
    flat.columns = [f"{col}/{stat}" for col, stat in flat.columns]
    flat.index.name = "method"
    flat["shared"] = [m in table.attrs.get("shared", ()) for m in flat.index]
    if "pvalues" in table.attrs:
        flat["p_vs_mtal"] = [table.attrs["pvalues"].get(m, float("nan")) for m in flat.index]
        flat["p_vs_mtal_holm"] = [table.attrs["holm"].get(m, float("nan")) for m in flat.index]
    if table.attrs.get("runs"):  # each row's runs: seed and MLflow run id (`hetmtl explain` lists their values)
        flat["runs"] = [" ".join(table.attrs["runs"].get(m, [])) for m in flat.index]
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

def sharing_table(records: pd.DataFrame, columns: list[tuple[str, str, str]], layers: list[str],
                  display: dict[str, str] | None = None) -> pd.DataFrame:
    """Table 6: MTAL's kernel sharing ratio per conv layer, the total and the compression.

    ``columns``: (label, group, (setting, method) as "setting/method"); the table's columns are the
    labels (the CSV's keys), the rendered headers "group: display name" (``display``: params/report.yaml).
    """
    out = {}
    for label, group, run in columns:
        setting, method = run.split("/")
        sel = records[(records.group == group) & (records.setting == setting) & (records.method == method)]
        col = {}
        for name, metric in [*[(layer, f"sharing/{layer}") for layer in layers],
                             ("Total network", "sharing/total"),
                             # the delta reading's permutation null (ours): "–" for the runs without one
                             *[(f"Null: {layer}", f"sharing/null/{layer}") for layer in layers],
                             ("Null: total network", "sharing/null/total"),
                             ("Compression: unique kernel slots / all kernels", "compression"),
                             ("Compression: parameters in use / unshared", "compression_params"),
                             ("Within-task duplicates (count)", "within_task_duplicates"),
                             ("Average test accuracy", "test_acc/mean")]:
            v = sel[sel.metric == metric]["value"]
            col[name] = (v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0) if len(v) else (float("nan"), float("nan"))
        out[label] = col
    table = pd.DataFrame(out)
    table.attrs["headers"] = {label: f"{group}: {(display or {}).get(run.split('/')[1], run.split('/')[1])}"
                              for label, group, run in columns}
    return table


def sharing_cells(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 6 as text (first column: the layer or quantity) and its bold mask (none)."""
    rows = []
    for layer in table.index:
        row = [layer]
        for col in table.columns:
            mean, std = table.loc[layer, col]
            if pd.isna(mean):
                row.append("–")
            elif "(count)" in layer:
                row.append(f"{mean:.0f}")
            else:
                row.append(f"{100 * mean:.1f} ± {100 * std:.1f}")
        rows.append(row)
    headers = table.attrs.get("headers", {})
    text = pd.DataFrame(rows, columns=["MTAL network", *[headers.get(c, c) for c in table.columns]])
    return text, pd.DataFrame(False, index=text.index, columns=text.columns)


def sharing_markdown(table: pd.DataFrame, caption: str) -> str:
    return _markdown(*sharing_cells(table), caption)


def sharing_latex(table: pd.DataFrame, caption: str) -> str:
    return _latex(*sharing_cells(table), caption)


def sharing_html(table: pd.DataFrame, caption: str, uid: str = "table6") -> str:
    return _html(*sharing_cells(table), caption, uid)


def sharing_csv(table: pd.DataFrame) -> str:
    rows = ["layer," + ",".join(f"{c}/mean,{c}/std" for c in table.columns)]
    for layer in table.index:
        rows.append(layer + "," + ",".join(f"{table.loc[layer, c][0]:.6f},{table.loc[layer, c][1]:.6f}"
                                           for c in table.columns))
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------- Table 6's pairs (ours)
# Each task pair's shared fraction beyond the first conv layer against its R.

def pair_table(records: pd.DataFrame, columns: list[tuple[str, str]], groups: dict[str, list[str]],
               relations: dict) -> pd.DataFrame:
    """Rows: (group, task pair); "R" (NaN without a relations stage) and, per (label,
    "setting/method") column, the mean and std over seeds of ``sharing/pair/i-j``."""
    rows = []
    for group, tasks in groups.items():
        R = relations.get(group)
        for i in range(len(tasks)):
            for j in range(i + 1, len(tasks)):
                row = {"group": group, "pair": f"{tasks[i]}–{tasks[j]}",
                       "R": float(R[i][j]) if R is not None else float("nan")}
                for label, run in columns:
                    setting, method = run.split("/")
                    sel = records[(records.group == group) & (records.setting == setting)
                                  & (records.method == method) & (records.metric == f"sharing/pair/{i}-{j}")]
                    v = sel["value"]
                    row[label] = (v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0) if len(v) else (
                        float("nan"), float("nan"))
                rows.append(row)
    return pd.DataFrame(rows)


def pair_cells(table: pd.DataFrame, display: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-pair table as text; headers: the readings' display names (``display``, params/report.yaml)."""
    labels = [c for c in table.columns if c not in ("group", "pair", "R")]
    rows = []
    for _, r in table.iterrows():
        row = [r.group, r.pair, "–" if pd.isna(r.R) else f"{r.R:.2f}"]
        row += ["–" if pd.isna(r[c][0]) else f"{100 * r[c][0]:.1f} ± {100 * r[c][1]:.1f}" for c in labels]
        rows.append(row)
    text = pd.DataFrame(rows, columns=["Group", "Task pair", "R", *[(display or {}).get(c, c) for c in labels]])
    return text, pd.DataFrame(False, index=text.index, columns=text.columns)


def pair_files(table: pd.DataFrame, caption: str, uid: str, display: dict[str, str] | None = None) -> dict[str, str]:
    labels = [c for c in table.columns if c not in ("group", "pair", "R")]
    csv = ["group,pair,R," + ",".join(f"{c}/mean,{c}/std" for c in labels)]
    for _, r in table.iterrows():
        csv.append(f"{r.group},{r.pair},{r.R:.6f}," + ",".join(f"{r[c][0]:.6f},{r[c][1]:.6f}" for c in labels))
    cells = pair_cells(table, display)
    return {"md": _markdown(*cells, caption), "tex": _latex(*cells, caption), "html": _html(*cells, caption, uid),
            "csv": "\n".join(csv) + "\n"}


# ----------------------------------------------------------------- Table 7 (ours)
# The weighting axis: rows are weightings, columns (group, method) pairs of the
# sweeps of `weighting`, and per method the step-time ratio to equal weighting.

def weighting_table(records: pd.DataFrame, columns: list[tuple[str, str, str]], weightings: list[str],
                    reference: str = "equal") -> pd.DataFrame:
    """Rows: weightings; for each (sweep, group, label) column the mean, 95% CI
    half-width and n of ``test_acc/mean`` over seeds, and for each sweep the
    step-time ratio: mean ``time/train_step_s`` of the weighting over that of
    ``reference``, per group and seed-averaged, then averaged over the groups.
    ``records``: collect_sweeps' long records."""
    if reference not in weightings:
        raise ValueError(f"Table 7's step times are relative to {reference!r}, which the sweeps do not run: "
                         "add it to their values (params/suites/<suite>.yaml suite.sweeps)")
    out, seeds = {}, {}
    for w in weightings:
        row = {}
        for sweep, group, label in columns:
            sel = records[(records.sweep == sweep) & (records.group == group) & (records.sweep_value == w)]
            acc = sel[sel.metric == "test_acc/mean"].groupby("seed")["value"].mean().sort_index()
            if acc.empty:
                raise ValueError(f"no test_acc/mean for weighting {w} in sweep {sweep}, group {group}")
            seeds.setdefault(w, {})[label] = acc
            row[(label, "mean")] = acc.mean()
            row[(label, "ci")] = ci_halfwidth(acc.to_numpy())
            row[(label, "n")] = len(acc)
        for sweep in dict.fromkeys(c[0] for c in columns):
            ratios = []
            for group in dict.fromkeys(g for s, g, _ in columns if s == sweep):
                def step_time(value, group=group, sweep=sweep):
                    sel = records[(records.sweep == sweep) & (records.group == group) & (records.sweep_value == value)
                                  & (records.metric == "time/train_step_s")]
                    return sel["value"].mean()
                ratios.append(step_time(w) / step_time(reference))
            row[(f"{sweep} step time", "ratio")] = float(np.mean(ratios))
        out[w] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.attrs["seeds"] = seeds  # weighting -> column -> test_acc/mean by seed (best_and_tied's tests)
    return table


def weighting_cells(table: pd.DataFrame, names: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Display cells: accuracy "mean ± ci" (bold and TIED by :func:`best_and_tied`, as every table:
    nothing bold in a column with fewer than two seeds) and the step-time ratio "x.xx×";
    ``names``: column label per sweep's step time."""
    labels = list(dict.fromkeys(c for c, s in table.columns if s == "mean"))
    timed = list(dict.fromkeys(c for c, s in table.columns if s == "ratio"))
    head = ["Weighting", *labels, *[names.get(c, c) for c in timed]]
    rows, bold = [], []
    seeds = table.attrs.get("seeds", {})
    best = {c: best_and_tied((100 * table[(c, "mean")]).round(1).to_dict(),
                             {w: seeds.get(w, {}).get(c, pd.Series(dtype=float)) for w in table.index})
            for c in labels}
    for w in table.index:
        row, marks = [w], [False]
        for c in labels:
            mean, ci = 100 * table.loc[w, (c, "mean")], 100 * table.loc[w, (c, "ci")]
            row.append(f"{mean:.1f}" + ("" if np.isnan(ci) else f" ± {ci:.1f}")
                       + (f" {TIED}" if w in best[c][1] else ""))
            marks.append(w in best[c][0])
        for c in timed:
            row.append(f"{table.loc[w, (c, 'ratio')]:.2f}×")
            marks.append(False)
        rows.append(row)
        bold.append(marks)
    return pd.DataFrame(rows, columns=head), pd.DataFrame(bold, columns=head)


def weighting_files(table: pd.DataFrame, names: dict[str, str], caption: str, uid: str) -> dict[str, str]:
    text, bold = weighting_cells(table, names)
    flat = table.copy()
    flat.columns = [f"{col}/{stat}" for col, stat in flat.columns]
    flat.index.name = "weighting"
    return {"md": _markdown(text, bold, caption), "tex": _latex(text, bold, caption),
            "html": _html(text, bold, caption, uid), "csv": flat.to_csv(float_format="%.6f")}
