"""The prepared-data format: task tensors held whole in (device) memory, and the batch schedule.

No image is decoded during training: the prepare step wrote uint8 tensors, a run
cuts them into its seed's split when it loads them, and batches are gathered by
index from the resident tensors. Every joint step takes one batch of the same
size from every task; an epoch is the largest task's batch count and smaller
tasks cycle through fresh permutations (protocol section 5). Each task's order comes from
its own generator seeded by (run seed, task, epoch), so every method sees the
same batches and a resumed run continues exactly."""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass

import torch

from hetmtl.data.splits import SPLITS, run_split
from hetmtl.files import IntegrityError, read_verified, require
from hetmtl.paths import prepared_images, prepared_manifest


@dataclass
class TaskData:
    name: str
    channels: int
    num_classes: int
    x: dict  # split -> uint8 N x C x H x W (on the device)
    y: dict  # split -> int64 N
    manifest: dict

    def size(self, split: str = "train") -> int:
        return int(self.y[split].shape[0])


@functools.cache
def _prepared(suite: str, task: str) -> tuple[dict, dict]:
    """Manifest and images of a task, read from disk once per process (a job trains
    several seeds; the relations stage loads every task once per pair and seed)."""
    make = f"hetmtl prepare --suite {suite} --task {task}"
    manifest = json.loads(require(prepared_manifest(suite, task), make).read_text())
    images = require(prepared_images(suite, task), make)
    rebuild = f"{make} (Snakemake: --forcerun prepare; DVC: dvc repro -f prepare-{task})"
    if images.name not in manifest.get("sha256", {}):
        raise IntegrityError(f"{prepared_manifest(suite, task)}: no checksum of {images.name} (prepared by an "
                             f"older version); rebuild it: {rebuild}")
    blob = read_verified(images, manifest["sha256"][images.name], rebuild)  # read once: hashed, then loaded
    return manifest, torch.load(io.BytesIO(blob), weights_only=True)


def load_task(suite: str, task: str, device: torch.device, split: dict, seed: int) -> TaskData:
    """The task's prepared images, cut into the split of run ``seed`` (``split``:
    params/datasets.yaml's ``split``), resident on ``device``."""
    manifest, blob = _prepared(suite, task)
    idx = run_split(blob["y"].numpy(), split, seed)
    x, y = {}, {}
    for name in SPLITS:
        i = torch.from_numpy(idx[name])
        x[name] = blob["x"].index_select(0, i).to(device).contiguous()
        y[name] = blob["y"].index_select(0, i).to(device)
    manifest = {**manifest, "split_counts": {name: len(idx[name]) for name in SPLITS}}
    return TaskData(task, manifest["channels"], manifest["num_classes"], x, y, manifest)


def steps_per_epoch(data: list[TaskData], batch_size: int) -> int:
    return max(math.ceil(d.size() / batch_size) for d in data)


def epoch_batches(n: int, batch_size: int, steps: int, seed: int, task_index: int, epoch: int) -> torch.Tensor:
    """(steps, batch_size) indices into a task of ``n`` training images."""
    g = torch.Generator().manual_seed(((seed * 7919 + task_index) * 104729 + epoch) % (2**63))
    need = steps * batch_size
    perms = [torch.randperm(n, generator=g) for _ in range(math.ceil(need / n))]
    return torch.cat(perms)[:need].view(steps, batch_size)


# torchvision's ImageNet normalisation; a grayscale task (whose first conv is the
# colour one summed over RGB) gets the mean of the three channels' statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMS = ("symmetric", "imagenet")


def to_input(x: torch.Tensor, norm: str = "symmetric") -> torch.Tensor:
    """uint8 images -> float network input: ``symmetric`` maps [0, 255] to [-1, 1]
    (from scratch); ``imagenet`` standardises as the ImageNet weights expect."""
    x = x.contiguous(memory_format=torch.channels_last)  # NHWC: the faster conv layout on CPU and GPU
    if norm == "symmetric":
        return x.float().div_(127.5).sub_(1.0)
    if norm != "imagenet":
        raise ValueError(f"unknown input normalisation {norm!r} (one of {NORMS})")
    C = x.shape[1]
    mean = IMAGENET_MEAN if C == 3 else (sum(IMAGENET_MEAN) / 3,) * C
    std = IMAGENET_STD if C == 3 else (sum(IMAGENET_STD) / 3,) * C
    m = torch.tensor(mean, device=x.device).view(1, C, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, C, 1, 1)
    return ((x.float().div_(255.0) - m) / s).contiguous(memory_format=torch.channels_last)
