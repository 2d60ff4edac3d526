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
    what MLflow shows as the run's metrics."""
    best: dict[str, tuple[int, float]] = {}
    for step, metrics in steps(receipt, path):
        for k, v in metrics.items():
            if k not in best or step >= best[k][0]:
                best[k] = (step, float(v))
    return {k: v for k, (_, v) in best.items()}


def history(receipt: dict, path: Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one metric, every time it was logged."""
    return [(s, float(m[metric])) for s, m in steps(receipt, path) if metric in m]
