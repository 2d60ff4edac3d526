"""Fault injection (issue 10): bit rot in prepared data, full and read-only disks,
and the one-line errors a user sees. Each case asserts the message and that
nothing complete-looking is left."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import small_suite
from hetmtl import files, paths
from hetmtl.data.prepare import prepare_task
from hetmtl.data.sources import write_standin
from hetmtl.files import IntegrityError, WriteError


@pytest.fixture()
def prepared_hd(project, params, monkeypatch, tmp_path_factory):
    """The tiny suite's task HD prepared from a small stand-in (``raw/``)."""
    source = params["sources"][params["tasks"]["HD"]["source"]]
    write_standin(source["layout"], project / "raw" / source["archive"], 6)
    suite = small_suite(params)
    monkeypatch.setattr(type(params), "suite", lambda self, name: suite)
    prepare_task(params, "tiny", "HD")
    return paths.prepared_images("tiny", "HD")


def test_a_flipped_byte_in_prepared_images_is_named_not_trained_on(prepared_hd, params):
    """One byte flipped, size and mtime kept (what bit rot does; Snakemake and DVC's
    hash cache see nothing): the job's load names the file and the command."""
    from hetmtl.data import tasks as data

    data._prepared.cache_clear()
    manifest = json.loads(paths.prepared_manifest("tiny", "HD").read_text())
    assert manifest["sha256"] == {"images.pt": files.sha256(prepared_hd)}
    data.load_task("tiny", "HD", torch.device("cpu"), params["split"], 0)  # intact: loads
    data._prepared.cache_clear()
    stat = prepared_hd.stat()
    raw = bytearray(prepared_hd.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    prepared_hd.write_bytes(bytes(raw))
    os.utime(prepared_hd, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(IntegrityError, match=r"images.pt: SHA-256 \w+ is not the \w+ recorded when it was written"
                                             r".*rebuild it: hetmtl prepare --suite tiny --task HD"):
        data.load_task("tiny", "HD", torch.device("cpu"), params["split"], 0)
    data._prepared.cache_clear()


def test_prepared_data_without_a_checksum_is_refused(prepared_hd, params):
    from hetmtl.data import tasks as data

    data._prepared.cache_clear()
    manifest_path = paths.prepared_manifest("tiny", "HD")
    manifest = json.loads(manifest_path.read_text())
    del manifest["sha256"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="no checksum of images.pt .*hetmtl prepare --suite tiny --task HD"):
        data.load_task("tiny", "HD", torch.device("cpu"), params["split"], 0)
    data._prepared.cache_clear()


@pytest.mark.parametrize("failure", ["enospc", "torch_full_disk"])
def test_a_full_disk_names_the_path_and_leaves_the_old_file(tmp_path, monkeypatch, failure):
    """A write that fails half-way: the message names the path and says the disk is
    full (torch says only "unexpected pos 64 vs 0"); the previous file is intact
    and no partial file is left."""
    path = tmp_path / "run" / "checkpoint.pt"
    files.save_torch(path, {"epoch": 1})
    before = path.read_bytes()

    def fail(obj, f, *a, **k):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", fail)
    if failure == "torch_full_disk":  # no errno: the space left decides, measured while the partial file
        part = path.with_name(path.name + ".part")  # still fills it (removing it frees the space)
        monkeypatch.setattr(files.shutil, "disk_usage",
                            lambda p: type("U", (), {"free": (10 if part.exists() else 500) * 2**20})())
    with pytest.raises(WriteError) as err:
        files.save_torch(path, {"epoch": 2})
    msg = str(err.value)
    assert msg.startswith(f"cannot write {path}: ") and "free space there" in msg, msg
    assert ("No space left on device" if failure == "enospc" else "no space left on the device") in msg
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_a_bug_in_a_writer_is_not_called_a_write_error(tmp_path):
    path = tmp_path / "table.csv"

    def buggy(tmp):
        tmp.write_text("half")
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        files.atomic_write(path, buggy)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_results_folder_is_named(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere: simulate the error the kernel gives others
        err = files.explain(tmp_path / "results" / "x.json", PermissionError(errno.EACCES, "Permission denied"))
    else:
        (tmp_path / "results").mkdir()
        (tmp_path / "results").chmod(0o500)
        with pytest.raises(WriteError) as exc:
            files.write_text(tmp_path / "results" / "x.json", "{}")
        err = str(exc.value)
    assert f"cannot write {tmp_path / 'results' / 'x.json'}: Permission denied" in err
    assert "make the folder writable" in err


def test_user_errors_are_one_line_and_debug_shows_the_traceback(project, capsys):
    """An unknown archive state (the tiny suite's archives are missing here) ends in
    one line naming the path, exit status 1; --debug raises with the traceback."""
    from hetmtl.cli import main

    assert main(["prepare", "--suite", "tiny", "--task", "HD"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "EnglishHnd.tgz" in err
    with pytest.raises(Exception) as exc:
        main(["--debug", "prepare", "--suite", "tiny", "--task", "HD"])
    assert "EnglishHnd.tgz" in str(exc.value)


def test_a_read_only_path_from_the_os_is_explained_by_the_cli(project, capsys, monkeypatch):
    from hetmtl import cli

    def refuse(args):
        raise PermissionError(errno.EROFS, "Read-only file system", str(project / "results" / "tiny"))

    monkeypatch.setattr(cli, "cmd_aggregate", refuse)
    assert cli.main(["aggregate", "--suite", "tiny"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: cannot use {project / 'results' / 'tiny'}: Read-only file system"
                   f"{err[err.index(';'):]}") and "its folder writable" in err and err.count("\n") == 1


def test_a_second_process_waits_for_the_job_lock(tmp_path):
    """Two processes never train one job at once: the second waits for the lock
    (released by the kernel when its holder exits, even by kill -9)."""
    import subprocess
    import sys
    import time

    from hetmtl import files

    lock = tmp_path / "seed0.lock"
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from hetmtl import files\n"
            "with files.lock(sys.argv[1], 'job'):\n    print(time.time(), flush=True)\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    with files.lock(lock, "job"):
        other = subprocess.Popen([sys.executable, "-c", code, str(lock), src], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert other.poll() is None  # still waiting
        released = time.time()
    out, err = other.communicate(timeout=30)
    assert float(out) >= released and "another process holds" in err
    holder = subprocess.Popen([sys.executable, "-c", code.replace("print(time.time(), flush=True)",
                                                                  "print('in', flush=True); time.sleep(60)"),
                               str(lock), src], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "in"
    holder.kill()
    holder.wait()
    with files.lock(lock, "job"):  # free again at once
        pass


# --- the Snakefile's preflight (hetmtl/preflight.py) -------------------------------------------------------------


def _flip(path: Path) -> bytes:
    """Flip one bit in the middle of ``path``, size and mtime kept; the old bytes."""
    st = path.stat()
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    path.write_bytes(bytes(flipped))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return data


def test_preflight_names_a_folder_the_workflow_cannot_write(tmp_path, monkeypatch):
    from hetmtl import preflight

    (tmp_path / "results").mkdir()
    assert preflight.writable(tmp_path, ["results", "logs"]) == []
    if os.geteuid() == 0:  # root writes anywhere: the kernel's answer to others, for results/ only
        real = preflight._probe

        def probe(folder):
            if folder.name == "results":
                raise PermissionError(errno.EROFS, "Read-only file system", str(folder))
            real(folder)

        monkeypatch.setattr(preflight, "_probe", probe)
    else:
        (tmp_path / "results").chmod(0o500)
    [problem] = preflight.writable(tmp_path, ["results", "logs"])
    assert problem.startswith(f"cannot write {tmp_path / 'results'}: ") and "make the folder writable" in problem
    assert "(the workflow writes results/)" in problem


def test_preflight_names_an_archive_flipped_with_size_and_mtime_kept(project, params):
    from hetmtl import preflight

    suite = params.suite("tiny")
    source = params["sources"]["coil20_proc"]
    archive = project / suite["raw_dir"] / source["archive"]
    write_standin(source["layout"], archive, 6)
    assert preflight.verify_archives(params, "tiny", ["coil20_proc", "office31"])[0] == []  # office31 absent
    _flip(archive)
    problems, seconds, size = preflight.verify_archives(params, "tiny", ["coil20_proc", "office31"])
    assert size == archive.stat().st_size
    [line] = problems
    assert line.startswith(f"{suite['raw_dir']}/{source['archive']}: MD5 ") and "delete it and its .md5" in line


def test_preflight_names_every_real_archive_still_to_fetch(project, params):
    from hetmtl import preflight

    sources = sorted(params["sources"])
    missing = preflight.missing_archives(params, "paper", sources)
    assert len(missing) == len(sources) == 5
    for name in sources:
        assert any(params["sources"][name]["archive"] in m and params["sources"][name]["md5"] in m for m in missing)
    assert preflight.missing_archives(params, "tiny", sources) == []  # stand-ins are generated


def test_the_locks_of_a_killed_snakemake_are_released_and_a_live_ones_kept(tmp_path):
    """Snakemake's locks are removed only when no other Snakemake of the project
    is alive: each holds preflight.RUNNING shared for its life (here: processes
    doing what the Snakefile does), and the kernel drops it at kill -9."""
    import subprocess
    import sys

    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("x\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from hetmtl import preflight\n"
            "print(preflight.release_stale_locks(sys.argv[1]), flush=True); time.sleep(60)\n")
    live = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), src], stdout=subprocess.PIPE, text=True)
    assert "was killed" in live.stdout.readline()  # nobody alive: the stale lock goes
    assert list(locks.iterdir()) == []
    (locks / "0.input.lock").write_text("x\n")  # the live run's own lock
    second = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), src], stdout=subprocess.PIPE, text=True)
    assert second.stdout.readline().strip() == "None"  # another run is alive: left alone
    assert (locks / "0.input.lock").exists()
    live.kill(), live.wait()
    third = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), src], stdout=subprocess.PIPE, text=True)
    assert third.stdout.readline().strip() == "None"  # the second is still alive
    assert (locks / "0.input.lock").exists()
    second.kill(), second.wait(), third.kill(), third.wait()
    last = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), src], stdout=subprocess.PIPE, text=True)
    assert "was killed" in last.stdout.readline()  # every run that held it is dead
    assert list(locks.iterdir()) == []
    last.kill(), last.wait()


def test_the_error_line_of_each_failed_job_is_found_in_its_log(tmp_path):
    import time

    from hetmtl import preflight

    logs = tmp_path / "logs" / "tiny" / "fetch"
    logs.mkdir(parents=True)
    (logs / "old.log").write_text("error: from an earlier run\n")
    os.utime(logs / "old.log", (1, 1))
    (logs / "ok.log").write_text("ok data/x.zip\n")
    (logs / "a.log").write_text("downloading\nerror: office31: could not download x.tar.gz\n")
    (logs / "b.log").write_text("Traceback (most recent call last):\n  File x\nKeyError: 'y'\n")
    (logs / "c.log").write_text("a warning's traceback\nTraceback (most recent call last):\nValueError: x\nok done\n")
    assert preflight.job_errors(tmp_path, "tiny", time.time() - 60) == [
        "logs/tiny/fetch/a.log: error: office31: could not download x.tar.gz", "logs/tiny/fetch/b.log: KeyError: 'y'"]


# --- the same faults on a finished tiny run (conftest.py's tiny_run) ----------------------------------------------


def _run(cmd, cwd, **kw):
    import subprocess

    from conftest import e2e_env

    return subprocess.run(cmd, cwd=cwd, env=e2e_env(), capture_output=True, text=True, timeout=600, **kw)


def _bin(name: str) -> str:
    import sys

    return str(Path(sys.executable).parent / name)


SNAKEMAKE = ["--profile", "workflow/profiles/default", "--cores", "2", "--config", "suite=tiny"]


def test_an_archive_flipped_with_its_mtime_kept_stops_snakemake_before_any_job(tiny_run, params):
    proj = tiny_run[0]
    archive = proj / params.suite("tiny")["raw_dir"] / params["sources"]["chars74k_hnd"]["archive"]
    good = _flip(archive)
    try:
        proc = _run([_bin("snakemake"), "-n", *SNAKEMAKE], proj)
    finally:
        st = archive.stat()
        archive.write_bytes(good)
        os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert f"{archive.relative_to(proj)}: MD5 " in line and "Traceback" not in proc.stderr
    assert "Building DAG" not in proc.stdout + proc.stderr  # stopped before planning


@pytest.mark.slow  # a rerun or recovery on a copy of the tiny run: the slow tier (issue 33)
def test_kill_9_of_the_whole_snakemake_process_group_restarts_with_the_same_command(tiny_run, tmp_path, params,
                                                                                    monkeypatch):
    """Kill Snakemake and its jobs mid-training: the README's command, run again,
    finishes the work (no --unlock), and the store holds one FINISHED run per job."""
    import shutil
    import signal
    import subprocess
    import time

    from mlflow.tracking import MlflowClient

    from conftest import e2e_env

    proj = shutil.copytree(tiny_run[0], tmp_path / "p", symlinks=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cells = [dict(suite="tiny", group=g, setting="no_prior", method="mtal") for g in ("related",)]
    redo = [paths.run_dir(**c, seed=s) for c in cells for s in params.suite("tiny")["seeds"]]
    for run_dir in redo:
        shutil.rmtree(proj / run_dir)
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen([_bin("snakemake"), *SNAKEMAKE], cwd=proj, env=e2e_env(), stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while not list((proj / "results" / "tiny" / "checkpoints").rglob("seed*.pt")):  # a job is mid-training
        assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    log.close()
    assert any((proj / ".snakemake" / "locks").iterdir())
    again = _run([_bin("snakemake"), *SNAKEMAKE], proj)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "removed the locks of a Snakemake run that was killed" in again.stderr
    for run_dir in redo:
        assert (proj / run_dir / "receipt.json").exists()
    from hetmtl.params import load_params
    from hetmtl.tracking import rebuild

    assert rebuild.check(load_params(proj), "tiny", proj) > 0  # in this process: a `hetmtl` start costs seconds
    c = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    exp = c.get_experiment_by_name("hetmtl-tiny")
    finished = c.search_runs([exp.experiment_id], "tags.`hetmtl.kind` = 'training' and attributes.status = 'FINISHED'",
                             max_results=10000)
    keys = [tuple(r.data.tags.get(k) for k in ("group", "setting", "method", "seed", "sweep", "sweep_value"))
            for r in finished]
    assert len(keys) == len(set(keys))


@pytest.mark.slow  # a rerun or recovery on a copy of the tiny run: the slow tier (issue 33)
def test_adopting_snakemakes_outputs_into_dvc_leaves_both_tools_with_nothing_to_do(tiny_run, tmp_path):
    """The README's order: a finished `snakemake`, then `dvc commit -f`: DVC
    records the outputs without changing their mtimes, so Snakemake plans nothing."""
    import shutil

    proj = shutil.copytree(tiny_run[0], tmp_path / "p", symlinks=True)
    assert _run(["git", "init", "-q"], proj).returncode == 0
    assert _run([_bin("hetmtl"), "dvc-yaml", "--suite", "tiny"], proj).returncode == 0
    times = {p: p.stat().st_mtime_ns for d in ("data", "results", "reports") for p in (proj / d).rglob("*")
             if p.is_file()}
    commit = _run([_bin("dvc"), "commit", "-f"], proj)
    assert commit.returncode == 0, commit.stderr
    assert {p: p.stat().st_mtime_ns for p in times} == times
    planned = _run([_bin("snakemake"), "-n", *SNAKEMAKE], proj)
    assert "Nothing to be done" in planned.stdout + planned.stderr
    status = _run([_bin("dvc"), "status", "--json"], proj)
    assert json.loads(status.stdout) == {}


def test_run_job_trains_under_the_lock_beside_its_checkpoint(project, params, monkeypatch):
    import fcntl

    from hetmtl.training import job

    key = dict(suite="tiny", group="related", setting="no_prior", method="mtal", seed=0)
    lock = project / paths.checkpoint(**key).with_suffix(".lock")
    seen = []

    def train(*args):
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # held by run_job (another open file: flock conflicts)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append(args[0])
        return {"done": True}

    monkeypatch.setattr(job, "_train", train)
    run = SimpleNamespace(checkpoint=project / paths.checkpoint(**key), run=SimpleNamespace(
        run_name="mtal/seed0", parent="related/no_prior"))
    assert job.run_job(run) == {"done": True} and seen == [run]
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the job
    os.close(fd)


def test_a_job_is_finished_only_for_the_same_parameters_code_and_data(tmp_path):
    from hetmtl.training.job import finished

    receipt, model = tmp_path / "receipt.json", tmp_path / "model.pt"
    receipt.write_text(json.dumps({"job_digest": "j", "params_digest": "p", "run_id": "r"}))
    assert finished(receipt, model, "j", "p") is None  # no model: not finished
    model.write_bytes(b"m")
    assert finished(receipt, model, "j", "p")["run_id"] == "r"
    assert finished(receipt, model, "other code", "p") is None
    assert finished(receipt, model, "j", "other data or R") is None


def test_a_missing_input_names_the_command_that_makes_it(project, params, capsys):
    """A prepared task or a receipt that is not there: one line naming the file
    and the hetmtl command that makes it, not a bare 'No such file or directory'."""
    from hetmtl.cli import main
    from hetmtl.data import tasks as data

    data._prepared.cache_clear()
    with pytest.raises(files.MissingInput, match=r"data/prepared/tiny/HD/manifest.json: missing; make it with "
                                                 r"`hetmtl prepare --suite tiny --task HD`"):
        data.load_task("tiny", "HD", torch.device("cpu"), params["split"], 0)
    data._prepared.cache_clear()
    from hetmtl.reporting.aggregate import fig10_activations_conv1

    with pytest.raises(files.MissingInput, match=r"related/no_prior/mtal/seed0/model.pt: missing; make it with "
                                                 r"`hetmtl train --suite tiny --group related --setting no_prior "
                                                 r"--method mtal --seed 0`"):  # not an empty figure
        fig10_activations_conv1(params, "tiny", project, "fig10_activations_conv1", None)
    assert main(["aggregate", "--suite", "tiny"]) == 1
    err = capsys.readouterr().err
    key = params.runs("tiny")[0]
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {project / key.receipt}: missing; train its job first: "
                          f"`hetmtl train --suite tiny --group {key['group']} --setting {key['setting']} "
                          f"--method {key['method']} --seed {key['seed']}`"), err


def test_every_cli_option_has_help_and_the_version_is_printed(capsys):
    import argparse

    from hetmtl import __version__
    from hetmtl.cli import build_parser, main

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    undocumented = [f"{name} {' '.join(a.option_strings) or a.dest}"
                    for name, sp in [("hetmtl", parser), *subparsers.choices.items()]
                    for a in sp._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert undocumented == []
    assert all(sp.description for sp in subparsers.choices.values())
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"hetmtl {__version__}\n"
