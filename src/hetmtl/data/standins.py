"""Generated stand-ins for the five real archives (SPEC section 2).

Each generator writes an archive with the SAME file name, archive format and
internal layout as the real one (folder names, image file names, grayscale or
colour), from content this project makes itself:

* Chars74K ``EnglishHnd.tgz``: digits and letters drawn with the fonts that ship
  with matplotlib, distorted (affine jitter, smooth elastic warp, stroke width)
  to look hand-written, black on white RGB PNGs as in the real set.
* Chars74K ``EnglishFnt.tgz``: clean computer-font renderings, grayscale PNGs.
* COIL-20 ``coil-20-unproc.zip``: textured objects (elliptic cross-sections of a
  turned profile, wrapped with a per-object texture) at 72 turntable poses,
  5 degrees apart, grayscale PNGs ``obj{N}__{pose}.png``.
* Office-Home ``OfficeHomeDataset_10072016.zip`` (Art domain) and Office-31
  ``domain_adaptation_images.tar.gz`` (amazon domain): coloured object-like
  scenes built from a per-class prototype of shapes, painted with a textured
  background in the Art style and centred on white in the Amazon style. Classes
  that the two data sets have in common share their prototype, as real objects
  would.

The stand-ins are NOT the paper's data; every report of a stand-in suite says
so. Archives are byte-for-byte deterministic for a given package set (fixed
seeds, fixed timestamps), and their MD5 is recorded next to them by
:func:`write_standin` so that verification runs the same code as for the real
archives.
"""

from __future__ import annotations

import gzip
import io
import os
import string
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CHARS74K_CLASSES = list(string.digits + string.ascii_uppercase + string.ascii_lowercase)

OFFICEHOME_CLASSES = (
    "Alarm_Clock Backpack Batteries Bed Bike Bottle Bucket Calculator Calendar Candles "
    "Chair Clipboards Computer Couch Curtains Desk_Lamp Drill Eraser Exit_Sign Fan "
    "File_Cabinet Flipflops Flowers Folder Fork Glasses Hammer Helmet Kettle Keyboard "
    "Knives Lamp_Shade Laptop Marker Monitor Mop Mouse Mug Notebook Oven Pan Paper_Clip "
    "Pen Pencil Postit_Notes Printer Push_Pin Radio Refrigerator Ruler Scissors "
    "Screwdriver Shelf Sink Sneakers Soda Speaker Spoon TV Table Telephone ToothBrush "
    "Toys Trash_Can Webcam"
).split()

OFFICE31_CLASSES = (
    "back_pack bike bike_helmet bookcase bottle calculator desk_chair desk_lamp "
    "desktop_computer file_cabinet headphones keyboard laptop_computer letter_tray "
    "mobile_phone monitor mouse mug paper_notebook pen phone printer projector punchers "
    "ring_binder ruler scissors speaker stapler tape_dispenser trash_can"
).split()

# Fonts shipped with matplotlib that cover digits and Latin letters.
HANDWRITING_FONTS = [
    "DejaVuSans.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-Bold.ttf",
    "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "STIXGeneralItalic.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmti10.ttf",
]
TYPOGRAPHIC_FONTS = HANDWRITING_FONTS + [
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmb10.ttf", "cmtt10.ttf",
]

COIL_POSES = 72
COIL_OBJECTS = 10  # the unprocessed set: 10 objects x 72 poses = 720 images


def _font_path(name: str) -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)


def _seed(*parts) -> int:
    """A stable integer seed from strings and ints (Python's hash() is salted)."""
    import zlib

    return zlib.crc32("/".join(map(str, parts)).encode())


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _jpg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# --------------------------------------------------------------------------- chars


def _render_char(ch: str, font: str, size: int, rng: np.random.Generator,
                 handwritten: bool, canvas: int = 64) -> Image.Image:
    """Black glyph on white, 'L' mode, ``canvas`` px square."""
    img = Image.new("L", (canvas, canvas), 255)
    draw = ImageDraw.Draw(img)
    f = ImageFont.truetype(_font_path(font), size)
    box = draw.textbbox((0, 0), ch, font=f)
    w, h = box[2] - box[0], box[3] - box[1]
    jitter = canvas * (0.08 if handwritten else 0.04)
    x = (canvas - w) / 2 - box[0] + rng.uniform(-jitter, jitter)
    y = (canvas - h) / 2 - box[1] + rng.uniform(-jitter, jitter)
    draw.text((x, y), ch, fill=0, font=f)
    if not handwritten:
        return img
    # Affine jitter: rotation, shear, anisotropic scale about the centre.
    angle = np.deg2rad(rng.uniform(-14, 14))
    shear = rng.uniform(-0.3, 0.3)
    sx, sy = rng.uniform(0.8, 1.15, size=2)
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) @ np.diag([1 / sx, 1 / sy])
    centre = np.array([canvas / 2, canvas / 2])
    offset = centre - m @ centre
    img = img.transform(img.size, Image.Transform.AFFINE,
                        (m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1]),
                        resample=Image.Resampling.BILINEAR, fillcolor=255)
    # Smooth elastic warp: a low-resolution random displacement field, upsampled.
    from scipy.ndimage import map_coordinates, zoom

    coarse = rng.normal(0, canvas * 0.035, size=(2, 5, 5))
    field = np.stack([zoom(c_, canvas / 5, order=3)[:canvas, :canvas] for c_ in coarse])
    yy, xx = np.mgrid[0:canvas, 0:canvas].astype(np.float64)
    arr = np.asarray(img, dtype=np.float64)
    arr = map_coordinates(arr, [yy + field[0], xx + field[1]], order=1, cval=255.0)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    stroke = rng.integers(0, 3)
    if stroke == 1:
        img = img.filter(ImageFilter.MinFilter(3))  # thicker pen
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    return img


def _chars74k_hnd(n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``English/Hnd/Img/SampleNNN/imgNNN-MMM.png``: RGB PNG, 4:3, ink on paper."""
    for k, ch in enumerate(CHARS74K_CLASSES, start=1):
        rng = np.random.default_rng(_seed("hnd", rng_seed, k))
        writers = rng.permutation(len(HANDWRITING_FONTS))
        for i in range(1, n + 1):
            font = HANDWRITING_FONTS[writers[(i - 1) % len(writers)]]
            glyph = _render_char(ch, font, int(rng.integers(34, 46)), rng, handwritten=True)
            page = Image.new("L", (96, 72), 255)
            page.paste(glyph.resize((72, 72), Image.Resampling.BILINEAR), (12, 0))
            noise = rng.normal(0, 4, size=(72, 96))
            arr = (np.asarray(page, dtype=np.float64) + noise).clip(0, 255).astype(np.uint8)
            yield f"English/Hnd/Img/Sample{k:03d}/img{k:03d}-{i:03d}.png", _png(
                Image.fromarray(arr).convert("RGB"))


def _chars74k_fnt(n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``English/Fnt/SampleNNN/imgNNN-MMMMM.png``: grayscale PNG, square."""
    for k, ch in enumerate(CHARS74K_CLASSES, start=1):
        rng = np.random.default_rng(_seed("fnt", rng_seed, k))
        for i in range(1, n + 1):
            font = TYPOGRAPHIC_FONTS[int(rng.integers(len(TYPOGRAPHIC_FONTS)))]
            img = _render_char(ch, font, int(rng.integers(36, 48)), rng, handwritten=False)
            yield f"English/Fnt/Sample{k:03d}/img{k:03d}-{i:05d}.png", _png(img)


# --------------------------------------------------------------------------- coil


def _coil_object(obj: int, pose: int, size: int = 64) -> np.ndarray:
    """Object ``obj`` on a turntable at ``pose`` x 5 degrees, grayscale on black.

    The object is a turned solid whose cross-section is an ellipse (so its
    silhouette width changes with the pose) wrapped with a texture that turns
    with it; lighting from the front-left.
    """
    rng = np.random.default_rng(_seed("coil", obj))
    phi = np.deg2rad(5.0 * pose)
    ys = np.linspace(-1, 1, size)
    # Profile r(y): a smooth random vase/box/bottle shape.
    coeffs = rng.uniform(-0.25, 0.25, size=4)
    base = rng.uniform(0.35, 0.6)
    profile = base + sum(c * np.cos((k + 1) * np.pi * (ys + 1) / 2) for k, c in enumerate(coeffs))
    profile = np.clip(profile, 0.12, 0.8)
    height = rng.uniform(0.6, 0.9)
    inside_y = np.abs(ys) <= height
    ecc = rng.uniform(0.35, 1.0)  # minor/major axis ratio of the cross-section
    # Half-width of the silhouette of an ellipse (a, b) rotated by phi.
    a, b = 1.0, ecc
    half = profile * np.sqrt((a * np.cos(phi)) ** 2 + (b * np.sin(phi)) ** 2)
    xs = np.linspace(-1, 1, size)
    X, Y = np.meshgrid(xs, ys)
    H = half[:, None]
    inside = (np.abs(X) <= H) & inside_y[:, None]
    u = np.clip(X / np.maximum(H, 1e-6), -1, 1)
    theta = np.arcsin(u) + phi  # surface angle seen at this pixel
    # Texture: stripes, checks or blobs in (theta, y) coordinates.
    kind = obj % 3
    fy, ft = rng.integers(2, 7), rng.integers(1, 5)
    if kind == 0:
        tex = 0.5 + 0.5 * np.sign(np.sin(ft * theta * 2 + rng.uniform(0, 6)))
    elif kind == 1:
        tex = 0.5 + 0.5 * np.sign(np.sin(ft * 2 * theta) * np.sin(fy * np.pi * Y))
    else:
        tex = 0.5 + 0.5 * np.cos(ft * theta + 3 * np.sin(fy * Y))
    albedo = rng.uniform(0.45, 0.95)
    shade = np.sqrt(np.clip(1 - u ** 2, 0, 1)) * (0.75 + 0.25 * np.cos(theta - phi + 0.6))
    img = np.where(inside, albedo * (0.35 + 0.65 * tex) * (0.25 + 0.75 * shade), 0.0)
    return (img * 255).clip(0, 255).astype(np.uint8)


def _coil20_unproc(n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``coil-20-unproc/obj{N}__{pose}.png``: 10 objects x 72 poses, grayscale."""
    del n, rng_seed  # the real set has exactly 72 poses per object
    for obj in range(1, COIL_OBJECTS + 1):
        for pose in range(COIL_POSES):
            arr = _coil_object(obj, pose)
            yield f"coil-20-unproc/obj{obj}__{pose}.png", _png(Image.fromarray(arr))


def _coil20_proc(n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``coil-20-proc/obj{N}__{pose}.png``: 20 objects x 72 poses, grayscale."""
    del n, rng_seed
    for obj in range(1, 2 * COIL_OBJECTS + 1):
        for pose in range(COIL_POSES):
            yield f"coil-20-proc/obj{obj}__{pose}.png", _png(Image.fromarray(_coil_object(obj, pose)))


# --------------------------------------------------------------------------- office


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
    rng = np.random.default_rng(_seed("office", _prototype_key(name)))
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


def _draw_scene(name: str, style: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    if style == "art":
        # Painterly background: smooth colour noise in a random warm/cool palette.
        from scipy.ndimage import zoom

        coarse = rng.uniform(0.25, 0.95, size=(4, 4, 3))
        bg = np.stack([zoom(coarse[..., c], size / 4, order=3)[:size, :size] for c in range(3)], -1)
        bg = bg + rng.normal(0, 0.05, size=(size, size, 3))
        img = Image.fromarray((bg.clip(0, 1) * 255).astype(np.uint8))
    else:
        img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    scale = rng.uniform(0.75, 1.15) * size * (0.85 if style == "amazon" else 0.75)
    ox = size / 2 + rng.uniform(-0.12, 0.12) * size * (0.4 if style == "amazon" else 1.0)
    oy = size / 2 + rng.uniform(-0.12, 0.12) * size * (0.4 if style == "amazon" else 1.0)
    flip = rng.random() < 0.5
    # Clutter: a few distractor shapes in random colours, behind the object.
    for _ in range(int(rng.integers(1, 4))):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(0, size, 2)
        r = rng.uniform(0.05, 0.15) * size
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=col)
    hue_shift = rng.normal(0, 0.12, 3)  # lighting / white balance
    for part in _prototype(name):
        cx = ox + (-part.cx if flip else part.cx) * scale
        cy = oy + part.cy * scale
        w, h = part.w * scale / 2, part.h * scale / 2
        col = np.clip(part.color + hue_shift + rng.normal(0, 0.06, 3), 0, 1)
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
    return img


def _office(classes: list[str], domain_prefix: str, style: str, file_name: Callable[[int], str],
            n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    for cls in classes:
        rng = np.random.default_rng(_seed(style, rng_seed, cls))
        for i in range(1, n + 1):
            yield f"{domain_prefix}/{cls}/{file_name(i)}", _jpg(_draw_scene(cls, style, rng))


def _officehome(n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``OfficeHomeDataset_10072016/Art/<Class>/NNNNN.jpg`` (the Art domain only)."""
    return _office(OFFICEHOME_CLASSES, "OfficeHomeDataset_10072016/Art", "art",
                   lambda i: f"{i:05d}.jpg", n, rng_seed)


def _office31(n: int, rng_seed: int) -> Iterator[tuple[str, bytes]]:
    """``amazon/images/<class>/frame_NNNN.jpg`` (the amazon domain only)."""
    return _office(OFFICE31_CLASSES, "amazon/images", "amazon",
                   lambda i: f"frame_{i:04d}.jpg", n, rng_seed)


# --------------------------------------------------------------------------- archives

GENERATORS: dict[str, Callable[[int, int], Iterator[tuple[str, bytes]]]] = {
    "chars74k_hnd": _chars74k_hnd,
    "chars74k_fnt": _chars74k_fnt,
    "coil20_unproc": _coil20_unproc,
    "coil20_proc": _coil20_proc,
    "officehome": _officehome,
    "office31": _office31,
}


def expected_counts(layout: str, images_per_class: int) -> dict:
    """Classes and images a stand-in archive holds (the real ones: params/)."""
    classes = {"chars74k_hnd": len(CHARS74K_CLASSES), "chars74k_fnt": len(CHARS74K_CLASSES),
               "coil20_unproc": COIL_OBJECTS, "coil20_proc": 2 * COIL_OBJECTS,
               "officehome": len(OFFICEHOME_CLASSES), "office31": len(OFFICE31_CLASSES)}[layout]
    per_class = COIL_POSES if layout.startswith("coil20") else images_per_class
    return {"classes": classes, "images": classes * per_class}


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


def write_standin(layout: str, path: Path, images_per_class: int, seed: int = 0) -> str:
    """Generate the stand-in archive for ``layout`` at ``path``; return its MD5.

    The archive is written under a temporary name and moved into place only
    when complete; its MD5 is recorded in ``<path>.md5`` (:func:`record_md5`) so
    that the fetch step verifies it with the same code as a real archive.
    """
    from hetmtl.data.archives import md5sum, record_md5

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        fmt = "zip" if path.name.endswith(".zip") else "tgz"
        write_archive(tmp, GENERATORS[layout](images_per_class, seed), fmt)
        digest = md5sum(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    record_md5(path, digest)
    return digest
