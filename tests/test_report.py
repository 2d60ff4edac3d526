"""The report's items: figures (PNG and PDF, Figs. 8, 11, 12) and per-item captions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import fake_task

ROOT = Path(__file__).resolve().parents[1]


def _mtal(rho):
    from hetmtl.methods import TaskInfo
    from hetmtl.methods.mtal import MTAL
    from hetmtl.models import BACKBONES

    tasks = [fake_task("g1", 1, 3, seed=1), fake_task("c1", 3, 4, seed=2), fake_task("g2", 1, 3, seed=3)]
    cfg = {"rho": rho, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "start": "independent"}
    m = MTAL([TaskInfo(d.name, d.channels, d.num_classes) for d in tasks], BACKBONES["vgg_tiny"], cfg, 0)
    images = [d.x["test"][:1].float() / 255 for d in tasks]
    return m, images


def _row_labels(fig) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() and ax.get_ylabel() != "activation"]


def test_nothing_shared_shows_the_best_matching_pairs_marked_not_shared():
    from hetmtl.reporting.figures import activation_figure, best_pairs

    m, images = _mtal(1.01)  # a fresh MTAL shares nothing
    assert m.shared_kernels(1) == []
    pairs = best_pairs(m, 1, 3)
    assert len(pairs) == 3 and [c for c, _ in pairs] == sorted((c for c, _ in pairs), reverse=True)
    kernels = [k for _, pair in pairs for k in pair]
    assert len(set(kernels)) == len(kernels)  # each kernel in one pair at most
    (i, a), (j, b) = pairs[0][1]
    assert pairs[0][0] == pytest.approx(float(m.similarity(1, i, j)[a, b]))  # MTAL's own cosine
    assert float(m.similarity(1, i, j).max()) == pytest.approx(pairs[0][0])  # the best pair first
    fig = activation_figure(m, images, 1, "conv2_1", "Fig. 11", rho=0.4)
    labels = _row_labels(fig)
    assert len(labels) == 4 and all("NOT shared" in s and ", rho 0.4" in s for s in labels)
    assert f"cos {pairs[0][0]:.2f}" in labels[0] and "NOT shared" in fig._suptitle.get_text()
    # the first layer: the colour task (other kernel shape) is never paired with a grayscale one
    assert all({t for t, _ in pair} == {0, 2} for _, pair in best_pairs(m, 0, 4))


def test_shared_kernels_are_shown_with_row_labels_and_a_colour_bar_per_row():
    from hetmtl.reporting.figures import activation_figure

    m, images = _mtal(-1.01)
    m.share()
    groups = m.shared_kernels(1)[:2]
    fig = activation_figure(m, images, 1, "conv2_1", "Fig. 11", rho=-1.01, max_kernels=2)
    labels = _row_labels(fig)
    assert len(labels) == 2 and all(s.startswith("slot") and "NOT" not in s for s in labels)
    assert all(f"{m.tasks[t].name} #{k}" in labels[r] for r, g in enumerate(groups) for t, k in g)
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2


def _blank_panels(fig) -> list:
    """The figure's panels that show nothing: no image, no line, no text (colour bars aside)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_visible()
            and not (ax.images or ax.lines or ax.patches or ax.texts)]


@pytest.mark.parametrize("rho", [1.01, -1.01])  # nothing shared (best pairs of 2 of 3 tasks); everything shared
def test_fig11_has_no_blank_panel_and_its_title_says_what_the_rows_are(rho):
    from hetmtl.reporting.figures import activation_figure

    m, images = _mtal(rho)
    if rho < 0:
        m.share()
    fig = activation_figure(m, images, 1, "conv2_1", "Fig. 11", rho=rho)
    assert fig.axes and not _blank_panels(fig)
    title = fig._suptitle.get_text()
    if rho > 0:  # nothing shared: never titled as if kernels were shared
        assert "kernels shared in" not in title and "no kernel of conv2_1 is shared" in title
    else:
        assert "activation maps of kernels shared in conv2_1" in title


def test_a_layer_with_nothing_to_compare_is_one_panel_that_says_so(monkeypatch):
    from hetmtl.reporting import figures

    m, images = _mtal(1.01)
    monkeypatch.setattr(figures, "best_pairs", lambda *a: [])
    fig = figures.activation_figure(m, images, 1, "conv2_1", "Fig. 11", rho=1.01)
    assert len(fig.axes) == 1 and "nothing to compare" in fig.axes[0].texts[0].get_text()


def test_each_task_keeps_its_colour_in_every_panel_of_fig12():
    from hetmtl.reporting.figures import loss_figure

    def history(tasks):
        return pd.DataFrame([{"task": t, "step": e, "value": 1.0 / e + i, "seed": 0}
                             for i, t in enumerate(tasks) for e in (1, 2)])

    fig = loss_figure({"related": history(["HD", "a", "A"]), "unrelated": history(["Amazon", "HD"])}, "")
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color() if isinstance(line.get_color(), str)
                                                            else tuple(line.get_color()))
    assert set(colours) == {"HD", "a", "A", "Amazon"}
    assert all(len(c) == 1 for c in colours.values()), colours  # HD: one colour in both panels
    assert len({next(iter(c)) for c in colours.values()}) == 4  # and no two tasks alike


def test_fig8_says_which_colour_is_mtal_and_figures_come_as_png_and_pdf(tmp_path, params):
    from hetmtl.reporting import figures
    from hetmtl.reporting.tables import AVERAGE

    def table(methods):
        cols = pd.MultiIndex.from_tuples([(AVERAGE, "mean"), (AVERAGE, "ci")])
        return pd.DataFrame([[0.5 + 0.1 * i, 0.02] for i in range(len(methods))], index=methods, columns=cols)

    display, highlight = params["report"]["display"], params["report"]["highlight"]
    tables = {"table3": table(["single_task", "mtal"]), "table2": table(["single_task", "mtal_prior"])}
    for t in tables.values():
        t.attrs["display"] = display  # as summarise sets it
    fig = figures.overall_figure(tables, {"table3": "Table 3", "table2": "Table 2"}, "", highlight)
    legend = {t.get_text(): p.get_facecolor() for t, p in zip(fig.legends[0].get_texts(),
                                                             fig.legends[0].get_patches())}
    bars = {lab.get_text(): bar.get_facecolor() for ax in fig.axes
            for lab, bar in zip(ax.get_xticklabels(), ax.patches)}
    assert legend["MTAL"] == bars["MTAL"] and legend["MTAL (task prior)"] == bars["MTAL (task prior)"]
    assert legend["baselines"] == bars["Single-task"] != legend["MTAL"] != legend["MTAL (task prior)"]
    ticks = [t for t in fig.axes[0].get_yticks() if 0 <= t <= 100]
    assert len(ticks) >= 5  # not only 0 and 50
    out = figures.overall_comparison(tables, {"table3": "Table 3", "table2": "Table 2"}, tmp_path / "fig08.png", "",
                                     highlight)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_fig8_stars_exactly_the_bars_the_tables_p_column_stars_inside_the_axes(params):
    """The stars come from the same Holm-adjusted p as the tables' "p vs MTAL (Holm)" column."""
    from hetmtl.reporting import figures
    from hetmtl.reporting.tables import add_significance, cells, paired_pvalues, summarise

    rows = [("shared", "single_task"), ("shared", "hard_sharing"), ("no_prior", "mtal")]
    acc = {"single_task": [0.60, 0.63, 0.58, 0.62], "hard_sharing": [0.80, 0.55, 0.97, 0.60],
           "mtal": [0.97, 0.98, 0.96, 0.99]}
    recs = pd.DataFrame([{"suite": "tiny", "group": "g", "setting": st, "method": m, "seed": seed,
                          "run_id": f"{m}{seed}", "metric": metric, "value": v}
                         for st, m in rows for seed, v in enumerate(acc[m])
                         for metric in ("test_acc/A", "test_acc/mean")])
    table = summarise(recs, "g", rows, ["A"], params["report"]["display"])
    table = add_significance(table, paired_pvalues(recs, "g", rows, ("no_prior", "mtal")), "mtal")
    text, _ = cells(table)
    starred = {params["report"]["display"][m] for m, p in zip(table.index, text["p vs MTAL (Holm)"])
               if p.endswith("*")}
    assert starred == {"Single-task"}  # hard sharing's seeds scatter: not significant
    fig = figures.overall_figure({"table3": table}, {"table3": "Table 3"}, "", params["report"]["highlight"])
    ax = fig.axes[0]
    stars = [t for t in ax.texts if t.get_text() == figures.STAR]
    labels = [lab.get_text() for lab in ax.get_xticklabels()]
    assert {labels[round(t.get_position()[0])] for t in stars} == starred
    assert all(t.get_position()[1] + figures.STAR_ROOM - 1 <= ax.get_ylim()[1] for t in stars)  # MTAL near 100%
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(figures.SIGNIFICANCE_LEGEND in t for t in legend)


@pytest.mark.parametrize("kind,wildcard", [("figure", "fig09_threshold_sweep"), ("table", "table3")])
def test_each_report_item_gets_its_own_caption(kind, wildcard):
    """The caption templates render the job's own caption (one job per item), not a list of all."""
    from jinja2 import Environment

    template = (ROOT / "workflow" / "report" / f"{kind}.rst").read_text()
    job = SimpleNamespace(params=SimpleNamespace(caption="THIS item's caption.", suite="tiny"),
                          wildcards=SimpleNamespace(**{kind: wildcard}), config={"suite": "tiny"})
    text = Environment().from_string(template).render(snakemake=job)
    assert text.startswith("THIS item's caption.") and wildcard in text


def test_every_table_and_figure_job_has_its_caption(params):
    """The Snakefile's per-item rules take each table's and figure's caption from the
    catalogue, each naming its own paper item."""
    from hetmtl.reporting import catalogue

    for number, name in zip([8, 9, 10, 11, 12], catalogue.names(params, "figure")):
        assert f"Fig. {number}:" in catalogue.caption(params, "figure", name), name
    for name, spec in params["tables"].items():
        assert f"{spec['paper']}: {spec['group']} tasks" in catalogue.caption(params, "table", name)
    assert "Table 6:" in catalogue.caption(params, "table", "table6")
    text = (ROOT / "workflow" / "rules" / "report.smk").read_text()
    assert """caption=lambda wc: f"{catalogue.caption(P, 'table', wc.table)} Suite {SUITE}.{STANDIN}",""" in text
    assert """caption=lambda wc: f"{catalogue.caption(P, 'figure', wc.figure)}{STANDIN}",""" in text


def test_fig9_draws_every_sweep_in_a_panel_of_its_own_with_every_error_bar_inside(tmp_path, monkeypatch):
    import pandas as pd

    from hetmtl.reporting import figures

    def recs(values, accs):
        return pd.DataFrame([{"group": g, "sweep_value": v, "seed": s, "metric": "test_acc/mean", "value": a}
                             for g in ("related", "unrelated") for v, pair in zip(values, accs)
                             for s, a in enumerate(pair)])

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig) and path)
    figures.threshold_sweep({"rho": (recs([0.1, 0.4], [(0.5, 0.6), (0.95, 1.0)]), "rho", "mtal"),
                             "gamma": (recs([0.001, 0.01], [(0.2, 0.4), (0.3, 0.3)]), "gamma", "soft_sharing")},
                            tmp_path / "fig09.png", "")
    axes = drawn["fig"].axes
    assert [a.get_xlabel() for a in axes] == ["rho of mtal (similarity threshold)",
                                              "gamma of soft_sharing (swept value)"]
    top = axes[0].get_ylim()[1]
    assert top >= 100 * (0.975 + 0.0354)  # the 0.4 point's mean + std (two seeds 0.95, 1.0) lies inside


def test_fig8_draws_an_interval_past_100_percent_whole(params):
    from hetmtl.reporting import figures
    from hetmtl.reporting.tables import AVERAGE

    cols = pd.MultiIndex.from_tuples([(AVERAGE, "mean"), (AVERAGE, "ci")])
    wide = pd.DataFrame([[0.95, 0.12], [0.6, 0.02]], index=["cross_stitch", "mtal"], columns=cols)
    narrow = pd.DataFrame([[0.5, 0.02], [0.6, 0.02]], index=["cross_stitch", "mtal"], columns=cols)
    for t in (wide, narrow):
        t.attrs["display"] = params["report"]["display"]
    fig = figures.overall_figure({"table3": narrow, "table5": wide}, {"table3": "3", "table5": "5"}, "",
                                 params["report"]["highlight"])
    assert all(ax.get_ylim()[1] >= 107 for ax in fig.axes)  # 95 + 12, on every (shared) axis
    fig = figures.overall_figure({"table3": narrow}, {"table3": "3"}, "", params["report"]["highlight"])
    assert fig.axes[0].get_ylim() == (0, 100)


def test_fig12s_legend_lists_the_tasks_in_the_tables_order():
    from hetmtl.reporting import figures

    h = pd.DataFrame([{"task": t, "step": e, "seed": 0, "value": 1.0 / e} for t in ("Typographic", "HD", "a", "A")
                      for e in (1, 2)])
    fig = figures.loss_figure({"related": h}, "", order={"related": ["HD", "a", "Typographic", "A"]})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["HD", "a", "Typographic", "A"]


def test_fig12_plots_optimisation_steps_smoothed_over_the_claims_window(params):
    """Fig. 12 speaks of iterations: its x axis is the step, each curve the mean over seeds averaged over
    the trailing window claim C10 reads (params/claims.yaml), so the figure shows what the claim reads."""
    from hetmtl.reporting import figures
    from hetmtl.reporting.aggregate import loss_window

    window = loss_window(params)
    assert window == params["claims"]["items"]["C10"]["window"] > 1
    h = pd.DataFrame([{"task": "A", "step": s, "seed": seed, "value": float(s % 2 + seed)}
                      for s in range(1, 41) for seed in (0, 1)])
    fig = figures.loss_figure({"related": h}, "", window=window)
    ax = fig.axes[0]
    [line] = ax.get_lines()
    x, y = line.get_data()
    assert list(x) == list(range(1, 41)) and "step" in ax.get_xlabel()
    # the raw per-step mean alternates 0.5 / 1.5; a full window of 10 averages it to 1.0
    assert y[window - 1:] == pytest.approx([1.0] * (40 - window + 1))
