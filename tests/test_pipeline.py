"""End to end: the whole DAG on the tiny suite through Snakemake, then DVC.

The project is copied to a temporary folder (tracked and untracked files that
git does not ignore, as a fresh clone would have them) and run there with the
installed ``hetmtl`` command, so nothing in the working tree is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hetmtl import paths
from hetmtl.methods import METHODS
from hetmtl.params import load_params

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def _env():
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT / "src"))  # this checkout's code, whichever checkout installed last
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(cmd, cwd, check=True, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def copy_project(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    proj = copy_project(tmp_path_factory.mktemp("proj"))
    started = time.time()
    proc = run([str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2",
                "--config", "suite=tiny"], proj)
    return proj, time.time() - started, proc


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
    assert "Total network" in table6.index and table6.notna().all().all()
    for fig in ["fig8_overall", "fig9_threshold_sweep", "fig10_activations_conv1",
                "fig11_activations_conv2", "fig12_mtal_loss"]:
        png = proj / paths.figure("tiny", fig)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
    print(f"tiny DAG: {seconds:.1f} s")


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
        assert f"Budget: {steps} optimisation steps per task" in (proj / paths.table_file("tiny", name, "md")).read_text()
    for key in params.runs("tiny"):
        if params.base_method(key["method"]).startswith("mtal"):
            receipt = json.loads((proj / paths.receipt(**key)).read_text())
            assert receipt["metrics"]["within_task_duplicates"] == 0, key


def test_every_run_is_logged_with_tags_and_curves(tiny_run):
    from mlflow.tracking import MlflowClient

    proj, _, _ = tiny_run
    params = load_params(proj)
    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    for key in params.runs("tiny"):
        receipt = json.loads((proj / paths.receipt(**key)).read_text())
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


def test_tables_follow_the_logged_metrics(tiny_run):
    """Change one run's logged metric in MLflow: the re-aggregated table changes with it."""
    from mlflow.tracking import MlflowClient

    proj, _, _ = tiny_run
    key = dict(suite="tiny", group="related", setting="shared", method="single_task", seed=0)
    receipt = json.loads((proj / paths.receipt(**key)).read_text())
    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    client.log_metric(receipt["run_id"], "test_acc/HD", 0.987, step=10_000)
    run([str(BIN / "hetmtl"), "aggregate", "--suite", "tiny"], proj)
    csv = pd.read_csv(proj / paths.table_file("tiny", "table3", "csv"), index_col="method")
    assert csv.loc["single_task", "HD/mean"] == pytest.approx(0.987)
    assert "98.7" in (proj / paths.table_file("tiny", "table2", "md")).read_text()  # shared row, both settings
    client.log_metric(receipt["run_id"], "test_acc/HD", receipt["metrics"]["test_acc/HD"], step=10_001)


def test_rerun_with_nothing_changed_trains_nothing(tiny_run):
    proj, _, _ = tiny_run
    started = time.time()
    proc = run([str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2",
                "--config", "suite=tiny"], proj)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert time.time() - started < 15


def _planned(proc) -> list[str]:
    """The jobs a `snakemake -n` plans, as 'rule:wildcards' strings."""
    jobs, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("wildcards:") and rule:
            jobs.append(f"{rule}:{line[len('wildcards:'):].strip()}")
            rule = None
        elif line.startswith("jobid:") and rule in ("aggregate", "all"):
            jobs.append(rule)
            rule = None
    return sorted(jobs)


def test_snakemake_reruns_exactly_what_an_edit_touches(tiny_run, tmp_path):
    """Edit a method parameter, a method's module, or a training parameter in a
    copy of the finished tiny run: `snakemake -n` plans exactly the jobs that read
    it (a variant inherits its base's parameters; a module's jobs include every
    method that imports it), and aggregation refuses the stale receipts."""
    proj, _, _ = tiny_run
    work = shutil.copytree(proj, tmp_path / "p", symlinks=True)
    smk = [str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "1", "--config", "suite=tiny",
           "-n"]
    params = load_params(work)
    groups = list(params["groups"])

    def train(setting, method):  # one job per grid cell trains its seeds
        return {f"train:group={g}, setting={setting}, method={method}" for g in groups}

    methods = work / "params" / "methods.yaml"
    original = methods.read_text()
    methods.write_text(original.replace("rho: 0.4          #", "rho: 0.45         #", 1))
    assert set(_planned(run(smk, work))) == train("no_prior", "mtal") | train("no_prior", "mtal_common") | {
        "aggregate", "all"}
    failed = run([str(BIN / "hetmtl"), "aggregate", "--suite", "tiny"], work, check=False)
    assert failed.returncode != 0 and "other parameters or code" in failed.stderr + failed.stdout
    methods.write_text(original)
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(run(smk, work))

    module = work / "src" / "hetmtl" / "methods" / "mtal_prior.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    assert set(_planned(run(smk, work))) == train("prior", "mtal_prior") | train("prior", "mtal_prior_common") | {
        "aggregate", "all"}

    training = work / "params" / "training.yaml"
    training.write_text(training.read_text().replace("l2_lambda: 0.0005", "l2_lambda: 0.001"))
    planned = set(_planned(run(smk, work)))
    assert {j for j in planned if j.startswith("train:")} == {
        f"train:group={k['group']}, setting={k['setting']}, method={k['method']}" for k in params.runs("tiny")}
    assert {j for j in planned if j.startswith(("sweep:", "relations:"))}


def test_crashed_job_leaves_no_receipt_and_resumes_from_its_checkpoint(tiny_run, monkeypatch):
    from hetmtl.training import checkpoint, job

    proj, _, _ = tiny_run
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
        job.run_job(params, key, device_name="cpu", threads=1, progress=False)
    assert not (proj / paths.receipt(**key)).exists()
    assert (proj / paths.checkpoint(**key)).exists()
    monkeypatch.setattr(checkpoint, "save", real_save)
    again = job.run_job(params, key, device_name="cpu", threads=1, progress=False)
    assert (proj / paths.receipt(**key)).exists() and not (proj / paths.checkpoint(**key)).exists()
    # Same seed on the CPU: the resumed run ends with the uninterrupted run's numbers.
    assert again["metrics"] == done["metrics"]


def test_dvc_dag_of_a_clean_clone_links_every_stage_to_what_it_reads(tmp_path):
    """On a fresh clone DVC's graph holds the edges a run needs (the archives
    folder is the fetch stage's output, so prepare follows fetch). `dvc repro
    --dry` itself cannot run there: DVC hashes dependencies that no stage has
    made yet (treeverse/dvc#9021)."""
    proj = copy_project(tmp_path)
    dvc_yaml = proj / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("params/suites/demo.yaml", "params/suites/tiny.yaml"))
    run(["git", "init", "-q"], proj)
    dot = run([str(BIN / "dvc"), "dag", "--dot"], proj).stdout
    edges = {tuple(part.strip().strip('"') for part in line.rstrip(";").split("->"))
             for line in dot.splitlines() if "->" in line}
    params = load_params(proj)
    assert {("fetch", f"prepare@{t}") for t in params["tasks"]} <= edges, dot
    for g in params["groups"]:
        assert ("init_tracking", f"train_no_prior@{g}-mtal") in edges
        assert (f"relations@{g}", f"train_prior@{g}-mtal_prior") in edges
        assert (f"train_no_prior@{g}-mtal", "aggregate") in edges


def test_changing_one_mtal_parameter_makes_only_mtal_and_aggregation_stale(tiny_run):
    proj, _, _ = tiny_run
    dvc = str(BIN / "dvc")
    dvc_yaml = proj / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("params/suites/demo.yaml", "params/suites/tiny.yaml"))
    run(["git", "init", "-q"], proj)
    run([dvc, "commit", "-f", "-q"], proj)  # adopt the outputs Snakemake made
    assert json.loads(run([dvc, "status", "--json"], proj).stdout) == {}

    methods = proj / "params" / "methods.yaml"
    data = yaml.safe_load(methods.read_text())
    data["methods"]["mtal"]["rho"] = 0.55
    methods.write_text(yaml.safe_dump(data))
    status = json.loads(run([dvc, "status", "--json"], proj).stdout)
    params = load_params(proj)
    expected = {f"train_no_prior@{g}-mtal" for g in params["groups"]}
    assert set(status) == expected
    out = run([dvc, "repro"], proj).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == expected | {"aggregate"}
    assert json.loads(run([dvc, "status", "--json"], proj).stdout) == {}

    # `dvc metrics show`: a short row per table; `dvc plots show`: a page that renders offline.
    shown = run([dvc, "metrics", "show"], proj).stdout
    lines = shown.splitlines()  # a header of method names, then one row per table
    assert len(lines) == 1 + len(params["tables"]) and max(len(line) for line in lines) < 200, shown
    run([dvc, "plots", "show", "-o", "plots_html"], proj)
    page = (proj / "plots_html" / "index.html").read_text()
    assert "fig9_threshold_sweep" in page and "<script" not in page and "http" not in page

    # A raw archive that changes on disk is reported (DVC tracks the archives).
    archive = proj / "data" / "standin" / "tiny" / "coil-20-unproc.zip"
    archive.write_bytes(archive.read_bytes() + b"x")
    status = json.loads(run([dvc, "status", "--json"], proj).stdout)
    assert "fetch" in status, status

