"""Re-log a lost or damaged MLflow store from the receipts, and check a store
against them.

Every job writes what it logged into its receipt (training and sweep runs) or
its relations detail (``results/<suite>/relations/<group>.json``);
:func:`rebuild` logs each such run again, under the same experiment and parent
names, with the same tags, params and metrics at the same steps, tagged
``hetmtl.rebuilt_from`` (the receipt) and ``hetmtl.original_run_id``, with the
artifacts its record names (``train.log``, ``model.pt``) logged again from the
receipt's folder where they are still on disk; the run it
replaces, if any, is superseded. A run the store already holds FINISHED (by its
id or its original id) with the receipt's metrics is skipped, so a rebuild can
be run again. The receipts are not rewritten: Snakemake and DVC see
nothing changed, and the tables (built from the receipts) stay identical.

:func:`check` says, for every receipt, whether the store holds its run FINISHED
with the same metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

from hetmtl import paths
from hetmtl.errors import UserError
from hetmtl.tracking import receipts
from hetmtl.tracking.mlflow_store import (
    JOB_KINDS,
    client,
    ensure_experiment,
    log_metrics,
    log_new_run,
    log_series,
    retry,
    run_kind,
    supersede,
)
from hetmtl.tracking.receipts import step_loss_series


class StoreMismatch(UserError, RuntimeError):
    """The store lacks runs the receipts hold, or shows other metrics."""


def run_records(params, suite: str, root: Path) -> list[tuple[Path, str, dict]]:
    """``(file, run_id, record)`` of every run on disk for the suite's grid:
    training and sweep receipts, and the relations details."""
    out = []
    receipt_files = [root / run.receipt for run in params.runs(suite) + params.sweep_runs(suite)]
    for path in receipt_files:
        if path.exists():
            r = receipts.read(path)
            out.append((path, r["run_id"], receipts.record(r, path)))
    for group in params["groups"]:
        detail = root / paths.relations_detail(suite, group)
        if detail.exists():
            d = json.loads(detail.read_text())
            if "record" in d:
                out.append((detail, d.get("run_id", ""), d["record"]))
    return out


def _store_runs(c, experiment_id: str) -> dict[str, object]:
    """FINISHED job runs (training, sweep, relations) of the experiment by id and by original id."""
    runs = retry(lambda: c.search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=50000))
    found = {}
    for r in runs:
        if r.data.tags.get("hetmtl.kind") not in JOB_KINDS:
            continue
        found[r.info.run_id] = r
        if "hetmtl.original_run_id" in r.data.tags:
            found[r.data.tags["hetmtl.original_run_id"]] = r
    return found


def _same(run, rec: dict, path: Path) -> bool:
    """Whether a store run shows the metrics a record holds."""
    return {k: float(v) for k, v in run.data.metrics.items()} == receipts.latest_metrics({"record": rec}, path)


def _artifacts(path: Path, rec: dict) -> list[Path]:
    """The files a run logged: a relations run its detail and heatmap; a job
    run those its record names (beside its receipt)."""
    if path.suffix == ".json" and path.name != "receipt.json":
        return [path, path.with_suffix(".png")]
    return [path.parent / name for name in rec.get("artifacts", [])]


def rebuild(params, suite: str, root: Path) -> dict:
    """Log every run on disk that the store lacks; returns counts."""
    records = run_records(params, suite, root)
    exp = ensure_experiment(root, suite, [f"{g}/{s}" for g, s in params.tracking_parents()])
    c = client(root)
    present = _store_runs(c, exp["experiment_id"])
    logged = 0
    for path, run_id, rec in records:
        if run_id and run_id in present and _same(present[run_id], rec, path):
            continue  # the store shows what the receipt holds
        # the kind from the tags: older code tagged sweep and relations runs `training`
        tags = {**rec["tags"], "hetmtl.kind": run_kind(rec["tags"]),
                "hetmtl.rebuilt_from": path.relative_to(root).as_posix()}
        if run_id:
            tags["hetmtl.original_run_id"] = run_id
        new = log_new_run(c, exp, rec["parent"], rec["run_name"], tags, rec["params"])
        for entry in rec["history"]:
            log_metrics(c, new, {k: v for k, v in entry.items() if k != "epoch"}, int(entry["epoch"]))
        log_metrics(c, new, rec["final"], int(rec["final_step"]))
        if "step_loss" in rec:
            log_series(c, new, step_loss_series(rec["step_loss"]))
        for artifact in _artifacts(path, rec):
            if artifact.exists():
                retry(c.log_artifact, new, str(artifact))
        retry(c.set_terminated, new, status="FINISHED")
        supersede(c, exp["experiment_id"], rec["tags"], new)
        logged += 1
    return {"experiment": exp["experiment"], "experiment_id": exp["experiment_id"],
            "runs_on_disk": len(records), "logged": logged, "tracking_uri": exp["tracking_uri"]}


def check(params, suite: str, root: Path) -> int:
    """Raise :class:`StoreMismatch` unless the store holds every run on disk,
    FINISHED, with the metrics its receipt records; returns the count."""
    records = run_records(params, suite, root)
    exp = ensure_experiment(root, suite, [])
    present = _store_runs(client(root), exp["experiment_id"])
    missing, differ = [], []
    for path, run_id, rec in records:
        run = present.get(run_id)
        if run is None:
            missing.append(path.relative_to(root).as_posix())
            continue
        if not _same(run, rec, path):
            differ.append(path.relative_to(root).as_posix())
    if missing or differ:
        parts = []
        if missing:
            parts.append(f"{len(missing)} run(s) missing or not FINISHED ({', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''})")
        if differ:
            parts.append(f"{len(differ)} run(s) with other metrics than their receipt ({', '.join(differ[:3])}"
                         f"{' ...' if len(differ) > 3 else ''})")
        raise StoreMismatch(f"the MLflow store {exp['tracking_uri']} differs from the receipts of suite {suite}: "
                            + "; ".join(parts) + f"; run `hetmtl tracking rebuild --suite {suite}`")
    return len(records)
