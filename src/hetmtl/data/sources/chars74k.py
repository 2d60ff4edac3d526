"""Chars74K (protocol section 3): ``EnglishHnd.tgz`` (hand-written) and ``EnglishFnt.tgz``
(computer fonts), 62 classes ``Sample001..062`` = digits, A-Z, a-z.

Stand-ins: digits and letters drawn with the fonts that ship with matplotlib,
distorted (affine jitter, smooth elastic warp, stroke width) to look
hand-written, black on white RGB PNGs as in the real set; the typographic set
as computer-font renderings, grayscale PNGs, photographed: each glyph turned,
scaled and moved, under a grey level of paper and ink, with stray strokes and
sensor noise around it (:data:`TYPOGRAPHIC_NUISANCE`, ours: clean renderings
put every method at the ceiling, 97% and more at the demo's scale, issue 30).
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from hetmtl.data.sources.common import Layout, Members, defect, font_path, per_class, png, png16, stable_seed

CHARS74K_CLASSES = list(string.digits + string.ascii_uppercase + string.ascii_lowercase)

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

# The typographic stand-in's nuisance (ours, issue 30): rotation (degrees), scale,
# shift (fraction of the canvas), stray strokes (count), the contrast between paper
# and ink (grey levels), and Gaussian sensor noise (grey levels). Set so that a
# single-task network at the demo's scale stays below 90% (docs/results.md).
TYPOGRAPHIC_NUISANCE = {"rotate": 10.0, "scale": (0.8, 1.05), "shift": 0.07, "strokes": (1, 3),
                        "contrast": (110, 220), "noise": 14.0}


def _photographed(img: Image.Image, rng: np.random.Generator, nuisance: dict = TYPOGRAPHIC_NUISANCE) -> Image.Image:
    """A clean glyph (black on white, 'L') as a photograph of it: turned, scaled
    and moved, with stray strokes, a paper and ink grey level and noise."""
    canvas = img.size[0]
    angle = np.deg2rad(rng.uniform(-nuisance["rotate"], nuisance["rotate"]))
    scale = rng.uniform(*nuisance["scale"])
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    centre = np.array([canvas / 2, canvas / 2]) + rng.uniform(-1, 1, 2) * nuisance["shift"] * canvas
    m = np.array([[c, -s], [s, c]])
    offset = np.array([canvas / 2, canvas / 2]) - m @ centre
    img = img.transform(img.size, Image.Transform.AFFINE,
                        (m[0, 0], m[0, 1], offset[0], m[1, 0], m[1, 1], offset[1]),
                        resample=Image.Resampling.BILINEAR, fillcolor=255)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(*nuisance["strokes"]))):
        x0, y0, x1, y1 = rng.uniform(0, canvas, 4)
        draw.line([(x0, y0), (x1, y1)], fill=int(rng.integers(0, 160)), width=int(rng.integers(2, 6)))
    ink = rng.uniform(0, 255 - nuisance["contrast"][1])
    contrast = rng.uniform(*nuisance["contrast"])
    arr = ink + np.asarray(img, dtype=np.float64) / 255.0 * contrast
    arr = arr + rng.normal(0, nuisance["noise"], size=arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _render_char(ch: str, font: str, size: int, rng: np.random.Generator,
                 handwritten: bool, canvas: int = 64) -> Image.Image:
    """Black glyph on white, 'L' mode, ``canvas`` px square."""
    img = Image.new("L", (canvas, canvas), 255)
    draw = ImageDraw.Draw(img)
    f = ImageFont.truetype(font_path(font), size)
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


def _chars74k_hnd(n: int, rng_seed: int) -> Members:
    """``English/Hnd/Img/SampleNNN/imgNNN-MMM.png``: RGB PNG, 4:3, ink on paper."""
    for k, ch in enumerate(CHARS74K_CLASSES, start=1):
        rng = np.random.default_rng(stable_seed("hnd", rng_seed, k))
        writers = rng.permutation(len(HANDWRITING_FONTS))
        for i in range(1, n + 1):
            font = HANDWRITING_FONTS[writers[(i - 1) % len(writers)]]
            glyph = _render_char(ch, font, int(rng.integers(34, 46)), rng, handwritten=True)
            page = Image.new("L", (96, 72), 255)
            page.paste(glyph.resize((72, 72), Image.Resampling.BILINEAR), (12, 0))
            noise = rng.normal(0, 4, size=(72, 96))
            arr = (np.asarray(page, dtype=np.float64) + noise).clip(0, 255).astype(np.uint8)
            yield f"English/Hnd/Img/Sample{k:03d}/img{k:03d}-{i:03d}.png", png(
                Image.fromarray(arr).convert("RGB"))


def _chars74k_fnt(n: int, rng_seed: int) -> Members:
    """``English/Fnt/SampleNNN/imgNNN-MMMMM.png``: grayscale PNG, square (one in
    DEFECT_EVERY at 16 bits)."""
    for k, ch in enumerate(CHARS74K_CLASSES, start=1):
        rng = np.random.default_rng(stable_seed("fnt", rng_seed, k))
        for i in range(1, n + 1):
            font = TYPOGRAPHIC_FONTS[int(rng.integers(len(TYPOGRAPHIC_FONTS)))]
            img = _photographed(_render_char(ch, font, int(rng.integers(36, 48)), rng, handwritten=False), rng)
            yield f"English/Fnt/Sample{k:03d}/img{k:03d}-{i:05d}.png", png16(img) if defect(i) else png(img)


HND = Layout(r"English/Hnd/Img/(?P<cls>Sample\d{3})/img\d{3}-\d{3}\.png",
             "Chars74K hand-written characters, RGB PNG",
             tuple(f"Sample{k:03d}" for k in range(1, len(CHARS74K_CLASSES) + 1)),
             _chars74k_hnd, lambda n: per_class(len(CHARS74K_CLASSES), n))
FNT = Layout(r"English/Fnt/(?P<cls>Sample\d{3})/img\d{3}-\d{5}\.png",
             "Chars74K characters from computer fonts, grayscale PNG",
             HND.classes, _chars74k_fnt, lambda n: per_class(len(CHARS74K_CLASSES), n))
