"""Toy tasks that differ the way real tasks do, for the mechanism tests.

The toy tasks of conftest (``toy_tasks``) are alike: one size, one image size, two
channel counts, one seed. A mechanism that treats tasks, task orders, seeds or
backbones unequally looks correct on them. These differ on purpose:

* sizes: 40, 12, 24 and 20 training images (an epoch is the largest task's batch
  count; smaller tasks cycle), with a last batch that is partial;
* input channels: grayscale and colour tasks in one group, colour first as well;
* image sizes: 12 and 20 pixels (a suite has one; suites differ);
* classes: 2 to 5;
* four tasks in a group (three-way sharing, pairs in both orders);
* a relation matrix with a different value for every pair (and values exactly at
  a threshold, where ``>=`` and ``>`` disagree);
* several seeds;
* backbones with BatchNorm (the small suites' VGG-BN) and without (the paper
  suite's plain VGG-16, whose convolutions carry biases).
"""

from __future__ import annotations

import torch

from conftest import fake_task
from hetmtl.methods import TaskInfo
from hetmtl.models import BACKBONES
from hetmtl.models.registry import BackboneSpec

# VGG-tiny's two blocks with and without BatchNorm (plain VGG: conv with bias, ReLU).
BN = BACKBONES["vgg_tiny"]
PLAIN = BackboneSpec("vgg_tiny_plain", BN.cfg, "gap_linear", batch_norm=False)
SPECS = {"batchnorm": BN, "plain": PLAIN}
SEEDS = (0, 1, 2)

# (name, channels, classes, training images): colour first, sizes unequal, none a multiple of 8
SHAPES = [("c40", 3, 4, 40), ("g12", 1, 3, 12), ("g24", 1, 2, 24), ("c20", 3, 5, 20)]

# A relation matrix with a distinct value for every pair; R[0, 2] is exactly 0.5
# (a threshold's value in float32 and float64).
R4 = torch.tensor([[1.0, 0.9, 0.5, 0.2],
                   [0.9, 1.0, 0.3, 0.6],
                   [0.5, 0.3, 1.0, 0.8],
                   [0.2, 0.6, 0.8, 1.0]])


def tasks(seed: int = 0, image_size: int = 12, count: int = 4) -> list:
    """The first ``count`` of the four unequal tasks, drawn from ``seed``."""
    return [fake_task(name, c, k, n=n, size=image_size, seed=100 * seed + i)
            for i, (name, c, k, n) in enumerate(SHAPES[:count])]


def infos(data: list) -> list[TaskInfo]:
    return [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
