"""Archive access: checksums, and safe reading of tar and zip members.

Nothing is ever extracted to disk: prepare reads the needed members' bytes
straight from the archive. Every member name is checked first; an archive with
an absolute path, a ``..`` component or a link is refused as a whole.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from hetmtl import files
from hetmtl.errors import UserError


class ArchiveError(UserError, RuntimeError):
    """An archive is missing, corrupt, unsafe or not what params/ says."""


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    """Raise :class:`ArchiveError` naming both checksums when they differ."""
    path = Path(path)
    if not path.exists():
        raise ArchiveError(f"{path}: archive missing")
    actual = md5sum(path)
    if actual != expected:
        raise ArchiveError(
            f"{path}: MD5 mismatch: expected {expected}, actual {actual} "
            "(a partial download or a different file; delete it and fetch again)"
        )


def record_md5(path: Path, digest: str) -> Path:
    """Write ``<archive>.md5`` (md5sum format) beside a verified or generated archive."""
    sidecar = Path(path).with_name(Path(path).name + ".md5")
    files.write_text(sidecar, f"{digest}  {Path(path).name}\n")
    return sidecar


def write_recorded(dest: Path, write: Callable[[Path], None]) -> str:
    """Make ``dest`` with ``write(tmp)`` under a temporary name, move it into place
    only when complete, and record its MD5 beside it (:func:`record_md5`); its MD5."""
    tmp = dest.with_name(dest.name + ".part")
    try:
        write(tmp)
        digest = md5sum(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    record_md5(dest, digest)
    return digest


def _check_name(archive: Path, name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise ArchiveError(f"{archive}: unsafe member {name!r} (absolute path or '..'); refusing the archive")


def list_members(archive: Path, dirs: bool = False) -> list[str]:
    """Names of the regular-file members (``dirs``: and of the folders, each
    ending with ``/``); raises on unsafe or unreadable archives."""
    archive = Path(archive)
    names = []
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_name(archive, info.filename)
                    mode = info.external_attr >> 16
                    if mode and (mode & 0o170000) == 0o120000:
                        raise ArchiveError(f"{archive}: member {info.filename!r} is a link; refusing the archive")
                    if not info.is_dir() or dirs:
                        names.append(info.filename)
        else:
            with tarfile.open(archive, "r:*") as tf:
                for info in tf:
                    _check_name(archive, info.name)
                    if info.issym() or info.islnk():
                        raise ArchiveError(f"{archive}: member {info.name!r} is a link; refusing the archive")
                    if info.isfile():
                        names.append(info.name)
                    elif dirs and info.isdir():
                        names.append(info.name.rstrip("/") + "/")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: cannot read archive ({type(exc).__name__}: {exc})") from None
    return names


def folder_members(folder: Path) -> list[str]:
    """The files (and, ending with ``/``, the folders) below ``folder``, as
    relative POSIX names, sorted; a link anywhere refuses the folder as a whole."""
    folder = Path(folder)
    names = []
    for here, subdirs, filenames in os.walk(folder):
        subdirs.sort()
        for name in [*subdirs, *filenames]:
            path = Path(here) / name
            if path.is_symlink():
                raise ArchiveError(f"{folder}: {path.relative_to(folder)} is a link; refusing the folder")
            rel = path.relative_to(folder).as_posix()
            names.append(rel + "/" if name in subdirs else rel)
    return sorted(names)


def read_members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yield (name, bytes) for the members in ``wanted``, in archive order."""
    archive = Path(archive)
    found = 0
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    if name in wanted:
                        found += 1
                        yield name, zf.read(name)
        else:
            with tarfile.open(archive, "r:*") as tf:
                for info in tf:
                    if info.isfile() and info.name in wanted:
                        f = tf.extractfile(info)
                        assert f is not None
                        found += 1
                        yield info.name, f.read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: cannot read archive ({type(exc).__name__}: {exc})") from None
    if found != len(wanted):
        raise ArchiveError(f"{archive}: {len(wanted) - found} expected members were not found")

