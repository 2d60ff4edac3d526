"""Shared fixtures: the project's params, small stand-in archives, fake task data."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch

from hetmtl.params import load_params

ROOT = Path(__file__).resolve().parents[1]
# One thread in the test process: the end-to-end runs of the session work beside
# the unit tests on the same two cores, and two threads each oversubscribe them.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def forkserver_dir(tmp_path_factory):
    """The fork servers that the tests' `hetmtl` commands start live in a folder
    of this session, and are stopped by their pids at its end."""
    import os

    from hetmtl import forkserver

    folder = tmp_path_factory.mktemp("fs")
    old = os.environ.get("HETMTL_FORKSERVER_DIR")
    os.environ["HETMTL_FORKSERVER_DIR"] = str(folder)
    yield folder
    forkserver.stop_all(folder)
    if old is None:
        os.environ.pop("HETMTL_FORKSERVER_DIR")
    else:
        os.environ["HETMTL_FORKSERVER_DIR"] = old


def e2e_env() -> dict:
    """The environment of the end-to-end commands: this venv's tools first, this
    checkout's code (whichever checkout installed last), the default MLflow store."""
    import os
    import sys

    bin_ = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT / "src"))
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def copy_project(dest: Path) -> Path:
    """What a fresh clone holds (tracked and untracked files git does not ignore)."""
    import shutil
    import subprocess

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def pytest_collection_modifyitems(session, config, items):
    """The tests that read the background runs go last (those of Snakemake's run,
    then those of DVC's, the longer): the other tests run while they work."""
    def rank(item):
        names = getattr(item, "fixturenames", ())
        return 2 if {"dvc_run", "dvc_full_run", "tune_dvc_run"} & set(names) else 1 if {
            "tiny_run", "backbone_run", "classfolder_run", "tune_run"} & set(names) else 0

    items.sort(key=rank)  # stable: the order within each rank is kept


class Background:
    """A command started in a copy of the project when the session starts; its
    output goes to files (a pipe nobody reads would fill and block it)."""

    def __init__(self, proj: Path, cmd: list[str], env: dict):
        import subprocess

        self.proj, self.cmd = proj, cmd
        self.out, self.err = proj / ".bg.out", proj / ".bg.err"
        self.started = time.time()
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=proj, env=env, stdout=out, stderr=err, text=True)

    def result(self, timeout: float = 900):
        """Wait for it; (project, seconds, CompletedProcess); an AssertionError if it failed."""
        import subprocess

        self.proc.wait(timeout=timeout)
        seconds = time.time() - self.started
        out, err = self.out.read_text(), self.err.read_text()
        self.out.unlink(), self.err.unlink()
        if self.proc.returncode != 0:
            raise AssertionError(f"{' '.join(self.cmd)} failed ({self.proc.returncode}):\n{out[-4000:]}\n{err[-4000:]}")
        return self.proj, seconds, subprocess.CompletedProcess(self.cmd, self.proc.returncode, out, err)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session", autouse=True)
def e2e_background(request, forkserver_dir, tmp_path_factory):
    """When the end-to-end tests are selected, their runs of the tiny suite start
    with the session, each in its own clean copy, and run beside the other tests
    (two cores: the unit tests, DVC's one stage at a time and Snakemake's jobs
    fill gaps that each leaves): {"snakemake": Background, "dvc": Background}."""
    import subprocess
    import sys

    def needs(item, fixture):
        if fixture in item.fixturenames:
            return True
        backbone = getattr(getattr(item, "callspec", None), "params", {}).get("backbone_run")
        return {"vgg_tiny": "tiny_run", "resnet18": "resnet18_run"}.get(backbone) == fixture

    wanted = {name for name, fixture in (("snakemake", "tiny_run"), ("dvc", "dvc_full_run"), ("dvc_small", "dvc_run"),
                                         ("resnet18", "resnet18_run"),
                                         ("classfolder", "classfolder_run"), ("tune", "tune_run"),
                                         ("tune_dvc", "tune_dvc_run"))
              if any(needs(item, fixture) for item in request.session.items)}
    bin_ = Path(sys.executable).parent
    env = e2e_env()
    runs = {}
    if "dvc" in wanted:
        proj = copy_project(tmp_path_factory.mktemp("dvcproj"))
        subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
        subprocess.run([str(bin_ / "hetmtl"), "dvc-yaml", "--suite", "tiny"], cwd=proj, env=env, check=True,
                       capture_output=True)
        runs["dvc"] = Background(proj, [str(bin_ / "dvc"), "repro"], env)
    if "dvc_small" in wanted:  # the default suite's run through DVC: a reduced tiny project (issue 33)
        proj = tune_project(copy_project(tmp_path_factory.mktemp("dvcsmall")), trials=0)
        subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
        subprocess.run([str(bin_ / "hetmtl"), "dvc-yaml", "--suite", "tiny"], cwd=proj, env=env, check=True,
                       capture_output=True)
        runs["dvc_small"] = Background(proj, [str(bin_ / "dvc"), "repro"], env)
    if "snakemake" in wanted:
        proj = copy_project(tmp_path_factory.mktemp("proj"))
        runs["snakemake"] = Background(proj, [str(bin_ / "snakemake"), "--profile", "workflow/profiles/default",
                                              "--cores", "2", "--config", "suite=tiny"], env)
    if "resnet18" in wanted:
        proj = resnet18_project(copy_project(tmp_path_factory.mktemp("resnet18")))
        runs["resnet18"] = Background(proj, [str(bin_ / "snakemake"), "--profile", "workflow/profiles/default",
                                             "--cores", "2", "--config", "suite=tiny"], env)
    if "classfolder" in wanted:
        from user_data import user_project

        proj = user_project(copy_project(tmp_path_factory.mktemp("classfolder")))
        runs["classfolder"] = Background(proj, [str(bin_ / "snakemake"), "--profile", "workflow/profiles/default",
                                                "--cores", "2", "--config", "suite=tiny"], env)
    if "tune_dvc" in wanted:  # the tuning stage through DVC (tests/test_tune.py)
        proj = tune_project(copy_project(tmp_path_factory.mktemp("tunedvc")))
        subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
        subprocess.run([str(bin_ / "hetmtl"), "dvc-yaml", "--suite", "tiny"], cwd=proj, env=env, check=True,
                       capture_output=True)
        runs["tune_dvc"] = Background(proj, [str(bin_ / "dvc"), "repro"], env)
    if "tune" in wanted:  # the tuning stage through Snakemake (tests/test_tune.py)
        proj = tune_project(copy_project(tmp_path_factory.mktemp("tune")))
        runs["tune"] = Background(proj, [str(bin_ / "snakemake"), "--profile", "workflow/profiles/default",
                                         "--cores", "2", "--config", "suite=tiny"], env)
    yield runs
    for background in runs.values():
        background.stop()


@pytest.fixture(scope="session")
def dvc_full_run(e2e_background):
    """`dvc repro` of the tiny suite from a clean copy, dvc.yaml written for tiny
    (started with the session): (project, seconds, CompletedProcess). DVC runs one
    stage at a time: the slow tier's (the reruns that compare it with Snakemake)."""
    return e2e_background["dvc"].result()


@pytest.fixture(scope="session")
def dvc_run(e2e_background):
    """`dvc repro` of a reduced tiny project from a clean copy (:func:`tune_project`
    without trials: one group of two tasks, the shared methods and MTAL, one table),
    dvc.yaml written for it (started with the session): the default suite's end-to-end
    run through DVC (issue 33: the full tiny DAG, one stage at a time, is the slow
    tier's :func:`dvc_full_run`). (project, seconds, CompletedProcess)."""
    return e2e_background["dvc_small"].result()


def resnet18_project(proj: Path) -> Path:
    """The tiny suite on ``backbone: resnet18`` (11M parameters per task), its grid
    reduced in this copy so that it fits the default suite on two cores (the full
    tiny DAG on ResNet-18 ran past 600 s): one group of a grayscale and a colour
    task (HD, Art) with its two tables, every method of both settings, no sweeps,
    no readings, 8 images per class."""
    import yaml

    path = proj / "params" / "suites" / "tiny.yaml"
    suite = yaml.safe_load(path.read_text())
    suite["suite"].update(backbone="resnet18", readings=False, sweeps={}, images_per_class=8)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    grid_path = proj / "params" / "grid.yaml"
    grid = yaml.safe_load(grid_path.read_text())
    grid["sweeps"] = {}
    grid["groups"] = {"unrelated": {**grid["groups"]["unrelated"], "tasks": ["HD", "Art"]}}
    grid["tables"] = {k: t for k, t in grid["tables"].items() if t["group"] in grid["groups"]}
    grid["relations"]["given"] = {k: v for k, v in grid["relations"]["given"].items() if k in grid["groups"]}
    grid_path.write_text(yaml.safe_dump(grid, sort_keys=False))
    one_claim(proj, "table5")
    return proj


@pytest.fixture(scope="session")
def tune_run(e2e_background):
    """`snakemake` of the tiny suite reduced for tuning (:func:`tune_project`, 2 trials
    per cell; started with the session): (project, seconds, CompletedProcess)."""
    return e2e_background["tune"].result()


@pytest.fixture(scope="session")
def tune_dvc_run(e2e_background):
    """`dvc repro` of the same project (:func:`tune_project`), dvc.yaml written for it:
    (project, seconds, CompletedProcess)."""
    return e2e_background["tune_dvc"].result()


@pytest.fixture(scope="session")
def resnet18_run(e2e_background):
    """`snakemake` of the tiny suite on ResNet-18 (:func:`resnet18_project`, started
    with the session): (project, seconds, CompletedProcess)."""
    return e2e_background["resnet18"].result()


@pytest.fixture(scope="session")
def classfolder_run(e2e_background):
    """`snakemake` of the tiny suite on a user's class-folder group (tests/user_data.py,
    started with the session): (project, seconds, CompletedProcess)."""
    return e2e_background["classfolder"].result()


@pytest.fixture()
def backbone_run(request):
    """The end-to-end run of the tiny suite on the backbone ``request.param``:
    ``vgg_tiny`` (the suite as it is) or ``resnet18``."""
    return request.getfixturevalue({"vgg_tiny": "tiny_run", "resnet18": "resnet18_run"}[request.param])


@pytest.fixture(scope="session")
def tiny_run(e2e_background):
    """`snakemake` of the tiny suite from a clean copy (started with the session):
    (project, seconds, CompletedProcess)."""
    return e2e_background["snakemake"].result()


@pytest.fixture(scope="session")
def params():
    return load_params(ROOT)


def project_marker(root: Path) -> Path:
    """The file that makes a folder a project root for ``hetmtl.params.find_root``."""
    marker = root / "workflow" / "Snakefile"
    marker.parent.mkdir(parents=True, exist_ok=True)
    return marker


@pytest.fixture()
def project(tmp_path, monkeypatch, params):
    """A scratch project folder (params copied) as the working directory."""
    import shutil

    shutil.copytree(ROOT / "params", tmp_path / "params")
    project_marker(tmp_path).write_text("# marker for find_root\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def small_suite(params, name="tiny", images_per_class=6, raw_dir="raw") -> dict:
    s = copy.deepcopy(params.suite(name))
    s["images_per_class"] = images_per_class
    s["raw_dir"] = raw_dir
    return s


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory, params):
    """Every source's stand-in archive at 6 images per class (generated once)."""
    from hetmtl.data.sources import write_standin

    folder = tmp_path_factory.mktemp("standins")
    for source in params["sources"].values():
        write_standin(source["layout"], folder / source["archive"], 6)
    return folder


def fake_task(name: str, channels: int, classes: int, n: int = 24, size: int = 16, seed: int = 0):
    """A separable toy task: the class sets the brightness and stripe period."""
    from hetmtl.data.tasks import TaskData

    g = torch.Generator().manual_seed(seed)
    x, y = {}, {}
    cols = torch.arange(size)
    for split, count in [("train", n), ("val", n // 2), ("test", n // 2)]:
        labels = torch.arange(count) % classes
        img = torch.randint(0, 60, (count, channels, size, size), generator=g)
        for c in range(classes):
            stripes = ((cols // (c + 1)) % 2) * 40
            img[labels == c] += 50 * c + stripes.view(1, 1, 1, size)
        x[split], y[split] = img.clamp(0, 255).to(torch.uint8), labels
    return TaskData(name, channels, classes, x, y, {"source_md5": "0" * 32})


@pytest.fixture()
def toy_tasks():
    return [fake_task("g1", 1, 3, seed=1), fake_task("c1", 3, 4, seed=2), fake_task("g2", 1, 3, seed=3)]


def tune_project(proj: Path, trials: int = 2) -> Path:
    """The tiny suite reduced to what the tuning stage needs (tests/test_tune.py):
    one group of two grayscale tasks (HD, a), the shared methods (single_task, deep
    with nothing of its own to search; mtda, closed form) and MTAL without prior,
    one table, no sweeps, no readings, 8 images per class, ``trials`` tune trials."""
    import yaml

    path = proj / "params" / "suites" / "tiny.yaml"
    suite = yaml.safe_load(path.read_text())
    suite["suite"].update(readings=False, sweeps={}, images_per_class=8,
                          tune={"trials": trials, "seed": 0, "epochs": 2})
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    grid_path = proj / "params" / "grid.yaml"
    grid = yaml.safe_load(grid_path.read_text())
    grid["sweeps"] = {}
    grid["groups"] = {"related": {**grid["groups"]["related"], "tasks": ["HD", "a"]}}
    grid["settings"] = {"no_prior": {"methods": ["mtal"]}}
    grid["readings"] = [r for r in grid["readings"] if r["setting"] == "no_prior"]
    grid["tables"] = {k: t for k, t in grid["tables"].items() if t["group"] == "related" and t["setting"] == "no_prior"}
    grid["relations"]["given"] = {}
    grid_path.write_text(yaml.safe_dump(grid, sort_keys=False))
    report_path = proj / "params" / "report.yaml"
    report = yaml.safe_load(report_path.read_text())
    report["report"]["reference"] = {"no_prior": "mtal"}
    report["report"]["sharing"] = ["mtal"]
    report_path.write_text(yaml.safe_dump(report, sort_keys=False))
    one_claim(proj, "table3")
    return proj


def one_claim(proj: Path, table: str) -> None:
    """Keep the one claim a reduced grid can check: C2 (MTAL beats the other rows) on ``table``."""
    import yaml

    claims_path = proj / "params" / "claims.yaml"
    claims = yaml.safe_load(claims_path.read_text())
    claims["claims"]["items"] = {"C2": {**claims["claims"]["items"]["C2"], "tables": [table]}}
    claims_path.write_text(yaml.safe_dump(claims, sort_keys=False))
def outcome(result: dict) -> dict:
    """A fit's result without its wall time (``train_step_s``): what two runs of one seed share."""
    return {k: v for k, v in result.items() if k != "train_step_s"}
