"""Tests that start services (marker `services`, not in the default run:
`python -m pytest -m services tests/test_services.py`).

An `mlflow server` on a real database: a PostgreSQL cluster made in a scratch
folder (initdb, pg_ctl on a free 127.0.0.1 port, its socket in the folder), the
server on it, and the README's commands logging a tiny job into it through
MLFLOW_TRACKING_URI. Both daemons are stopped by their PIDs."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import copy_project, e2e_env

pytestmark = pytest.mark.services

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url}: no answer in {seconds} s: {log.read_text()[-3000:]}")


@pytest.fixture()
def postgres():
    """A PostgreSQL cluster of its own: ``postgresql://hetmtl@127.0.0.1:<port>/mlflow``.
    initdb refuses root, so as root the cluster belongs to the user ``postgres``."""
    if not PG_BIN:
        pytest.skip("PostgreSQL binaries absent (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    bin_ = Path(PG_BIN[-1])
    folder = Path(tempfile.mkdtemp(prefix="hetmtl-pg-"))  # not under pytest's root-only tmp
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*as_user, str(bin_ / "initdb"), "-D", str(data), "-A", "trust", "-U", "hetmtl"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log"), "-w",
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        subprocess.run([str(bin_ / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "hetmtl", "mlflow"],
                       check=True, capture_output=True)
        yield f"postgresql://hetmtl@127.0.0.1:{port}/mlflow"
    finally:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        deadline = time.time() + 60
        while time.time() < deadline and _alive(pid):
            time.sleep(0.2)
        assert not _alive(pid), f"postgres {pid} did not stop"
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture()
def mlflow_server(postgres, tmp_path):
    """``mlflow server`` on the PostgreSQL store, artifacts proxied to a scratch folder."""
    port = free_port()
    log = tmp_path / "mlflow-server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", postgres,
                                 "--artifacts-destination", str(tmp_path / "artifacts"),
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: its own session, by its PID
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_jobs_log_into_an_mlflow_server_on_postgresql(mlflow_server, tmp_path):
    """The README's commands with MLFLOW_TRACKING_URI at the server: the experiment
    (model-training kind), the job's run FINISHED with its tags, curves and log."""
    from mlflow.tracking import MlflowClient

    proj = copy_project(tmp_path / "proj")
    env = {**e2e_env(), "MLFLOW_TRACKING_URI": mlflow_server}
    tasks = ["HD", "a", "Typographic", "A"]  # the related group
    for cmd in (["fetch", "--suite", "tiny"],
                ["prepare", "--suite", "tiny", *[a for t in tasks for a in ("--task", t)]],
                ["init-tracking", "--suite", "tiny"],
                ["train", "--suite", "tiny", "--group", "related", "--setting", "no_prior", "--method", "mtal",
                 "--device", "cpu", "--no-progress"],
                ["tracking", "check", "--suite", "tiny"]):
        proc = subprocess.run([str(BIN / "hetmtl"), *cmd], cwd=proj, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"hetmtl {' '.join(cmd)}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    assert "holds all 1 runs" in proc.stdout
    assert not (proj / "mlflow.db").exists()  # nothing went to the default store
    c = MlflowClient(mlflow_server)
    exp = c.get_experiment_by_name("hetmtl-tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    receipt = json.loads((proj / "results/tiny/runs/related/no_prior/mtal/seed0/receipt.json").read_text())
    assert receipt["tracking_uri"] == mlflow_server
    run = c.get_run(receipt["run_id"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["hetmtl.kind"], tags["method"], tags["mlflow.source.name"]) == ("training", "mtal", "hetmtl train")
    assert tags["mlflow.user"] and tags["mlflow.source.git.commit"]
    assert [m.step for m in c.get_metric_history(run.info.run_id, "sharing/conv1_1")] == [1, 2]
    assert [a.path for a in c.list_artifacts(run.info.run_id)] == ["train.log"]
    log = Path(c.download_artifacts(run.info.run_id, "train.log", str(tmp_path)))
    assert [line.split(" | ")[0] for line in log.read_text().splitlines() if line.startswith("epoch")] == \
        ["epoch 1/2", "epoch 2/2"]
    assert (tmp_path / "artifacts").is_dir()  # the server stored it (artifact proxy)


def test_ui_screenshot_shows_runs_table_and_run_page(tmp_path):
    """scripts/mlflow_ui_screenshot.py on a small store logged here (a parent run, a
    nested training run with the hetmtl tags, a metric and train.log): three PNGs."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    import mlflow

    store = tmp_path / "mlflow.db"
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    eid = client.create_experiment("hetmtl-ui", artifact_location=(tmp_path / "mlruns").as_uri())
    parent = client.create_run(eid, run_name="related/prior", tags={"group": "related", "setting": "prior",
                                                                      "hetmtl.kind": "group"})
    child = client.create_run(eid, run_name="mtal/seed0", tags={
        "mlflow.parentRunId": parent.info.run_id, "group": "related", "setting": "prior", "method": "mtal",
        "seed": "0", "hetmtl.kind": "training"})
    client.log_metric(child.info.run_id, "test_acc/mean", 0.5)
    client.log_param(child.info.run_id, "epochs", 2)
    log = tmp_path / "train.log"
    log.write_text("epoch 1/2 | train_loss A=1.0\n")
    client.log_artifact(child.info.run_id, str(log))
    for run in (child, parent):
        client.set_terminated(run.info.run_id)
    out = tmp_path / "shots" / "ui.png"
    script = Path(__file__).parents[1] / "scripts" / "mlflow_ui_screenshot.py"
    r = subprocess.run([sys.executable, str(script), "--store", str(store), "--suite", "ui", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for png in (out, out.with_name("ui-run.png"), out.with_name("ui-run-artifacts.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, png
