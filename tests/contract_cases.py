"""The backbones the contract tests run on: each with tasks small enough for CPU."""

from __future__ import annotations

from conftest import fake_task
from hetmtl.models import BACKBONES

BACKBONE_NAMES = ["vgg_tiny", "resnet18"]


def case(backbone: str, toy_tasks: list) -> tuple:
    """(spec, tasks): VGG-tiny on the three toy tasks; ResNet-18 (11M parameters
    per task) on a grayscale and a colour task of 16 training images."""
    if backbone == "vgg_tiny":
        return BACKBONES["vgg_tiny"], toy_tasks
    return BACKBONES[backbone], [fake_task("g1", 1, 3, n=16, seed=1), fake_task("c1", 3, 4, n=16, seed=2)]


# Epochs of the equivalence runs: ResNet-18's one epoch (a few steps per task)
# keeps the default suite's time; MTAL's runs need two (a matching after epoch 1).
EPOCHS = {"vgg_tiny": 2, "resnet18": 1}
