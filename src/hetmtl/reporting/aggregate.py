"""Every table and figure of a suite, the DVC metrics and plot data, and an
MLflow run per suite that holds them all as artifacts (protocol section 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hetmtl import files, paths
from hetmtl.reporting import catalogue, figures
from hetmtl.reporting.catalogue import data_notes
from hetmtl.reporting.collect import (
    RecordError,
    check_current,
    collect,
    collect_sweeps,
    step_histories,
    tuned_values,
)
from hetmtl.reporting.tables import (
    AVERAGE,
    TIED,
    add_significance,
    emphasis_note,
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

STANDIN_NOTE = ("Data: generated stand-in archives (protocol section 2, docs/protocol.md), NOT the paper's data; "
                "these numbers say nothing about the real data sets.")


def figure_title(name: str) -> str:
    """A figure's title prefix, from its name: ``fig08_overall`` -> ``Fig. 8``."""
    return f"Fig. {int(name[3:5])}"


def scale_note(params, suite: str, tasks: list[str] | None = None) -> str:
    """The suite's scale, the data choices of ours about ``tasks`` (:func:`data_notes`)
    and, on stand-ins, that the data is not the paper's."""
    s = params.suite(suite)
    lr = params["training"]["lr"]
    lr = f"tuned per method (default {lr})" if params.tunes(suite) else lr
    note = (f"Suite {suite}: {s['backbone']}, {s['image_size']}x{s['image_size']}, {s['epochs']} epochs, "
            f"batch {s['batch_size']}, SGD lr {lr}, momentum {params['training']['momentum']}, "
            f"L2 lambda {params['training']['l2_lambda']}.")
    if s.get("budget_note"):  # ours: where the epochs are short of the learning curves' flat part
        note += " " + s["budget_note"]
    notes = data_notes(params, tasks)
    return note + (" " + notes if notes else "") + (" " + STANDIN_NOTE if s["data"] == "standin" else "")


def reference_method(params, setting: str) -> tuple[str, str] | None:
    """The row of a setting's table the significance tests compare every other row
    with (params/report.yaml ``reference``); None: no tests in that setting's tables."""
    ref = params["report"]["reference"].get(setting)
    return (setting, ref) if ref else None


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


def tuned_note(params, suite: str, tuned: dict[str, dict]) -> str:
    """The caption's sentence on the tuning stage: its protocol and each method's choice."""
    scale = params.suite(suite)["tune"]
    display = params["report"]["display"]
    chosen = "; ".join(f"{display.get(m, m)}: " + ", ".join(f"{k}={v}" for k, v in values.items())
                       for m, values in tuned.items())
    alpha = params["tuning"]["beat_defaults_alpha"]
    rule = ("the best mean validation accuracy" if alpha >= 1 else
            f"the best mean validation accuracy where it beats the defaults' (trial 0) beyond noise, one-sided "
            f"z-test at alpha {alpha:g} over the drawn trials, else the defaults")
    return (f"Tuned (ours): {scale['trials']} trials of random search per method on the validation split "
            f"(one seed, {scale['epochs']} epochs each, {rule}; the test split plays "
            f"no part); chosen: {chosen}.")


def caption_parts(params, suite: str, spec: dict, budget: tuple[int, int] | None = None,
                  tuned: dict[str, dict] | None = None) -> tuple[str, list[str]]:
    """A comparison table's caption: one short sentence of what it shows, and numbered notes (how to read it,
    the budget, the tuning, the suite's scale and data), which the Markdown puts under the table."""
    s = params.suite(suite)
    group = params["groups"][spec["group"]]
    ref = reference_method(params, spec["setting"])
    n = len(s["seeds"])
    short = (f"{spec['paper']} (group {group['paper_group']}, {spec['group']} tasks; setting {spec['setting']}): "
             f"test accuracy (%), mean ± std over {n} seed{'s' if n != 1 else ''}; bold: best as shown, {TIED}: "
             "not significantly below it (note 1).")
    notes = [
        emphasis_note(),
        "Each seed has its own data split and initialisation; 95% CI: Student-t interval of the average's mean; "
        "(shared): a method with no use for the task-relationship prior, run once for both settings.",
    ]
    if ref:
        notes.append(f"p vs MTAL (Holm): two-sided paired t-test over seeds of the average accuracy "
                     f"against {ref[1]}, Holm-adjusted over the table's comparisons; * adjusted p < 0.05; "
                     "n/a with fewer than two seeds.")
    if budget is not None:
        notes.append(f"Budget: {budget[0]} optimisation steps per task for every deep method"
                     + (f" (cross-stitch and NDDR-CNN: the first {budget[1]} epochs of them train their "
                        "single-task columns)." if budget[1] else "."))
    if tuned:
        notes.append(tuned_note(params, suite, tuned))
    notes.append(scale_note(params, suite, params.tasks_of(spec["group"])))
    return short, notes


def caption(params, suite: str, spec: dict, budget: tuple[int, int] | None = None,
            tuned: dict[str, dict] | None = None) -> str:
    """The caption in one piece (LaTeX, HTML): the short sentence, then the numbered notes."""
    short, notes = caption_parts(params, suite, spec, budget, tuned)
    return " ".join([short, *(f"({i}) {note}" for i, note in enumerate(notes, 1))])


def _write(path: Path, text: str) -> Path:
    return files.write_text(path, text)


def comparison_tables(params, suite: str, records: pd.DataFrame, only: str | None = None) -> dict[str, pd.DataFrame]:
    out = {}
    for name, spec in params["tables"].items():
        if only is not None and name != only:
            continue
        rows = params.table_methods(spec["setting"])
        table = summarise(records, spec["group"], rows, params.tasks_of(spec["group"]), params["report"]["display"])
        ref = reference_method(params, spec["setting"])
        if ref:
            table = add_significance(table, paired_pvalues(records, spec["group"], rows, ref), ref[1])
        out[name] = table
    return out


def sharing_columns(params, suite: str) -> list[tuple[str, str, str]]:
    """Table 6's columns: (label, group, "setting/method") of every grid cell whose method,
    or the method it is a reading of, params/report.yaml ``sharing`` names."""
    cells = [(s, m) for s in params["settings"] for m in params["settings"][s]["methods"]]
    cells += [(r["setting"], r["method"]) for r in params.readings(suite)]
    shown = set(params["report"]["sharing"])
    settings = list(params["settings"])
    # side by side per group and setting: the method, then its readings in grid.yaml's order
    # (independent | common | delta | random_matched)
    return [(f"{g} ({m})", g, f"{s}/{m}") for g in params["groups"] for s0 in settings for s, m in cells
            if s == s0 and (m in shown or params.base_method(m) in shown)]


def sharing_of(params, suite: str, records: pd.DataFrame) -> pd.DataFrame:
    """Table 6 from the records; refused when a run it shows logged no sharing metrics
    (a method named in params/report.yaml ``sharing`` that shares no kernels)."""
    from hetmtl.models import BACKBONES, conv_names

    columns = sharing_columns(params, suite)
    for _, group, run in columns:
        setting, method = run.split("/")
        sel = records[(records.group == group) & (records.setting == setting) & (records.method == method)]
        if len(sel) and not (sel.metric == "sharing/total").any():
            raise RecordError(f"Table 6: the runs of {method} ({group}, {setting}) logged no sharing metrics; "
                              f"params/report.yaml report.sharing must name methods that share kernels")
    return sharing_table(records, columns, conv_names(BACKBONES[params.suite(suite)["backbone"]]),
                         params["report"]["display"])


def activation_figure(params, suite: str, root: Path, name: str, layer: int, group: str) -> Path:
    """Fig. 10 / 11: activation maps of conv layer ``layer`` from the first seed's model
    of params/report.yaml ``showcase`` (the paper: MTAL, no prior) on ``group``."""
    import torch

    from hetmtl.data.tasks import load_task, to_input
    from hetmtl.methods import TaskInfo
    from hetmtl.methods.build import build_method
    from hetmtl.resolve import resolve
    from hetmtl.runs import RunId

    show = params["report"]["showcase"]
    seed = params.suite(suite)["seeds"][0]
    run_id = RunId(suite, group, show["setting"], show["method"], seed)
    path = root / paths.figure(suite, name)
    title = figure_title(name)
    if run_id not in params.runs(suite):
        return figures.empty_figure(path, title, f"no {show['method']} model in this grid")
    # in the grid but not on disk: not an empty figure
    model = files.require(root / run_id.model, run_id.command)
    run = resolve(params, run_id)
    data = [load_task(suite, t, torch.device("cpu"), run.split, seed) for t in run.tasks]
    method = build_method(run, [TaskInfo(d.name, d.channels, d.num_classes) for d in data])
    method.load_state_dict(torch.load(model, map_location="cpu", weights_only=False)["model"])
    method.eval()
    layer_name = method.layer_names[layer]
    images = [to_input(d.x["test"][:1], run.train.input_norm) for d in data]
    rho = run.method_params.get("rho")
    return figures.activation_maps(
        method, images, layer, layer_name, path,
        f"{title} ({group} tasks, seed {seed})", rho=rho)


# ----------------------------------------------------------------- the catalogue's builders
# Each called as builder(params, suite, root, name, records) -> the files it wrote
# (hetmtl/reporting/catalogue.py names them).

def _table_files(root: Path, suite: str, name: str) -> dict[str, Path]:
    return {ext: root / paths.table_file(suite, name, ext) for ext in catalogue.TABLE_FORMATS}


def comparison_table(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """Tables 2-5: one comparison table of params/grid.yaml ``tables``."""
    spec = params["tables"][name]
    table = comparison_tables(params, suite, records, only=name)[name]
    tuned = tuned_values(params, suite, root, spec["group"], params.table_methods(spec["setting"]))
    budget = table_budget(params, records, spec)
    short, notes = caption_parts(params, suite, spec, budget, tuned)
    cap = caption(params, suite, spec, budget, tuned)
    out = _table_files(root, suite, name)
    return [_write(out["md"], to_markdown(table, short, notes)), _write(out["tex"], to_latex(table, cap)),
            _write(out["csv"], to_csv(table)), _write(out["html"], to_html(table, cap, name))]


def sharing_table_files(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """Table 6: the kernel sharing of the methods params/report.yaml ``sharing`` names."""
    sharing = sharing_of(params, suite, records)
    cap = ("Table 6: MTAL's kernel sharing ratio per conv layer (share of the task kernels that use a slot "
           "used by another task kernel) and the whole network; the compression by kernel count (unique kernel "
           "slots in use over all task kernels) and by parameters (parameters in use over those of the T "
           "unshared task networks: the memory the paper claims to save); the count of within-task duplicates "
           "(two kernels of one task in one slot, 0 by construction); and each reading's average test "
           "accuracy. Columns: group: method (its display name), per group and setting side by side; common start: "
           "MTAL started from one common copy instead of independent starts (protocol section 6; both are our "
           "readings, the default is independent); delta (ours): one common start, kernels compared by their "
           "updates since it, the threshold the 0.999 quantile of a permutation null (kernels permuted within the "
           "layer), merged in update space; random_matched (ours): per layer, task pair and epoch as many kernels "
           "as the delta run of the same seed shared, chosen at random. Null rows (delta only): the share of task "
           "kernels whose partner under a random permutation of the layer's kernels passed the same threshold, "
           "accumulated over matchings like the sharing. %, mean ± std over seeds. " + scale_note(params, suite))
    out = _table_files(root, suite, name)
    return [_write(out["md"], sharing_markdown(sharing, cap)), _write(out["tex"], sharing_latex(sharing, cap)),
            _write(out["csv"], sharing_csv(sharing)), _write(out["html"], sharing_html(sharing, cap, name))]


def pair_columns(params, suite: str) -> list[tuple[str, str]]:
    """The per-pair table's columns: (label, "setting/method") of Table 6's methods."""
    return list(dict.fromkeys((m.split("/")[1], m) for _, _, m in sharing_columns(params, suite)))


def pair_sharing_of(params, suite: str, root: Path, records: pd.DataFrame) -> pd.DataFrame:
    from hetmtl.reporting.claims import relations_of
    from hetmtl.reporting.tables import pair_table

    groups = {g: params.tasks_of(g) for g in params["groups"]}
    return pair_table(records, pair_columns(params, suite), groups, relations_of(params, suite, root))


def table6_pairs(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """Table 6's pairs (ours): each task pair's shared fraction beyond the first conv layer and its R."""
    from hetmtl.reporting.tables import pair_files

    table = pair_sharing_of(params, suite, root, records)
    cap = ("Table 6, per task pair (ours): the share of one task's kernels beyond the first conv layer that use a "
           "slot of the other task (sharing/pair/i-j), per MTAL reading, and R from the relations stage (– where "
           "none was estimated). With 4 tasks a group has only 6 pairs: a correlation with R over them (claim "
           "C14) is weak evidence. %, mean ± std over seeds. " + scale_note(params, suite))
    out = _table_files(root, suite, name)
    text = pair_files(table, cap, name, params["report"]["display"])
    return [_write(out[ext], text[ext]) for ext in ("md", "tex", "csv", "html")]


def fig13_pair_sharing(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """Fig. 13 (ours): each task pair's shared fraction beyond the first conv layer against its R."""
    table = pair_sharing_of(params, suite, root, records)
    figures.pair_sharing(table, root / paths.figure(suite, name), _note(params, suite),
                         params["report"]["display"])
    return _figure_files(root, suite, name)


def weighting_sweeps(params) -> dict[str, dict]:
    """The sweeps of ``weighting`` (Table 7's columns); every other sweep is a Fig. 9 curve."""
    return {n: sw for n, sw in params["sweeps"].items() if sw["parameter"] == "weighting"}


def table7_weightings(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """Table 7 (ours): every weighting of the sweeps of ``weighting`` (params/grid.yaml) on
    every group, the test accuracy and each weighting's step time relative to equal."""
    from hetmtl.reporting.tables import weighting_files, weighting_table

    sweeps = weighting_sweeps(params)
    out = _table_files(root, suite, name)
    display = params["report"]["display"]
    if not sweeps:
        text = "Table 7: no sweep of `weighting` in params/grid.yaml.\n"
        return [_write(out[ext], text) for ext in ("md", "tex", "csv", "html")]
    records = collect_sweeps(params, suite, root)
    records = records[records.sweep.isin(list(sweeps))]
    scale = params.suite(suite)["sweeps"]
    columns = [(n, g, f"{g}: {display.get(sw['method'], sw['method'])}") for g in params["groups"]
               for n, sw in sweeps.items() if g in params.sweep_groups(suite, n)]
    values = list(dict.fromkeys(v for n in sweeps for v in scale[n]["values"]))
    table = weighting_table(records, columns, values)
    names = {f"{n} step time": f"{display.get(sw['method'], sw['method'])}: step time vs equal"
             for n, sw in sweeps.items()}
    epochs = sorted({scale[n]["epochs"] for n in sweeps})
    seeds = sorted({len(scale[n]["seeds"]) for n in sweeps})
    cap = ("Table 7 (ours): the weighting axis (params/weightings.yaml, all from TorchJD) on "
           + " and ".join(display.get(sw["method"], sw["method"]) for sw in sweeps.values())
           + f", setting {'/'.join(sorted({sw['setting'] for sw in sweeps.values()}))}: average test accuracy, "
           f"%, mean ± 95% CI half-width over {'/'.join(map(str, seeds))} seed(s) (no ± with one seed), "
           f"{'/'.join(map(str, epochs))} epochs. " + emphasis_note("weighting") + " Step time: seconds per optimiser "
           "step (validation left out) over equal weighting's, same method and group, each in its own job "
           "(on a cluster possibly another node), averaged over groups. Loss weightings (uncertainty, dwa, rlw) "
           "reweight the task losses; gradient "
           "aggregators replace the gradient of the parameters two tasks use (hard sharing: the trunk; "
           "MTAL: the kernel-bank slots tasks share, few with independent starts), every task-specific "
           "parameter keeping its own task's gradient. " + scale_note(params, suite))
    files = weighting_files(table, names, cap, name)
    return [_write(out[ext], files[ext]) for ext in ("md", "tex", "csv", "html")]


def _note(params, suite: str) -> str:
    return "generated stand-in data, not the paper's" if params.suite(suite)["data"] == "standin" else ""


def _figure_files(root: Path, suite: str, name: str) -> list[Path]:
    return [root / catalogue.figure_file(suite, name, ext) for ext in catalogue.FIGURE_FORMATS]


def fig08_overall(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    titles = {n: f"{s['paper']}: {s['group']}, {s['setting']}" for n, s in params["tables"].items()}
    figures.overall_comparison(comparison_tables(params, suite, records), titles, root / paths.figure(suite, name),
                               _note(params, suite), params["report"]["highlight"])
    return _figure_files(root, suite, name)


def fig09_threshold_sweep(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    path = root / paths.figure(suite, name)
    all_sweeps = collect_sweeps(params, suite, root)
    curves = {n: sw for n, sw in params["sweeps"].items() if n not in weighting_sweeps(params)}
    if not curves:
        figures.empty_figure(path, figure_title(name), "no threshold sweep in this grid")
    else:  # every sweep a panel of its own: a second sweep (soft sharing's gamma, say) never overwrites the first
        figures.threshold_sweep({n: (all_sweeps[all_sweeps.sweep == n], sw["parameter"], sw["method"])
                                 for n, sw in curves.items()}, path, _note(params, suite))
    return _figure_files(root, suite, name)


def fig10_activations_conv1(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """The first conv layer, the first group (as the paper shows it)."""
    activation_figure(params, suite, root, name, 0, next(iter(params["groups"])))
    return _figure_files(root, suite, name)


def fig11_activations_conv2(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """The second conv layer, the last group (as the paper shows it)."""
    activation_figure(params, suite, root, name, 1, list(params["groups"])[-1])
    return _figure_files(root, suite, name)


def showcase_losses(params, suite: str, root: Path) -> pd.DataFrame:
    """The training loss per optimisation step of params/report.yaml ``showcase`` (Fig. 12)."""
    show = params["report"]["showcase"]
    return step_histories(params, suite, root, show["method"], show["setting"])


def loss_window(params) -> int:
    """Fig. 12's moving average, in steps: the ``window`` of the claim on convergence (C10), so the figure
    shows the curve the claim reads; 1 (none) without such a claim."""
    return next((int(c["window"]) for c in params["claims"]["items"].values() if c["kind"] == "converged_within"), 1)


def fig12_mtal_loss(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    losses = showcase_losses(params, suite, root)
    label = params["report"]["display"].get(params["report"]["showcase"]["method"], "")
    figures.loss_curves({g: losses[losses.group == g] for g in params["groups"]}, root / paths.figure(suite, name),
                        _note(params, suite), label, {g: params.tasks_of(g) for g in params["groups"]},
                        loss_window(params))
    return _figure_files(root, suite, name)


def write_table(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """One table in every format (catalogue.TABLE_FORMATS), from the run records."""
    return catalogue.entry(params, "table", name).build(params, suite, root, name, records)


def draw_figure(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """One figure, as PNG and PDF (catalogue.FIGURE_FORMATS), from the run records (Figs. 10-11: a model)."""
    return catalogue.entry(params, "figure", name).build(params, suite, root, name, records)


def aggregate(params, suite: str, root: Path, with_items: bool = True) -> dict:
    """Every table and figure (``with_items``; the Snakefile makes them one job each with
    ``hetmtl table`` / ``hetmtl figure``), the DVC metrics and plot data, the
    provenance, and the MLflow run holding them all."""
    check_current(params, suite, root)
    records = collect(params, suite, root)
    written: list[Path] = []
    for kind in catalogue.KINDS:
        for name, entry in catalogue.items(params, kind):
            written += (entry.build(params, suite, root, name, records) if with_items else
                        [root / f for f in catalogue.files(params, suite, kind, name)])
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
    losses = showcase_losses(params, suite, root)
    curve = losses.groupby(["group", "task", "step"])["value"].mean().reset_index()
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
