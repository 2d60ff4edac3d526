"""Each task's shape for a suite: channels, classes, image size and the images of
each split, from the task's prepared manifest when it exists (exact), otherwise
estimated from params before anything is fetched (the paper suite here): the
source's counts (``expected``, or what its stand-in generator writes) spread
evenly over its classes, and the split's fractions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hetmtl import paths
from hetmtl.data.prepare import resolve_pool
from hetmtl.data.sources import LAYOUTS
from hetmtl.errors import UserError


@dataclass(frozen=True)
class TaskShape:
    name: str
    channels: int
    classes: int
    image_size: int
    split: dict  # split -> images (train, val, test)
    exact: bool  # from the prepared manifest (True) or estimated from params

    @property
    def images(self) -> int:
        return sum(self.split.values())


def split_counts(images: int, fractions: dict) -> dict:
    """Images per split (the split's fractions of ``images``; per-class rounding is not modelled)."""
    train = round(images * fractions["train"])
    val = round(images * fractions["val"])
    return {"train": train, "val": val, "test": images - train - val}


def task_shape(params, suite_name: str, task: str) -> TaskShape:
    suite = params.suite(suite_name)
    fractions = {k: params["split"][k] for k in ("train", "val", "test")}
    manifest = params.root / paths.prepared_manifest(suite_name, task)
    if manifest.exists():
        m = json.loads(manifest.read_text())
        return TaskShape(task, int(m["channels"]), int(m["num_classes"]), int(suite["image_size"]),
                         split_counts(int(m["images"]), fractions), True)
    spec = params["tasks"][task]
    source = params["sources"][spec["source"]]
    layout = LAYOUTS[source["layout"]]
    counts = (layout.standin_counts(suite["images_per_class"]) if suite["data"] == "standin" and not layout.local
              else source.get("expected"))
    if counts is None:
        raise UserError(f"task {task}: its source {spec['source']} gives no `expected` counts in "
                        f"params/datasets.yaml; prepare it first (hetmtl prepare --suite {suite_name} --task {task})")
    pool = spec["classes"]["pool"]
    pool_size = counts["classes"] if pool == "source" else len(resolve_pool(pool, []))
    classes = pool_size if spec["classes"]["draw"] == "all" else int(spec["classes"]["draw"])
    images = round(counts["images"] / counts["classes"] * classes)
    return TaskShape(task, int(source["channels"]), classes, int(suite["image_size"]),
                     split_counts(images, fractions), False)
