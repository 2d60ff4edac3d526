"""Screenshots of the MLflow UI on a store: the runs table with the hetmtl tags, and one training run.

    .venv/bin/python scripts/mlflow_ui_screenshot.py --store mlflow.db --suite demo --out /tmp/mlflow-ui.png

writes three PNGs:

* ``--out``: the experiment's runs table (model-training view), every parent
  run expanded, columns Run Name, Created, Duration, the tags ``--tags``
  (default method, setting, group, seed, hetmtl.kind, suite) and the metrics
  ``--metrics`` (default test_acc/mean), the MLflow Assistant panel closed;
  ``--filter`` puts a search filter in the search box (default none: all runs);
* ``<out>-run.png`` (``--run-out``): one training run's page, Overview tab, its
  tags, parameters and metrics (``--run ID``, default the first training run
  by name);
* ``<out>-run-artifacts.png``: that run's Artifacts tab, ``train.log`` open.

How: copies the SQLite store (the server may migrate it; the original is left
as it is) with its ``mlruns/`` folder beside it (a run whose artifact URI is an
absolute ``file://`` path, as the pipeline's are, is still read from that
path: the Artifacts tab shows it), starts ``mlflow server`` on the
copy on a free 127.0.0.1 port, and drives headless Chromium through the
DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages on file
descriptors 3 and 4, nothing but the standard library and the Chromium
binary; no browser automation package, nothing downloaded). The page state
comes from MLflow's own browser storage, written before the UI's scripts run
(``Page.addScriptToEvaluateOnNewDocument``), as a user's earlier visit would
have left it (keys read in MLflow 3.17's UI bundle,
``mlflow/server/js/build/static/js``):

* ``MLflowLocalStorage-1.1-ExperimentPage-["<id>"]-ReactComponentState``: the
  experiment page's state, ``selectedColumns`` (``tags.`group```,
  ``metrics.`test_acc/mean``` ...), ``runsExpanded`` ({run id: true}) and the
  search facets (``searchFilter``, ``orderByKey`` ...);
* ``mlflow.assistant.panelOpen_v1 = false`` and
  ``mlflow.assistant.fab.autoOpenedOnFirstLoad_v1 = true``: the Assistant
  panel closed and not opened again on a first visit.

The URL carries ``workflowType=machine_learning``: MLflow 3.17's UI picks GenAI
or model training by its global switch (top left; the URL's ``workflowType``,
else the browser's last choice, GenAI at first), not by the experiment's
``mlflow.experimentKind`` tag. ``--plain`` captures only ``/#/experiments/<id>``
as a first-time visitor sees it (no stored state, no run pages).
Each capture waits until the page shows what it should (rows, column headers,
the run's name, ``train.log``), then lets it settle ``--settle`` seconds; a
page that never does fails the script with the page's text. The server and
Chromium are stopped by their PIDs (process groups) at the end.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
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
from urllib.parse import quote

BIN = Path(sys.executable).parent
TAGS = "method,setting,group,seed,hetmtl.kind,suite"
METRICS = "test_acc/mean"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (one page)."""

    def __init__(self, binary: str, width: int, height: int):
        self.profile = tempfile.mkdtemp(prefix="hetmtl-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds() -> None:  # the child reads commands on fd 3 and answers on fd 4
            r, w = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)  # inheritable; every other descriptor of ours is closed on exec
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            close_fds=False, preexec_fn=fds, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf, self.next_id, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()}) during {method}")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait(self, expression: str, what: str, timeout: float, settle: float) -> None:
        deadline = time.time() + timeout
        while not self.eval(expression):
            if time.time() > deadline:
                text = self.eval("document.body ? document.body.innerText : ''") or ""
                raise RuntimeError(f"no {what} in {timeout:.0f} s; the page shows: {text[:1500]!r}")
            time.sleep(0.5)
        time.sleep(settle)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def screenshot(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:
            pass
        stop(self.proc)
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def column(kind: str, name: str) -> str:
    """A runs-table column key as the UI stores it (``tags.`group```)."""
    return f"{kind}.`{name}`"


def page_state(tags: list[str], metrics: list[str], expanded: list[str], search: str) -> dict:
    return {
        "selectedColumns": [column("tags", t) for t in tags] + [column("metrics", m) for m in metrics],
        # ag-grid column ids, as the UI saves them when a user drags or resizes a column
        "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", "duration"]
        + [column("tags", t) for t in tags] + [column("metrics", m) for m in metrics],
        "columnWidths": {"attributes.`Run Name`": 260, **{column("metrics", m): 150 for m in metrics}},
        "runsExpanded": {r: True for r in expanded},
        "runsPinned": [], "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
        "autoRefreshEnabled": False,
        # the UI nests child runs under their parent only when sorted by start time
        "searchFilter": search, "orderByKey": "attributes.start_time", "orderByAsc": False,
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs", "datasetsFilter": [],
    }


def seed_script(origin: str, storage: dict[str, str]) -> str:
    return (f"if (location.origin === {json.dumps(origin)}) {{ const s = {json.dumps(storage)};"
            " for (const k in s) window.localStorage.setItem(k, s[k]); }")


def js_text_has(*needles: str) -> str:
    return "(() => { const t = document.body ? document.body.innerText : ''; return " + \
        " && ".join(f"t.includes({json.dumps(n)})" for n in needles) + "; })()"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, type=Path, help="a SQLite MLflow store (mlflow.db)")
    ap.add_argument("--suite", default="demo", help="the experiment hetmtl-<suite>")
    ap.add_argument("--out", required=True, type=Path, help="the runs table's PNG")
    ap.add_argument("--run-out", type=Path, help="the run page's PNG (default <out>-run.png; its "
                    "artifacts tab beside it, <...>-artifacts.png)")
    ap.add_argument("--run", help="the training run to capture (default the first by name)")
    ap.add_argument("--tags", default=TAGS, help=f"tag columns, comma-separated (default {TAGS})")
    ap.add_argument("--metrics", default=METRICS, help=f"metric columns, comma-separated (default {METRICS})")
    ap.add_argument("--filter", default="", help='a search filter, e.g. \'tags.`hetmtl.kind` = "training"\'')
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--size", default="1800,1700", help="the window, WIDTH,HEIGHT")
    ap.add_argument("--timeout", type=float, default=120, help="seconds each page may take to show")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait once it shows")
    ap.add_argument("--plain", action="store_true", help="only /#/experiments/<id>, no stored state")
    args = ap.parse_args(argv)
    if not args.store.is_file():
        print(f"error: {args.store}: no such store", file=sys.stderr)
        return 1
    if not Path(args.chromium).exists():
        print(f"error: {args.chromium}: no Chromium there (--chromium PATH)", file=sys.stderr)
        return 1
    width, height = (int(v) for v in args.size.split(","))
    tags = [t for t in args.tags.split(",") if t]
    metrics = [m for m in args.metrics.split(",") if m]
    run_out = args.run_out or args.out.with_name(args.out.stem + "-run.png")
    artifacts_out = run_out.with_name(run_out.stem + "-artifacts.png")

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
    browser = None
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

        client = MlflowClient(url)
        exp = client.get_experiment_by_name(f"hetmtl-{args.suite}")
        if exp is None:
            print(f"error: {args.store}: no experiment hetmtl-{args.suite}", file=sys.stderr)
            return 1
        eid = exp.experiment_id
        runs = client.search_runs([eid], args.filter, max_results=5000)
        browser = Chromium(args.chromium, width, height)
        if args.plain:
            page = f"{url}/#/experiments/{eid}"
            browser.goto(page)
            browser.wait("document.querySelectorAll('button, a').length > 10", "page", args.timeout, 8)
            browser.screenshot(args.out)
            print(f"{args.out}: {page} (experiment kind: {exp.tags.get('mlflow.experimentKind', 'none')})")
            return 0

        parents = sorted({r.data.tags["mlflow.parentRunId"] for r in runs if "mlflow.parentRunId" in r.data.tags})
        storage = {
            f"MLflowLocalStorage-1.1-ExperimentPage-{json.dumps([eid])}-ReactComponentState":
                json.dumps(page_state(tags, metrics, parents, args.filter)),
            "mlflow.assistant.panelOpen_v1": "false",
            "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
        }
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=seed_script(url, storage))

        page = f"{url}/#/experiments/{eid}/runs?workflowType=machine_learning"
        if args.filter:
            page += "&searchFilter=" + quote(args.filter)
        browser.goto(page)
        first = min(runs, key=lambda r: r.info.run_name or "").info.run_name if runs else "Run Name"
        rows = min(len(runs), max(1, (height - 400) // 40))  # the table renders the rows in view
        browser.wait(f"({js_text_has(*metrics[:1], first)}) && "
                     f"document.querySelectorAll('.ag-center-cols-container .ag-row').length >= {rows}",
                     f"runs table with {rows} rows", args.timeout, args.settle)
        browser.screenshot(args.out)
        print(f"{args.out}: {page}: {len(runs)} runs, {len(parents)} parents expanded, "
              f"columns {', '.join(tags + metrics)}")

        training = sorted((r for r in runs if r.data.tags.get("hetmtl.kind") == "training"),
                          key=lambda r: r.info.run_name or "")
        if args.run:
            run = client.get_run(args.run)
        elif training:
            run = training[0]
        else:
            print("no training run: no run page captured")
            return 0
        rid, name = run.info.run_id, run.info.run_name
        run_page = f"{url}/#/experiments/{eid}/runs/{rid}?workflowType=machine_learning"
        browser.goto(run_page)
        browser.wait(js_text_has(name, *metrics[:1], "Parameters", "Tags"), f"run page of {name}", args.timeout,
                     args.settle)
        browser.screenshot(run_out)
        print(f"{run_out}: {run_page} ({name})")
        art_page = f"{url}/#/experiments/{eid}/runs/{rid}/artifacts/train.log?workflowType=machine_learning"
        browser.goto(art_page)
        browser.wait(js_text_has("train.log", "epoch"), f"train.log of {name}", args.timeout, args.settle)
        browser.screenshot(artifacts_out)
        print(f"{artifacts_out}: {art_page}")
        return 0
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if browser is not None:
            browser.close()
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
