"""MLflow logging (SPEC section 7).

One experiment per suite (``hetmtl-<suite>``), created once before training
jobs fan out (``hetmtl init-tracking``), with one parent run per (group,
setting) and every training job a nested run under it, tagged with suite,
group, setting, method, seed, the git commit and the data MD5s. The default
store is SQLite (``mlflow.db`` at the project root); ``MLFLOW_TRACKING_URI``
points it anywhere else, e.g. an ``mlflow server`` shared by a cluster.

SQLite allows one writer at a time; parallel jobs retry a locked database
instead of losing a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

from hetmtl import files
from hetmtl.paths import experiment_marker

T = TypeVar("T")


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(root))


def retry(fn: Callable[[], T], attempts: int = 12) -> T:
    """Call ``fn``, retrying while the SQLite store is locked by another job."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(0.2 * 2 ** min(i, 5))
    raise AssertionError("unreachable")


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def init_experiment(root: Path, suite: str, parents: list[tuple[str, str]]) -> dict:
    """Create the suite's experiment and parent runs; write the marker file."""
    c = client(root)
    name = f"hetmtl-{suite}"
    exp = retry(lambda: c.get_experiment_by_name(name))
    exp_id = exp.experiment_id if exp else retry(lambda: c.create_experiment(name, tags={"suite": suite}))
    marker = {"tracking_uri": tracking_uri(root), "experiment_id": exp_id, "experiment": name, "parents": {}}
    # A parent run that exists is reused (the oldest of its name), so running this
    # again (a group added, the marker lost) writes the same ids for the same
    # parents and nothing downstream looks changed.
    existing = {}
    for run in retry(lambda: c.search_runs([exp_id], "tags.`hetmtl.kind` = 'group'", max_results=10000,
                                           order_by=["attributes.start_time DESC"])):
        existing[run.info.run_name] = run.info.run_id
    for group, setting in parents:
        name_ = f"{group}/{setting}"
        if name_ not in existing:
            run = retry(lambda: c.create_run(exp_id, run_name=name_,
                                             tags={"suite": suite, "group": group, "setting": setting,
                                                   "hetmtl.kind": "group", "git_commit": git_commit(root)}))
            retry(lambda: c.set_terminated(run.info.run_id))
            existing[name_] = run.info.run_id
        marker["parents"][name_] = existing[name_]
    files.write_text(root / experiment_marker(suite), json.dumps(marker, indent=2) + "\n")
    return marker


class RunLogger:
    """One training job's MLflow run: params and tags once, metrics per epoch."""

    def __init__(self, root: Path, marker: dict, key: dict, tags: dict, params: dict,
                 run_id: str | None = None, parent: str | None = None, run_name: str | None = None):
        self.c = client(root)
        if run_id is None:
            parent_id = marker["parents"][parent or f"{key['group']}/{key['setting']}"]
            all_tags = {**{k: str(v) for k, v in key.items()}, **tags,
                        "mlflow.parentRunId": parent_id, "hetmtl.kind": "training"}
            name = run_name or f"{key['method']}/seed{key['seed']}"
            run = retry(lambda: self.c.create_run(marker["experiment_id"], run_name=name, tags=all_tags))
            run_id = run.info.run_id
            flat = [(k, str(v)[:6000]) for k, v in sorted(_flatten(params).items())]
            from mlflow.entities import Param

            for i in range(0, len(flat), 100):
                batch = [Param(k, v) for k, v in flat[i:i + 100]]
                retry(lambda: self.c.log_batch(run_id, params=batch))
        else:
            retry(lambda: self.c.update_run(run_id, status="RUNNING"))
        self.run_id = run_id

    def log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        retry(lambda: self.c.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, path: Path) -> None:
        retry(lambda: self.c.log_artifact(self.run_id, str(path)))

    def finish(self, status: str = "FINISHED") -> None:
        retry(lambda: self.c.set_terminated(self.run_id, status=status))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
