"""Gather the run records behind the tables.

Only the MLflow runs named by the receipts of the current grid are read, so a
stale or duplicate run in the store never reaches a table. The metrics come
from MLflow (not from the receipt), so the tables show what was logged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hetmtl import paths
from hetmtl.tracking import receipts
from hetmtl.tracking.mlflow_store import client, retry


class RecordError(RuntimeError):
    """A receipt and its MLflow run disagree, or a run is missing."""


def collect(params, suite: str, root: Path) -> pd.DataFrame:
    """Long records: one row per (run, metric) of the suite's grid."""
    c = client(root)
    rows = []
    for key in params.runs(suite):
        path = root / paths.receipt(**key)
        receipt = receipts.read(path)
        run = retry(lambda: c.get_run(receipt["run_id"]))
        tags = run.data.tags
        for field in ("suite", "group", "setting", "method", "seed"):
            if tags.get(field) != str(key[field]):
                raise RecordError(f"{path}: MLflow run {receipt['run_id']} has {field}={tags.get(field)!r}, "
                                  f"the receipt says {key[field]!r}")
        if run.info.status != "FINISHED":
            raise RecordError(f"{path}: MLflow run {receipt['run_id']} is {run.info.status}, not FINISHED")
        for metric, value in run.data.metrics.items():
            rows.append({**key, "run_id": receipt["run_id"], "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=["suite", "group", "setting", "method", "seed", "run_id", "metric", "value"])
