"""The report's catalogue (hetmtl/reporting/catalogue.py): every table and figure
listed once, and read by the Snakefile, dvc.yaml, the CLI and aggregation; the
methods' display names and roles come from params/report.yaml."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hetmtl.reporting import catalogue

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _with_report(params, **changes):
    """The project's params with params/report.yaml entries changed."""
    data = copy.deepcopy(params.data)
    for key, value in changes.items():
        data["report"][key] = value
    return dataclasses.replace(params, data=data)


def _records(params, suite: str, cells, sharing: bool = True) -> pd.DataFrame:
    """Run records of every (group, setting, method) cell and seed: accuracies, a budget,
    and (``sharing``) the sharing metrics a run that shares kernels logs."""
    from hetmtl.models import BACKBONES, conv_names

    layers = conv_names(BACKBONES[params.suite(suite)["backbone"]])
    rows = []
    for group, setting, method in cells:
        for seed in params.suite(suite)["seeds"]:
            metrics = {f"test_acc/{t}": 0.5 + 0.01 * i for i, t in enumerate(params.tasks_of(group))}
            metrics.update({"test_acc/mean": 0.55, "budget/steps_per_task": 10})
            if sharing:
                metrics.update({f"sharing/{name}": 0.25 for name in [*layers, "total"]})
            rows += [dict(suite=suite, group=group, setting=setting, method=method, seed=seed, run_id=method,
                          metric=k, value=float(v)) for k, v in metrics.items()]
    return pd.DataFrame(rows)


def test_the_catalogue_imports_no_pandas_matplotlib_or_torch():
    """The Snakefile imports it on every invocation."""
    code = ("import sys, hetmtl.reporting.catalogue; "
            "print(sorted({'pandas', 'matplotlib', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_entry_has_its_builder_a_caption_and_known_inputs(params):
    import importlib

    for kind in catalogue.KINDS:
        for name, e in catalogue.items(params, kind):
            module, function = e.builder.split(":")
            assert callable(getattr(importlib.import_module(module), function)), e.builder
            assert catalogue.caption(params, kind, name) and set(e.reads) <= set(catalogue.READS)
    assert catalogue.names(params, "table") == [*params["tables"], "table6", "table6_pairs", "table7_weightings",
                                                "claims", "claims_details", "plan"]
    assert catalogue.sections(params, "table", "claims") == ("report", "claims", "relations")
    show = params["report"]["showcase"]
    models = catalogue.inputs(params, "tiny", "figure", "fig10_activations_conv1")["models"]
    assert models == [str(run.model) for run in params.runs("tiny")
                      if (run.setting, run.method) == (show["setting"], show["method"])] and models
    assert "models" not in catalogue.inputs(params, "tiny", "table", "table3")


def test_every_catalogue_item_is_a_snakemake_job_and_in_the_dvc_report_stage(params):
    from hetmtl import dvc_yaml

    targets = [str(f) for kind in catalogue.KINDS for name in catalogue.names(params, kind)
               for f in catalogue.files(params, "tiny", kind, name)]
    run = subprocess.run(["snakemake", "-n", "-p", "--forceall", *targets, "--config", "suite=tiny"], cwd=ROOT,
                         env=_env(), capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    for kind in catalogue.KINDS:
        for name in catalogue.names(params, kind):
            assert f"hetmtl {kind} --suite tiny --{kind} {name} " in run.stdout, (kind, name)
    doc = yaml.safe_load(dvc_yaml.render(params, "tiny")[dvc_yaml.ROOT_FILE])
    stage = doc["stages"]["aggregate"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    for f in targets:
        assert any(Path(f).is_relative_to(o) for o in outs), f
    assert {"params/report.yaml": ["report"]} in stage["params"]
    assert {"params/claims.yaml": ["claims"]} in stage["params"]
    figures = catalogue.names(params, "figure")
    assert doc["plots"] == [catalogue.figure_file("tiny", n, "png").as_posix() for n in figures]


def test_the_cli_help_names_every_table_and_figure_of_the_catalogue():
    for kind in catalogue.KINDS:
        out = subprocess.run([str(Path(sys.executable).parent / "hetmtl"), kind, "--help"], env=_env(),
                             capture_output=True, text=True, check=True).stdout
        flat = " ".join(out.split())
        for e in catalogue.CATALOGUE:
            if e.kind == kind:
                assert (f"params `{e.from_params}`" if e.from_params else e.name) in flat, (kind, e.name)


def test_a_display_name_and_a_reference_changed_in_params_reach_the_written_table(params, tmp_path):
    from hetmtl.reporting.aggregate import write_table

    spec = params["tables"]["table3"]
    cells = [(spec["group"], s, m) for s, m in params.table_methods(spec["setting"])]
    records = _records(params, "tiny", cells)
    display = {**params["report"]["display"], "mtal": "MTAL renamed"}
    p = _with_report(params, display=display, reference={**params["report"]["reference"],
                                                          spec["setting"]: "hard_sharing"})
    md = write_table(p, "tiny", tmp_path, "table3", records)[0].read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert "MTAL renamed" in rows and "MTAL" not in rows
    assert rows["Multi-task (hard sharing)"].endswith("| ref. |") and not rows["MTAL renamed"].endswith("ref. |")
    assert "against hard_sharing" in md
    default = write_table(params, "tiny", tmp_path, "table3", records)[0].read_text()
    assert "| MTAL |" in default and "against mtal," in default


def test_table6_shows_the_methods_params_name_and_refuses_one_without_sharing(params):
    from hetmtl.reporting.aggregate import sharing_of
    from hetmtl.reporting.collect import RecordError

    cells = [(g, s, m) for g in params["groups"] for s, spec in params["settings"].items() for m in spec["methods"]]
    cells += [(g, r["setting"], r["method"]) for g in params["groups"] for r in params.readings("tiny")]
    records = _records(params, "tiny", cells)
    shown = {c.split(" (")[1].rstrip(")") for c in sharing_of(params, "tiny", records).columns}
    assert shown == {"mtal", "mtal_prior", "mtal_common", "mtal_prior_common", "mtal_delta", "mtal_prior_delta",
                     "mtal_random", "mtal_prior_random"}  # and their readings
    columns = list(sharing_of(params, "tiny", records).columns)  # side by side per group and setting
    assert columns[:4] == ["related (mtal)", "related (mtal_common)", "related (mtal_delta)", "related (mtal_random)"]
    only = {c.split(" (")[1].rstrip(")") for c in sharing_of(_with_report(params, sharing=["mtal_prior"]), "tiny",
                                                             records).columns}
    assert only == {"mtal_prior", "mtal_prior_common"}
    no_sharing = pd.concat([records[records.method != "hard_sharing"],
                            _records(params, "tiny", [(g, "no_prior", "hard_sharing") for g in params["groups"]],
                                     sharing=False)])
    with pytest.raises(RecordError, match="hard_sharing.*logged no sharing metrics"):
        sharing_of(_with_report(params, sharing=["hard_sharing"]), "tiny", no_sharing)


def test_report_params_name_methods_the_grid_has(project):
    from hetmtl.params import ParamsError, load_params

    path = project / "params" / "report.yaml"
    text = path.read_text()
    path.write_text(text.replace("prior: mtal_prior\n", "prior: mtal\n", 1))
    with pytest.raises(ParamsError, match=r"params/report.yaml: report.reference.prior: 'mtal' is not a method"):
        load_params(project)
    path.write_text(text.replace("showcase: {setting: no_prior, method: mtal}",
                                 "showcase: {setting: prior, method: mtal}"))
    with pytest.raises(ParamsError, match=r"report.showcase"):
        load_params(project)


def test_fig8_builder_draws_every_table_with_the_display_names_of_params(params, tmp_path, monkeypatch):
    from hetmtl.reporting import aggregate, figures

    cells = [(spec["group"], s, m) for spec in params["tables"].values()
             for s, m in params.table_methods(spec["setting"])]
    seen = {}

    def overall_figure(tables, titles, note, highlight, real=figures.overall_figure):
        seen.update(labels={figures.display_name(t, m) for t in tables.values() for m in t.index}, highlight=highlight)
        return real(tables, titles, note, highlight)

    monkeypatch.setattr(figures, "overall_figure", overall_figure)
    p = _with_report(params, display={**params["report"]["display"], "nddr_cnn": "NDDR renamed"})
    written = catalogue.entry(p, "figure", "fig08_overall").build(p, "tiny", tmp_path, "fig08_overall",
                                                                  _records(p, "tiny", cells))
    assert [f.suffix for f in written] == [".png", ".pdf"] and all(f.exists() for f in written)
    assert "NDDR renamed" in seen["labels"] and "NDDR-CNN" not in seen["labels"]
    assert seen["highlight"] == params["report"]["highlight"]
    assert written == aggregate.draw_figure(p, "tiny", tmp_path, "fig08_overall", _records(p, "tiny", cells))


def test_the_pair_table_and_figure_read_each_pairs_sharing_beside_its_R(params, tmp_path):
    """Table 6's pairs and Fig. 13 (ours): pair (i, j) of a group is that group's tasks i and j,
    with R_ij (not R_ji of another order) and the pair's own shared fraction."""
    import copy
    import dataclasses

    from hetmtl.reporting.aggregate import fig13_pair_sharing, pair_sharing_of

    data = copy.deepcopy(params.data)
    T = {g: len(params.tasks_of(g)) for g in params["groups"]}
    data["relations"]["given"] = {g: [[1.0 if i == j else round(0.1 * i + 0.01 * j + 0.01 * min(i, j), 3)
                                       for j in range(T[g])] for i in range(T[g])] for g in params["groups"]}
    p = dataclasses.replace(params, data=data)
    rows = []
    for run in p.runs("tiny"):
        if run.method != "mtal_delta":
            continue
        for i in range(T[run.group]):
            for j in range(i + 1, T[run.group]):
                rows.append(dict(run.key, run_id=str(run.seed), metric=f"sharing/pair/{i}-{j}",
                                 value=0.1 * i + 0.02 * j + 0.001 * run.seed))
    records = pd.DataFrame(rows)
    table = pair_sharing_of(p, "tiny", tmp_path, records)
    g = list(p["groups"])[0]
    tasks = p.tasks_of(g)
    row = table[(table.group == g) & (table.pair == f"{tasks[1]}–{tasks[2]}")].iloc[0]
    assert row.R == pytest.approx(p["relations"]["given"][g][1][2])
    assert row.R != pytest.approx(p["relations"]["given"][g][2][1])
    seeds = p.suite("tiny")["seeds"]
    assert row["mtal_delta"][0] == pytest.approx(0.1 + 0.04 + 0.001 * sum(seeds) / len(seeds))
    assert len(table[table.group == g]) == T[g] * (T[g] - 1) // 2
    out = fig13_pair_sharing(p, "tiny", tmp_path, "fig13_pair_sharing", records)
    assert all(f.exists() for f in out)
