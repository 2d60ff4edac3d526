"""A user's own data set: any archive or folder of ``<class>/<image>`` files.

A source with ``layout: class_folders`` names its data by ``path`` (relative to
the project root, or absolute) instead of URLs:

* an archive (``.zip``, ``.tar.gz``, ``.tgz``, ``.tar``, ``.tar.bz2``,
  ``.tar.xz``) with its ``md5`` (required): the fetch step checks the MD5 and
  copies the archive into the suite's ``raw_dir``;
* a folder: it has no MD5 in params/ (a folder has no checksum of its own);
  the fetch step packs its images into ``raw_dir/<folder name>.zip``
  deterministically and records that zip's MD5, which every later step checks
  as for any archive. The fetch step does not notice a later edit of the
  folder's images: rerun it (``snakemake --forcerun fetch``; DVC hashes the
  folder and reruns by itself).

Inside, every folder directly below the root (or below one top folder that
holds everything) is a class, named by the folder; its images (``.png``,
``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif``, ``.tiff``, ``.webp``) are
its members. Hidden files and folders and ``__MACOSX`` are ignored, as are loose
files beside the class folders. A class folder without images, or with a
sub-folder, is refused: the error names it. ``expected`` counts are optional
(checked when given). Used as is in every suite, stand-in ones included: there
is no stand-in of a user's data.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetmtl.data.archives import ArchiveError
from hetmtl.data.sources.common import Layout, is_junk, plain_name

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ClassFolders(Layout):
    def classify(self, names: list[str], domain: str | None = None, where: str = "archive") -> dict[str, list[str]]:
        """Map class folder -> sorted image names; ``names`` holds files and
        folders (a folder's name ends with ``/``)."""
        del domain  # one domain: the folder itself
        entries = [n for n in names if plain_name(n).strip("/") and not is_junk(n)]
        parts = [plain_name(n).strip("/").split("/") for n in entries]
        tops = {p[0] for p in parts}
        # one top folder holding everything, with the class folders inside it
        strip = len(tops) == 1 and any(len(p) >= 3 for p in parts)
        classes: dict[str, list[str]] = {}
        for name, p in zip(entries, parts):
            rel = p[1:] if strip else p
            is_dir = name.endswith("/")
            if not rel or (len(rel) == 1 and not is_dir):
                continue  # the top folder itself, or a loose file beside the class folders
            images = classes.setdefault(rel[0], [])
            if len(rel) > 2 or (len(rel) == 2 and is_dir):
                raise ArchiveError(f"{where}: class folder {rel[0]!r} holds a sub-folder ({name!r}); "
                                   "a class-folder source is <class>/<image> (optionally under one top folder)")
            if len(rel) == 2 and rel[1].lower().endswith(IMAGE_SUFFIXES):
                images.append(name)
        empty = sorted(c for c, images in classes.items() if not images)
        if empty:
            raise ArchiveError(f"{where}: class folder(s) {', '.join(map(repr, empty))} hold no images "
                               f"({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder")
        return {c: sorted(v) for c, v in sorted(classes.items())}


SOURCE = ClassFolders(r"(?:[^/]+/)?(?P<cls>[^/]+)/[^/]+", "any archive or folder of <class>/<image> files",
                      local=True)
