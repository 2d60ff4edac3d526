"""What every source module shares: the layout record, stable seeds, image
encoding, deterministic archive writing, fonts, and the office-scene drawing
that the Office-Home and Office-31 stand-ins both use.

A source module (``chars74k.py``, ``coil20.py``, ...) holds one or more
:class:`Layout` records (its member regex, its classes, its stand-in generator
and the stand-in's counts); ``sources/__init__.py`` registers each in
``LAYOUTS``. Archives are byte-for-byte deterministic for a given package set
(fixed seeds, fixed timestamps), so their recorded MD5s stay valid.

Imports no torch: ``hetmtl.params`` checks ``layout`` names against the
registry on every Snakefile invocation.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Members = Iterator[tuple[str, bytes]]


@dataclass(frozen=True)
class Layout:
    """Where a source's images sit in its archive, what their class is, and how
    to generate a stand-in of it.

    ``pattern`` is a regex with a ``cls`` group matched against every member
    name; ``{domain}`` is replaced by the task's ``domain`` (the Office sets).
    ``generate(images_per_class, seed)`` yields the stand-in's (name, bytes);
    ``standin_counts(images_per_class)`` is what that stand-in holds.
    """

    pattern: str
    description: str
    classes: tuple[str, ...] = ()
    generate: Callable[[int, int], Members] | None = field(default=None, compare=False)
    standin_counts: Callable[[int], dict] | None = field(default=None, compare=False)
    # a user's archive or folder, named by the source's `path` (no URLs, no stand-in)
    local: bool = False

    def regex(self, domain: str | None = None) -> re.Pattern:
        return re.compile(self.pattern.replace("{domain}", re.escape(domain or "")))

    def classify(self, names: list[str], domain: str | None = None, where: str = "archive") -> dict[str, list[str]]:
        """Map class name -> sorted member names (``where`` names the archive in errors).

        Matched on the member's name without its ``./`` prefixes (``tar czf x.tgz .``);
        junk that real archives carry (:func:`is_junk`: AppleDouble ``._name``
        files, ``__MACOSX/``, ``.DS_Store``) never matches, whatever the pattern."""
        rx = self.regex(domain)
        out: dict[str, list[str]] = {}
        for name in names:
            if is_junk(name):
                continue
            m = rx.fullmatch(plain_name(name))
            if m:
                out.setdefault(m.group("cls"), []).append(name)
        return {k: sorted(v) for k, v in sorted(out.items())}


def plain_name(name: str) -> str:
    """A member name without leading ``./`` (tar archives made with ``tar czf x.tgz .``)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def is_junk(name: str) -> bool:
    """A member that is no image of the data set although its name may look like
    one: macOS's AppleDouble ``._name`` files (resource forks, beside the image
    or under ``__MACOSX/``), ``.DS_Store`` and any other hidden file or folder."""
    return any(part.startswith(".") or part == "__MACOSX" for part in plain_name(name).split("/") if part)


def per_class(classes: int, images_per_class: int) -> dict:
    """Counts of a stand-in with ``images_per_class`` images in each of ``classes``."""
    return {"classes": classes, "images": classes * images_per_class}


def font_path(name: str) -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)


def stable_seed(*parts) -> int:
    """A stable integer seed from strings and ints (Python's hash() is salted)."""
    import zlib

    return zlib.crc32("/".join(map(str, parts)).encode())


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def jpg(img: Image.Image, cmyk: bool = False) -> bytes:
    """A JPEG; ``cmyk``: stored as CMYK, as some real Office-Home / Office-31 files are."""
    buf = io.BytesIO()
    (img.convert("CMYK") if cmyk else img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def png16(img: Image.Image) -> bytes:
    """A grayscale image as a 16-bit PNG (value x 257: the same picture at 16 bits),
    as scanners and some archives store them."""
    arr = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return png(Image.fromarray(arr))


# One in DEFECT_EVERY images of a stand-in is stored the odd way (CMYK JPEG, 16-bit PNG).
DEFECT_EVERY = 7


def defect(i: int) -> bool:
    return i % DEFECT_EVERY == DEFECT_EVERY - 1


# --------------------------------------------------------------------------- junk of real archives

# The start of an AppleDouble file (magic, version, "Mac OS X" filler): what
# macOS writes as ``._<name>`` beside a file copied to a foreign file system.
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02" + bytes(70)
DS_STORE = b"\x00\x00\x00\x01Bud1" + bytes(120)
JUNK_EVERY = 5


def with_junk(members: Members, fmt: str) -> Members:
    """``members`` with the junk that real archives carry around their images:
    an AppleDouble ``._<name>`` beside one image in :data:`JUNK_EVERY` (named like
    an image: a layout pattern must refuse it), a ``.DS_Store`` in every folder,
    and by format: a zip (made on macOS) its ``__MACOSX/`` copies of the
    AppleDouble files, a tar (``tar czf x.tgz .``) ``./`` before every name."""
    prefix = "./" if fmt != "zip" else ""
    folders: set[str] = set()
    for i, (name, data) in enumerate(members):
        yield prefix + name, data
        folder, _, base = name.rpartition("/")
        if i % JUNK_EVERY == 0:
            yield prefix + f"{folder}/._{base}", APPLEDOUBLE
            if fmt == "zip":
                yield f"__MACOSX/{folder}/._{base}", APPLEDOUBLE
        if folder not in folders:
            folders.add(folder)
            yield prefix + f"{folder}/.DS_Store", DS_STORE


# --------------------------------------------------------------------------- office scenes


def _prototype_key(name: str) -> str:
    key = name.lower().replace("_", "")
    return {"tv": "monitor", "backpack": "backpack", "bikehelmet": "helmet",
            "laptopcomputer": "laptop", "mobilephone": "telephone", "phone": "telephone",
            "trashcan": "trashcan", "desklamp": "desklamp"}.get(key, key)


@dataclass
class _Part:
    shape: str
    cx: float
    cy: float
    w: float
    h: float
    color: np.ndarray


def _prototype(name: str) -> list[_Part]:
    rng = np.random.default_rng(stable_seed("office", _prototype_key(name)))
    parts = []
    hue = rng.uniform(0, 1)
    for i in range(int(rng.integers(2, 5))):
        shape = ["ellipse", "rect", "triangle", "bar"][int(rng.integers(4))]
        h = (hue + 0.25 * i * rng.choice([-1, 1])) % 1
        color = np.array(_hsv(h, rng.uniform(0.5, 1.0), rng.uniform(0.35, 0.95)))
        parts.append(_Part(shape, rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25),
                           rng.uniform(0.2, 0.55), rng.uniform(0.2, 0.55), color))
    return parts


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


# The office scenes' nuisance per style (ours, issue 30): the object's scale range, its
# offset from the centre (fraction of the side), the distractor shapes behind it
# (count range, radius range as a fraction of the side), the lighting's colour cast
# (std of a shift per channel), the object's own colour jitter and Gaussian sensor
# noise (grey levels). Product shots on white at a fixed place put every method near
# 98% (Amazon) at the demo's scale; these leave room above and below (docs/results.md).
OFFICE_NUISANCE = {
    "amazon": {"scale": (0.65, 1.1), "offset": 0.1, "clutter": (2, 5), "radius": (0.05, 0.16),
               "cast": 0.15, "jitter": 0.08, "noise": 8.0},
    "art": {"scale": (0.65, 1.1), "offset": 0.12, "clutter": (1, 4), "radius": (0.05, 0.15),
            "cast": 0.14, "jitter": 0.07, "noise": 4.0},
}


@functools.lru_cache(maxsize=4)
def _smooth_basis(size: int) -> np.ndarray:
    """The cubic-spline zoom of a 4 x 4 grid to ``size`` x ``size`` (``scipy.ndimage.zoom``,
    order 3) as a linear map: row k is the zoom of the k-th unit grid, so that
    ``coarse.ravel() @ basis`` is the zoom of ``coarse`` up to float rounding (the
    same bytes: 3,000 scenes compared, no 8-bit value differs) at a thirtieth of its
    cost; zooming every background took half of the Office stand-ins' generation."""
    from scipy.ndimage import zoom

    return np.stack([zoom(np.eye(16)[k].reshape(4, 4), size / 4, order=3)[:size, :size]
                     for k in range(16)]).reshape(16, size * size)


def _draw_scene(name: str, style: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    if style == "art":
        # Painterly background: smooth colour noise in a random warm/cool palette.
        coarse = rng.uniform(0.25, 0.95, size=(4, 4, 3))
        bg = (coarse.reshape(16, 3).T @ _smooth_basis(size)).reshape(3, size, size).transpose(1, 2, 0)
        bg = bg + rng.normal(0, 0.05, size=(size, size, 3))
        img = Image.fromarray((bg.clip(0, 1) * 255).astype(np.uint8))
    else:
        img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    nuisance = OFFICE_NUISANCE[style]
    scale = rng.uniform(*nuisance["scale"]) * size * (0.85 if style == "amazon" else 0.75)
    ox = size / 2 + rng.uniform(-1, 1) * nuisance["offset"] * size
    oy = size / 2 + rng.uniform(-1, 1) * nuisance["offset"] * size
    flip = rng.random() < 0.5
    # Clutter: distractor shapes in random colours, behind the object.
    for _ in range(int(rng.integers(*nuisance["clutter"]))):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(0, size, 2)
        r = rng.uniform(*nuisance["radius"]) * size
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0 - r, y0 - r, x0 + r, y0 + r], fill=col)
    hue_shift = rng.normal(0, nuisance["cast"], 3)  # lighting / white balance
    for part in _prototype(name):
        cx = ox + (-part.cx if flip else part.cx) * scale
        cy = oy + part.cy * scale
        w, h = part.w * scale / 2, part.h * scale / 2
        col = np.clip(part.color + hue_shift + rng.normal(0, nuisance["jitter"], 3), 0, 1)
        fill = tuple(int(v * 255) for v in col)
        outline = (20, 20, 20) if style == "art" else None
        width = int(rng.integers(1, 3)) if style == "art" else 0
        box = [cx - w, cy - h, cx + w, cy + h]
        if part.shape == "ellipse":
            draw.ellipse(box, fill=fill, outline=outline, width=width)
        elif part.shape == "rect":
            draw.rectangle(box, fill=fill, outline=outline, width=width)
        elif part.shape == "bar":
            draw.rectangle([cx - w, cy - h / 4, cx + w, cy + h / 4], fill=fill, outline=outline, width=width)
        else:
            draw.polygon([(cx, cy - h), (cx - w, cy + h), (cx + w, cy + h)], fill=fill, outline=outline)
    if style == "art":
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
        arr = np.asarray(img, dtype=np.float64)
        strokes = rng.normal(0, 10, size=(size, 1, 1)) + rng.normal(0, 6, size=(size, size, 3))
        img = Image.fromarray((arr + strokes).clip(0, 255).astype(np.uint8))
    noise = rng.normal(0, nuisance["noise"], size=(size, size, 3))
    return Image.fromarray((np.asarray(img, dtype=np.float64) + noise).clip(0, 255).astype(np.uint8))


def office_scenes(classes: list[str], domain_prefix: str, style: str, file_name: Callable[[int], str],
            n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``n`` JPEGs per class in ``style``; one in :data:`DEFECT_EVERY` stored as CMYK."""
    for cls in classes:
        rng = np.random.default_rng(stable_seed(style, rng_seed, cls))
        for i in range(1, n + 1):
            yield f"{domain_prefix}/{cls}/{file_name(i)}", jpg(_draw_scene(cls, style, rng), cmyk=defect(i))


# --------------------------------------------------------------------------- archives


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def write_archive(path: Path, members: Iterator[tuple[str, bytes]], fmt: str) -> None:
    """Write ``members`` to ``path`` deterministically; ``fmt`` is "zip" or "tgz"."""
    path = Path(path)
    seen_dirs: set[str] = set()
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                for d in _parents(name):
                    if d not in seen_dirs:
                        seen_dirs.add(d)
                        zf.writestr(zipfile.ZipInfo(d + "/", (1980, 1, 1, 0, 0, 0)), b"")
                info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        return
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            for d in _parents(name):
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tf.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tf.addfile(info, io.BytesIO(data))
