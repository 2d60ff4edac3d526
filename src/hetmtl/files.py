"""Writing and verifying files: atomically, with errors that name the path.

Every file the pipeline makes is written to ``<name>.part`` and moved into place
when complete (flushed to disk first), so a crash, a kill, a power cut or a full
disk never leaves a complete-looking file. A failed write raises
:class:`WriteError` naming the path, the reason and the space left there: torch
reports a full disk as "unexpected pos 64 vs 0", without a path or "no space
left"."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from hetmtl.errors import UserError

LOW_SPACE = 64 * 2**20  # bytes: below this a failed write is put down to a full disk
WRITE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)  # explained by explain()


class WriteError(UserError, RuntimeError):
    """A file could not be written; the message names it and what to do."""


class IntegrityError(UserError, RuntimeError):
    """A file's checksum is not the one recorded when it was written."""


class MissingInput(UserError, FileNotFoundError):
    """A file a step reads is not there; the message names it and the command that makes it."""


def require(path: Path | str, make: str) -> Path:
    """``path`` if it exists, else :class:`MissingInput` naming it and ``make``,
    the command that makes it (instead of a bare "No such file or directory")."""
    path = Path(path)
    if not path.exists():
        raise MissingInput(f"{path}: missing; make it with `{make}` (or let snakemake / `dvc repro` run it)")
    return path


def _free(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.exists():
            with contextlib.suppress(OSError):
                return shutil.disk_usage(folder).free
    return None


def explain(path: Path, exc: BaseException, action: str = "write") -> str:
    """One line for a failed ``action`` ("write", or "use" when it is not known
    whether a read or a write failed) of ``path``."""
    free = _free(Path(path).parent)
    code = getattr(exc, "errno", None)
    reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = ("make the folder writable (or run from a copy of the project where it is)" if action == "write"
                  else "check that it is readable and its folder writable")
    elif code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < LOW_SPACE):
        reason = f"no space left on the device ({reason})" if code not in (errno.ENOSPC, errno.EDQUOT) else reason
        advice = "free space there, then rerun (finished jobs are kept)"
    else:
        advice = "check the path, then rerun"
    space = f"; {free / 2**20:.0f} MiB free there" if free is not None else ""
    return f"cannot {action} {path}: {reason}{space}; {advice}"


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` writes the content to a temporary path, which then replaces
    ``path``; on any failure the temporary file is removed, ``path`` is left as it
    was, and :class:`WriteError` says why."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        _fsync(tmp)  # on disk before it gets the name: a power cut leaves the old file or the new one
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as exc:
        # explained before the partial file goes: removing it frees the space it filled
        message = explain(path, exc) if _is_write_error(exc) else None
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if message is None:  # a bug in the writer, or an interrupt: as it is
            raise
        raise WriteError(message) from exc
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_write_error(exc: BaseException) -> bool:
    """An OS error, or torch's errno-less failure to write (a full disk: "unexpected
    pos 64 vs 0", "file write failed")."""
    return isinstance(exc, OSError) or (
        isinstance(exc, RuntimeError) and any(s in str(exc) for s in ("unexpected pos", "write failed")))


def write_text(path: Path | str, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_torch(path: Path | str, obj) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_verified(path: Path | str, expected: str, rebuild: str) -> bytes:
    """``path``'s bytes, read once; :class:`IntegrityError` if their SHA-256 is not
    ``expected`` (``rebuild``: the command that makes the file again)."""
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise IntegrityError(f"{path}: SHA-256 {actual} is not the {expected} recorded when it was written "
                             f"(the file changed on disk); rebuild it: {rebuild}")
    return data


__all__ = [
    "WRITE_ERRNOS", "IntegrityError", "MissingInput", "WriteError", "require",
    "atomic_write", "explain", "save_torch", "read_verified", "sha256", "write_text",
]


@contextlib.contextmanager
def lock(path: Path, what: str):
    """Hold an exclusive lock on ``path`` (created if missing) while in the block;
    wait, saying so, while another process holds it. The kernel frees it when
    its holder dies, so a killed job never leaves it locked."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[hetmtl] {what}: another process holds {path}; waiting for it", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without flock (some NFS, Lustre without -o flock)
            if exc.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                raise
            print(f"[hetmtl] {what}: {path}: no file locks on this file system ({exc.strerror}); "
                  "going on without", file=sys.stderr, flush=True)
        yield
    finally:
        os.close(fd)
