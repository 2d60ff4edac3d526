"""What the Snakefile checks before Snakemake plans anything, and says when it fails.

Run by the main Snakemake process only (not by the jobs it submits), so a
failure is one line naming the path and what to do, before any job starts:

* :func:`writable`: every folder the DAG writes is writable (a read-only
  ``results/`` is named, instead of Snakemake's own traceback mid-run);
* :func:`verify_archives`: every source archive present in ``raw_dir`` still
  has the MD5 recorded when it was fetched or generated, on every run, dry runs
  included: bit rot with size and mtime kept, which neither Snakemake's mtimes
  nor DVC's hash cache notice, is named (cost: one MD5 pass over the archives,
  measured in the README);
* :func:`missing_archives`: the archives the fetch jobs still have to get,
  named together (a plain ``snakemake`` without ``--keep-going`` stops at the
  first failed job);
* :func:`release_stale_locks` and :func:`record_owner`: a Snakemake run killed
  with ``kill -9`` leaves its locks; the next run removes them when the run that
  took them is dead (its PID and start time, recorded by the Snakefile's
  ``onstart``, on this host), so restarting needs no ``--unlock``. A live run's
  locks are never touched;
* :func:`job_errors`: after a failure, the ``error:`` line of every job log
  written by this run, so the reason shows without ``--show-failed-logs``.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

from hetmtl.data.archives import md5sum
from hetmtl.files import explain

OWNER = Path(".snakemake") / "hetmtl-lock-owner.json"


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: the kernel's answer, root and
    read-only mounts included (``os.access`` says yes to root)."""
    with tempfile.TemporaryFile(dir=folder, prefix=".hetmtl-probe-"):
        pass


def writable(root: Path, folders: list[str]) -> list[str]:
    """One line per folder the workflow writes that cannot be written (the folder,
    or the nearest existing folder above it)."""
    problems = []
    for rel in folders:
        path = Path(root) / rel
        probe = next((p for p in (path, *path.parents) if p.is_dir()), None)
        if probe is None:
            continue
        try:
            _probe(probe)
        except OSError as exc:
            problems.append(explain(probe, exc) + f" (the workflow writes {rel}/)")
    return problems


def _recorded_md5(suite: dict, source: dict, archive: Path) -> str | None:
    sidecar = archive.with_name(archive.name + ".md5")
    if sidecar.exists():
        return sidecar.read_text().split()[0]
    return source.get("md5") if suite["data"] == "real" else None


def verify_archives(params, suite_name: str, sources: list[str]) -> tuple[list[str], float, int]:
    """(one line per present archive whose MD5 is not the recorded one, seconds, bytes hashed)."""
    suite = params.suite(suite_name)
    started, size, problems = time.perf_counter(), 0, []
    for name in sources:
        source = params["sources"][name]
        archive = Path(suite["raw_dir"]) / source["archive"]
        want = _recorded_md5(suite, source, archive) if archive.exists() else None
        if want is None:
            continue
        size += archive.stat().st_size
        actual = md5sum(archive)
        if actual != want:
            problems.append(f"{archive}: MD5 {actual} is not the recorded {want}: the archive changed on disk "
                            f"since it was {'generated' if suite['data'] == 'standin' else 'fetched'}; delete it "
                            f"and its .md5, then rerun (the fetch job gets it again, and every job whose data "
                            f"it changes reruns)")
    return problems, time.perf_counter() - started, size


def missing_archives(params, suite_name: str, sources: list[str]) -> list[str]:
    """The real archives not yet in raw_dir, each with its MD5 and where it goes."""
    suite = params.suite(suite_name)
    if suite["data"] != "real":
        return []
    out = []
    for name in sources:
        source = params["sources"][name]
        archive = Path(suite["raw_dir"]) / source["archive"]
        if not archive.exists():
            out.append(f"{archive} (MD5 {source['md5']}, from {source['urls'][0]})")
    return out


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_owner(root: Path) -> None:
    """Called from ``onstart`` (the run holds the locks): who holds them."""
    path = Path(root) / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "started": _started(os.getpid()),
                                "host": socket.gethostname()}) + "\n")


def release_stale_locks(root: Path) -> str | None:
    """Remove the locks of a dead Snakemake run of this host; a message if it did."""
    locks = Path(root) / ".snakemake" / "locks"
    owner_file = Path(root) / OWNER
    if not locks.is_dir() or not any(locks.iterdir()) or not owner_file.exists():
        return None
    try:
        owner = json.loads(owner_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if owner.get("host") != socket.gethostname() or owner.get("started") is None:
        return None  # another host's run (a shared file system), or no way to tell: leave it
    if _started(int(owner["pid"])) == owner["started"]:
        return None  # alive: its locks are real
    for lock in locks.iterdir():
        lock.unlink(missing_ok=True)
    owner_file.unlink(missing_ok=True)
    return (f"removed the locks of a Snakemake run that was killed (pid {owner['pid']}); "
            "its incomplete jobs rerun (rerun-incomplete), its finished jobs are kept")


def job_errors(root: Path, suite: str, since: float) -> list[str]:
    """``<log>: <error line>`` for every job log of the suite written since ``since``."""
    out = []
    for log in sorted((Path(root) / "logs" / suite).rglob("*.log")):
        if log.stat().st_mtime < since:
            continue
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        if errors or (lines and "Traceback" in "\n".join(lines)):
            out.append(f"{log.relative_to(root)}: {(errors or lines)[-1][:400]}")
    return out
