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

from hetmtl.errors import UserError
from hetmtl.runs import RunId
from hetmtl.tracking import receipts


class RecordError(UserError, RuntimeError):
    """A receipt and its MLflow run disagree, or a run is missing."""


def check_current(params, suite: str, root: Path) -> None:
    """Refuse to build tables from receipts written under other parameters or
    code than the current ones (params/ or a method's module edited since),
    naming every stale run and how to retrain it."""
    stale = []
    for run in params.runs(suite) + params.sweep_runs(suite):
        path = root / run.receipt
        if path.exists() and receipts.read(path).get("job_digest") != params.job_digest(run):
            stale.append(path.relative_to(root).as_posix())
    if stale:
        raise RecordError(f"{len(stale)} run(s) were trained with other parameters or code than params/ and "
                          f"src/ hold now: {', '.join(stale[:6])}{' ...' if len(stale) > 6 else ''}; rerun them "
                          "(snakemake reruns changed jobs by itself; `dvc repro` too), then aggregate")


def _checked(root: Path, run: RunId) -> tuple[dict, dict]:
    """A run's receipt and its metrics, refused when it records another run."""
    path = root / run.receipt
    if not path.exists():
        raise RecordError(f"{path}: missing; train its job first: `{run.command}` "
                          "(or let snakemake / `dvc repro` run it)")
    receipt = receipts.read(path)
    tags = receipts.record(receipt, path)["tags"]
    for field, want in run.tags.items():
        if tags.get(field) != want:
            raise RecordError(f"{path}: its run has {field}={tags.get(field)!r}, the job at this path is "
                              f"{field}={want!r}; delete the receipt and rerun its job")
    return receipt, receipts.latest_metrics(receipt, path)


def tuned_values(params, suite: str, root: Path, group: str, rows: list[tuple[str, str]]) -> dict[str, dict]:
    """The values the tune stage chose for each row (setting, method) of a table, as
    its runs recorded them (their MLflow params ``tuned.*``, in the receipts); a
    row whose runs were not tuned is left out; nothing when the suite does not tune."""
    out = {}
    if not params.tunes(suite):
        return out
    for setting, method in rows:
        run = RunId(suite, group, setting, method, params.suite(suite)["seeds"][0])
        receipt, _ = _checked(root, run)
        logged = receipts.record(receipt, root / run.receipt)["params"]
        values = {k.removeprefix("tuned."): v for k, v in sorted(logged.items()) if k.startswith("tuned.")}
        if values:
            out[method] = values
    return out


def collect_sweeps(params, suite: str, root: Path) -> pd.DataFrame:
    """Long records of the sweep runs: one row per (run, metric), with the swept value."""
    rows = []
    for run in params.sweep_runs(suite):
        receipt, metrics = _checked(root, run)
        for metric, value in metrics.items():
            rows.append({"group": run.group, "sweep": run.sweep, "sweep_value": run.value, "seed": run.seed,
                         "run_id": receipt["run_id"], "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["group", "sweep", "sweep_value", "seed", "run_id", "metric", "value"])


def metric_histories(params, suite: str, root: Path, method: str, setting: str, prefix: str) -> pd.DataFrame:
    """Per-epoch history of metrics ``<prefix><task>`` of a method's runs, every group and seed."""
    rows = []
    for run in params.runs(suite):
        if run.method != method or run.setting != setting:
            continue
        receipt, _ = _checked(root, run)
        path = root / run.receipt
        for task in params.tasks_of(run.group):
            for step, value in receipts.history(receipt, path, f"{prefix}{task}"):
                rows.append({"group": run.group, "seed": run.seed, "task": task, "epoch": step, "value": value})
    return pd.DataFrame(rows, columns=["group", "seed", "task", "epoch", "value"])


def step_histories(params, suite: str, root: Path, method: str, setting: str) -> pd.DataFrame:
    """The training loss per optimisation step of a method's runs, every group, seed and task
    (receipts.step_losses; a receipt without them, of older code, is refused loudly)."""
    frames = []
    for run in params.runs(suite):
        if run.method != method or run.setting != setting:
            continue
        receipt, _ = _checked(root, run)
        first, series = receipts.step_losses(receipt, root / run.receipt)
        for task, values in series.items():
            frames.append(pd.DataFrame({"group": run.group, "seed": run.seed, "task": task,
                                        "step": range(first, first + len(values)), "value": values}))
    columns = ["group", "seed", "task", "step", "value"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def collect(params, suite: str, root: Path) -> pd.DataFrame:
    """Long records: one row per (run, metric) of the suite's grid."""
    rows = []
    for run in params.runs(suite):
        receipt, metrics = _checked(root, run)
        for metric, value in metrics.items():
            rows.append({**run.key, "run_id": receipt["run_id"], "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["suite", "group", "setting", "method", "seed", "run_id", "metric", "value"])
