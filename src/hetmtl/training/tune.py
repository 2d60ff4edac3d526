"""The tune stage's job: a random search on the validation split for one grid cell.

An equal tuning budget for every method (DomainBed's protocol; the paper tuned
each baseline "according to the parameter settings of the corresponding
references", which a reader cannot check). Each trial trains the cell's method
with the values of one draw from its search space (its declaration's ``search``, hetmtl/methods/registry.py, and,
for a deep method, the learning rate of params/training.yaml ``tuning``;
:meth:`hetmtl.params.Params.tune_trials`), with the suite's first seed for
``suite.tune.epochs`` epochs, and scores it by the mean over the group's tasks of
the validation accuracy after its last epoch. The best trial's values are the
choice (ties: the earlier trial) where they beat the defaults (trial 0) beyond
noise (:func:`choose`, ``tuning.beat_defaults_alpha``, ours), else the defaults
are; the training jobs of the cell then train every seed with the choice
(:func:`hetmtl.resolve.resolve`). A trial that diverges or fails scores -inf and
is recorded as such: never the choice.

The test split plays no part: the tasks are loaded and their test split dropped
before any trial (touching it raises), and no trial evaluates it.

Output: the cell's JSON (:func:`hetmtl.paths.tune_json`: every trial's values,
score and status, the choice, the digest of the inputs) and an MLflow run per
cell under its (group, setting) parent, the trials as runs nested under it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from statistics import NormalDist

from hetmtl import files
from hetmtl.data.tasks import TaskData, load_task
from hetmtl.errors import UserError
from hetmtl.methods import TaskInfo
from hetmtl.methods.build import build_method
from hetmtl.models import BACKBONES
from hetmtl.resolve import ResolvedTune
from hetmtl.tracking import mlflow_store
from hetmtl.training.device import pick_device, set_determinism
from hetmtl.training.job import train_deep
from hetmtl.training.loop import Diverged

SCORE = "val_acc/mean"  # the criterion: mean validation accuracy over the group's tasks, last epoch


def without_test(d: TaskData) -> TaskData:
    """The task with its test split removed: a tune trial cannot read it."""
    return replace(d, x={k: v for k, v in d.x.items() if k != "test"},
                   y={k: v for k, v in d.y.items() if k != "test"})


def run_trial(tune: ResolvedTune, values: dict, data: list[TaskData], device) -> dict:
    """Train the cell's method with ``values`` put in; its last epoch's metrics."""
    base = tune.base
    run = replace(base, method_params={**base.method_params, **{k: v for k, v in values.items() if k != "lr"}})
    cfg = replace(base.train, epochs=tune.epochs, lr=values.get("lr", base.train.lr))
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    method = build_method(run, tasks)
    if method.deep:
        result = train_deep(method, data, cfg, device, None, lambda *a: None, False, tasks,
                            BACKBONES[base.backbone], run.method_params, base.freeze_blocks, test=False)
    else:
        result = method.fit_closed_form(data, test=False)
    return {k: v for k, v in result["history"][-1].items() if k.startswith("val_acc/")}


def gain_z(trial: dict, defaults: dict, val_n: dict[str, int]) -> float:
    """z of ``trial``'s score (the mean over tasks of the validation accuracy) over the
    defaults': the difference over its standard error, each task's accuracy a binomial
    proportion over its ``val_n`` validation images and the two trials independent (their
    errors are positively correlated, so the true error is smaller: conservative)."""
    names = list(val_n)
    diff = trial["score"] - defaults["score"]
    var = sum((p * (1 - p) + q * (1 - q)) / val_n[n]
              for n in names
              for p, q in [(trial["val_acc"][f"val_acc/{n}"], defaults["val_acc"][f"val_acc/{n}"])])
    var /= len(names) ** 2
    if var == 0:
        return math.inf if diff > 0 else -math.inf if diff < 0 else 0.0
    return diff / math.sqrt(var)


def z_threshold(alpha: float, drawn: int) -> float:
    """One-sided, Bonferroni over the ``drawn`` trials (the best of them is the one tested)."""
    return NormalDist().inv_cdf(1 - alpha / max(1, drawn))


def choose(trials: list[dict], val_n: dict[str, int] | None = None, alpha: float = 1.0) -> int:
    """The index of the chosen trial. The best: the highest score, the earlier on a
    tie; a failed trial (score -inf) never; refused when every trial failed. With
    ``alpha`` < 1 (``tuning.beat_defaults_alpha``, ours) the best drawn trial replaces
    the defaults (trial 0) only where :func:`gain_z` exceeds :func:`z_threshold`:
    a trial scored near chance after a short search otherwise wins by noise alone.
    Failed defaults leave the best trial chosen without a test."""
    best = max(range(len(trials)), key=lambda k: (trials[k]["score"], -k))
    if not math.isfinite(trials[best]["score"]):
        raise UserError(f"every one of the {len(trials)} tune trials failed: "
                        + "; ".join(t["status"] for t in trials))
    if best == 0 or alpha >= 1 or not math.isfinite(trials[0]["score"]):
        return best
    if val_n is None:
        raise ValueError("choose: alpha < 1 needs each task's number of validation images (val_n)")
    return best if gain_z(trials[best], trials[0], val_n) > z_threshold(alpha, len(trials) - 1) else 0


def tune_job(tune: ResolvedTune, device_name: str = "auto", threads: int = 1) -> dict:
    """Run the trials of a resolved tune cell (:func:`hetmtl.resolve.resolve_tune`);
    write its JSON (last: the DAG output) and log its MLflow runs."""
    base = tune.base
    rid = base.run
    device = pick_device(device_name, real_data=base.tags.get("data") == "real")
    set_determinism(device, threads)
    data = [without_test(load_task(rid.suite, t, device, base.split, rid.seed)) for t in base.tasks]
    root = base.root
    c = mlflow_store.client(root)
    experiment = mlflow_store.ensure_experiment(root, rid.suite, [rid.parent])
    tags = {"suite": rid.suite, "group": rid.group, "setting": rid.setting, "method": rid.method,
            "hetmtl.checkout": mlflow_store.checkout(root), "git_commit": mlflow_store.git_commit(root)}
    parent = mlflow_store.log_new_run(c, experiment, rid.parent, f"{rid.method}/tune",
                                      {**tags, "hetmtl.kind": "tune"},
                                      {k: str(v) for k, v in mlflow_store.flatten(tune.run_params).items()})
    trials = []
    try:
        for k, values in enumerate(tune.trials):
            started = time.time()
            try:  # a trial's own failure (a value the method cannot train with) fails that trial only
                metrics = run_trial(tune, values, data, device)
                score, status = metrics[SCORE], "ok"
            except Diverged as exc:
                metrics, score, status = {}, -math.inf, f"diverged: {str(exc).splitlines()[0]}"
            except (RuntimeError, ValueError, ArithmeticError) as exc:  # a trial's crash: failed, not the best
                metrics, score, status = {}, -math.inf, f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            seconds = time.time() - started
            trials.append({"trial": k, "values": values, "score": score, "status": status,
                           "val_acc": metrics, "seconds": round(seconds, 3)})
            print(f"[tune] {rid.group}/{rid.setting}/{rid.method} trial {k}: {values} -> "
                  f"{SCORE} {score:.4f} ({status}, {seconds:.1f} s)", flush=True)
            trial_id = mlflow_store.log_nested_run(
                c, experiment["experiment_id"], parent, f"{rid.method}/trial{k}",
                {**tags, "hetmtl.kind": "tune_trial", "trial": str(k), "status": status.split(":")[0]},
                {key: str(v) for key, v in values.items()})
            if math.isfinite(score):
                mlflow_store.log_metrics(c, trial_id, metrics, step=tune.epochs)
            mlflow_store.retry(c.set_terminated, trial_id, status="FINISHED" if status == "ok" else "FAILED")
        val_n = {d.name: len(d.y["val"]) for d in data}
        best = choose(trials, val_n, tune.beat_defaults_alpha)
    except BaseException:
        mlflow_store.retry(c.set_terminated, parent, status="FAILED")
        raise
    chosen = dict(trials[best]["values"])
    mlflow_store.log_batch_params(c, parent, {f"chosen.{k}": str(v) for k, v in chosen.items()})
    mlflow_store.log_metrics(c, parent, {f"best/{SCORE}": trials[best]["score"], "best/trial": best}, step=0)
    mlflow_store.retry(c.set_terminated, parent, status="FINISHED")
    # -inf is no JSON number: a failed trial's score is written as null
    written = [{**t, "score": t["score"] if math.isfinite(t["score"]) else None} for t in trials]
    record = {"suite": rid.suite, "group": rid.group, "setting": rid.setting, "method": rid.method,
              "seed": rid.seed, "epochs": tune.epochs, "criterion": f"{SCORE} after the last epoch (validation split)",
              "search": tune.run_params["search"], "trials": written, "best": best, "chosen": chosen,
              "val_n": val_n, "beat_defaults_alpha": tune.beat_defaults_alpha,
              "digest": tune.digest, "run_id": parent}
    files.write_text(tune.json, json.dumps(record, indent=2) + "\n")
    return record
