"""Fault injection (issue 10): bit rot in prepared data, full and read-only disks,
and the one-line errors a user sees. Each case asserts the message and that
nothing complete-looking is left."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from conftest import small_suite
from hetmtl import files, paths
from hetmtl.data.prepare import prepare_task
from hetmtl.data.standins import write_standin
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
    from hetmtl.training import data

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
    from hetmtl.training import data

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
