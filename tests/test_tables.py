"""Tables are a pure function of run records."""

from __future__ import annotations

import pandas as pd
import pytest

from hetmtl.reporting.tables import summarise, to_csv, to_latex, to_markdown

SETTING = {"single_task": "shared", "mtal": "no_prior"}
DISPLAY = {"single_task": "Single-task", "mtal": "MTAL"}  # as params/report.yaml gives them
ROWS = [("shared", "single_task"), ("no_prior", "mtal")]


def records(values):
    rows = []
    for (method, seed), accs in values.items():
        for task, v in accs.items():
            rows.append({"suite": "tiny", "group": "g", "setting": SETTING[method], "method": method, "seed": seed,
                         "run_id": f"{method}{seed}", "metric": f"test_acc/{task}", "value": v})
        rows.append({"suite": "tiny", "group": "g", "setting": SETTING[method], "method": method, "seed": seed,
                     "run_id": f"{method}{seed}", "metric": "test_acc/mean", "value": sum(accs.values()) / len(accs)})
        if method == "mtal":
            rows.append({"suite": "tiny", "group": "g", "setting": SETTING[method], "method": method, "seed": seed,
                         "run_id": f"{method}{seed}", "metric": "sharing/total", "value": 0.25})
    return pd.DataFrame(rows)


VALUES = {("single_task", 0): {"A": 0.5, "B": 0.8}, ("single_task", 1): {"A": 0.7, "B": 0.8},
          ("mtal", 0): {"A": 0.9, "B": 0.6}, ("mtal", 1): {"A": 0.7, "B": 0.6}}


def test_mean_std_and_best():
    t = summarise(records(VALUES), "g", ROWS, ["A", "B"], DISPLAY)
    assert t.loc["single_task", ("A", "mean")] == pytest.approx(0.6)
    assert t.loc["single_task", ("A", "std")] == pytest.approx(0.1414213, rel=1e-5)
    assert t.loc["mtal", ("Kernel sharing", "mean")] == pytest.approx(0.25)
    md = to_markdown(t, "cap")
    # 95% t interval of two seeds: t(0.975, 1) * std / sqrt(2) = 12.706 * 0.0707 / 1.414 = 0.635
    assert t.loc["mtal", ("Average", "ci")] == pytest.approx(12.7062047 * 0.0707107 / 2 ** 0.5, rel=1e-5)
    assert "| MTAL | **80.0 ± 14.1** | 60.0 ± 0.0 | **70.0 ± 7.1** | 25.0 ± 0.0 | [6.5, 133.5] |" in md
    # A: single-task's seeds trail MTAL's by 0.4 and 0: not significantly below the best, so marked
    assert "| Single-task (shared) | 60.0 ± 14.1 † | **80.0 ± 0.0** |" in md
    assert r"\textbf{80.0 $\pm$ 14.1}" in to_latex(t, "cap")
    assert "A/mean" in to_csv(t).splitlines()[0]


def test_changing_one_logged_metric_changes_the_table():
    before = to_markdown(summarise(records(VALUES), "g", ROWS, ["A", "B"], DISPLAY), "c")
    changed = dict(VALUES)
    changed[("single_task", 1)] = {"A": 0.71, "B": 0.8}
    after = to_markdown(summarise(records(changed), "g", ROWS, ["A", "B"], DISPLAY), "c")
    assert before != after and "60.5 ± 14.8" in after


def test_holm_adjusts_within_the_family_and_keeps_the_order():
    from hetmtl.reporting.tables import holm

    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    # sorted 0.01, 0.03, 0.04 with m = 3: 0.03, max(0.03, 0.06), max(0.06, 0.04)
    assert adj["a"] == pytest.approx(0.03) and adj["c"] == pytest.approx(0.06)
    assert adj["b"] == pytest.approx(0.06) and pd.isna(adj["d"])
    assert holm({"a": 0.6, "b": 0.7})["b"] == 1.0  # capped at 1


def test_the_ci_halfwidth_reads_its_values_as_floats():
    """Values as an object column holds them (decimal strings read from a CSV) give the same interval."""
    from hetmtl.reporting.tables import ci_halfwidth

    assert ci_halfwidth(pd.Series(["0.5", "0.7", "0.9"])) == pytest.approx(ci_halfwidth([0.5, 0.7, 0.9]))
    assert ci_halfwidth([0.5, 0.7, 0.9]) == pytest.approx(4.3026527 * 0.2 / 3 ** 0.5, rel=1e-6)


def test_the_rendered_p_is_the_holm_adjusted_one():
    from hetmtl.reporting.tables import add_significance

    t = add_significance(summarise(records(VALUES), "g", ROWS, ["A", "B"], DISPLAY), {"single_task": 0.02}, "mtal")
    t2 = add_significance(summarise(records(VALUES), "g", ROWS, ["A", "B"], DISPLAY),
                          {"single_task": 0.02, "x": 0.01, "y": 0.5}, "mtal")
    assert "0.020*" in to_markdown(t, "c")
    assert "0.040*" in to_markdown(t2, "c")  # 2 x 0.02: two tests in the family
    assert "p vs MTAL (Holm)" in to_markdown(t, "c") and "p_vs_mtal_holm" in to_csv(t2)


def test_missing_metric_fails_loudly():
    recs = records(VALUES)
    recs = recs[~((recs.method == "mtal") & (recs.metric == "test_acc/B"))]
    with pytest.raises(ValueError, match="no test_acc/B for mtal"):
        summarise(recs, "g", ROWS, ["A", "B"], DISPLAY)


def test_a_table_whose_methods_had_different_budgets_is_refused(params):
    from hetmtl.reporting.aggregate import table_budget
    from hetmtl.reporting.collect import RecordError

    spec = params["tables"]["table3"]
    rows = params.table_methods(spec["setting"])

    def budget_records(steps, skip=()):
        return pd.DataFrame([{"suite": "tiny", "group": spec["group"], "setting": st, "method": m, "seed": 0,
                              "run_id": m, "metric": "budget/steps_per_task", "value": steps(m)}
                             for st, m in rows if m != "mtda" and m not in skip])

    assert table_budget(params, budget_records(lambda m: 40), spec) == (40, 0)
    with pytest.raises(RecordError, match="different budgets"):
        table_budget(params, budget_records(lambda m: 80 if m == "cross_stitch" else 40), spec)
    with pytest.raises(RecordError, match="without a logged budget.*nddr_cnn/seed0"):
        table_budget(params, budget_records(lambda m: 40, skip=("nddr_cnn",)), spec)


def test_aggregation_refuses_receipts_of_other_parameters(params, tmp_path):
    import json

    from hetmtl.reporting.collect import RecordError, check_current

    key = params.runs("tiny")[0]
    receipt = tmp_path / key.receipt
    receipt.parent.mkdir(parents=True)
    receipt.write_text(json.dumps({"job_digest": params.job_digest(key)}))
    check_current(params, "tiny", tmp_path)  # current: accepted
    receipt.write_text(json.dumps({"job_digest": "0" * 16}))
    with pytest.raises(RecordError, match="other parameters or code.*" + key["method"]):
        check_current(params, "tiny", tmp_path)


def _bold_cells(page: str) -> set[str]:
    """The text of the cells an HTML table sets in bold (Styler: a CSS rule per cell id)."""
    import re
    from html.parser import HTMLParser

    style = page.split("<style", 1)[1].split("</style>", 1)[0]
    ids = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", style):
        if "font-weight: bold" in body:
            ids |= {s.strip().lstrip("#") for s in selectors.split(",")}

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.text, self.current = {}, None

        def handle_starttag(self, tag, attrs):
            self.current = dict(attrs).get("id") if tag == "td" else None

        def handle_data(self, data):
            if self.current:
                self.text[self.current] = self.text.get(self.current, "") + data

    parser = Cells()
    parser.feed(page)
    return {parser.text[i].strip() for i in ids}


def test_html_table_bolds_the_best_mean_of_each_column_and_is_a_page():
    from hetmtl.reporting.tables import to_html

    values = {("single_task", 0): {"A": 0.5, "B": 0.9}, ("single_task", 1): {"A": 0.7, "B": 0.9},
              ("mtal", 0): {"A": 0.9, "B": 0.6}, ("mtal", 1): {"A": 0.7, "B": 0.6}}
    t = summarise(records(values), "g", ROWS, ["A", "B"], DISPLAY)
    page = to_html(t, "Table 3 & <co_de>: 95% CI", "table3")
    # A: MTAL 80.0; B: single-task 90.0; Average: single-task 75.0 (vs 70.0); sharing is never bold
    assert _bold_cells(page) == {"80.0 ± 14.1", "90.0 ± 0.0", "75.0 ± 7.1"}
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page  # ± shown as ±
    assert "<caption>Table 3 &amp; &lt;co_de&gt;: 95% CI</caption>" in page
    assert to_html(t, "c", "table3") == to_html(t, "c", "table3")  # no random ids: byte-stable


def test_latex_and_markdown_bold_the_same_cells_as_html():
    from hetmtl.reporting.tables import cells

    t = summarise(records(VALUES), "g", ROWS, ["A", "B"], DISPLAY)
    text, bold = cells(t)
    best = {c for c, b in zip(text.to_numpy().flat, bold.to_numpy().flat) if b}
    md, tex = to_markdown(t, "c"), to_latex(t, "c")
    pm = r"$\pm$"
    assert best and all(f"**{c}**" in md and r"\textbf{" + c.replace("±", pm) + "}" in tex for c in best)
    n = int(bold.to_numpy().sum())
    assert md.count("**") == 2 * n and tex.count(r"\textbf{") == n


@pytest.mark.parametrize(("st", "mt", "bold"), [
    (0.62504, 0.62496, {"single_task", "mtal"}),  # both shown as 62.5: both best
    (0.6256, 0.6244, {"single_task"}),           # 62.6 against 62.4
    (0.6200, 0.6300, {"mtal"}),
])
def test_bold_follows_the_value_the_table_shows(st, mt, bold):
    vals = {("single_task", s): {"A": st, "B": st} for s in (0, 1)} | {("mtal", s): {"A": mt, "B": mt} for s in (0, 1)}
    t = summarise(records(vals), "g", ROWS, ["A", "B"], DISPLAY)
    from hetmtl.reporting.tables import cells

    text, marks = cells(t)
    shown = {m: text.loc[i, "Average"] for i, m in enumerate(t.index)}
    best = {m for i, m in enumerate(t.index) if marks.loc[i, "Average"]}
    assert best == bold, shown
    # bold cells show the same text; no non-bold cell shows the bold text
    assert len({shown[m].split(" ±")[0] for m in best}) == 1
    assert all(shown[m].split(" ±")[0] != shown[next(iter(best))].split(" ±")[0] for m in set(t.index) - best)


def test_a_comparison_tables_caption_is_one_short_line_and_its_details_numbered_notes_under_it(params):
    from hetmtl.reporting.aggregate import caption, caption_parts

    spec = params["tables"]["table2"]
    short, notes = caption_parts(params, "demo", spec, (72, 3))
    assert len(short) < 200 and "\n" not in short and len(notes) >= 3
    md = to_markdown(summarise(records(VALUES), "g", ROWS, ["A", "B"], DISPLAY), short, notes).splitlines()
    assert md[0] == short
    table_end = max(i for i, line in enumerate(md) if line.startswith("|"))
    assert md[table_end + 2:] == [f"{i}. {n}" for i, n in enumerate(notes, 1)]  # under the table, numbered
    full = caption(params, "demo", spec, (72, 3))
    assert full.startswith(short) and all(f"({i}) {n}" in full for i, n in enumerate(notes, 1))


# ----------------------------------------------------------------- best only where the difference is significant

def _emphasis(values, seeds=(0, 1, 2, 3)):
    """(bold methods, tied methods) of the Average column of a two-row table."""
    from hetmtl.reporting.tables import cells

    t = summarise(records(values), "g", ROWS, ["A", "B"], DISPLAY)
    text, marks = cells(t)
    bold = {m for i, m in enumerate(t.index) if marks.loc[i, "Average"]}
    tied = {m for i, m in enumerate(t.index) if text.loc[i, "Average"].endswith(" †")}
    return bold, tied, t


def _two(mtal, single):
    return ({("mtal", s): {"A": v, "B": v} for s, v in enumerate(mtal)}
            | {("single_task", s): {"A": v, "B": v} for s, v in enumerate(single)})


@pytest.mark.parametrize(("mtal", "single", "bold", "tied"), [
    # a clear, consistent gap over four seeds: MTAL bold, single-task significantly below (no mark)
    ([0.80, 0.82, 0.81, 0.83], [0.60, 0.61, 0.59, 0.62], {"mtal"}, set()),
    # a gap the seeds do not support (paired p ~ 0.6): MTAL bold, single-task marked tied
    ([0.80, 0.50, 0.90, 0.55], [0.70, 0.60, 0.75, 0.60], {"mtal"}, {"single_task"}),
    # one seed each: no test, so no best at all
    ([0.80], [0.60], set(), set()),
    # the same gap on every seed: significant (infinite t); no gap on every seed: shown alike, both bold
    ([0.80, 0.70], [0.60, 0.50], {"mtal"}, set()),
    ([0.70, 0.70], [0.70, 0.70], {"mtal", "single_task"}, set()),
])
def test_bold_is_the_best_and_the_mark_names_those_not_significantly_below_it(mtal, single, bold, tied):
    got_bold, got_tied, _ = _emphasis(_two(mtal, single))
    assert (got_bold, got_tied) == (bold, tied)


def test_the_tie_test_is_holm_adjusted_over_the_column():
    """Two rows each at raw p ~ 0.03 against the best: significant alone, not after Holm over two."""
    from hetmtl.reporting.tables import best_and_tied

    best = pd.Series([0.80, 0.82, 0.81, 0.86])
    a = best - pd.Series([0.02, 0.05, 0.03, 0.07])  # paired differences 2, 5, 3, 7 points: p = 0.031
    shown = {"best": 82.0, "a": 78.0, "b": 78.0}
    assert best_and_tied({"best": 82.0, "a": 78.0}, {"best": best, "a": a}) == ({"best"}, set())
    assert best_and_tied(shown, {"best": best, "a": a, "b": a.copy()}) == ({"best"}, {"a", "b"})


def test_every_renderer_and_table7_apply_the_same_rule(params):
    """Markdown, LaTeX and HTML show the same bold cells and marks; Table 7 bolds nothing with one seed
    and marks its ties with two, by the rule the caption states."""
    from hetmtl.reporting.tables import TIED, cells, emphasis_note, to_html, weighting_cells, weighting_table

    _, _, t = _emphasis(_two([0.80, 0.50, 0.90, 0.55], [0.70, 0.60, 0.75, 0.60]))
    text, bold = cells(t)
    marked = [c for c in text.to_numpy().flat if c.endswith(TIED)]
    md, tex, page = to_markdown(t, "c"), to_latex(t, "c"), to_html(t, "c")
    latex = [c.replace("±", r"$\pm$").replace(TIED, r"$^\dagger$") for c in marked]
    assert marked and all(c in md and c in page for c in marked) and all(c in tex for c in latex)
    assert md.count("**") == 2 * int(bold.to_numpy().sum()) == 2 * tex.count(r"\textbf{")

    def sweep_records(seeds):
        rows = []
        for w, accs in {"equal": [0.5, 0.9, 0.7], "mgda": [0.6, 0.6, 0.65]}.items():
            for seed in seeds:
                for metric, v in (("test_acc/mean", accs[seed]), ("time/train_step_s", 1.0)):
                    rows.append({"group": "g", "sweep": "w", "sweep_value": w, "seed": seed, "run_id": f"{w}{seed}",
                                 "metric": metric, "value": v})
        return pd.DataFrame(rows)

    one, bold_one = weighting_cells(weighting_table(sweep_records([0]), [("w", "g", "g: MTAL")],
                                                    ["equal", "mgda"]), {})
    assert not bold_one.to_numpy().any() and not any(c.endswith(TIED) for c in one["g: MTAL"])  # n = 1: no best
    text, bold = weighting_cells(weighting_table(sweep_records([0, 1, 2]), [("w", "g", "g: MTAL")],
                                                 ["equal", "mgda"]), {})
    assert bold["g: MTAL"].tolist() == [True, False] and text["g: MTAL"][1].endswith(TIED)
    assert "fewer than two seeds" in emphasis_note() and TIED in emphasis_note("weighting")


def test_table6_headers_are_display_names_not_raw_keys(params):
    from hetmtl.reporting.aggregate import sharing_columns
    from hetmtl.reporting.tables import pair_cells, pair_table, sharing_cells, sharing_table

    columns = sharing_columns(params, "tiny")
    display = params["report"]["display"]
    text, _ = sharing_cells(sharing_table(pd.DataFrame(columns=["group", "setting", "method", "metric", "value"]),
                                          columns, ["conv1"], display))
    headers = list(text.columns[1:])
    assert headers == [f"{g}: {display[run.split('/')[1]]}" for _, g, run in columns]
    assert not any("mtal" in h for h in headers)  # no raw key such as "related (mtal_prior_common)"
    pairs = pair_table(pd.DataFrame(columns=["group", "setting", "method", "metric", "value"]),
                       [("mtal_prior_common", "prior/mtal_prior_common")], {"g": ["a", "b"]}, {})
    assert list(pair_cells(pairs, display)[0].columns) == ["Group", "Task pair", "R", display["mtal_prior_common"]]
