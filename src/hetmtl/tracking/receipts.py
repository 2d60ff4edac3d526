"""Receipts: the small JSON each training job leaves as its DAG output.

A receipt names the MLflow run that holds the job's results; the tables read
exactly the runs the receipts name, so a stale or duplicate MLflow run never
leaks into a table. Written atomically, last, so a crashed job leaves none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write(path: Path, receipt: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())
