"""Screenshot of the MLflow UI on a store: what a user sees opening the experiment.

    .venv/bin/python scripts/mlflow_ui_screenshot.py --store mlflow.db --suite demo --out /tmp/mlflow-ui.png

Copies the SQLite store (the server may migrate it; the original is left as it
is) with its ``mlruns/`` folder beside it, starts ``mlflow server`` on the copy
on a free 127.0.0.1 port, finds the suite's experiment id through the MLflow
client, and has headless Chromium capture ``/#/experiments/<id>/runs?workflowType=machine_learning``.
MLflow 3.17's UI picks GenAI or model training by its global switch (top left;
the URL's ``workflowType``, else the browser's last choice, GenAI at first), not
by the experiment's ``mlflow.experimentKind`` tag: ``--plain`` captures
``/#/experiments/<id>`` as a first-time visitor sees it.
The server is stopped by its PID (its process group) at the end.
"""

from __future__ import annotations

import argparse
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

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, type=Path, help="a SQLite MLflow store (mlflow.db)")
    ap.add_argument("--suite", default="demo", help="the experiment hetmtl-<suite>")
    ap.add_argument("--out", required=True, type=Path, help="the PNG to write")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--size", default="1600,1000")
    ap.add_argument("--plain", action="store_true", help="the experiment's URL without workflowType")
    args = ap.parse_args(argv)
    if not args.store.is_file():
        print(f"error: {args.store}: no such store", file=sys.stderr)
        return 1
    if not Path(args.chromium).exists():
        print(f"error: {args.chromium}: no Chromium there (--chromium PATH)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="hetmtl-ui-"))
    db = work / "mlflow.db"
    shutil.copy2(args.store, db)
    if (args.store.parent / "mlruns").is_dir():
        shutil.copytree(args.store.parent / "mlruns", work / "mlruns", symlinks=True)
    port = free_port()
    log = work / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
                                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                  cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if server.poll() is not None or time.time() > deadline:
                print(f"error: mlflow server did not start: {log.read_text()[-2000:]}", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        from mlflow.tracking import MlflowClient

        exp = MlflowClient(url).get_experiment_by_name(f"hetmtl-{args.suite}")
        if exp is None:
            print(f"error: {args.store}: no experiment hetmtl-{args.suite}", file=sys.stderr)
            return 1
        page = f"{url}/#/experiments/{exp.experiment_id}"
        if not args.plain:
            from urllib.parse import quote

            # the README's filter for the tables' runs, in the search box
            page += "/runs?workflowType=machine_learning&searchFilter=" + quote('tags.`hetmtl.kind` = "training"')
        profile = tempfile.mkdtemp(prefix="hetmtl-chromium-")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={args.out.resolve()}",
                               f"--window-size={args.size}", "--virtual-time-budget=15000", page],
                              capture_output=True, text=True, timeout=300)
        shutil.rmtree(profile, ignore_errors=True)
        if shot.returncode != 0 or not args.out.exists():
            print(f"error: chromium failed ({shot.returncode}): {shot.stderr[-1500:]}", file=sys.stderr)
            return 1
        print(f"{args.out}: {page} (experiment kind: {exp.tags.get('mlflow.experimentKind', 'none')})")
        return 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
