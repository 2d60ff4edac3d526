"""Data sources, one module each, registered in :data:`LAYOUTS` (protocol section 2-3).

A module holds everything about its archive: the member regex and its classes
(:class:`~hetmtl.data.sources.common.Layout`), the stand-in generator that
writes an archive with the same file name pattern and internal layout, and the
counts that stand-in holds. ``params/datasets.yaml`` names a layout per source;
:func:`source_problems` checks each entry against this registry (the params
schema has no list of names of its own).

To add a data set: write ``sources/<name>.py`` with its :class:`Layout`, add one
line to :data:`LAYOUTS`, and give ``params/datasets.yaml`` a source and tasks.
A user's ``<class>/<image>`` archive or folder needs no module at all:
``layout: class_folders`` (:mod:`hetmtl.data.sources.class_folders`).

Imports no torch (the Snakefile loads params, and so this registry, on every run).
"""

from __future__ import annotations

from pathlib import Path

from hetmtl.data.sources import chars74k, class_folders, coil20, office31, officehome
from hetmtl.data.sources.common import Layout, with_junk, write_archive
from hetmtl.paths import ARCHIVE_SUFFIXES, is_archive  # noqa: F401 (is_archive: read through this module)

LAYOUTS: dict[str, Layout] = {
    "chars74k_hnd": chars74k.HND,
    "chars74k_fnt": chars74k.FNT,
    "coil20_unproc": coil20.UNPROC,
    "coil20_proc": coil20.PROC,
    "officehome": officehome.SOURCE,
    "office31": office31.SOURCE,
    "class_folders": class_folders.SOURCE,
}

# the keys a source entry needs: one downloaded from URLs, or a user's local one (`path`)
REMOTE_KEYS = ("archive", "md5", "urls", "expected")


def source_problems(spec: dict) -> list[tuple[str, str]]:
    """(key, reason) for each way a params source entry does not fit its layout."""
    layout = LAYOUTS.get(spec["layout"])
    if layout is None:
        return [("layout", f"unknown layout {spec['layout']!r} (known: {', '.join(LAYOUTS)})")]
    if not layout.local:
        out = [(k, f"required by layout {spec['layout']}") for k in REMOTE_KEYS if k not in spec]
        if "path" in spec:
            out.append(("path", f"only a class_folders source has a path; {spec['layout']} comes from its urls"))
        return out
    out = [(k, "a class_folders source names its data by path (no archive name, no urls)")
           for k in ("archive", "urls") if k in spec]
    if "path" not in spec:
        return [*out, ("path", "required: the archive or folder of <class>/<image> files")]
    if is_archive(spec["path"]) and "md5" not in spec:
        out.append(("md5", f"required for an archive (the output of `md5sum {spec['path']}`)"))
    if not is_archive(spec["path"]) and "md5" in spec:
        out.append(("md5", f"{spec['path']} is a folder (no suffix of {', '.join(ARCHIVE_SUFFIXES)}): "
                           "a folder has no MD5; remove the key"))
    return out


def write_standin(layout: str, path: Path, images_per_class: int, seed: int = 0) -> str:
    """Generate the stand-in archive for ``layout`` at ``path``; return its MD5.

    Like the real archives, it carries junk around the images (AppleDouble
    ``._`` files, ``__MACOSX/``, ``.DS_Store``, ``./`` prefixes in a tar:
    :func:`~hetmtl.data.sources.common.with_junk`), which the layouts skip.
    The archive is written under a temporary name and moved into place only
    when complete; its MD5 is recorded in ``<path>.md5`` (:func:`record_md5`) so
    that the fetch step verifies it with the same code as a real archive.
    """
    from hetmtl.data.archives import write_recorded

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "zip" if path.name.endswith(".zip") else "tgz"
    members = with_junk(LAYOUTS[layout].generate(images_per_class, seed), fmt)
    return write_recorded(path, lambda tmp: write_archive(tmp, members, fmt))
