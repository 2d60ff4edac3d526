"""Getting each source archive into ``raw_dir`` and verifying it (protocol section 3).

* Stand-in suites generate the archive (the source module's generator,
  :mod:`hetmtl.data.sources`); the MD5 recorded at generation is then checked
  by the same :func:`verify_md5` as for a real archive.
* A user's class-folder source (``path``, no URLs) is taken from where params/
  say, in every suite: an archive is checked against its ``md5`` and copied into
  ``raw_dir``; a folder is packed into ``raw_dir/<folder>.zip`` and that zip's
  MD5 recorded (:func:`fetch_local`).
* Real suites use an archive already placed in ``raw_dir`` by hand (verified,
  never downloaded again) or download it from the mirrors in params/ in turn:
  HTTP through :mod:`hetmtl.data.download` (progress bar, retries, resume,
  written under a temporary name and moved into place only when its MD5
  matches), Google Drive by our own requests (resource key, confirmation
  page; gdown drops the key), a web page in place of the archive named as such.
  When every mirror fails the error says which URLs were tried and where to put
  the file.

Nothing is downloaded at import time or inside a training job.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hetmtl.data.archives import (
    ArchiveError,
    folder_members,
    list_members,
    md5sum,
    record_md5,
    verify_md5,
    write_recorded,
)
from hetmtl.data.download import http_download
from hetmtl.data.sources import LAYOUTS, is_archive
from hetmtl.data.sources.common import write_archive
from hetmtl.paths import raw_archive


def expected_md5(suite: dict, source: dict, path: Path) -> str:
    """The MD5 ``path`` must have: params/ say it, except for an archive this
    project made (a stand-in, a packed folder), whose MD5 was recorded beside it."""
    generated = suite["data"] == "standin" and not LAYOUTS[source["layout"]].local
    if generated or "md5" not in source:
        sidecar = path.with_name(path.name + ".md5")
        if not sidecar.exists():
            raise ArchiveError(f"{sidecar}: missing: the stand-in archive's recorded MD5")
        return sidecar.read_text().split()[0]
    return source["md5"]


def _download(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` (http(s), or ``gdrive://<id>?resourcekey=<key>``) to
    ``dest`` only if the MD5 matches; raise otherwise."""
    http_download(url, dest, md5)


def fetch(suite: dict, source_name: str, source: dict, images_per_class: int | None = None) -> Path:
    """Make ``raw_dir/<archive>`` present and verified, with its ``.md5`` beside it."""
    path = raw_archive(suite, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    if LAYOUTS[source["layout"]].local:
        return fetch_local(source_name, source, path)
    if suite["data"] == "standin":
        from hetmtl.data.sources import write_standin

        write_standin(source["layout"], path, images_per_class or suite["images_per_class"])
        verify_md5(path, expected_md5(suite, source, path))
        return path
    if path.exists():
        verify_md5(path, source["md5"])  # placed by hand or fetched before
        record_md5(path, source["md5"])
        return path
    tried = []
    for i, url in enumerate(source["urls"], start=1):
        print(f"[fetch] {source['archive']}: mirror {i}/{len(source['urls'])}: {url}", file=sys.stderr)
        try:
            _download(url, path, source["md5"])
            record_md5(path, source["md5"])
            return path
        except Exception as exc:  # noqa: BLE001 - every failure means: next mirror
            tried.append(f"{url} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
    raise ArchiveError(
        f"{source_name}: could not download {source['archive']}. Tried:\n    "
        + "\n    ".join(tried)
        + f"\n  Get the archive (MD5 {source['md5']}) by other means and place it at {path.resolve()}"
    )


def fetch_local(source_name: str, source: dict, dest: Path) -> Path:
    """A user's archive (checked against its ``md5``, then copied) or folder
    (packed into a zip, deterministically) at ``dest``, with its ``.md5`` beside it.
    Its classes are checked here already, so that a bad folder fails at once."""
    origin = Path(source["path"])
    layout = LAYOUTS[source["layout"]]
    if not origin.exists():
        raise ArchiveError(f"{origin}: no such {'archive' if is_archive(source['path']) else 'folder'} "
                           f"(sources.{source_name}.path in params/, relative to the project root)")
    def write(tmp: Path) -> None:
        if is_archive(source["path"]):
            actual = md5sum(origin)
            if actual != source["md5"]:
                raise ArchiveError(f"{origin}: MD5 mismatch: expected {source['md5']} (sources.{source_name}.md5), "
                                   f"actual {actual}: a different or damaged file; if it is the archive you mean, "
                                   f"set sources.{source_name}.md5 to {actual}")
            layout.classify(list_members(origin, dirs=True), where=str(origin))
            shutil.copyfile(origin, tmp)
        else:
            by_class = layout.classify(folder_members(origin), where=str(origin))
            write_archive(tmp, ((n, (origin / n).read_bytes()) for c in by_class for n in by_class[c]), "zip")

    write_recorded(dest, write)
    return dest
