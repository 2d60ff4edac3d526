"""ResNet-18 under the backbone contract, with torchvision's definition (protocol section 5).

torchvision's ``ResNet(BasicBlock, [2, 2, 2, 2])`` (``resnet18``), its modules
moved into the contract: the stem is ``conv1`` built for the task's channel
count (for a colour task torchvision's own ``conv1``, so that a colour task's
network draws exactly torchvision's initial weights); stage 0 is
``bn1, relu, maxpool, layer1`` (bn1 follows the per-task conv, so it stays in
the stage where methods keep BatchNorm per task), stages 1-3 are
``layer2..layer4``; the head is the global average pool and ``fc`` sized to the
task's classes. Inside a stage the modules keep torchvision's names, so the
shareable convolutions are named by torchvision's paths (``conv1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``) and ImageNet weights
(``ResNet18_Weights.IMAGENET1K_V1``) map key for key. freeze_blocks(k) freezes
conv1, bn1 and layer1 .. layer(k).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hetmtl.models.base import TaskNet
from hetmtl.models.registry import BackboneSpec


class Net(TaskNet):
    tv_stem = "conv1"
    tv_prefix = ""

    def __init__(self, spec: BackboneSpec, in_channels: int, num_classes: int):
        from torchvision.models.resnet import BasicBlock, ResNet

        super().__init__()
        self.spec = spec
        model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        if in_channels == model.conv1.in_channels:
            self.stem = model.conv1
        else:
            self.stem = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(self.stem.weight, mode="fan_out", nonlinearity="relu")
        self.stages = nn.ModuleList([
            nn.Sequential(OrderedDict(bn1=model.bn1, relu=model.relu, maxpool=model.maxpool, layer1=model.layer1)),
            nn.Sequential(OrderedDict(layer2=model.layer2)),
            nn.Sequential(OrderedDict(layer3=model.layer3)),
            nn.Sequential(OrderedDict(layer4=model.layer4)),
        ])
        self.stage_names = ["layer1", "layer2", "layer3", "layer4"]
        self.head = nn.Sequential(model.avgpool, nn.Flatten(), model.fc)

    def torchvision_key(self, key: str) -> str | None:
        if key.startswith("head.2."):
            return "fc." + key[len("head.2."):]
        return super().torchvision_key(key)
