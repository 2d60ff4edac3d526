"""The MLflow experiment's parent runs (hetmtl init-tracking)."""

from __future__ import annotations

import shutil

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
