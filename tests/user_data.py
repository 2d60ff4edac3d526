"""A user's data set of <class>/<image> files, made in the tests: images, a zip,
a folder, and the params/ entries that make them a task group (the class-folder
source, hetmtl/data/sources/class_folders.py)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import yaml
from PIL import Image

from hetmtl.data.archives import md5sum

CLASSES = ["circle", "cross", "square", "triangle"]


def image(cls: str, i: int, size: int = 12) -> bytes:
    """A small PNG of class ``cls``: grayscale for even ``i``, colour for odd."""
    k = CLASSES.index(cls)
    img = Image.new("RGB", (size, size), (255, 255, 255))
    for x in range(size):
        for y in range(size):
            if (x * (k + 1) + y * (i % 3 + 1)) % (k + 2) == 0:
                img.putpixel((x, y), (40 * k, 255 - 50 * k, (30 * i) % 256))
    if i % 2 == 0:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_zip(path: Path, classes=CLASSES, per_class: int = 8, top: str | None = "shapes",
             extra: dict | None = None) -> str:
    """A zip of ``[top/]<class>/<image>.png``; ``extra``: more members (name -> bytes). Its MD5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(path, "w") as zf:
        for cls in classes:
            zf.writestr(f"{prefix}{cls}/", b"")
            for i in range(per_class):
                zf.writestr(f"{prefix}{cls}/img{i:02d}.png", image(cls, i))
        for name, data in (extra or {}).items():
            zf.writestr(prefix + name, data)
    return md5sum(path)


def make_folder(path: Path, classes=CLASSES, per_class: int = 8) -> Path:
    for cls in classes:
        (path / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (path / cls / f"img{i:02d}.png").write_bytes(image(cls, i))
    return path


def user_params(proj: Path, zip_md5: str) -> None:
    """Two user tasks (a colour zip, a grayscale folder) in one group, the only
    group of the grid, trained by single-task and MTAL."""
    path = proj / "params" / "datasets.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["shapes"] = {"layout": "class_folders", "path": "userdata/shapes.zip", "md5": zip_md5,
                                 "channels": 3, "expected": {"classes": 4, "images": 32}}
    data["sources"]["shapes_gray"] = {"layout": "class_folders", "path": "userdata/shapes_gray", "channels": 1}
    data["tasks"]["ShapesRGB"] = {"source": "shapes", "flip": True, "classes": {"pool": "source", "draw": 3}}
    data["tasks"]["ShapesGray"] = {"source": "shapes_gray", "flip": False,
                                   "classes": {"pool": "source", "draw": "all"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    grid = proj / "params" / "grid.yaml"
    data = yaml.safe_load(grid.read_text())
    data.update(groups={"user": {"paper_group": 3, "tasks": ["ShapesRGB", "ShapesGray"]}},
                shared_methods=["single_task"], settings={"no_prior": {"methods": ["mtal"]}}, readings=[],
                tables={"table_user": {"group": "user", "setting": "no_prior", "paper": "user data"}})
    data["sweeps"] = {}
    grid.write_text(yaml.safe_dump(data, sort_keys=False))
    for suite in (proj / "params" / "suites").glob("*.yaml"):
        data = yaml.safe_load(suite.read_text())
        data["suite"]["sweeps"] = {}
        suite.write_text(yaml.safe_dump(data, sort_keys=False))
    from conftest import one_claim

    one_claim(proj, "table_user")



def user_project(proj: Path) -> Path:
    """A copy of the project whose only group is the user's two tasks: a colour
    zip (``userdata/shapes.zip``) and a grayscale folder (``userdata/shapes_gray``)."""
    md5 = make_zip(proj / "userdata" / "shapes.zip")
    make_folder(proj / "userdata" / "shapes_gray")
    user_params(proj, md5)
    return proj
