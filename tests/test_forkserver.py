"""The fork server (hetmtl/forkserver.py): a command run through it behaves as
the same command run in its own process: output, exit status, working folder,
environment; its server follows the code; it is only an optimisation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import project_marker
from hetmtl import forkserver

ROOT = Path(__file__).resolve().parents[1]
HETMTL = str(Path(sys.executable).parent / "hetmtl")


IDLE = "8"  # seconds: the shared server outlives the gaps between one test's calls


def hetmtl(args, cwd, folder, **env):
    full = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HETMTL_FORKSERVER_DIR=str(folder),
                HETMTL_FORKSERVER_IDLE=IDLE, **env)
    return subprocess.run([HETMTL, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One server folder for the module: a server started by one test serves the
    next while it lives (starting one imports torch and MLflow: seconds of CPU)."""
    path = tmp_path_factory.mktemp("fs")
    yield path
    forkserver.stop_all(path)


BAD = ["prepare", "--suite", "tiny", "--task", "NoSuchTask"]


def test_a_command_through_the_server_is_the_command_in_its_own_process(project, tmp_path, folder):
    # In their own processes first (seconds each): the server's idle clock starts after.
    alone = hetmtl(BAD, project, folder, HETMTL_FORKSERVER="0")
    other = tmp_path / "other"  # another project (params edited): its own answer
    for f in (project / "params").rglob("*.yaml"):
        dest = other / f.relative_to(project)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(f.read_text())
    project_marker(other).write_text("# marker\n")
    y = other / "params" / "datasets.yaml"
    y.write_text(y.read_text().replace("selection_seed:", "selection_seed: -1 #", 1))
    other_alone = hetmtl(BAD, other, folder, HETMTL_FORKSERVER="0")
    assert other_alone.stderr != alone.stderr

    served = hetmtl(BAD, project, folder)  # starts the server (or uses this module's)
    assert list(folder.glob("*.pid")), "no server was started"
    assert (served.returncode, served.stdout, served.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert served.returncode == 2 and "NoSuchTask" in served.stderr
    # The child sees the caller's environment (not the server's): the trace asked
    # for by this call only; and works in the caller's folder.
    traced = hetmtl(BAD, project, folder, HETMTL_FORKSERVER_TRACE="1")
    first, _, rest = traced.stderr.partition("\n")
    assert first.startswith("[hetmtl] forked by the server") and rest == alone.stderr
    b = hetmtl(BAD, other, folder, HETMTL_FORKSERVER_TRACE="1")
    assert b.stderr.startswith("[hetmtl] forked by the server")
    assert (b.returncode, b.stderr.partition("\n")[2]) == (other_alone.returncode, other_alone.stderr)


def test_the_server_follows_the_code_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("HETMTL_FORKSERVER_DIR", str(tmp_path))
    key = forkserver.code_key()
    pkg = tmp_path / "pkg"
    import shutil

    shutil.copytree(forkserver.PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(forkserver, "PACKAGE", pkg)
    assert forkserver.code_key() == key
    mod = pkg / "methods" / "mtal.py"
    mod.write_text(mod.read_text() + "\n# an edit\n")
    assert forkserver.code_key() != key  # an edited module: another server, never a stale one
    monkeypatch.setenv("HETMTL_FORKSERVER", "0")
    assert not forkserver.enabled("train")
    monkeypatch.delenv("HETMTL_FORKSERVER")
    assert forkserver.enabled("train") and not forkserver.enabled("check-params")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert not forkserver.enabled("train")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_a_killed_command_kills_its_child(project, params, folder):
    """The job's process is what Snakemake and DVC kill: its child must die too.
    The child is held inside `prepare`, opening an archive that is a FIFO no one
    writes to; the trace names its pid."""
    from hetmtl.paths import raw_archive

    suite = params.suite("tiny")
    archive = project / raw_archive(suite, params["sources"][params["tasks"]["HD"]["source"]])
    archive.parent.mkdir(parents=True)
    os.mkfifo(archive)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HETMTL_FORKSERVER_DIR=str(folder),
               HETMTL_FORKSERVER_IDLE=IDLE, HETMTL_FORKSERVER_TRACE="1")
    child = None
    try:
        proc = subprocess.Popen([HETMTL, "prepare", "--suite", "tiny", "--task", "HD"], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        assert line.startswith("[hetmtl] forked by the server"), line + proc.stderr.read()
        child = int(line.split(" as ")[1].split()[0])
        time.sleep(0.5)
        assert _alive(child) and proc.poll() is None  # held in open()
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while _alive(child) and time.time() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the server's child outlived the killed command"
    finally:
        if child is not None and _alive(child):
            os.kill(child, 9)


def test_an_idle_server_stops(project, folder):
    """The server (this module's, or one this call starts) exits IDLE seconds after
    its last request, removing its pid file and socket."""
    hetmtl(BAD, project, folder)
    pid_files = list(folder.glob("*.pid"))
    assert pid_files, "no server was started"
    pid = int(pid_files[0].read_text())
    started = time.time()
    while _alive(pid) and time.time() - started < 30:
        time.sleep(0.1)
    assert not _alive(pid) and not list(folder.glob("*.pid")) and not list(folder.glob("*.sock"))
