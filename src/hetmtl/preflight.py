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
* :func:`release_stale_locks`: a Snakemake run killed with ``kill -9`` leaves
  its locks; the next run removes them when no other Snakemake of the project is
  alive (each holds a shared flock for its life, which the kernel drops when it
  dies), so restarting needs no ``--unlock``. A live run's locks are never touched;
* :func:`job_errors`: after a failure, the ``error:`` line of every job log
  written by this run, so the reason shows without ``--show-failed-logs``.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path

from hetmtl.data.archives import md5sum
from hetmtl.files import explain
from hetmtl.paths import raw_archive


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
        archive = raw_archive(suite, source)
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
        archive = raw_archive(suite, source)
        if not archive.exists() and "urls" in source:  # not a user's own (class-folder) source
            out.append(f"{archive} (MD5 {source['md5']}, from {source['urls'][0]})")
    return out


# Held by every main Snakemake process of this project for its whole life (shared),
# released by the kernel when it dies, kill -9 included.
RUNNING = Path(".snakemake") / "hetmtl-running.lock"
_held: list[int] = []  # the descriptor, kept open for the life of the process
NO_FLOCK = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK)  # a file system without flock (some NFS, Lustre)


def release_stale_locks(root: Path) -> str | None:
    """Remove Snakemake's locks when no other Snakemake of this project is alive;
    a message if it did. Every main process holds :data:`RUNNING` shared for its
    whole life; only a process that can take it exclusively (nobody else holds
    it: the run that left the locks is dead) removes them, then it too holds it
    shared. Where the file system has no flock, nothing is removed."""
    import fcntl

    path = Path(root) / RUNNING
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    _held.append(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another Snakemake of this project is alive: its locks are real
        fcntl.flock(fd, fcntl.LOCK_SH)
        return None
    except OSError as exc:
        if exc.errno in NO_FLOCK:
            return None
        raise
    locks = Path(root) / ".snakemake" / "locks"
    stale = sorted(locks.iterdir()) if locks.is_dir() else []
    for lock in stale:
        lock.unlink(missing_ok=True)
    fcntl.flock(fd, fcntl.LOCK_SH)  # from now on, ours are the live ones
    if not stale:
        return None
    return ("removed the locks of a Snakemake run that was killed; its incomplete jobs rerun "
            "(rerun-incomplete), its finished jobs are kept")


def job_errors(root: Path, suite: str, since: float) -> list[str]:
    """``<log>: <error line>`` for every job log of the suite written since ``since``."""
    out = []
    for log in sorted((Path(root) / "logs" / suite).rglob("*.log")):
        if log.stat().st_mtime < since:
            continue
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        if not errors and lines and re.match(r"[\w.]+(Error|Exception|Interrupt)\b", lines[-1]):
            errors = lines[-1:]  # a traceback's last line: a bug, or a tool's own error
        if errors:
            out.append(f"{log.relative_to(root)}: {errors[-1][:400]}")
    return out
