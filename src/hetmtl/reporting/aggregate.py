"""Every table and figure of a suite, the DVC metrics and plot data, and an
MLflow run per suite that holds them all as artifacts (SPEC section 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hetmtl import files, paths
from hetmtl.reporting import figures, items
from hetmtl.reporting.collect import RecordError, check_current, collect, collect_sweeps, metric_histories
from hetmtl.reporting.tables import (
    AVERAGE,
    add_significance,
    paired_pvalues,
    sharing_csv,
    sharing_html,
    sharing_latex,
    sharing_markdown,
    sharing_table,
    summarise,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)

STANDIN_NOTE = ("Data: generated stand-in archives (SPEC section 2), NOT the paper's data; "
                "these numbers say nothing about the real data sets.")
FIGURES = dict(zip(items.FIGURES, ["Fig. 8", "Fig. 9", "Fig. 10", "Fig. 11", "Fig. 12"]))
SHARING_TABLE = "table6"
TABLE_FORMATS = items.TABLE_FORMATS


def table_names(params) -> list[str]:
    """The comparison tables of params/grid.yaml, then Table 6."""
    return [*params["tables"], SHARING_TABLE]


def scale_note(params, suite: str) -> str:
    s = params.suite(suite)
    note = (f"Suite {suite}: {s['backbone']}, {s['image_size']}x{s['image_size']}, {s['epochs']} epochs, "
            f"batch {s['batch_size']}, SGD lr {params['training']['lr']}, momentum {params['training']['momentum']}, "
            f"L2 lambda {params['training']['l2_lambda']}.")
    return note + (" " + STANDIN_NOTE if s["data"] == "standin" else "")


def reference_method(params, setting: str) -> tuple[str, str]:
    """The MTAL row of a setting's table (the significance tests' reference)."""
    mtal = [m for m in params["settings"][setting]["methods"] if m.startswith("mtal")]
    return (setting, mtal[0]) if mtal else None


def table_budget(params, records: pd.DataFrame, spec: dict) -> tuple[int, int]:
    """The one budget of a table's deep methods: (optimisation steps per task, as
    counted by each run; pre-training epochs of the column methods). Refuses a
    table where a deep run lacks its count or the counts differ: the comparison
    would not be fair."""
    from hetmtl.methods import METHODS

    seeds = params.suite(records["suite"].iloc[0])["seeds"] if len(records) else []
    deep = [(st, m) for st, m in params.table_methods(spec["setting"]) if METHODS[params.base_method(m)].deep]
    sel = records[records.group == spec["group"]]
    steps, pre, missing = {}, [], []
    for st, m in deep:
        runs = sel[(sel.setting == st) & (sel.method == m)]
        for seed in seeds:
            run = runs[runs.seed == seed].set_index("metric")["value"]
            if "budget/steps_per_task" not in run:
                missing.append(f"{m}/seed{seed}")
                continue
            steps[f"{m}/seed{seed}"] = int(run["budget/steps_per_task"])
            pre.append(int(run.get("budget/pretrain_epochs", 0)))
    if missing:
        raise RecordError(f"{spec['paper']}: runs without a logged budget (budget/steps_per_task): "
                          f"{', '.join(missing)}; rerun them with this version")
    if len(set(steps.values())) != 1:
        raise RecordError(f"{spec['paper']}: its deep methods were trained with different budgets "
                          f"(steps per task: {steps}); every method of a table must get the same")
    return next(iter(steps.values())), max(pre, default=0)


def caption(params, suite: str, spec: dict, budget: tuple[int, int] | None = None) -> str:
    s = params.suite(suite)
    group = params["groups"][spec["group"]]
    ref = reference_method(params, spec["setting"])
    parts = [
        f"{spec['paper']} (group {group['paper_group']}, {spec['group']} tasks; setting {spec['setting']}).",
        f"Test accuracy (%), mean ± std over {len(s['seeds'])} seed(s), each seed with its own data split "
        "and initialisation; 95% CI: Student-t interval of the average's mean; best mean per column in bold; "
        "(shared): a method with no use for the task-relationship prior, run once for both settings.",
    ]
    if ref:
        parts.append(f"p vs MTAL (Holm): two-sided paired t-test over seeds of the average accuracy "
                     f"against {ref[1]}, Holm-adjusted over the table's comparisons; * adjusted p < 0.05; "
                     "n/a with fewer than two seeds.")
    if budget is not None:
        parts.append(f"Budget: {budget[0]} optimisation steps per task for every deep method"
                     + (f" (cross-stitch and NDDR-CNN: the first {budget[1]} epochs of them train their "
                        "single-task columns)." if budget[1] else "."))
    parts.append(scale_note(params, suite))
    return " ".join(parts)


def _write(path: Path, text: str) -> Path:
    return files.write_text(path, text)


def comparison_tables(params, suite: str, records: pd.DataFrame, only: str | None = None) -> dict[str, pd.DataFrame]:
    out = {}
    for name, spec in params["tables"].items():
        if only is not None and name != only:
            continue
        rows = params.table_methods(spec["setting"])
        table = summarise(records, spec["group"], rows, params.tasks_of(spec["group"]))
        ref = reference_method(params, spec["setting"])
        if ref:
            table = add_significance(table, paired_pvalues(records, spec["group"], rows, ref), ref[1])
        out[name] = table
    return out


def mtal_sharing(params, suite: str, records: pd.DataFrame) -> pd.DataFrame:
    from hetmtl.models import BACKBONES, conv_names

    cells = [(s, m) for s in params["settings"] for m in params["settings"][s]["methods"]]
    cells += [(r["setting"], r["method"]) for r in params.readings(suite)]
    columns = [(f"{g} ({m})", g, f"{s}/{m}") for s, m in cells for g in params["groups"]
               if params.base_method(m).startswith("mtal")]
    return sharing_table(records, columns, conv_names(BACKBONES[params.suite(suite)["backbone"]]))


def activation_figure(params, suite: str, root: Path, name: str) -> Path:
    """Fig. 10 (first conv layer, first group) or 11 (second layer, last group) from
    the first seed's MTAL model (no prior), as the paper shows them."""
    import torch

    from hetmtl.data.tasks import load_task, to_input
    from hetmtl.methods import TaskInfo
    from hetmtl.methods.build import build_method
    from hetmtl.resolve import resolve
    from hetmtl.runs import RunId

    groups = list(params["groups"])
    layer, group = {"fig10_activations_conv1": (0, groups[0]), "fig11_activations_conv2": (1, groups[-1])}[name]
    seed = params.suite(suite)["seeds"][0]
    run_id = RunId(suite, group, "no_prior", "mtal", seed)
    path = root / paths.figure(suite, name)
    if run_id not in params.runs(suite):
        return figures.empty_figure(path, FIGURES[name], "no MTAL model in this grid")
    # in the grid but not on disk: not an empty figure
    model = files.require(root / run_id.model, run_id.command)
    run = resolve(params, run_id)
    data = [load_task(suite, t, torch.device("cpu"), run.split, seed) for t in run.tasks]
    method = build_method(run, [TaskInfo(d.name, d.channels, d.num_classes) for d in data])
    method.load_state_dict(torch.load(model, map_location="cpu", weights_only=False)["model"])
    method.eval()
    layer_name = method.layer_names[layer]
    norm = run.train.input_norm
    images = [to_input(d.x["test"][:1], norm) for d in data]
    rho = run.method_params.get("rho")
    return figures.activation_maps(
        method, images, layer, layer_name, path,
        f"{FIGURES[name]}: activation maps of kernels shared in {layer_name} ({group} tasks, seed {seed})", rho=rho)


def write_table(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """One table in every format (TABLE_FORMATS), from the run records."""
    def out(ext):
        return root / paths.table_file(suite, name, ext)

    if name == SHARING_TABLE:
        sharing = mtal_sharing(params, suite, records)
        cap = ("Table 6: MTAL's kernel sharing ratio per conv layer (share of the task kernels that use a slot "
               "used by another task kernel) and the whole network; the compression by kernel count (unique kernel "
               "slots in use over all task kernels) and by parameters (parameters in use over those of the T "
               "unshared task networks: the memory the paper claims to save); the count of within-task duplicates "
               "(two kernels of one task in one slot, 0 by construction); and each reading's average test "
               "accuracy. Columns: group (method); *_common: MTAL started from one common copy instead of "
               "independent starts (SPEC 6; both are our readings, the default is independent). "
               "%, mean ± std over seeds. " + scale_note(params, suite))
        return [_write(out("md"), sharing_markdown(sharing, cap)), _write(out("tex"), sharing_latex(sharing, cap)),
                _write(out("csv"), sharing_csv(sharing)), _write(out("html"), sharing_html(sharing, cap, name))]
    if name not in params["tables"]:
        raise RecordError(f"no table {name!r}: params/grid.yaml tables give {', '.join(table_names(params))}")
    spec = params["tables"][name]
    table = comparison_tables(params, suite, records, only=name)[name]
    cap = caption(params, suite, spec, table_budget(params, records, spec))
    return [_write(out("md"), to_markdown(table, cap)), _write(out("tex"), to_latex(table, cap)),
            _write(out("csv"), to_csv(table)), _write(out("html"), to_html(table, cap, name))]


def draw_figure(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """One figure, as PNG and PDF (items.FIGURE_FORMATS), from the run records (Figs. 10-11: a model)."""
    note = "generated stand-in data, not the paper's" if params.suite(suite)["data"] == "standin" else ""
    path = root / paths.figure(suite, name)
    if name == "fig08_overall":
        titles = {n: f"{s['paper']}: {s['group']}, {s['setting']}" for n, s in params["tables"].items()}
        figures.overall_comparison(comparison_tables(params, suite, records), titles, path, note)
    elif name == "fig09_threshold_sweep":
        all_sweeps = collect_sweeps(params, suite, root)
        if not params["sweeps"]:
            figures.empty_figure(path, FIGURES[name], "no threshold sweep in this grid")
        for sweep_name, sw in params["sweeps"].items():
            figures.threshold_sweep(all_sweeps[all_sweeps.sweep == sweep_name], path, sw["parameter"], note)
    elif name == "fig12_mtal_loss":
        losses = metric_histories(params, suite, root, "mtal", "no_prior", "train_loss/")
        figures.loss_curves({g: losses[losses.group == g] for g in params["groups"]}, path, note)
    elif name in ("fig10_activations_conv1", "fig11_activations_conv2"):
        activation_figure(params, suite, root, name)
    else:
        raise RecordError(f"no figure {name!r}: the figures are {', '.join(items.FIGURES)}")
    return [root / items.figure_file(suite, name, ext) for ext in items.FIGURE_FORMATS]


def aggregate(params, suite: str, root: Path, with_items: bool = True) -> dict:
    """Every table and figure (``with_items``; the Snakefile makes them one job each with
    ``hetmtl table`` / ``hetmtl figure``), the DVC metrics and plot data, the
    provenance, and the MLflow run holding them all."""
    check_current(params, suite, root)
    records = collect(params, suite, root)
    written: list[Path] = []
    for name in table_names(params):
        written += (write_table(params, suite, root, name, records) if with_items else
                    [root / paths.table_file(suite, name, ext) for ext in TABLE_FORMATS])
    for name in items.FIGURES:
        written += (draw_figure(params, suite, root, name, records) if with_items else
                    [root / items.figure_file(suite, name, ext) for ext in items.FIGURE_FORMATS])
    missing = [str(p.relative_to(root)) for p in written if not p.exists()]
    if missing:
        raise RecordError(f"tables or figures missing: {', '.join(missing)}; make them with `hetmtl table` / "
                          "`hetmtl figure`, or run `hetmtl aggregate` without --no-items")
    # `dvc metrics show`: one short row per table, the mean average accuracy per method
    # (every column, std and CI are in the table's CSV)
    metrics = {name: {m: round(float(table.loc[m, (AVERAGE, "mean")]), 4) for m in table.index}
               for name, table in comparison_tables(params, suite, records).items()}

    plots = root / paths.plots_dir(suite)
    all_sweeps = collect_sweeps(params, suite, root)
    for sweep_name, sw in params["sweeps"].items():
        sweeps = all_sweeps[all_sweeps.sweep == sweep_name]
        summary = (sweeps[sweeps.metric == "test_acc/mean"].groupby(["group", "sweep_value"])["value"]
                   .agg(["mean", "std"]).reset_index().rename(columns={"sweep_value": sw["parameter"]}))
        _write(plots / f"sweep_{sweep_name}.csv", summary.to_csv(index=False, float_format="%.6f"))
    losses = metric_histories(params, suite, root, "mtal", "no_prior", "train_loss/")
    curve = losses.groupby(["group", "task", "epoch"])["value"].mean().reset_index()
    _write(plots / "mtal_train_loss.csv", curve.rename(columns={"value": "train_loss"}).to_csv(index=False))

    for name, row in metrics.items():
        _write(root / paths.metrics_file(suite, name), json.dumps(row, indent=2, sort_keys=True) + "\n")
    _write(root / paths.table_file(suite, "provenance", "json"),
           json.dumps(provenance(root, records), indent=2, sort_keys=True) + "\n")
    try:  # the tables come from the receipts: a store out of reach costs the run, not the tables
        log_aggregate_run(params, suite, root, written, metrics)
    except Exception as exc:  # noqa: BLE001
        import sys

        print(f"[hetmtl] warning: tables written, but the aggregate run was not logged to MLflow "
              f"({str(exc).splitlines()[0][:300]}); `hetmtl tracking rebuild --suite {suite}` and "
              f"`hetmtl aggregate --suite {suite}` log it once the store is back", file=sys.stderr)
    return metrics


def provenance(root: Path, records: pd.DataFrame) -> dict:
    """The commit the tables' runs came from (every receipt matched the current code
    digest, check_current), and whether the code differed from that commit."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src", "params", "workflow", "config",
                  "dvc.yaml")
    return {"git_commit": git("rev-parse", "HEAD") or "unknown",
            "code_changed_since_commit": bool(changed) if changed is not None else None,
            "runs": int(records.run_id.nunique())}


def log_aggregate_run(params, suite: str, root: Path, files: list[Path], metrics: dict) -> str:
    """One MLflow run per aggregation, holding every table and figure as artifacts."""
    from hetmtl.tracking.mlflow_store import client, ensure_experiment, git_commit, retry

    exp = ensure_experiment(root, suite, [])
    c = client(root)
    run = retry(lambda: c.create_run(exp["experiment_id"], run_name=f"aggregate/{suite}",
                                     tags={"suite": suite, "hetmtl.kind": "aggregate", "git_commit": git_commit(root)}))
    for path in files:
        sub = "figures" if path.suffix in (".png", ".pdf") else "tables"
        retry(c.log_artifact, run.info.run_id, str(path), artifact_path=sub)
    retry(lambda: c.set_terminated(run.info.run_id))
    return run.info.run_id
