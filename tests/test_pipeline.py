"""End to end: the whole DAG on the tiny suite through Snakemake, then DVC.

The project is copied to a temporary folder (tracked and untracked files that
git does not ignore, as a fresh clone would have them) and run there with the
installed ``hetmtl`` command, so nothing in the working tree is touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import e2e_env as _env
from hetmtl import paths
from hetmtl.methods import METHODS
from hetmtl.params import load_params
from hetmtl.reporting import catalogue
from hetmtl.resolve import resolve
from hetmtl.runs import RunId

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def run(cmd, cwd, check=True, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def test_tables_hold_a_number_for_every_method_and_task(tiny_run):
    proj, seconds, _ = tiny_run
    params = load_params(proj)
    for name, spec in params["tables"].items():
        csv = pd.read_csv(proj / paths.table_file("tiny", name, "csv"), index_col="method")
        methods = [m for _, m in params.table_methods(spec["setting"])]
        assert sorted(csv.index) == sorted(methods)
        assert set(csv.index[csv["shared"]]) == set(params["shared_methods"])
        for task in params.tasks_of(spec["group"]) + ["Average"]:
            values = csv[f"{task}/mean"]
            assert values.notna().all() and values.between(0, 1).all(), (name, task)
        md = (proj / paths.table_file("tiny", name, "md")).read_text()
        assert "NOT the paper's data" in md and "MTAL" in md
        assert (proj / paths.table_file("tiny", name, "tex")).read_text().startswith(r"\begin{table}")
    assert sorted(p.stem for p in (proj / paths.metrics_dir("tiny")).iterdir()) == sorted(params["tables"])
    for name in params["tables"]:  # dvc metrics show: the average per method, as in the table
        csv = pd.read_csv(proj / paths.table_file("tiny", name, "csv"), index_col="method")
        metrics = json.loads((proj / paths.metrics_file("tiny", name)).read_text())
        assert metrics == {m: round(v, 4) for m, v in csv["Average/mean"].items()}
    table6 = pd.read_csv(proj / paths.table_file("tiny", "table6", "csv"), index_col="layer")
    nulls = [i for i in table6.index if i.startswith("Null:")]  # the delta reading's null: its columns only
    assert "Total network" in table6.index and table6.drop(index=nulls).notna().all().all()
    delta = [c for c in table6.columns if "_delta" in c]
    assert nulls and delta and table6.loc[nulls, delta].notna().all().all()
    for fig in catalogue.fixed_names("figure"):  # each as PNG and PDF
        assert (proj / catalogue.figure_file("tiny", fig, "png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
        assert (proj / catalogue.figure_file("tiny", fig, "pdf")).read_bytes()[:5] == b"%PDF-", fig
    for name in [*params["tables"], "table6", "claims"]:  # the report's tables: whole pages, best in bold
        html = (proj / paths.table_file("tiny", name, "html")).read_text()
        assert html.startswith("<!DOCTYPE html>") and "NOT the paper" in html, name
    claims = pd.read_csv(proj / paths.table_file("tiny", "claims", "csv"))  # every claim, a verdict each
    assert set(claims.claim) == set(params["claims"]["items"])
    assert set(claims.verdict) == {"inconclusive"}  # one seed: no test
    assert "NOT the paper's data" in (proj / paths.table_file("tiny", "claims", "md")).read_text()
    print(f"tiny DAG: {seconds:.1f} s")


def test_the_tiny_dag_runs_table7s_weightings_on_hard_sharing_and_mtal(tiny_run):
    """Table 7: each weighting its suite sweeps (tiny: three), on both methods, with its
    accuracy and its measured step time relative to equal weighting; the demo and paper
    suites sweep every weighting of params/weightings.yaml."""
    proj, _, _ = tiny_run
    params = load_params(proj)
    csv = pd.read_csv(proj / paths.table_file("tiny", "table7_weightings", "csv"), index_col="weighting")
    swept = params.suite("tiny")["sweeps"]["weighting_mtal"]["values"]
    assert list(csv.index) == swept and "equal" in swept and len(swept) >= 3
    for suite in ("demo", "paper"):
        for name in ("weighting_hard_sharing", "weighting_mtal"):
            assert params.suite(suite)["sweeps"][name]["values"] == list(params["weightings"]), (suite, name)
    methods = {sw["method"] for sw in params["sweeps"].values() if sw["parameter"] == "weighting"}
    assert methods == {"hard_sharing", "mtal"}
    accuracy = [c for c in csv.columns if c.endswith("/mean")]
    assert len(accuracy) == 2 and csv[accuracy].notna().all().all() and csv[accuracy].stack().between(0, 1).all()
    ratios = csv[[c for c in csv.columns if c.endswith("step time/ratio")]]
    assert ratios.shape[1] == 2 and (ratios.loc["equal"] == 1).all() and (ratios > 0).all().all()
    for run in params.sweep_runs("tiny"):
        if run.sweep.startswith("weighting"):
            receipt = json.loads((proj / run.receipt).read_text())
            assert receipt["time/train_step_s"] > 0, run
            assert receipt["record"]["params"]["method.weighting"] == run.value, run
    assert "TorchJD" in (proj / paths.table_file("tiny", "table7_weightings", "md")).read_text()


def test_every_deep_method_of_a_table_gets_the_same_budget(tiny_run):
    """Steps per task are equal within each table (single-task pre-training of
    cross-stitch and NDDR-CNN included), the caption states them, and every
    MTAL run logs 0 within-task duplicates."""
    proj, _, _ = tiny_run
    params = load_params(proj)
    for name, spec in params["tables"].items():
        budgets = {}
        for setting, method in params.table_methods(spec["setting"]):
            if not METHODS[params.base_method(method)].deep:
                continue
            for seed in params.suite("tiny")["seeds"]:
                key = dict(suite="tiny", group=spec["group"], setting=setting, method=method, seed=seed)
                budgets[(method, seed)] = json.loads((proj / paths.receipt(**key)).read_text())[
                    "budget/steps_per_task"]
        assert len(set(budgets.values())) == 1, (name, budgets)
        steps = next(iter(budgets.values()))
        table = (proj / paths.table_file("tiny", name, "md")).read_text()
        assert f"Budget: {steps} optimisation steps per task" in table
    for key in params.runs("tiny"):
        if params.base_method(key["method"]).startswith("mtal"):
            receipt = json.loads((proj / key.receipt).read_text())
            assert receipt["metrics"]["within_task_duplicates"] == 0, key


def test_every_run_is_logged_with_tags_and_curves(tiny_run):
    from mlflow.tracking import MlflowClient

    proj, _, _ = tiny_run
    params = load_params(proj)
    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    for key in params.runs("tiny"):
        receipt = json.loads((proj / key.receipt).read_text())
        run = client.get_run(receipt["run_id"])
        for field in ("suite", "group", "setting", "method", "seed"):
            assert run.data.tags[field] == str(key[field])
        assert run.data.tags["mlflow.parentRunId"]
        assert "git_commit" in run.data.tags and any(t.startswith("data_md5/") for t in run.data.tags)
        task = params.tasks_of(key["group"])[0]
        if METHODS[params.base_method(key["method"])].deep:
            curve = client.get_metric_history(receipt["run_id"], f"val_acc/{task}")
            assert [m.step for m in curve] == list(range(1, params.suite("tiny")["epochs"] + 1))
        else:  # closed form: the objective per alternating iteration
            assert client.get_metric_history(receipt["run_id"], "mtda_objective")
        assert receipt["metrics"][f"test_acc/{task}"] == run.data.metrics[f"test_acc/{task}"]


@pytest.mark.slow  # a rerun or recovery on a copy of the tiny run: the slow tier (issue 33)
def test_a_lost_store_is_rebuilt_from_the_receipts_and_the_tables_stay_identical(tiny_run, tmp_path, monkeypatch,
                                                                                  capsys):
    """A damaged mlflow.db is named with the recovery; after `rm mlflow.db`, the
    README's recovery (`hetmtl tracking rebuild`, then aggregate) logs every run
    again and rebuilds byte-identical tables, touching no receipt: Snakemake
    retrains nothing. The tables are built from the receipts. (The checks that need
    no new process run in this one: a `hetmtl` start costs seconds.)"""
    from mlflow.tracking import MlflowClient

    from hetmtl.reporting.collect import collect
    from hetmtl.tracking import rebuild
    from hetmtl.tracking.mlflow_store import StoreError

    proj = shutil.copytree(tiny_run[0], tmp_path / "p", symlinks=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(proj)
    params = load_params(proj)
    tables = {p: p.read_bytes() for p in (proj / "reports" / "tiny").rglob("*")
              if p.suffix in (".md", ".csv", ".tex", ".html", ".json")}
    receipt_times = {p: p.stat().st_mtime_ns for p in (proj / "results").rglob("receipt.json")}
    assert len(receipt_times) == len(params.runs("tiny")) + len(params.sweep_runs("tiny"))
    db = proj / "mlflow.db"
    data = db.read_bytes()
    damaged = tmp_path / "damaged.db"  # its own URI: MLflow keeps one engine per URI in this process
    damaged.write_bytes(data[:4096] + b"\0" * (len(data) - 4096))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{damaged}")
    with pytest.raises(StoreError, match=r"is damaged .*hetmtl tracking rebuild --suite"):
        rebuild.check(params, "tiny", proj)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    db.unlink()
    from hetmtl.cli import main

    assert main(["tracking", "rebuild", "--suite", "tiny"]) == 0  # the README's command, in this process
    out = capsys.readouterr().out
    n = len(receipt_times) + len(params["groups"])  # the relations runs too
    assert f"{n} of {n} runs on disk logged again" in out and f"holds all {n} runs" in out
    assert rebuild.rebuild(params, "tiny", proj)["logged"] == 0  # idempotent
    c = MlflowClient(f"sqlite:///{db}")
    key = dict(suite="tiny", group="related", setting="no_prior", method="mtal", seed=0)
    receipt = json.loads((proj / paths.receipt(**key)).read_text())
    exp = c.get_experiment_by_name("hetmtl-tiny")
    [rebuilt] = c.search_runs([exp.experiment_id], f"tags.`hetmtl.original_run_id` = '{receipt['run_id']}'")
    task = params.tasks_of("related")[0]
    assert [m.step for m in c.get_metric_history(rebuilt.info.run_id, f"val_acc/{task}")] == \
        list(range(1, params.suite("tiny")["epochs"] + 1))
    assert c.get_run(rebuilt.data.tags["mlflow.parentRunId"]).info.run_name == "related/no_prior"
    assert rebuilt.data.params == receipt["record"]["params"]
    assert {k: v for k, v in rebuilt.data.tags.items() if not k.startswith("mlflow.")} == {
        **receipt["record"]["tags"], "hetmtl.original_run_id": receipt["run_id"],
        "hetmtl.rebuilt_from": paths.receipt(**key).as_posix()}
    for p in tables:
        p.unlink()
    assert main(["aggregate", "--suite", "tiny"]) == 0
    assert {p: p.read_bytes() for p in tables} == tables
    assert {p: p.stat().st_mtime_ns for p in receipt_times} == receipt_times

    # The tables follow the receipts: change one run's final metric in its record, and
    # its record changes with it; `tracking check` names the difference and a rebuild repairs it.
    key = dict(suite="tiny", group="related", setting="shared", method="single_task", seed=0)
    path = proj / paths.receipt(**key)
    receipt = json.loads(path.read_text())
    receipt["record"]["final"]["test_acc/HD"] = 0.987
    path.write_text(json.dumps(receipt))
    records = collect(params, "tiny", proj)
    row = records[(records.group == "related") & (records.setting == "shared") & (records.method == "single_task")
                  & (records.seed == 0) & (records.metric == "test_acc/HD")]
    assert row.value.tolist() == [0.987]
    with pytest.raises(rebuild.StoreMismatch, match=r"1 run\(s\) with other metrics than their receipt"):
        rebuild.check(params, "tiny", proj)
    assert rebuild.rebuild(params, "tiny", proj)["logged"] == 1
    assert rebuild.check(params, "tiny", proj) == n


def test_rerun_with_nothing_changed_trains_nothing(tiny_run):
    proj, _, _ = tiny_run
    started = time.time()
    proc = run([str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2",
                "--config", "suite=tiny"], proj)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert time.time() - started < 15


def _planned(proc) -> set[tuple]:
    """The jobs a `snakemake -n` plans, as (rule, *wildcard values) tuples."""
    jobs, rule, wildcards = set(), None, ()
    for line in (proc.stdout + proc.stderr).splitlines() + ["rule end:"]:
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):  # a job block starts: the previous one ends
            if rule:
                jobs.add((rule, *wildcards))
            rule, wildcards = line.split()[1].rstrip(":"), ()
        elif line.startswith("wildcards:") and rule:
            pairs = [kv.split("=", 1) for kv in line[len("wildcards:"):].strip().split(", ")]
            wildcards = tuple(v for k, v in pairs if k != "sweep")
        elif line.startswith(("Job stats:", "Reasons:", "This was a dry-run")):
            if rule:
                jobs.add((rule, *wildcards))
            rule = None
    return jobs


def _stage(address: str) -> str:
    """A stage's name from DVC's address of it (`workflow/dvc/g/s/dvc.yaml:name`)."""
    return address.rpartition(":")[2]


def _ran(stdout: str) -> set[str]:
    """The stages a `dvc repro` ran."""
    return {_stage(line.split("'")[1]) for line in stdout.splitlines() if line.startswith("Running stage")}


def _stale(proc) -> set[tuple]:
    """The stages `dvc status --json` names, as the same tuples as :func:`_planned`
    (stage names: hetmtl/dvc_yaml.py; a task's name may hold a dash)."""
    out = set()
    for address in json.loads(proc.stdout):
        name = _stage(address)
        kind, _, rest = name.partition("-")
        if kind in ("train",):
            out.add((kind, *rest.split("-", 2)))
        elif kind == "sweep":
            out.add((kind, *rest.split("-", 2)[1:]))
        else:
            out.add((kind, rest) if rest else (kind,))
    return out


def both(cmd_a, cwd_a, cmd_b, cwd_b):
    """Run two commands side by side (two cores); their completed processes."""
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.submit(run, cmd_a, cwd_a), pool.submit(run, cmd_b, cwd_b)
        return a.result(), b.result()


@pytest.mark.slow  # a rerun or recovery on a copy of the tiny run: the slow tier (issue 33)
def test_snakemake_and_dvc_rerun_exactly_what_an_edit_touches(tiny_run, dvc_full_run, tmp_path):
    """Edit a method parameter, a training parameter, a suite parameter, a data
    parameter and a method's module in copies of a finished tiny run: `snakemake
    -n` and `dvc status` name exactly the jobs that read it (0 extra, 0 missing;
    DVC lists the stages whose own inputs changed, Snakemake adds what follows
    them: aggregate and all), and aggregation refuses the stale receipts."""
    smk_proj = shutil.copytree(tiny_run[0], tmp_path / "p", symlinks=True)
    dvc_proj = dvc_full_run[0]
    smk = [str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "1", "--config", "suite=tiny",
           "-n"]
    params = load_params(smk_proj)
    cells = {(k["group"], k["setting"], k["method"]) for k in params.runs("tiny")}
    sweeps = {(w.group, paths.value_text(w.value)) for w in params.sweep_runs("tiny")}
    rho = {(w.group, paths.value_text(w.value)) for w in params.sweep_runs("tiny") if w.sweep == "rho"}

    def train(pred):
        return {("train", *c) for c in cells if pred(*c)}

    # every table and figure is a job of its own (its own caption in the report); all follow an edit
    report_items = {(kind, name) for kind in catalogue.KINDS for name in catalogue.names(params, kind)}
    every_job = train(lambda *c: True) | {("sweep", *w) for w in sweeps} | {("relations", g) for g in params["groups"]}
    unrelated = {j for j in every_job if j[1] == "unrelated"}
    edits = [  # (file, old, new, the jobs that read it)
        ("params/methods.yaml", "gamma: 0.001", "gamma: 0.002", train(lambda g, s, m: m == "soft_sharing")),
        ("params/training.yaml", "l2_lambda: 0.0005", "l2_lambda: 0.001", every_job),
        ("params/suites/tiny.yaml", "seeds: [0], epochs: 2}", "seeds: [0], epochs: 3}",  # rho's (the first)
         {("sweep", *w) for w in rho}),
        ("params/datasets.yaml", "classes: {pool: source, draw: 10}\n\n", "classes: {pool: source, draw: 9}\n\n",
         unrelated | {("prepare", "Amazon")}),
        ("src/hetmtl/methods/columns.py", '"""', '"""An edit. ',
         train(lambda g, s, m: m in ("cross_stitch", "nddr_cnn"))),
    ]
    for rel, old, new, expected in edits:
        texts = {}
        for proj in (smk_proj, dvc_proj):
            texts[proj] = (proj / rel).read_text()
            assert texts[proj].count(old) >= 1, (rel, old)
            (proj / rel).write_text(texts[proj].replace(old, new, 1))
        planned, stale = both(smk, smk_proj, [str(BIN / "dvc"), "status", "--json"], dvc_proj)
        assert _planned(planned) == expected | report_items | {("aggregate",), ("all",)}, rel
        assert _stale(stale) == expected, rel
        if rel == "params/methods.yaml":
            failed = run([str(BIN / "hetmtl"), "aggregate", "--suite", "tiny"], smk_proj, check=False)
            assert failed.returncode != 0 and "other parameters or code" in failed.stderr + failed.stdout
            listed = [json.loads(line) for line in run([str(BIN / "hetmtl"), "runs", "--suite", "tiny"],
                                                         smk_proj).stdout.splitlines()]
            assert len(listed) == len(params.runs("tiny")) + len(params.sweep_runs("tiny"))
            assert {(r["group"], r["setting"], r["method"]) for r in listed if r["state"] == "stale"} == {
                c for c in cells if c[2] == "soft_sharing"} and {r["state"] for r in listed} == {"done", "stale"}
        for proj in (smk_proj, dvc_proj):
            (proj / rel).write_text(texts[proj])
    planned, stale = both(smk, smk_proj, [str(BIN / "dvc"), "status", "--json"], dvc_proj)
    assert "Nothing to be done" in planned.stdout + planned.stderr
    assert json.loads(stale.stdout) == {}

    # random_matched follows its delta run (a DAG dependency on its receipts): an edit of the delta
    # reading reruns both in Snakemake; DVC lists the delta stage (its own input changed), the
    # control's dependency (the delta run's folder) changes only once that stage has rerun
    rel, old, new = "params/methods.yaml", "    quantile: 0.999 ", "    quantile: 0.998 "
    texts = {}
    for proj in (smk_proj, dvc_proj):
        texts[proj] = (proj / rel).read_text()
        assert texts[proj].count(old) == 1
        (proj / rel).write_text(texts[proj].replace(old, new))
    planned, stale = both(smk, smk_proj, [str(BIN / "dvc"), "status", "--json"], dvc_proj)
    delta = train(lambda g, s, m: m == "mtal_delta")
    assert _planned(planned) == delta | train(lambda g, s, m: m == "mtal_random") | report_items | {
        ("aggregate",), ("all",)}
    assert _stale(stale) == delta
    for proj in (smk_proj, dvc_proj):
        (proj / rel).write_text(texts[proj])

    # A variant inherits its base's parameters (YAML anchor): editing the base reruns both,
    # and MTAL's points of Table 7's weighting sweep (they train MTAL with its rho)
    expected = train(lambda g, s, m: m in ("mtal", "mtal_common")) | {
        ("sweep", w.group, paths.value_text(w.value)) for w in params.sweep_runs("tiny") if w.sweep == "weighting_mtal"}
    texts = {}
    for proj in (smk_proj, dvc_proj):
        methods = proj / "params" / "methods.yaml"
        texts[proj] = methods.read_text()
        methods.write_text(texts[proj].replace("rho: 0.4          #", "rho: 0.45         #", 1))
    planned, stale = both(smk, smk_proj, [str(BIN / "dvc"), "status", "--json"], dvc_proj)
    assert _planned(planned) == expected | report_items | {("aggregate",), ("all",)}
    assert _stale(stale) == expected
    for proj in (smk_proj, dvc_proj):
        (proj / "params" / "methods.yaml").write_text(texts[proj])


def test_epochs_trained_again_after_an_older_checkpoint_are_logged_once(tiny_run, monkeypatch, tmp_path):
    """Checkpoints are written when due (training/checkpoint.py): a crash can
    come after epochs that were logged but not checkpointed. The resumed job
    trains them again; its log and its MLflow run hold each epoch once."""
    from mlflow.tracking import MlflowClient

    from hetmtl.training import checkpoint, job

    proj = shutil.copytree(tiny_run[0], tmp_path / "p", symlinks=True)
    monkeypatch.chdir(proj)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(proj)
    key = dict(suite="tiny", group="related", setting="no_prior", method="hard_sharing", seed=0)
    done = json.loads((proj / paths.receipt(**key)).read_text())
    (proj / paths.receipt(**key)).unlink()
    real = checkpoint.Cadence.save

    def skip_then_crash(self, path, state):  # epoch 1 written; epoch 2 not due, then the node is lost
        if state["epoch"] == 1:
            return real(self, path, state)
        raise RuntimeError("node lost")

    monkeypatch.setattr(checkpoint.Cadence, "save", skip_then_crash)
    with pytest.raises(RuntimeError, match="node lost"):
        job.run_job(resolve(params, RunId(**key)), device_name="cpu", threads=1, progress=False)
    log = proj / paths.receipt(**key).parent / "train.log"
    assert job.last_logged_epoch(log) == 2
    monkeypatch.setattr(checkpoint.Cadence, "save", real)
    again = job.run_job(resolve(params, RunId(**key)), device_name="cpu", threads=1, progress=False)
    assert again["metrics"] == done["metrics"]
    lines = log.read_text().splitlines()
    epochs = [line.split(" | ")[0] for line in lines if line.startswith("epoch ")]
    assert epochs == ["epoch 1/2", "epoch 2/2"], lines
    text = "\n".join(lines)
    assert "resumed after epoch 1" in text and "epoch 2 is trained again, logged once" in text
    c = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    history = c.get_metric_history(again["run_id"], "val_acc/mean")
    assert sorted(m.step for m in history) == [1, 2]


@pytest.mark.slow  # a rerun or recovery on a copy of the tiny run: the slow tier (issue 33)
def test_crashed_job_leaves_no_receipt_and_resumes_from_its_checkpoint(tiny_run, monkeypatch, tmp_path):
    from hetmtl.training import checkpoint, job

    # a copy: the rerun writes a newer receipt, which makes the run's aggregation stale
    proj = shutil.copytree(tiny_run[0], tmp_path / "p", symlinks=True)
    monkeypatch.chdir(proj)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(proj)
    key = dict(suite="tiny", group="related", setting="no_prior", method="mtal", seed=0)
    done = json.loads((proj / paths.receipt(**key)).read_text())
    (proj / paths.receipt(**key)).unlink()
    real_save = checkpoint.save

    def crash_after_first_epoch(path, state):
        real_save(path, state)
        raise RuntimeError("node lost")

    monkeypatch.setattr(checkpoint, "save", crash_after_first_epoch)
    with pytest.raises(RuntimeError, match="node lost"):
        job.run_job(resolve(params, RunId(**key)), device_name="cpu", threads=1, progress=False)
    assert not (proj / paths.receipt(**key)).exists()
    assert (proj / paths.checkpoint(**key)).exists()
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    import torch

    crashed = torch.load(proj / paths.checkpoint(**key), weights_only=False)["run_id"]
    assert c.get_run(crashed).info.status == "FAILED"
    # the failed run keeps its log, the error as its last line
    log = proj / paths.receipt(**key).parent / "train.log"
    assert log.read_text().splitlines()[-1] == "error: RuntimeError: node lost"
    assert [a.path for a in c.list_artifacts(crashed)] == ["train.log"]
    monkeypatch.setattr(checkpoint, "save", real_save)
    again = job.run_job(resolve(params, RunId(**key)), device_name="cpu", threads=1, progress=False)
    assert (proj / paths.receipt(**key)).exists() and not (proj / paths.checkpoint(**key)).exists()
    # Same seed on the CPU: the resumed run ends with the uninterrupted run's numbers...
    assert again["metrics"] == done["metrics"] and again["run_id"] == crashed
    # ... in the same MLflow run, and the first run of this job is no longer FINISHED beside it
    assert c.get_run(crashed).info.status == "FINISHED"
    assert c.get_run(done["run_id"]).info.status == "KILLED"
    assert c.get_run(done["run_id"]).data.tags["hetmtl.superseded_by"] == crashed
    # the resumed job appends to the log: every epoch's line once, the crash between them
    lines = log.read_text().splitlines()
    epochs = [line.split(" | ")[0] for line in lines if line.startswith("epoch ")]
    assert epochs == [f"epoch {e}/{len(epochs)}" for e in range(1, len(epochs) + 1)] and len(epochs) > 1, lines
    assert "error: RuntimeError: node lost" in lines and "resumed after epoch 1" in lines[-len(epochs) - 1]
    assert lines[-1].startswith("done in ")
    # Run again (a job that outlived a killed Snakemake finished it): nothing is trained twice.
    real_train_deep = job.train_deep
    monkeypatch.setattr(job, "train_deep", lambda *a, **k: pytest.fail("trained a finished job again"))
    assert job.run_job(resolve(params, RunId(**key)), device_name="cpu", threads=1, progress=False) == again

    # A job that outlived a killed Snakemake (A: here this process, holding the job's
    # lock and training) and the rerun's job (B, its outputs removed by Snakemake
    # first): B waits for A, then finds the job finished and trains nothing.
    from hetmtl import files

    monkeypatch.setattr(job, "train_deep", real_train_deep)
    (proj / paths.receipt(**key)).unlink()
    (proj / paths.model_file(**key)).unlink()
    cmd = [str(BIN / "hetmtl"), "train", "--suite", "tiny", "--group", "related", "--setting", "no_prior",
           "--method", "mtal", "--seed", "0", "--device", "cpu", "--no-progress"]
    with files.lock(proj / paths.checkpoint(**key).with_suffix(".lock"), "A"):
        b = subprocess.Popen(cmd, cwd=proj, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in b.stderr:
            if "another process holds" in line:
                break
        else:
            pytest.fail(f"B did not wait: {b.stdout.read()}")
        a = job._train(resolve(params, RunId(**key)), "cpu", 1, False)
    out, _ = b.communicate(timeout=300)
    assert b.returncode == 0 and "already trained" in out
    finished = c.search_runs([c.get_experiment_by_name("hetmtl-tiny").experiment_id],
                             "tags.method = 'mtal' and tags.setting = 'no_prior' and tags.group = 'related' and "
                             "tags.seed = '0' and attributes.status = 'FINISHED'")
    assert [r.info.run_id for r in finished if "sweep" not in r.data.tags] == [a["run_id"]]
    assert json.loads((proj / paths.receipt(**key)).read_text())["run_id"] == a["run_id"]


def test_dvc_yaml_is_what_params_give():
    """dvc.yaml is written from params/ (hetmtl/dvc_yaml.py): the committed one is current."""
    proc = run([str(BIN / "hetmtl"), "dvc-yaml", "--check"], ROOT, check=False)
    assert proc.returncode == 0, proc.stderr


def test_dvc_repro_of_a_clean_clone_runs_the_whole_dag(dvc_run):
    """`dvc repro` from a clean copy runs every stage kind of the DAG (data, tracking,
    training, tables, aggregation) and leaves `dvc status` clean: the default suite's
    run through DVC, on a reduced tiny project (the full tiny DAG through DVC is the
    slow tier's, with the reruns that compare it with Snakemake)."""
    proj, _, proc = dvc_run
    params = load_params(proj)
    ran = _ran(proc.stdout)
    assert {"fetch", "init_tracking", "aggregate"} | {f"prepare-{t}" for g in params["groups"]
                                                       for t in params.tasks_of(g)} <= ran
    assert {f"train-{k['group']}-{k['setting']}-{k['method']}" for k in params.runs("tiny")} <= ran
    for k in params.runs("tiny"):
        assert (proj / k.receipt).exists()
    for name in params["tables"]:
        assert (proj / paths.table_file("tiny", name, "md")).exists()
    assert json.loads(run([str(BIN / "dvc"), "status", "--json"], proj).stdout) == {}


@pytest.mark.slow  # a rerun or recovery on a copy of the tiny run: the slow tier (issue 33)
def test_changing_one_mtal_parameter_reruns_mtal_its_variant_and_aggregation_only(dvc_full_run):
    """`dvc exp run -S` on MTAL's rho, as a DVC user changes a parameter: DVC rewrites
    params/methods.yaml, and MTAL's variant (mtal_common, which writes only what differs)
    still follows the new value, so both rerun (YAML anchors, which the rewrite expands,
    left the variant behind; issue 31)."""
    proj, _, _ = dvc_full_run
    dvc = str(BIN / "dvc")
    # (the previous test left it up to date; what `dvc status` names after an edit:
    # test_snakemake_and_dvc_rerun_exactly_what_an_edit_touches)
    git = {**_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "the tiny run"]):
        subprocess.run(cmd, cwd=proj, env=git, check=True, capture_output=True)
    before = load_params(proj)
    assert before.method("mtal_common")["rho"] == before.method("mtal")["rho"] != 0.55
    out = run([dvc, "exp", "run", "-S", "params/methods.yaml:methods.mtal.rho=0.55"], proj).stdout
    params = load_params(proj)
    assert params.method("mtal")["rho"] == params.method("mtal_common")["rho"] == 0.55
    assert "rho" not in yaml.safe_load((proj / "params" / "methods.yaml").read_text())["methods"]["mtal_common"]
    expected = {f"train-{g}-no_prior-{m}" for g in params["groups"] for m in ("mtal", "mtal_common")} | {
        f"sweep-{w.sweep}-{w.group}-{paths.value_text(w.value)}" for w in params.sweep_runs("tiny")
        if w.sweep == "weighting_mtal"}  # and Table 7's MTAL points
    ran = _ran(out)
    assert ran == expected | {"aggregate"}
    assert json.loads(run([dvc, "status", "--json"], proj).stdout) == {}

    # `dvc metrics show`: a short row per table; `dvc plots show`: a page that renders offline.
    shown = run([dvc, "metrics", "show"], proj).stdout
    lines = shown.splitlines()  # a header of method names, then one row per table
    assert len(lines) == 1 + len(params["tables"]) and max(len(line) for line in lines) < 200, shown
    run([dvc, "plots", "show", "-o", "plots_html"], proj)
    page = (proj / "plots_html" / "index.html").read_text()
    assert "fig09_threshold_sweep" in page and "<script" not in page and "http" not in page

    # A raw archive that changes on disk is reported (DVC tracks the archives).
    archive = proj / "data" / "standin" / "tiny" / "coil-20-proc.zip"
    original = archive.read_bytes()
    archive.write_bytes(original + b"x")
    status = json.loads(run([dvc, "status", "--json"], proj).stdout)
    assert "fetch" in status, status
    archive.write_bytes(original)


@pytest.mark.parametrize("backbone_run", ["vgg_tiny", pytest.param("resnet18", marks=pytest.mark.slow)],
                         indirect=True)
def test_every_deep_method_runs_the_tiny_suite_on_each_backbone(backbone_run):
    """The tiny suite through Snakemake on each backbone of the contract: every
    deep method of every setting trains, is logged and lands in the tables, and
    Table 6 names the backbone's own shareable convolutions (ResNet-18: a reduced
    grid, see conftest.resnet18_project)."""
    from hetmtl.models import BACKBONES
    from hetmtl.models.base import build_task_net

    proj, seconds, _ = backbone_run
    params = load_params(proj)
    backbone = params.suite("tiny")["backbone"]
    methods = {run.method for run in params.runs("tiny")}
    deep = {m for m, cls in METHODS.items() if cls.deep}
    if not params.suite("tiny")["readings"]:  # a grid without readings (ResNet-18's reduced one): its settings' methods
        deep &= {params.base_method(m) for s in params["settings"].values() for m in s["methods"]}
    assert deep and deep <= {params.base_method(m) for m in methods}
    for run in params.runs("tiny"):
        receipt = json.loads((proj / run.receipt).read_text())
        assert receipt["key"] == run.key and receipt["metrics"], run
    for name in params["tables"]:
        csv = pd.read_csv(proj / paths.table_file("tiny", name, "csv"), index_col="method")
        means = [c for c in csv.columns if c.endswith("/mean") and not c.startswith("Kernel sharing")]
        assert means and csv[means].notna().all().all(), name
        sharing = [m for m in csv.index if params.base_method(m) in ("mtal", "mtal_prior")]
        assert sharing and csv.loc[sharing, "Kernel sharing/mean"].notna().all(), name
    table6 = pd.read_csv(proj / paths.table_file("tiny", "table6", "csv"), index_col="layer")
    net = build_task_net(BACKBONES[backbone], 3, 2, seed=0, task_index=0)
    assert list(table6.index[:len(net.shareable_convs())]) == list(net.shareable_convs())
    assert table6.index[len(net.shareable_convs())] == "Total network"
    print(f"tiny DAG on {backbone}: {seconds:.1f} s")
