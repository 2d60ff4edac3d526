"""A run resolved once (hetmtl/resolve.py): the record its job executes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import ROOT
from hetmtl import files, paths
from hetmtl.params import ParamsError, load_params
from hetmtl.resolve import resolve, resolve_relations
from hetmtl.runs import RunId


@pytest.fixture()
def project(project):
    (project / "src").symlink_to(ROOT / "src")  # the job digest hashes the code
    return project


def _prepared(root, tasks):
    for t in tasks:
        f = root / paths.prepared_manifest("tiny", t)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"source_md5": f"md5-of-{t}"}))


def test_a_grid_run_resolves_to_what_its_job_reads(project):
    p = load_params(project)
    _prepared(project, p.tasks_of("related"))
    run = resolve(p, RunId("tiny", "related", "no_prior", "mtal_common", 0))
    assert run.method_class == "mtal"  # a reading runs its base method ...
    assert run.method_params["start"] == "common" and "variant_of" not in run.method_params  # ... with its values
    assert run.method_params["rho"] == p["methods"]["mtal"]["rho"]
    assert run.method_params["init"] == "scratch" and run.train.lr == p["training"]["lr"]
    assert run.train.epochs == p.suite("tiny")["epochs"] and run.tasks == tuple(p.tasks_of("related"))
    assert run.relations is None and run.data_md5 == {t: f"md5-of-{t}" for t in run.tasks}
    assert run.receipt == project / "results/tiny/runs/related/no_prior/mtal_common/seed0/receipt.json"
    assert run.run.parent == "related/no_prior" and run.run.run_name == "mtal_common/seed0"
    assert run.job_digest == p.job_digest(run.run)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.backbone = "vgg16"  # frozen: a job cannot change what it runs
    # the data are part of the record: other prepared data, another params digest
    _prepared(project, ["HD"])
    (project / paths.prepared_manifest("tiny", "HD")).write_text(json.dumps({"source_md5": "other"}))
    again = resolve(p, run.run)
    assert again.params_digest != run.params_digest and again.job_digest == run.job_digest


def test_a_sweep_point_resolves_with_the_swept_value_and_the_sweeps_epochs(project):
    p = load_params(project)
    _prepared(project, p.tasks_of("unrelated"))
    value = p.suite("tiny")["sweeps"]["rho"]["values"][-1]
    point = RunId("tiny", "unrelated", "no_prior", "mtal", 0, "rho", value)
    assert point in p.sweep_runs("tiny")
    run = resolve(p, point)
    assert run.method_params["rho"] == value != p["methods"]["mtal"]["rho"]
    assert run.train.epochs == p.suite("tiny")["sweeps"]["rho"]["epochs"]
    assert run.receipt == project / paths.sweep_receipt("tiny", "rho", "unrelated", value, 0)
    assert run.run.parent == "unrelated/sweep_rho" and run.run.tags["sweep_value"] == f"{value:g}"
    assert run.job_digest != p.job_digest(RunId("tiny", "unrelated", "no_prior", "mtal", 0))


def test_a_prior_run_reads_r_once_and_names_its_stage_when_r_is_missing(project):
    p = load_params(project)
    tasks = p.tasks_of("related")
    _prepared(project, tasks)
    prior = RunId("tiny", "related", "prior", "mtal_prior", 0)
    with pytest.raises(files.MissingInput, match="hetmtl relations --suite tiny --group related"):
        resolve(p, prior)
    csv = project / paths.relations_csv("tiny", "related")
    csv.parent.mkdir(parents=True, exist_ok=True)
    rows = [[1.0 if i == j else 0.25 * (i + j) for j in range(4)] for i in range(4)]
    csv.write_text("task," + ",".join(tasks) + "\n# a comment line\n"
                   + "".join(f"{t}," + ",".join(map(str, r)) + "\n" for t, r in zip(tasks, rows)))
    run = resolve(p, prior)
    assert run.relations == tuple(tuple(r) for r in rows) and run.relations_file == csv
    rel = resolve_relations(p, "tiny", "related")
    assert rel.csv == csv and rel.tasks == tuple(tasks) and rel.epochs == p.suite("tiny")["relations"]["epochs"]


def test_a_run_outside_the_grid_is_refused_in_one_line(project):
    p = load_params(project)
    _prepared(project, p.tasks_of("related"))
    for run in (RunId("tiny", "related", "no_prior", "mtal", 99), RunId("tiny", "related", "shared", "mtal", 0),
                RunId("tiny", "related", "no_prior", "mtal", 0, "rho", 0.123)):
        with pytest.raises(ParamsError, match="is not in the (grid|sweeps) of params/grid.yaml") as err:
            resolve(p, run)
        assert "\n" not in str(err.value)


def test_hetmtl_runs_lists_each_runs_state_and_command(project, capsys):
    """`hetmtl runs`: done only with its receipt of the current digest and its model;
    stale under another digest; missing otherwise."""
    from hetmtl.cli import main

    p = load_params(project)
    run = p.runs("tiny")[0]

    def states():
        assert main(["runs", "--suite", "tiny"]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(listed) == len(p.runs("tiny")) + len(p.sweep_runs("tiny"))
        mine = [r for r in listed if r["receipt"] == run.receipt.as_posix()]
        assert len(mine) == 1 and mine[0]["command"] == run.command
        return mine[0]["state"], {r["state"] for r in listed if r["receipt"] != run.receipt.as_posix()}

    assert states() == ("missing", {"missing"})
    receipt = project / run.receipt
    receipt.parent.mkdir(parents=True)
    receipt.write_text(json.dumps({"job_digest": p.job_digest(run)}))
    assert states()[0] == "missing"  # no model: not done
    (project / run.model).write_bytes(b"model")
    assert states()[0] == "done"
    receipt.write_text(json.dumps({"job_digest": "0" * 16}))
    assert states()[0] == "stale"


def test_the_relations_job_freezes_the_resolved_blocks(project, monkeypatch):
    """training.freeze_blocks reaches the relations stage through its resolved
    record, as it reaches every training job."""
    from hetmtl.training import relations

    training = project / "params" / "training.yaml"
    training.write_text(training.read_text().replace("freeze_blocks: 0 ", "freeze_blocks: 1 "))
    rel = resolve_relations(load_params(project), "tiny", "related")
    assert rel.freeze_blocks == 1 and rel.given is None
    asked = {}

    class Stop(Exception):
        pass

    def fake_estimate(data, spec, cfg, temperature, method_cfg, seeds, freeze_blocks=0):
        asked.update(freeze_blocks=freeze_blocks, method_cfg=method_cfg, train=cfg)
        raise Stop

    monkeypatch.setattr(relations, "estimate", fake_estimate)
    with pytest.raises(Stop):
        relations.relations_job(rel, device_name="cpu")
    assert asked["freeze_blocks"] == 1 and asked["train"].weighting == "equal"


def test_a_random_matched_run_reads_the_receipt_of_its_delta_run(project):
    """The control's record names the delta run's receipt of the same group, setting and seed;
    another receipt there is another params digest; none there: one line naming the command."""
    from hetmtl.errors import UserError

    p = load_params(project)
    _prepared(project, p.tasks_of("related"))
    run = RunId("tiny", "related", "no_prior", "mtal_random", 0)
    with pytest.raises(UserError, match="--method mtal_delta --seed 0"):
        resolve(p, run)
    receipt = project / RunId("tiny", "related", "no_prior", "mtal_delta", 0).receipt
    receipt.parent.mkdir(parents=True)
    receipt.write_text(json.dumps({"record": {"history": [{"epoch": 1, "sharing/pair/0-1/conv1_1": 2.0}]}}))
    first = resolve(p, run)
    assert first.followed == receipt and first.method_class == "mtal_random"
    assert resolve(p, RunId("tiny", "related", "no_prior", "mtal_delta", 0)).followed is None
    receipt.write_text(json.dumps({"record": {"history": [{"epoch": 1, "sharing/pair/0-1/conv1_1": 3.0}]}}))
    assert resolve(p, run).params_digest != first.params_digest
    prior = resolve(p, RunId("tiny", "related", "prior", "mtal_prior_random", 0), inputs=False)
    assert prior.method_class == "mtal_random" and prior.method_params["follows"] == "mtal_prior_delta"
