"""MLflow logging (protocol section 7).

One experiment per suite (``hetmtl-<suite>``), created once before training
jobs fan out (``hetmtl init-tracking``), with one parent run per (group,
setting) and every training job a nested run under it, tagged with suite,
group, setting, method, seed, the git commit and the data MD5s. The default
store is SQLite (``mlflow.db`` at the project root); ``MLFLOW_TRACKING_URI``
points it anywhere else, e.g. an ``mlflow server`` shared by a cluster.

The experiment is tagged a model-training experiment (``mlflow.experimentKind``),
so the MLflow UI opens it on its runs, not on the GenAI pages (traces); every
run carries its source (``mlflow.source.*``: the ``hetmtl`` command, the git
commit) and user, which the UI shows as Source, Version and User, and a
``hetmtl.kind`` (:data:`KINDS`) that tells a table's runs from the others.
Artifacts of a SQLite store go to ``mlruns/`` beside the database.

SQLite allows one writer at a time; parallel jobs retry a locked database
instead of losing a run. The store is a view: every job's receipt holds what it
logged, the tables are built from the receipts, and ``hetmtl tracking rebuild``
re-logs a lost or damaged store from them (:mod:`hetmtl.tracking.rebuild`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hetmtl import files, paths
from hetmtl.errors import UserError
from hetmtl.paths import experiment_marker
from hetmtl.runs import RunId

T = TypeVar("T")


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


# What the MLflow UI reads to open an experiment on its runs (its "model
# training" view) rather than on traces and evaluations (mlflow/server/js:
# ExperimentKind.CUSTOM_MODEL_DEVELOPMENT); without it, MLflow 3 opens GenAI.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"

# hetmtl.kind of a run: `training` a run of a table's grid cell, `sweep` a
# sweep point, `relations` a group's R, `aggregate` the tables' run, `group` a
# parent run. The job kinds are those one job logs (RunLogger), one FINISHED run each.
KINDS = ("training", "sweep", "relations", "aggregate", "group", "tune", "tune_trial")
JOB_KINDS = ("training", "sweep", "relations")

# The command that logs runs in this process (cli.main sets it): the runs' Source.
SOURCE = {"name": "hetmtl"}


def set_source(name: str) -> None:
    SOURCE["name"] = name


def run_kind(tags: dict) -> str:
    """The ``hetmtl.kind`` of a job's run from its tags: a sweep point has a
    ``sweep`` tag, a relations run the method ``relations``."""
    if tags.get("method") == "relations":
        return "relations"
    return "sweep" if "sweep" in tags else "training"


def source_tags(root: Path, commit: str | None = None) -> dict:
    """MLflow's own tags for where a run comes from: the UI's Source (the
    ``hetmtl`` command), Version (the commit) and User columns."""
    import getpass

    commit = commit or git_commit(root)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return {"mlflow.source.name": SOURCE["name"], "mlflow.source.type": "LOCAL", "mlflow.user": user,
            "mlflow.source.git.commit": commit.removesuffix("-dirty")}


def client(root: Path):
    """The store's client; every run it creates carries :func:`source_tags`
    (the aggregation's run too), tags given by the caller winning."""
    from mlflow.tracking import MlflowClient

    class Client(MlflowClient):
        def create_run(self, experiment_id, start_time=None, tags=None, run_name=None):
            given = dict(tags or {})
            tags = {**source_tags(root, given.get("git_commit")), **given}
            return super().create_run(experiment_id, start_time=start_time, tags=tags, run_name=run_name)

    return retry(lambda: Client(tracking_uri=tracking_uri(root)))  # opening the store reads it


def artifact_location(root: Path) -> str | None:
    """``mlruns/`` beside a SQLite store's file (not wherever the process runs);
    a server's own default (its artifact proxy) otherwise."""
    uri = tracking_uri(root)
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()


class StoreError(UserError, RuntimeError):
    """The MLflow store cannot be read: a damaged or foreign file."""


# SQLite's words for a file that is not (or no longer) a database
DAMAGED = ("malformed", "file is not a database", "no such table")


def retry(fn: Callable[..., T], *args, attempts: int = 12, **kwargs) -> T:
    """Call ``fn(*args, **kwargs)``, retrying while the SQLite store is locked by
    another job; a damaged store is named with the way to recover it."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            text = str(exc).lower()
            if any(d in text for d in DAMAGED):
                raise StoreError(
                    f"the MLflow store {tracking_uri(Path.cwd())} is damaged ({str(exc).splitlines()[0][:120]}): "
                    "move it aside and run `hetmtl tracking rebuild --suite <suite>` for each suite; the receipts "
                    "under results/ hold every run, and the tables are built from them") from None
            if "locked" not in text or i == attempts - 1:
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


def experiment_name(suite: str) -> str:
    return f"hetmtl-{suite}"


def ensure_experiment(root: Path, suite: str, parents: list[str]) -> dict:
    """The suite's experiment and the named parent runs (``group/setting``), found
    by name and created when missing; returns their ids. Nothing downstream keeps
    an id: a store rebuilt from the receipts (:mod:`hetmtl.tracking.rebuild`)
    gets new ids and every job finds its experiment and parent again by name."""
    c = client(root)
    name = experiment_name(suite)
    exp = retry(lambda: c.get_experiment_by_name(name))
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made by older code: the UI opened GenAI
            retry(lambda: c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND))
        existing = _parents(c, exp.experiment_id)
        if all(p in existing for p in parents):
            return _ids(root, name, exp.experiment_id, existing, parents)
    # Something to create: one process of this project at a time (jobs started in
    # parallel after the store was lost would each create the experiment or a parent).
    with files.lock(Path(root) / paths.store_lock(), f"MLflow experiment {name}"):
        return _create(root, c, suite, name, parents)


def _parents(c, exp_id: str) -> dict[str, str]:
    """The experiment's parent runs by name (the oldest of a name)."""
    existing = {}
    for run in retry(lambda: c.search_runs([exp_id], "tags.`hetmtl.kind` = 'group'", max_results=10000,
                                           order_by=["attributes.start_time DESC"])):
        existing[run.info.run_name] = run.info.run_id
    return existing


def _ids(root: Path, name: str, exp_id: str, existing: dict, parents: list[str]) -> dict:
    return {"experiment": name, "experiment_id": exp_id, "tracking_uri": tracking_uri(root),
            "parents": {p: existing[p] for p in parents}}


def _create(root: Path, c, suite: str, name: str, parents: list[str]) -> dict:
    exp = retry(lambda: c.get_experiment_by_name(name))
    exp_id = exp.experiment_id if exp else retry(lambda: c.create_experiment(
        name, artifact_location=artifact_location(root),
        tags={"suite": suite, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))
    # A parent run that exists is reused (the oldest of its name).
    existing = _parents(c, exp_id)
    for name_ in parents:
        if name_ not in existing:
            group, setting = name_.split("/", 1)
            run = retry(c.create_run, exp_id, run_name=name_,
                        tags={"suite": suite, "group": group, "setting": setting,
                              "hetmtl.kind": "group", "git_commit": git_commit(root)})
            retry(c.set_terminated, run.info.run_id)
            existing[name_] = run.info.run_id
    return _ids(root, name, exp_id, existing, parents)


def init_experiment(root: Path, suite: str, parents: list[tuple[str, str]]) -> dict:
    """Create the suite's experiment and parent runs; write the marker file.

    The marker (the DAG's "tracking is ready" file) names the experiment and its
    parents, not their ids: its content depends on params/ only, so re-creating
    the store never makes Snakemake or DVC retrain anything."""
    names = [f"{g}/{s}" for g, s in parents]
    ids = ensure_experiment(root, suite, names)
    files.write_text(root / experiment_marker(suite),
                     json.dumps({"experiment": ids["experiment"], "parents": names}, indent=2) + "\n")
    return ids


# The tags that name a run's job: two FINISHED runs never share them (RunLogger.finish).
# `hetmtl.checkout` keeps clones that share an `mlflow server` from superseding
# each other's runs.
KEY_TAGS = ("suite", "group", "setting", "method", "seed", "sweep", "sweep_value", "hetmtl.checkout")


def checkout(root: Path) -> str:
    """This checkout's id: random, made once in ``results/.hetmtl-checkout``, so a
    clone has its own and a moved or copied project keeps its own."""
    import uuid

    path = Path(root) / paths.checkout_id()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        tmp.write_text(uuid.uuid4().hex + "\n")
        try:
            os.link(tmp, path)  # atomic, and only the first of jobs racing here wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


class RunLogger:
    """One job's MLflow run: params and tags once, metrics per epoch.

    It also keeps what it logged (:meth:`record`), which the job writes into its
    receipt: the receipts alone rebuild the tables and the store."""

    def __init__(self, root: Path, run: RunId, tags: dict, params: dict, run_id: str | None = None):
        self.c = client(root)
        self.parent = run.parent
        self.run_name = run.run_name
        self.tags = {**run.tags, **tags, "hetmtl.checkout": checkout(root)}
        self.tags["hetmtl.kind"] = run_kind(self.tags)
        self.params = {k: str(v)[:6000] for k, v in flatten(params).items()}
        self.experiment = ensure_experiment(root, run.suite, [self.parent])
        self.resumed = False
        self.artifacts: list[str] = []  # names of the files logged, for the record
        if run_id is not None:
            try:
                retry(lambda: self.c.update_run(run_id, status="RUNNING"))
                self.resumed = True
            except Exception as exc:  # noqa: BLE001 - the store lost the run (deleted, rebuilt): log a new one
                if getattr(exc, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
                    raise
                run_id = None
        if run_id is None:
            run_id = log_new_run(self.c, self.experiment, self.parent, self.run_name, self.tags, self.params)
        self.run_id = run_id

    def log_metrics(self, metrics: dict, step: int) -> None:
        log_metrics(self.c, self.run_id, metrics, step)

    def log_artifact(self, path: Path) -> None:
        retry(lambda: self.c.log_artifact(self.run_id, str(path)))
        self.artifacts.append(Path(path).name)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run; a FINISHED run supersedes every older FINISHED run of the
        same job (a rerun, or a job that outlived a killed Snakemake): those are
        marked KILLED with the tag ``hetmtl.superseded_by``, so the store never
        holds two FINISHED runs of one job."""
        retry(lambda: self.c.set_terminated(self.run_id, status=status))
        if status == "FINISHED":
            supersede(self.c, self.experiment["experiment_id"], self.tags, self.run_id)

    def log_step_loss(self, step_loss: dict) -> None:
        """The training loss per optimisation step (receipts.step_loss_record) as ``step_loss/<task>``."""
        from hetmtl.tracking.receipts import step_loss_series

        log_series(self.c, self.run_id, step_loss_series(step_loss))

    def record(self, history: list[dict], final: dict, final_step: int, step_loss: dict | None = None) -> dict:
        """What this run logged, for its receipt: name, parent, tags, params, the
        metrics per step (``history``: ``{"epoch": step, ...}``) and the final
        metrics (logged at ``final_step``), the training loss per optimisation step
        (``step_loss``, deep methods) and the artifacts' file names (files
        beside the receipt, which a rebuild logs again)."""
        out = {"run_name": self.run_name, "parent": self.parent, "tags": self.tags, "params": self.params,
               "history": history, "final": final, "final_step": final_step, "artifacts": list(self.artifacts)}
        if step_loss is not None:
            out["step_loss"] = step_loss
        return out


def log_new_run(c, experiment: dict, parent: str, run_name: str, tags: dict, params: dict) -> str:
    return log_nested_run(c, experiment["experiment_id"], experiment["parents"][parent], run_name, tags, params)


def log_nested_run(c, experiment_id: str, parent_id: str, run_name: str, tags: dict, params: dict) -> str:
    """A new run under the run ``parent_id``, with its tags and params (values as strings)."""
    all_tags = {**tags, "mlflow.parentRunId": parent_id}
    run = retry(lambda: c.create_run(experiment_id, run_name=run_name, tags=all_tags))
    log_batch_params(c, run.info.run_id, params)
    return run.info.run_id


def log_batch_params(c, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    flat = sorted(params.items())
    for i in range(0, len(flat), 100):
        retry(c.log_batch, run_id, params=[Param(k, v) for k, v in flat[i:i + 100]])


def log_metrics(c, run_id: str, metrics: dict, step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    for i in range(0, len(batch), 500):
        part = batch[i:i + 500]
        retry(c.log_batch, run_id, metrics=part)


def log_series(c, run_id: str, series: dict[str, list[tuple[int, float]]]) -> None:
    """Metrics at many steps each (the per-step training loss), in batches of MLflow's limit."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, int(step)) for k, points in series.items() for step, v in points]
    for i in range(0, len(batch), 1000):
        retry(c.log_batch, run_id, metrics=batch[i:i + 1000])


def supersede(c, experiment_id: str, tags: dict, run_id: str) -> list[str]:
    """Mark every other FINISHED job run (:data:`JOB_KINDS`; a store of older
    code tagged them all ``training``) with the same job tags as ``run_id``
    KILLED, tagged ``hetmtl.superseded_by``; returns their ids."""
    query = " and ".join([f"tags.`{k}` = '{tags[k]}'" for k in KEY_TAGS if k in tags]
                         + ["attributes.status = 'FINISHED'"])
    old = [r.info.run_id for r in retry(lambda: c.search_runs([experiment_id], query, max_results=10000))
           if r.info.run_id != run_id and r.data.tags.get("hetmtl.kind") in JOB_KINDS
           and all(k in tags or k not in r.data.tags for k in KEY_TAGS)]
    for rid in old:
        retry(c.set_tag, rid, "hetmtl.superseded_by", run_id)
        retry(c.set_terminated, rid, status="KILLED")
    return old


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
