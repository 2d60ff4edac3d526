"""Receipts: the small JSON each training job leaves as its DAG output.

A receipt names the MLflow run that holds the job's results; the tables read
exactly the runs the receipts name, so a stale or duplicate MLflow run never
leaks into a table. Written atomically, last, so a crashed job leaves none.
"""

from __future__ import annotations

import json
from pathlib import Path

from hetmtl import files


def write(path: Path, receipt: dict) -> None:
    files.write_text(path, json.dumps(receipt, indent=2, sort_keys=True) + "\n")


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())
