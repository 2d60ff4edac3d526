"""The tuning stage (issue 13): an equal random search per method on the validation split.

Unit tests of the sampling, the search-space validation, the choice and the
test split's absence; end to end, a tiny project reduced to one group and three
methods (conftest.tune_project, 2 trials per cell) through Snakemake and through
`dvc repro`, started with the session, and the reruns an edit of the search
space, of the learning rate's range or of N makes.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import torch
import yaml

from conftest import fake_task
from hetmtl import dvc_yaml, paths
from hetmtl.errors import UserError
from hetmtl.params import Params, ParamsError, load_params, sample

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CELLS = [("related", "shared", "single_task"), ("related", "shared", "mtda"), ("related", "no_prior", "mtal")]


def with_tune(params: Params, **tune) -> Params:
    """The params with the tiny suite's ``tune`` changed (a copy)."""
    data = copy.deepcopy(params.data)
    data["suites"]["tiny"]["tune"].update(tune)
    return replace(params, data=data)


# ---------------------------------------------------------------- sampling


def test_trials_are_drawn_from_the_seed_and_the_cell_alone_the_same_number_for_every_method(params):
    from hetmtl.params.load import methods_schema

    p = with_tune(params, trials=4, seed=3)
    cells = p.tune_cells("tiny")
    # every cell but random_matched's, which trains with the choice of the delta run it follows
    assert cells == list(dict.fromkeys((r.group, r.setting, r.method) for r in p.runs("tiny")
                                       if p.follows(r.method) is None))
    assert {m for _, _, m in cells} >= {"mtal_delta", "mtal_prior_delta"} and not {m for _, _, m in cells} & {
        "mtal_random", "mtal_prior_random"}
    first = {c: p.tune_trials("tiny", *c) for c in cells}
    assert first == {c: p.tune_trials("tiny", *c) for c in reversed(cells)}  # whatever the order
    assert {len(t) for t in first.values()} == {4}  # the same N for every method
    cell = ("related", "no_prior", "mtal")
    assert sample(p.search_space("mtal"), 3, *cell, 2) == first[cell][2]  # one trial alone: the same draw
    # trial 0: the defaults (params/methods.yaml, training.lr), so tuning never loses to them on validation
    assert {c: t[0] for c, t in first.items()} == {c: p.tune_defaults("tiny", c[2]) for c in cells}
    assert first[cell][0] == {"lr": p["training"]["lr"], "rho": p["methods"]["mtal"]["rho"]}
    assert len({json.dumps(v, sort_keys=True) for v in first[cell]}) == 4
    other = with_tune(params, trials=4, seed=4)
    assert other.tune_trials("tiny", *cell) != first[cell]  # the suite's seed matters
    assert first[("related", "no_prior", "mtal")] != first[("unrelated", "no_prior", "mtal")]  # so does the cell
    # every drawn value lies in its range and passes the method's PARAMS; deep methods draw the rate
    schemas = methods_schema(p["methods"], p.files)
    definitions = {"definitions": yaml.safe_load((ROOT / "src/hetmtl/params/params.schema.yaml").read_text())[
        "definitions"]}
    for (_g, _s, m), trials in first.items():
        space = p.search_space(m)
        assert ("lr" in space) == (m not in ("mtda",)), m
        validator = jsonschema.Draft202012Validator({**definitions, **schemas[m]})
        for values in trials:
            assert set(values) == set(space)
            for k, v in values.items():
                [(kind, arg)] = space[k].items()
                assert (v in arg) if kind == "choice" else arg[0] <= v <= arg[1], (m, k, v)
            assert not list(validator.iter_errors({**p["methods"][m], **{k: v for k, v in values.items()
                                                                           if k != "lr"}}))


def test_trials_zero_changes_nothing(params):
    """tune.trials 0 (the tiny suite's): no tune cells, no tune stage, no tune
    input to any job, and the rest of suite.tune reaches no digest and no stage."""
    assert params.suite("tiny")["tune"]["trials"] == 0
    base = params
    other = with_tune(params, seed=7, epochs=5)
    assert base.tune_cells("tiny") == [] == other.tune_cells("tiny")
    runs = base.runs("tiny") + base.sweep_runs("tiny")
    assert all("tune" not in base.job_inputs(r) for r in runs)
    assert [base.job_digest(r) for r in runs] == [other.job_digest(r) for r in runs]
    assert dvc_yaml.render(base, "tiny") == dvc_yaml.render(other, "tiny")
    assert not any(name.startswith("tune-") for name in dvc_yaml.stages(base, "tiny"))
    tuned = with_tune(params, trials=2)
    stages = dvc_yaml.stages(tuned, "tiny")
    assert {n for n in stages if n.startswith("tune-")} == {f"tune-{g}-{s}-{m}" for g, s, m in tuned.tune_cells("tiny")}
    train = stages["train-related-no_prior-mtal"]
    assert paths.tune_json("tiny", "related", "no_prior", "mtal").as_posix() in train["deps"]
    assert [tuned.job_digest(r) for r in base.runs("tiny")] != [base.job_digest(r) for r in base.runs("tiny")]
    assert [tuned.job_digest(r) for r in base.sweep_runs("tiny")] == [base.job_digest(r)
                                                                      for r in base.sweep_runs("tiny")]


# ---------------------------------------------------------------- the search space's validation


@pytest.mark.parametrize("method, key, spec, message", [
    ("soft_sharing", "delta", {"uniform": [0, 1]},
     "src/hetmtl/methods/registry.py: soft_sharing.search.delta: not one of the method's parameters (gamma)"),
    ("cross_stitch", "own_weight", {"uniform": [0.5, 1.5]},
     "src/hetmtl/methods/registry.py: cross_stitch.search.own_weight: 1.5 is not a value of "
     "methods.cross_stitch.own_weight"),
    ("mtal", "rho", {"gaussian": [0.4, 0.1]}, "src/hetmtl/methods/registry.py: mtal.search.rho:"),
    ("mtda", "common_dim", {"int_uniform": [30, 5]},
     "src/hetmtl/methods/registry.py: mtda.search.common_dim: the range [30, 5] runs backwards"),
])
def test_a_search_space_outside_the_methods_params_fails_naming_its_declaration(project, monkeypatch, method, key,
                                                                                spec, message):
    from dataclasses import replace

    from hetmtl.methods import registry

    declared = registry.METHOD_SPECS[method]
    search = {k: v for k, v in declared.search.items() if method != "soft_sharing"}  # soft: a key in place of gamma's
    monkeypatch.setitem(registry.METHOD_SPECS, method, replace(declared, search={**search, key: spec}))
    with pytest.raises(ParamsError) as err:
        load_params(project)
    assert message in str(err.value)


def test_the_learning_rates_range_is_checked(project):
    path = project / "params" / "training.yaml"
    path.write_text(path.read_text().replace("lr: {log_uniform: [0.001, 0.1]}", "lr: {uniform: [0, 0.1]}"))
    with pytest.raises(ParamsError, match="params/training.yaml: tuning.lr: 0 is not a learning rate"):
        load_params(project)


# ---------------------------------------------------------------- the choice and the test split


def test_the_best_trial_is_the_highest_mean_validation_accuracy_and_a_failed_one_never():
    from hetmtl.errors import UserError
    from hetmtl.training.tune import choose

    def t(score, status="ok"):
        return {"score": score, "status": status}

    assert choose([t(0.2), t(0.5), t(-math.inf, "diverged"), t(0.4)]) == 1
    assert choose([t(-math.inf, "diverged"), t(0.1)]) == 1
    assert choose([t(0.3), t(0.3)]) == 0  # a tie: the earlier trial
    with pytest.raises(UserError, match="every one of the 2 tune trials failed"):
        choose([t(-math.inf, "diverged: x"), t(-math.inf, "failed: y")])


def _trial(accs: dict[str, float], status: str = "ok") -> dict:
    score = sum(accs.values()) / len(accs) if status == "ok" else -math.inf
    return {"score": score, "status": status, "val_acc": {f"val_acc/{k}": v for k, v in accs.items()}}


def test_a_drawn_trial_replaces_the_defaults_only_beyond_noise():
    """At the demo's scale the trials score near chance: 2 points over the defaults on 60
    validation images per task is noise and keeps the defaults; 20 points is not."""
    from hetmtl.training.tune import choose

    n = {"A": 60, "B": 60}
    defaults = _trial({"A": 0.15, "B": 0.12})
    noise = _trial({"A": 0.17, "B": 0.14})
    clear = _trial({"A": 0.40, "B": 0.30})
    assert choose([defaults, noise], n, alpha=0.05) == 0
    assert choose([defaults, noise], n, alpha=1.0) == 1  # the plain argmax (alpha 1) takes the noise
    assert choose([defaults, clear], n, alpha=0.05) == 1
    assert choose([defaults, noise, clear], n, alpha=0.05) == 2


def test_the_gains_z_is_the_difference_over_the_binomial_standard_error_of_the_task_mean():
    """Worked by hand from the definition: tasks of different sizes weigh by their own n."""
    from hetmtl.training.tune import gain_z

    n = {"A": 50, "B": 200}
    t, d = _trial({"A": 0.6, "B": 0.3}), _trial({"A": 0.4, "B": 0.2})
    var = ((0.6 * 0.4 + 0.4 * 0.6) / 50 + (0.3 * 0.7 + 0.2 * 0.8) / 200) / 4
    assert gain_z(t, d, n) == pytest.approx((0.45 - 0.30) / math.sqrt(var), rel=1e-12)
    assert gain_z(d, t, n) == pytest.approx(-(0.45 - 0.30) / math.sqrt(var), rel=1e-12)  # not symmetric in sign
    # the sizes are the task's own: swapping them changes z
    assert gain_z(t, d, {"A": 200, "B": 50}) != pytest.approx(gain_z(t, d, n))
    assert gain_z(_trial({"A": 1.0}), _trial({"A": 0.0}), {"A": 10}) == math.inf  # no spread, a gain


def test_the_threshold_grows_with_the_drawn_trials_bonferroni():
    """The best of more draws must clear a higher bar: a gain that passes against one draw
    fails against eight."""
    from hetmtl.training.tune import choose, gain_z, z_threshold

    assert z_threshold(0.05, 1) == pytest.approx(1.6448536, abs=1e-6)
    assert z_threshold(0.05, 8) == pytest.approx(2.4977054, abs=1e-6)  # Phi^-1(1 - 0.05/8)
    n = {"A": 60, "B": 60}
    defaults, good = _trial({"A": 0.30, "B": 0.30}), _trial({"A": 0.45, "B": 0.43})
    z = gain_z(good, defaults, n)
    assert z_threshold(0.05, 1) < z < z_threshold(0.05, 8)
    weak = [_trial({"A": 0.20, "B": 0.20})] * 7
    assert choose([defaults, good], n, alpha=0.05) == 1
    assert choose([defaults, good, *weak], n, alpha=0.05) == 0


def test_the_rule_divides_by_the_squared_task_count_counts_each_draw_and_reads_no_spread():
    """Distortions the mutation tier made (tune.py, issue 30): with three tasks T^2 = 9, not
    2T = 6; the Bonferroni count is the number of drawn trials exactly (a gain between the
    thresholds of 2 and 3 draws); a trial without spread is +inf above, -inf below, 0 equal;
    a failed drawn trial leaves the defaults' finite score tested."""
    from hetmtl.training.tune import choose, gain_z, z_threshold

    n = {"A": 40, "B": 40, "C": 40}
    t, d = _trial({"A": 0.5, "B": 0.4, "C": 0.3}), _trial({"A": 0.4, "B": 0.3, "C": 0.2})
    var = sum(p * (1 - p) + q * (1 - q) for p, q in [(0.5, 0.4), (0.4, 0.3), (0.3, 0.2)]) / 40 / 9
    assert gain_z(t, d, n) == pytest.approx(0.1 / math.sqrt(var), rel=1e-12)
    one = {"A": 10}
    assert gain_z(_trial({"A": 0.0}), _trial({"A": 1.0}), one) == -math.inf
    assert gain_z(_trial({"A": 1.0}), _trial({"A": 1.0}), one) == 0.0
    assert gain_z(_trial({"A": 0.0}), _trial({"A": 0.0}), one) == 0.0
    # a gain between the thresholds of 2 and 3 drawn trials: chosen against 2 draws, not 3
    n2 = {"A": 100, "B": 100}
    defaults = _trial({"A": 0.30, "B": 0.30})
    for gain in [x / 1000 for x in range(50, 200)]:
        good = _trial({"A": 0.30 + gain, "B": 0.30 + gain})
        if z_threshold(0.05, 2) < gain_z(good, defaults, n2) < z_threshold(0.05, 3):
            break
    else:
        raise AssertionError("no gain between the thresholds")
    weak = _trial({"A": 0.1, "B": 0.1})
    assert choose([defaults, good, weak], n2, alpha=0.05) == 1
    assert choose([defaults, good, weak, weak], n2, alpha=0.05) == 0
    # defaults finite, a drawn trial failed: the best drawn one is still tested against the defaults
    noise = _trial({"A": 0.31, "B": 0.31})
    assert choose([defaults, _trial({"A": 0.0, "B": 0.0}, "diverged"), noise], n2, alpha=0.05) == 0
    with pytest.raises(UserError, match=r"failed: diverged: x; failed: y$"):
        choose([_trial({"A": 0.1}, "diverged: x"), _trial({"A": 0.1}, "failed: y")], one, alpha=0.05)


def test_failed_defaults_leave_the_best_trial_without_a_test():
    from hetmtl.training.tune import choose

    n = {"A": 60}
    assert choose([_trial({"A": 0.0}, "diverged"), _trial({"A": 0.11})], n, alpha=0.05) == 1
    with pytest.raises(ValueError, match="val_n"):
        choose([_trial({"A": 0.1}), _trial({"A": 0.9})], None, alpha=0.05)


class Sealed:
    """Stands for the test split: any use of it raises."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was touched ({name})")

    def __getitem__(self, key):
        raise AssertionError("the test split was touched (indexed)")

    def __len__(self):
        raise AssertionError("the test split was touched (len)")


def sealed(d):
    return replace(d, x={**d.x, "test": Sealed()}, y={**d.y, "test": Sealed()})


def test_a_trial_never_reads_the_test_split(params):
    """fit and MTDA's closed form with test=False run on tasks whose test split
    raises when touched; the tune job drops the split before any trial."""
    from hetmtl.methods import METHODS, TaskInfo
    from hetmtl.models import BACKBONES
    from hetmtl.resolve import train_config
    from hetmtl.training.loop import fit
    from hetmtl.training.tune import without_test

    data = [sealed(fake_task("g1", 1, 3, seed=1)), sealed(fake_task("g2", 1, 3, seed=2))]
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    cfg = replace(train_config(params, "tiny", 0, ["HD", "a"]), epochs=1)
    method = METHODS["hard_sharing"](tasks, BACKBONES["vgg_tiny"], {**params.method("hard_sharing"), "init": "scratch",
                                                                      "task_weighting": "equal"}, 0)
    result = fit(method, data, cfg, torch.device("cpu"), progress=False, test=False)
    assert result["test"] == {} and "val_acc/mean" in result["history"][-1]
    mtda = METHODS["mtda"](tasks, BACKBONES["vgg_tiny"], dict(params.method("mtda")), 0)
    assert mtda.fit_closed_form(data, test=False)["test"] == {}
    assert "test" not in without_test(data[0]).x and "test" not in without_test(data[0]).y


# ---------------------------------------------------------------- end to end


def _json(proj: Path, cell) -> dict:
    return json.loads((proj / paths.tune_json("tiny", *cell)).read_text())


@pytest.mark.slow
def test_tune_through_snakemake_chooses_on_validation_and_the_seeds_train_with_the_choice(tune_run):
    from hetmtl.resolve import resolve
    from hetmtl.runs import RunId
    from hetmtl.tracking import receipts
    from hetmtl.tracking.mlflow_store import client, experiment_name

    proj, seconds, _ = tune_run
    p = load_params(proj)
    assert sorted(p.tune_cells("tiny")) == sorted(CELLS)
    table = (proj / paths.table_file("tiny", "table3", "md")).read_text()  # the caption and its numbered notes
    c = client(proj)
    exp = c.get_experiment_by_name(experiment_name("tiny"))
    for cell in CELLS:
        record = _json(proj, cell)
        assert record["digest"] == p.tune_digest("tiny", *cell)
        assert [t["values"] for t in record["trials"]] == p.tune_trials("tiny", *cell)  # N = 2, as drawn
        assert all(t["status"] == "ok" for t in record["trials"])
        from hetmtl.training.tune import choose

        assert record["beat_defaults_alpha"] == p["tuning"]["beat_defaults_alpha"]
        assert len(record["val_n"]) == len(resolve(p, RunId("tiny", *cell, 0)).tasks)
        assert all(isinstance(v, int) and v > 0 for v in record["val_n"].values())
        best = choose(record["trials"], record["val_n"], record["beat_defaults_alpha"])
        assert record["best"] == best and record["chosen"] == record["trials"][best]["values"]
        chosen = record["chosen"]
        run = RunId("tiny", *cell, 0)
        resolved = resolve(p, run)
        assert resolved.tuned == chosen
        assert resolved.train.lr == chosen.get("lr", p["training"]["lr"])
        assert all(resolved.method_params[k] == v for k, v in chosen.items() if k != "lr")
        logged = receipts.record(receipts.read(proj / run.receipt), proj / run.receipt)["params"]
        assert {k: v for k, v in logged.items() if k.startswith("tuned.")} == {f"tuned.{k}": str(v)
                                                                              for k, v in chosen.items()}
        assert all(logged[f"method.{k}"] == str(v) for k, v in chosen.items() if k != "lr")
        name = p["report"]["display"][cell[2]]
        assert f"{name}: " + ", ".join(f"{k}={v}" for k, v in sorted(chosen.items())) in table
        trials = c.search_runs([exp.experiment_id], f"tags.`hetmtl.kind` = 'tune_trial' and tags.method = '{cell[2]}'")
        assert len(trials) == 2 and {r.data.tags["mlflow.parentRunId"] for r in trials} == {record["run_id"]}
    assert "Tuned (ours): 2 trials of random search per method on the validation split" in table
    print(f"snakemake with tuning: {seconds:.0f} s")


@pytest.mark.slow
def test_tune_through_dvc_draws_and_chooses_as_snakemake(tune_dvc_run, tune_run):
    proj, seconds, _ = tune_dvc_run
    table = (proj / paths.table_file("tiny", "table3", "md")).read_text()
    for cell in CELLS:
        ours, theirs = _json(proj, cell), _json(tune_run[0], cell)
        assert [t["values"] for t in ours["trials"]] == [t["values"] for t in theirs["trials"]]
        assert ours["chosen"] == theirs["chosen"]
        assert ", ".join(f"{k}={v}" for k, v in sorted(ours["chosen"].items())) in table
    print(f"dvc repro with tuning: {seconds:.0f} s")


def test_an_edit_of_the_search_space_or_of_n_reruns_exactly_the_tune_jobs_and_their_training(
        tune_run, tune_dvc_run, tmp_path):
    from test_pipeline import _planned, _stage, both, run

    from hetmtl.methods.registry import REGISTRY_PATH
    from hetmtl.reporting import catalogue

    smk_proj = shutil.copytree(tune_run[0], tmp_path / "p", symlinks=True)
    dvc_proj = tune_dvc_run[0]
    smk = [str(BIN / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "1", "--config", "suite=tiny",
           "-n"]
    params = load_params(smk_proj)
    report_items = {(kind, name) for kind in catalogue.KINDS for name in catalogue.names(params, kind)}

    def jobs(kinds, pred):
        return {(k, *c) for k in kinds for c in CELLS if pred(*c)}

    def stale(proc):
        return {(kind, *rest.split("-", 2)) for kind, _, rest in
                (_stage(a).partition("-") for a in json.loads(proc.stdout))}

    def listing(rel):  # the DVC stages that list ``rel`` as a dep, as stale()'s tuples
        return {(kind, *rest.split("-", 2)) for f in dvc_proj.rglob("dvc.yaml") if ".dvc" not in f.parts
                for name, stage in (yaml.safe_load(f.read_text()) or {}).get("stages", {}).items()
                if rel in stage.get("deps", []) for kind, _, rest in [name.partition("-")]}

    deep = lambda g, s, m: m != "mtda"  # noqa: E731
    edits = [  # (file, old, new, Snakemake's jobs, DVC's stale stages)
        ("params/suites/tiny.yaml", "trials: 2", "trials: 3", jobs(("tune", "train"), lambda *c: True),
         jobs(("tune",), lambda *c: True)),
        ("params/training.yaml", "lr: {log_uniform: [0.001, 0.1]}", "lr: {log_uniform: [0.002, 0.1]}",
         jobs(("tune", "train"), deep), jobs(("tune",), deep)),
        # every method's declaration is in one file, which every method's code imports (through
        # methods/base.py): an edit of one method's search space reruns every method's tune and training
        # jobs, in Snakemake as in DVC (each stage listing the registry as a dep)
        (REGISTRY_PATH, 'search={"rho": {"uniform": [0.1, 0.9]}}', 'search={"rho": {"uniform": [0.2, 0.9]}}',
         jobs(("tune", "train"), lambda *c: True), listing(REGISTRY_PATH)),
    ]
    for rel, old, new, planned_jobs, stale_stages in edits:
        texts = {}
        for proj in (smk_proj, dvc_proj):
            texts[proj] = (proj / rel).read_text()
            assert texts[proj].count(old) == 1, (rel, old)
            (proj / rel).write_text(texts[proj].replace(old, new))
        planned, status = both(smk, smk_proj, [str(BIN / "dvc"), "status", "--json"], dvc_proj)
        assert _planned(planned) == planned_jobs | report_items | {("aggregate",), ("all",)}, rel
        assert stale(status) == stale_stages, rel
        for proj in (smk_proj, dvc_proj):
            (proj / rel).write_text(texts[proj])
    planned = run(smk, smk_proj)
    assert "Nothing to be done" in planned.stdout + planned.stderr


@pytest.mark.slow
def test_the_tune_job_runs_with_a_test_split_that_raises_when_touched(tune_run, monkeypatch, tmp_path):
    """The tune job of a cell, again, on tasks whose test split raises when touched:
    every trial succeeds and the choice is the one Snakemake's job made."""
    from hetmtl.resolve import resolve_tune
    from hetmtl.training import tune as tune_module

    proj = shutil.copytree(tune_run[0], tmp_path / "p", symlinks=True)
    monkeypatch.chdir(proj)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    real = tune_module.load_task
    monkeypatch.setattr(tune_module, "load_task", lambda *a, **k: sealed(real(*a, **k)))
    p = load_params(proj)
    for cell in CELLS:
        if cell[2] == "mtal":
            continue  # the two others cover the loop and the closed form, faster
        before = _json(proj, cell)
        record = tune_module.tune_job(resolve_tune(p, "tiny", *cell), device_name="cpu")
        assert all(t["status"] == "ok" for t in record["trials"]), record["trials"]
        # the same trials as Snakemake's job drew; their scores are not compared bit for bit: in
        # this long-lived test process oneDNN's convolutions may round otherwise than in a fresh job
        # (seen: the suite's other tests before this one changed the single-task cell's choice)
        assert [t["values"] for t in record["trials"]] == [t["values"] for t in before["trials"]]
        assert record["chosen"] in [t["values"] for t in before["trials"]]

    # a diverged trial is recorded as such, scores null, and is never the choice
    cell = ("related", "shared", "single_task")
    trial = tune_module.run_trial

    def diverge_first(tune, values, *a):
        if values == tune.trials[0]:
            raise tune_module.Diverged("diverged at epoch 1: a test")
        return trial(tune, values, *a)

    monkeypatch.setattr(tune_module, "run_trial", diverge_first)
    tune_module.tune_job(resolve_tune(p, "tiny", *cell), device_name="cpu")
    record = _json(proj, cell)
    assert record["trials"][0]["status"].startswith("diverged") and record["trials"][0]["score"] is None
    assert record["best"] == 1 and record["chosen"] == record["trials"][1]["values"]
