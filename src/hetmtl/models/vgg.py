"""VGG under the backbone contract, with torchvision's own definitions (protocol section 5).

``make_layers`` builds the convolutional trunk from a config list exactly as
``torchvision.models.vgg.make_layers`` does (a replica, tested equal, so that a
job need not import torchvision); ``vgg16`` is torchvision's config "D" with torchvision's VGG
classifier, the small suites use shorter configs in the same format and a
global-average-pool + linear head.

Contract: the stem is the first convolution, rebuilt per task with the task's
native channel count; stage ``b`` is the rest of VGG block ``b`` (BatchNorm,
ReLU, further convolutions, up to and including its max-pool), so the stem and
stage 0 are the first VGG block and ``freeze_blocks(k)`` freezes exactly the
first k VGG blocks. Inside a stage the modules keep torchvision's ``features``
indices as names. The shareable convolutions are named conv{block}_{k}, as in
the paper's Table 6. Every module is drawn in torchvision's order, so a task
network's initial weights are those of the flat ``features`` layout.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hetmtl.models.base import TaskNet
from hetmtl.models.registry import VGG16_CFG, BackboneSpec  # noqa: F401 (VGG16_CFG: read through this module by tests)


def make_layers(cfg: list, batch_norm: bool = False) -> nn.Sequential:
    """torchvision.models.vgg.make_layers, the same modules in the same order
    (so the same parameter names and the same random draws; a test compares the
    two)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else \
                [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def _init(module: nn.Module) -> None:
    """torchvision's VGG initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


def make_head(spec: BackboneSpec, num_classes: int) -> nn.Module:
    width = [v for v in spec.cfg if v != "M"][-1]
    if spec.head == "gap_linear":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
    from torchvision.models import vgg as tv_vgg

    model = tv_vgg.VGG(nn.Identity(), num_classes=num_classes, init_weights=False)
    return nn.Sequential(model.avgpool, nn.Flatten(), model.classifier)


def split_blocks(features: nn.Sequential) -> list[nn.Sequential]:
    """``features[1:]`` cut after every max-pool; each module keeps its index as name."""
    blocks, block = [], []
    for i, m in enumerate(features):
        if i == 0:
            continue
        block.append((str(i), m))
        if isinstance(m, nn.MaxPool2d):
            blocks.append(nn.Sequential(OrderedDict(block)))
            block = []
    if block:
        blocks.append(nn.Sequential(OrderedDict(block)))
    return blocks


class Net(TaskNet):
    """One task's VGG: ``stem`` (its first conv), ``stages`` (the VGG blocks), ``head``."""

    tv_stem = "features.0"
    tv_prefix = "features."

    def __init__(self, spec: BackboneSpec, in_channels: int, num_classes: int):
        super().__init__()
        self.spec = spec
        features = make_layers(list(spec.cfg), batch_norm=spec.batch_norm)
        first = features[0]
        self.stem = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
        self.stages = nn.ModuleList(split_blocks(features))
        self.stage_names = [f"block{b + 1}" for b in range(len(self.stages))]
        self.head = make_head(spec, num_classes)
        _init(self)

    def shareable_convs(self) -> dict[str, nn.Conv2d]:
        convs = [m for part in (self.stem, self.stages) for m in part.modules() if isinstance(m, nn.Conv2d)]
        return dict(zip(self.layer_names(self.spec), convs))

    def torchvision_key(self, key: str) -> str | None:
        if key.startswith("head.2.") and self.spec.head == "vgg_classifier":
            return "classifier." + key[len("head.2."):]
        return super().torchvision_key(key)

    @classmethod
    def layer_names(cls, spec: BackboneSpec) -> list[str]:
        """VGG names of the conv layers: conv{block}_{index}, as in the paper's Table 6."""
        names, block, k = [], 1, 0
        for v in spec.cfg:
            if v == "M":
                block, k = block + 1, 0
            else:
                k += 1
                names.append(f"conv{block}_{k}")
        return names
