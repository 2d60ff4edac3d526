"""Prepare one task: select classes, decode once, resize, save tensors.

Output (protocol section 3), in ``data/prepared/<suite>/<task>/``: ``images.pt``
(``{"x": uint8 N x C x H x W, "y": int64 N}``, every image of the selected
classes, native channel count) and ``manifest.json`` (class names, counts,
source MD5, selection seed). Files are written under temporary names and the
manifest goes last, so a crashed job leaves nothing that looks complete.

The train / val / test split is not drawn here: each run draws its own from its
seed when it loads the images (:mod:`hetmtl.data.splits`), so prepared data is
shared by every seed and decoded once.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from hetmtl import files
from hetmtl.data.archives import ArchiveError, list_members, md5sum, read_members
from hetmtl.data.fetch import expected_md5
from hetmtl.data.sources import LAYOUTS
from hetmtl.paths import archive_name, prepared_dir, prepared_images, prepared_manifest, raw_archive


def resolve_pool(spec, available: list[str]) -> list[str]:
    if spec == "source":
        return list(available)
    if isinstance(spec, dict):
        prefix, lo, hi = spec["range"]
        return [f"{prefix}{i:03d}" for i in range(lo, hi + 1)]
    return list(spec)


def select_classes(task: str, spec: dict, available: list[str], seed: int) -> list[str]:
    """Draw the task's classes once, with a fixed seed (recorded in the manifest)."""
    pool = resolve_pool(spec["pool"], available)
    missing = [c for c in pool if c not in available]
    if missing:
        raise ArchiveError(f"task {task}: classes {missing[:5]} not found in the archive")
    if spec["draw"] == "all":
        return sorted(pool)
    if spec["draw"] > len(pool):
        raise ArchiveError(f"task {task}: cannot draw {spec['draw']} classes from {len(pool)}")
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    return sorted(rng.choice(sorted(pool), size=spec["draw"], replace=False).tolist())


def check_counts(archive: Path, source: dict, suite: dict, by_class: dict) -> None:
    """Refuse an archive whose content is not what the data set has (a
    class-folder source without ``expected`` counts: whatever it holds)."""
    layout = LAYOUTS[source["layout"]]
    if suite["data"] == "standin" and not layout.local:
        want = layout.standin_counts(suite["images_per_class"])
    else:
        want = source.get("expected")
    if want is None:
        return
    have = {"classes": len(by_class), "images": sum(len(v) for v in by_class.values())}
    if have != want:
        raise ArchiveError(f"{archive}: content differs from the {source['layout']} data set: "
                           f"{have['classes']} classes / {have['images']} images, expected "
                           f"{want['classes']} / {want['images']}")


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer) image scaled to 8 bits: PIL's own ``convert``
    clips such values at 255, which turns a 16-bit scan white. CMYK, palette and
    the other 8-bit modes are left to ``convert``."""
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.rint(arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    return img


def decode(data: bytes, channels: int, size: int) -> np.ndarray:
    """An image's bytes as uint8 C x size x size, converted to the task's channels
    (``channels``: 1 gray, 3 RGB) from whatever it is stored as (RGB, gray, CMYK,
    palette, 16-bit)."""
    img = to_8bit(Image.open(io.BytesIO(data)))
    img = img.convert("L" if channels == 1 else "RGB")
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)



def prepare_task(params, suite_name: str, task: str) -> dict:
    import torch
    from tqdm import tqdm

    suite = params.suite(suite_name)
    tspec = params["tasks"][task]
    source = params["sources"][tspec["source"]]
    archive = raw_archive(suite, source)
    if not archive.exists():
        raise ArchiveError(f"{archive}: archive missing (run the fetch step first)")
    digest = md5sum(archive)
    want = expected_md5(suite, source, archive)
    if digest != want:
        raise ArchiveError(f"{archive}: MD5 mismatch: expected {want}, actual {digest}")
    layout = LAYOUTS[source["layout"]]
    by_class = layout.classify(list_members(archive, dirs=True), tspec.get("domain"), where=str(archive))
    if not by_class:
        raise ArchiveError(f"{archive}: no member matches the {source['layout']} layout "
                           f"({layout.description})")
    check_counts(archive, source, suite, by_class)
    classes = select_classes(task, tspec["classes"], list(by_class), params["selection_seed"])
    wanted = {name: i for i, c in enumerate(classes) for name in by_class[c]}
    images = {}
    for name, data in tqdm(read_members(archive, set(wanted)), total=len(wanted),
                           desc=f"prepare {task}", unit="img", leave=False):
        images[name] = decode(data, source["channels"], suite["image_size"])
    names = sorted(wanted)
    x = np.stack([images[n] for n in names])
    y = np.array([wanted[n] for n in names], dtype=np.int64)
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 3:
        raise ArchiveError(f"{archive}: class {classes[int(counts.argmin())]} of task {task} has "
                           f"{int(counts.min())} images; at least 3 are needed to split")

    out_dir = prepared_dir(suite_name, task)
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared_manifest(suite_name, task).unlink(missing_ok=True)
    images_path = files.save_torch(prepared_images(suite_name, task),
                                   {"x": torch.from_numpy(x).contiguous(), "y": torch.from_numpy(y)})
    manifest = {
        "task": task,
        "suite": suite_name,
        "data": suite["data"],
        "source": tspec["source"],
        "archive": archive_name(source),
        "source_md5": digest,
        "classes": classes,
        "num_classes": len(classes),
        "channels": source["channels"],
        "image_size": suite["image_size"],
        "selection_seed": params["selection_seed"],
        "images": int(len(y)),
        "per_class": counts.tolist(),
        "split": "drawn per run at load time (hetmtl.data.splits)",
        # verified by every job that loads it (hetmtl.data.tasks): bit rot is named, not trained on
        "sha256": {images_path.name: files.sha256(images_path)},
    }
    files.write_text(prepared_manifest(suite_name, task), json.dumps(manifest, indent=2) + "\n")
    return manifest
