"""Gather the run records behind the tables: the receipts of the current grid.

A receipt holds everything its run logged to MLflow (:mod:`hetmtl.tracking.receipts`),
so the tables are a function of files on disk: they build without the MLflow
store (lost, damaged, or on a server out of reach), and only the runs of the
current grid are read, so a stale or duplicate run never reaches a table.
``hetmtl tracking check`` confirms that the store shows what the receipts hold.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hetmtl import paths
from hetmtl.errors import UserError
from hetmtl.tracking import receipts


class RecordError(UserError, RuntimeError):
    """A receipt and its MLflow run disagree, or a run is missing."""


def check_current(params, suite: str, root: Path) -> None:
    """Refuse to build tables from receipts written under other parameters or
    code than the current ones (params/ or a method's module edited since),
    naming every stale run and how to retrain it."""
    stale = []
    for key in params.runs(suite):
        path = root / paths.receipt(**key)
        if path.exists() and receipts.read(path).get("job_digest") != params.job_digest(suite, key):
            stale.append(path.relative_to(root).as_posix())
    for w in params.sweep_runs(suite):
        path = root / paths.sweep_receipt(**w)
        sw = params["sweeps"][w["sweep"]]
        key = dict(group=w["group"], setting=sw["setting"], method=sw["method"])
        if path.exists() and receipts.read(path).get("job_digest") != params.job_digest(
                suite, key, (w["sweep"], w["value"])):
            stale.append(path.relative_to(root).as_posix())
    if stale:
        raise RecordError(f"{len(stale)} run(s) were trained with other parameters or code than params/ and "
                          f"src/ hold now: {', '.join(stale[:6])}{' ...' if len(stale) > 6 else ''}; rerun them "
                          "(snakemake reruns changed jobs by itself; `dvc repro` too), then aggregate")


def _checked(path: Path, expect: dict) -> tuple[dict, dict]:
    """A receipt and its run's metrics, refused when it records another job."""
    if not path.exists():
        job = (f"hetmtl sweep --suite {expect['suite']} --sweep {expect['sweep']} --group {expect['group']} "
               f"--value {expect['sweep_value']}" if "sweep" in expect else
               f"hetmtl train --suite {expect['suite']} --group {expect['group']} --setting {expect['setting']} "
               f"--method {expect['method']}")
        raise RecordError(f"{path}: missing; train its job first: `{job} --seed {expect['seed']}` "
                          "(or let snakemake / `dvc repro` run it)")
    receipt = receipts.read(path)
    tags = receipts.record(receipt, path)["tags"]
    for field, want in expect.items():
        if tags.get(field) != str(want):
            raise RecordError(f"{path}: its run has {field}={tags.get(field)!r}, the job at this path is "
                              f"{field}={want!r}; delete the receipt and rerun its job")
    return receipt, receipts.latest_metrics(receipt, path)


def collect_sweeps(params, suite: str, root: Path) -> pd.DataFrame:
    """Long records of the sweep runs: one row per (run, metric), with the swept value."""
    rows = []
    for w in params.sweep_runs(suite):
        path = root / paths.sweep_receipt(**w)
        sw = params["sweeps"][w["sweep"]]
        receipt, metrics = _checked(path, {"suite": suite, "group": w["group"], "method": sw["method"],
                                           "seed": w["seed"], "sweep": w["sweep"],
                                           "sweep_value": f"{w['value']:g}"})
        for metric, value in metrics.items():
            rows.append({"group": w["group"], "sweep": w["sweep"], "sweep_value": w["value"], "seed": w["seed"],
                         "run_id": receipt["run_id"], "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["group", "sweep", "sweep_value", "seed", "run_id", "metric", "value"])


def metric_histories(params, suite: str, root: Path, method: str, setting: str, prefix: str) -> pd.DataFrame:
    """Per-epoch history of metrics ``<prefix><task>`` of a method's runs, every group and seed."""
    rows = []
    for key in params.runs(suite):
        if key["method"] != method or key["setting"] != setting:
            continue
        path = root / paths.receipt(**key)
        receipt, _ = _checked(path, key)
        for task in params.tasks_of(key["group"]):
            for step, value in receipts.history(receipt, path, f"{prefix}{task}"):
                rows.append({"group": key["group"], "seed": key["seed"], "task": task,
                             "epoch": step, "value": value})
    return pd.DataFrame(rows, columns=["group", "seed", "task", "epoch", "value"])


def collect(params, suite: str, root: Path) -> pd.DataFrame:
    """Long records: one row per (run, metric) of the suite's grid."""
    rows = []
    for key in params.runs(suite):
        receipt, metrics = _checked(root / paths.receipt(**key), key)
        for metric, value in metrics.items():
            rows.append({**key, "run_id": receipt["run_id"], "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["suite", "group", "setting", "method", "seed", "run_id", "metric", "value"])
