"""Receipts: the JSON each training job leaves as its DAG output, last.

A receipt is the run's record: its job (``key``, ``job_digest``), the MLflow
run it logged (``run_id``) and, under ``record``, everything that run logged:
name, parent, tags, params, the metrics of every epoch and the final metrics.
The tables are built from the receipts alone (:mod:`hetmtl.reporting.collect`),
so they can always be rebuilt from what is on disk, and a lost or damaged
MLflow store is re-logged from them (:mod:`hetmtl.tracking.rebuild`). Written
atomically, last, so a crashed job leaves none.
"""

from __future__ import annotations

import json
from pathlib import Path

from hetmtl import files
from hetmtl.errors import UserError


class ReceiptError(UserError, RuntimeError):
    """A receipt is unreadable or lacks its run record."""


def write(path: Path, receipt: dict) -> None:
    files.write_text(path, json.dumps(receipt, indent=2, sort_keys=True) + "\n")


def read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ReceiptError(f"{path}: not a readable receipt ({exc}); delete it and rerun its job") from None


def record(receipt: dict, path: Path) -> dict:
    if "record" not in receipt:
        raise ReceiptError(f"{path}: written by older code, without its run record; rerun its job "
                           "(snakemake and `dvc repro` rerun it once the code digest changed)")
    return receipt["record"]


def steps(receipt: dict, path: Path) -> list[tuple[int, dict]]:
    """Every ``(step, metrics)`` the run logged, in the order it logged them."""
    rec = record(receipt, path)
    out = [(int(h["epoch"]), {k: v for k, v in h.items() if k != "epoch"}) for h in rec["history"]]
    return out + [(int(rec["final_step"]), dict(rec["final"]))]


def latest_metrics(receipt: dict, path: Path) -> dict[str, float]:
    """Each metric's value at its highest step, the last logged winning a tie:
    what MLflow shows as the run's metrics (the per-step losses: each task's last)."""
    best: dict[str, tuple[int, float]] = {}
    for step, metrics in steps(receipt, path):
        for k, v in metrics.items():
            if k not in best or step >= best[k][0]:
                best[k] = (step, float(v))
    out = {k: v for k, (_, v) in best.items()}
    if "step_loss" in record(receipt, path):
        _, series = step_losses(receipt, path)
        out.update({f"{STEP_LOSS}{t}": values[-1] for t, values in series.items() if values})
    return out


# The training loss per optimisation step (the deep methods' runs): under the record's ``step_loss``,
# {"first_step": s, "tasks": {task: "v_s v_s+1 ... v_n"}} with 6 significant digits, one string per task
# (a receipt of the paper suite holds ~10,000 steps per task: a JSON list would put each on a line); MLflow
# holds the same values as the metric ``step_loss/<task>`` at steps s..n.
STEP_LOSS = "step_loss/"


def step_loss_record(tasks: list[str], losses: list[list[float]], first_step: int) -> dict:
    """The record's ``step_loss``: ``losses`` per step, each task's value (the fit's ``step_losses``)."""
    return {"first_step": int(first_step),
            "tasks": {t: " ".join(f"{row[i]:.6g}" for row in losses) for i, t in enumerate(tasks)}}


def step_losses(receipt: dict, path: Path) -> tuple[int, dict[str, list[float]]]:
    """(first step, task -> its loss at every step from it); refused for a run whose record has none:
    a receipt of older code (per-epoch losses only), or a method without optimisation steps."""
    rec = record(receipt, path)
    if "step_loss" not in rec:
        raise ReceiptError(f"{path}: its record has no training loss per optimisation step (written by older code, "
                           "or a method without steps); Fig. 12 and claim C10 read iterations: rerun its job")
    s = rec["step_loss"]
    return int(s["first_step"]), {t: [float(v) for v in text.split()] for t, text in s["tasks"].items()}


def step_loss_series(step_loss: dict) -> dict[str, list[tuple[int, float]]]:
    """``step_loss/<task>`` -> [(step, value)]: what MLflow logs of a record's ``step_loss``."""
    first = int(step_loss["first_step"])
    return {f"{STEP_LOSS}{t}": [(first + i, float(v)) for i, v in enumerate(text.split())]
            for t, text in step_loss["tasks"].items()}


def history(receipt: dict, path: Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one metric, every time it was logged."""
    return [(s, float(m[metric])) for s, m in steps(receipt, path) if metric in m]
