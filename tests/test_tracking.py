"""The MLflow experiment's parent runs (hetmtl init-tracking)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An MLflow SQLite store with its tables made (MLflow's migrations cost ~1.5 s
    per new file): each test copies it."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def store(tmp_path, empty_store, name="mlflow.db") -> str:
    shutil.copy(empty_store, tmp_path / name)
    return f"sqlite:///{tmp_path / name}"


def test_init_tracking_again_reuses_the_parent_runs(tmp_path, monkeypatch, empty_store):
    """Run again (a group added, the marker lost), it writes the same run ids for
    the same parents: nothing downstream of the marker looks changed."""
    from hetmtl.tracking.mlflow_store import client, init_experiment

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store))
    first = init_experiment(tmp_path, "tiny", [("related", "shared"), ("related", "prior")])
    again = init_experiment(tmp_path, "tiny", [("related", "shared"), ("related", "prior")])
    assert again == first
    more = init_experiment(tmp_path, "tiny", [("related", "shared"), ("related", "prior"), ("unrelated", "prior")])
    assert {k: more["parents"][k] for k in first["parents"]} == first["parents"]
    assert more["parents"]["unrelated/prior"] not in first["parents"].values()
    runs = client(tmp_path).search_runs([first["experiment_id"]], "tags.`hetmtl.kind` = 'group'")
    assert len(runs) == 3


def _job_run(c, exp_id, parent_id, seed=0, **extra):
    tags = {"suite": "tiny", "group": "related", "setting": "no_prior", "method": "mtal", "seed": str(seed),
            "hetmtl.kind": "training", "mlflow.parentRunId": parent_id, **extra}
    run = c.create_run(exp_id, tags=tags)
    c.set_terminated(run.info.run_id)
    return run.info.run_id, tags


def test_a_finished_rerun_supersedes_the_older_finished_runs_of_its_job(tmp_path, monkeypatch, empty_store):
    """Two FINISHED runs of one job never stay: the older is marked KILLED and
    names its successor; other jobs (another seed, a sweep point) are untouched."""
    from hetmtl.tracking.mlflow_store import client, ensure_experiment, supersede

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store))
    exp = ensure_experiment(tmp_path, "tiny", ["related/no_prior"])
    c = client(tmp_path)
    parent = exp["parents"]["related/no_prior"]
    old, tags = _job_run(c, exp["experiment_id"], parent)
    other_seed, _ = _job_run(c, exp["experiment_id"], parent, seed=1)
    sweep_point, _ = _job_run(c, exp["experiment_id"], parent, sweep="rho", sweep_value="0.5")
    new, _ = _job_run(c, exp["experiment_id"], parent)
    assert supersede(c, exp["experiment_id"], {k: v for k, v in tags.items() if k != "mlflow.parentRunId"},
                     new) == [old]
    assert c.get_run(old).info.status == "KILLED"
    assert c.get_run(old).data.tags["hetmtl.superseded_by"] == new
    for rid in (new, other_seed, sweep_point):
        assert c.get_run(rid).info.status == "FINISHED"


def test_a_damaged_store_is_named_with_the_recovery(tmp_path, monkeypatch, empty_store):
    import sqlite3

    from hetmtl.errors import UserError
    from hetmtl.tracking.mlflow_store import ensure_experiment

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store))
    ensure_experiment(tmp_path, "tiny", ["related/shared"])
    data = db.read_bytes()
    db.write_bytes(data[:4096] + b"\0" * (len(data) - 4096))  # the schema page kept, the tables gone
    with pytest.raises(sqlite3.DatabaseError, match="malformed"), sqlite3.connect(db) as con:
        con.execute("select count(*) from runs").fetchall()
    with pytest.raises(UserError, match=r"damaged .*hetmtl tracking rebuild --suite"):
        ensure_experiment(tmp_path, "tiny", ["related/shared"])


def test_the_marker_does_not_change_with_the_store(tmp_path, monkeypatch, empty_store):
    """The marker (a DAG input of every training job) names the experiment and its
    parents, not their ids: a new store (rebuilt, or another server) leaves it
    byte-identical, so neither Snakemake nor DVC retrains anything."""
    from hetmtl import paths
    from hetmtl.tracking.mlflow_store import init_experiment

    parents = [("related", "shared"), ("related", "prior")]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store, "one.db"))
    init_experiment(tmp_path, "tiny", [("unrelated", "shared")])  # other ids in this store
    first = init_experiment(tmp_path, "tiny", parents)
    marker = (tmp_path / paths.experiment_marker("tiny")).read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store, "two.db"))
    second = init_experiment(tmp_path, "tiny", parents)
    assert second["parents"] != first["parents"]
    assert (tmp_path / paths.experiment_marker("tiny")).read_bytes() == marker


def test_the_experiment_is_a_model_training_one_with_its_artifacts_beside_the_store(tmp_path, monkeypatch,
                                                                                    empty_store):
    """The MLflow UI opens an experiment without ``mlflow.experimentKind`` on its
    GenAI pages (traces); ours is tagged a model-training one when created, and
    one made by older code gets the tag the next time it is opened."""
    from hetmtl.tracking.mlflow_store import EXPERIMENT_KIND, client, ensure_experiment, init_experiment

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store))
    ids = init_experiment(tmp_path, "tiny", [("related", "shared")])
    c = client(tmp_path)
    exp = c.get_experiment(ids["experiment_id"])
    assert EXPERIMENT_KIND == "custom_model_development"
    assert exp.tags["mlflow.experimentKind"] == EXPERIMENT_KIND
    assert exp.artifact_location == (tmp_path / "mlruns").as_uri()
    old = c.create_experiment("hetmtl-old")  # as older code made it
    assert "mlflow.experimentKind" not in c.get_experiment(old).tags
    ensure_experiment(tmp_path, "old", [])
    assert c.get_experiment(old).tags["mlflow.experimentKind"] == EXPERIMENT_KIND
    [parent] = c.search_runs([ids["experiment_id"]], "tags.`hetmtl.kind` = 'group'")
    assert parent.data.tags["mlflow.user"] and parent.data.tags["mlflow.source.type"] == "LOCAL"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, empty_store):
    """A scratch project (small stand-ins of the related group) with one MTAL
    job trained with ``tracking.log_model`` true and one sweep point with it
    false, a relations run, and an aggregation's run, all in one store:
    (root, params, client, experiment id, {kind: receipt or run id})."""
    from conftest import ROOT, project_marker, small_suite
    from hetmtl.data import tasks as task_data
    from hetmtl.data.prepare import prepare_task
    from hetmtl.data.sources import write_standin
    from hetmtl.params import load_params
    from hetmtl.reporting.aggregate import log_aggregate_run
    from hetmtl.resolve import resolve
    from hetmtl.runs import RunId
    from hetmtl.tracking.mlflow_store import RunLogger, client, init_experiment, set_source
    from hetmtl.training.job import run_job

    root = tmp_path_factory.mktemp("proj")
    shutil.copytree(ROOT / "params", root / "params")
    project_marker(root).write_text("# marker for find_root\n")
    (root / "src").symlink_to(ROOT / "src")  # the code digests read it
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", store(root, empty_store))
        params = load_params(root)
        suite = small_suite(params)
        mp.setattr(type(params), "suite", lambda self, name: suite)
        for task in params.tasks_of("related"):
            source = params["sources"][params["tasks"][task]["source"]]
            if not (root / "raw" / source["archive"]).exists():
                write_standin(source["layout"], root / "raw" / source["archive"], 6)
            prepare_task(params, "tiny", task)
        task_data._prepared.cache_clear()
        ids = init_experiment(root, "tiny", params.tracking_parents())
        set_source("hetmtl train")
        key = dict(suite="tiny", group="related", setting="no_prior", method="mtal", seed=0)
        params.data["tracking"]["log_model"] = True
        out = {"training": run_job(resolve(params, RunId(**key)), device_name="cpu", progress=False)}
        params.data["tracking"]["log_model"] = False
        out["sweep"] = run_job(resolve(params, RunId(**key, sweep="rho", value=0.1)), device_name="cpu",
                               progress=False)
        set_source("hetmtl relations")
        rel = RunLogger(root, RunId("tiny", "related", "prior", "relations", 0), {"git_commit": "abc"}, {})
        rel.finish()
        out["relations"] = rel.run_id
        out["aggregate"] = log_aggregate_run(params, "tiny", root, {}, {})
        set_source("hetmtl")
        task_data._prepared.cache_clear()
        yield root, params, client(root), ids["experiment_id"], out


def test_each_run_has_its_source_user_and_commit(trained):
    root, _, c, exp_id, out = trained
    run = c.get_run(out["training"]["run_id"])
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "hetmtl train" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]
    assert tags["mlflow.source.git.commit"] == tags["git_commit"].removesuffix("-dirty")
    assert c.get_run(out["relations"]).data.tags["mlflow.source.name"] == "hetmtl relations"
    assert c.get_run(out["aggregate"]).data.tags["mlflow.source.git.commit"]


def test_a_training_run_holds_its_log_and_the_model_only_when_asked(trained):
    root, _, c, _, out = trained
    training, sweep = out["training"], out["sweep"]
    assert sorted(a.path for a in c.list_artifacts(training["run_id"])) == ["model.pt", "train.log"]
    assert sorted(a.path for a in c.list_artifacts(sweep["run_id"])) == ["train.log"]  # log_model false
    assert training["record"]["artifacts"] == ["train.log", "model.pt"]
    assert sweep["record"]["artifacts"] == ["train.log"]
    logged = Path(c.download_artifacts(training["run_id"], "train.log", str(root / "dl")))
    assert logged.read_text() == (root / "results/tiny/runs/related/no_prior/mtal/seed0/train.log").read_text()


def test_the_job_log_has_one_line_per_epoch(trained):
    """epoch, per-task train loss and validation accuracy, seconds; then the test accuracy."""
    import re

    root, params, _, _, out = trained
    tasks = params.tasks_of("related")
    lines = (root / "results/tiny/runs/related/no_prior/mtal/seed0/train.log").read_text().splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    E = params.suite("tiny")["epochs"]
    assert [line.split(" | ")[0] for line in epochs] == [f"epoch {e}/{E}" for e in range(1, E + 1)]
    for line, entry in zip(epochs, out["training"]["record"]["history"]):
        for t in tasks:
            assert f"{t}={entry[f'train_loss/{t}']:.4f}" in line.split("train_loss ")[1].split(" | ")[0]
            assert f"{t}={entry[f'val_acc/{t}']:.4f}" in line.split("val_acc ")[1].split(" | ")[0]
        assert re.search(r" \| \d+\.\d s$", line)
    assert lines[-1].startswith("done in ") and "test_acc " in lines[-1]


def test_sharing_is_logged_once_per_step(trained):
    _, params, c, _, out = trained
    rid = out["training"]["run_id"]
    layers = [k for k in c.get_run(rid).data.metrics if k.startswith("sharing/")]
    assert "sharing/conv1_1" in layers
    for name in layers + ["compression"]:
        steps = [m.step for m in c.get_metric_history(rid, name)]
        assert steps == list(range(1, params.suite("tiny")["epochs"] + 1)), name
    record = out["training"]["record"]
    assert not any(k.startswith("sharing/") for k in record["final"])  # logged with the last epoch, not again
    assert out["training"]["metrics"]["sharing/conv1_1"] == record["history"][-1]["sharing/conv1_1"]


def test_the_receipt_and_the_run_hold_the_loss_of_every_optimisation_step(trained, monkeypatch):
    """Fig. 12 and claim C10 read iterations: the receipt's record holds each task's loss at every step of
    the budget, MLflow the same values as ``step_loss/<task>`` at those steps; a receipt without them
    (older code) is refused by name, not read as epochs."""
    from hetmtl.reporting.collect import step_histories
    from hetmtl.runs import RunId
    from hetmtl.tracking import receipts

    root, params, c, _, out = trained
    receipt, rid = out["training"], out["training"]["run_id"]
    first, series = receipts.step_losses(receipt, root / "r.json")
    steps = int(receipt["budget/steps_per_task"])
    assert first == 1 and set(series) == set(params.tasks_of("related"))
    assert all(len(v) == steps for v in series.values()) and steps > params.suite("tiny")["epochs"]
    for task, values in series.items():
        logged = sorted((m.step, m.value) for m in c.get_metric_history(rid, f"step_loss/{task}"))
        assert logged == list(enumerate(values, start=1))
    assert receipts.latest_metrics(receipt, root / "r.json")[f"step_loss/{task}"] == values[-1]
    monkeypatch.chdir(root)
    monkeypatch.setattr(type(params), "runs", lambda self, s: [RunId(**receipt["key"])])
    h = step_histories(params, "tiny", root, "mtal", "no_prior")
    assert sorted(h.step.unique()) == list(range(1, steps + 1))
    old = {**receipt, "record": {k: v for k, v in receipt["record"].items() if k != "step_loss"}}
    with pytest.raises(receipts.ReceiptError, match="no training loss per optimisation step.*rerun its job"):
        receipts.step_losses(old, root / RunId(**receipt["key"]).receipt)


def _readme_filters() -> tuple[str, str]:
    """The README's filter for a table's runs, and its example from Python."""
    import re

    from conftest import ROOT

    text = (ROOT / "docs" / "mlflow.md").read_text()
    kind = re.search(r"only the tables' runs:\s*```text\n([^\n]+)\n```", text)
    example = re.search(r"filter_string='([^']+)'", text)
    assert kind and example, "docs/mlflow.md: the filters"
    return kind.group(1), example.group(1)


def test_the_readmes_filter_returns_only_the_tables_runs(trained, monkeypatch):
    """Sweep, relations, aggregation and parent runs share a table run's method
    and group tags; `hetmtl.kind` tells them apart, and the README's filters use it."""
    import mlflow

    from hetmtl.tracking.mlflow_store import tracking_uri

    root, _, c, exp_id, out = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(root))
    mlflow.set_tracking_uri(tracking_uri(root))
    kinds = {r.data.tags["hetmtl.kind"] for r in c.search_runs([exp_id], "", max_results=1000)}
    assert kinds == {"training", "sweep", "relations", "aggregate", "group"}
    kind, example = _readme_filters()
    for f in (kind, example):
        found = mlflow.search_runs(experiment_ids=[exp_id], filter_string=f)
        assert found.run_id.tolist() == [out["training"]["run_id"]], f
    without_kind = 'tags.method = "mtal" and tags.group = "related"'  # the README's example before the kinds
    assert len(mlflow.search_runs(experiment_ids=[exp_id], filter_string=without_kind)) == 2  # the sweep point too


def test_a_rebuilt_run_gets_its_artifacts_and_kind_again(trained, tmp_path, monkeypatch, empty_store):
    """`hetmtl tracking rebuild` into a new store: each run with its kind, and
    the files its record names logged again from disk."""
    from hetmtl.runs import RunId
    from hetmtl.tracking import rebuild
    from hetmtl.tracking.mlflow_store import client

    root, params, _, _, out = trained
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(tmp_path, empty_store, "new.db"))
    monkeypatch.setattr(type(params), "runs", lambda self, s: [RunId(**out["training"]["key"])])
    monkeypatch.setattr(type(params), "sweep_runs", lambda self, s: [
        RunId("tiny", "related", "no_prior", "mtal", 0, "rho", 0.1)])
    assert rebuild.rebuild(params, "tiny", root)["logged"] == 2
    c = client(root)
    exp = c.get_experiment_by_name("hetmtl-tiny")
    for kind, files_ in (("training", ["model.pt", "train.log"]), ("sweep", ["train.log"])):
        [run] = c.search_runs([exp.experiment_id], f"tags.`hetmtl.kind` = '{kind}'")
        assert run.data.tags["hetmtl.original_run_id"] == out[kind]["run_id"]
        assert sorted(a.path for a in c.list_artifacts(run.info.run_id)) == files_
        task = params.tasks_of("related")[0]  # the per-step loss logged again, every step
        assert len(c.get_metric_history(run.info.run_id, f"step_loss/{task}")) == int(
            out[kind]["budget/steps_per_task"])
