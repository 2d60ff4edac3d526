"""VGG backbones built with torchvision's own definitions (SPEC section 5).

``make_layers`` builds the convolutional trunk from a config list exactly as
``torchvision.models.vgg.make_layers`` does (a replica, tested equal, so that a
job need not import torchvision); ``vgg16`` is torchvision's config "D" with torchvision's VGG
classifier, the small suites use shorter configs in the same format and a
global-average-pool + linear head. Heterogeneous input: the first convolution
is rebuilt per task with the task's native channel count. Heterogeneous output:
each task has its own head sized to its classes.

Every task network is initialised from its own seed (run seed, task index), so
that every method starts each task from the same weights.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from hetmtl.errors import UserError
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


class TaskNet(nn.Module):
    """One task's VGG: ``features`` (torchvision layout) then its own ``head``."""

    def __init__(self, spec: BackboneSpec, in_channels: int, num_classes: int):
        super().__init__()
        self.spec = spec
        self.features = make_layers(list(spec.cfg), batch_norm=spec.batch_norm)
        first = self.features[0]
        self.features[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
        self.head = make_head(spec, num_classes)
        _init(self)
        tag_blocks(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tag_blocks(features: nn.Sequential) -> None:
    """Mark each feature parameter with its VGG block (0-based), for freeze_blocks."""
    block = 0
    for m in features:
        for p in m.parameters(recurse=False):
            p.hetmtl_block = block
        if isinstance(m, nn.MaxPool2d):
            block += 1


class ImageNetWeightsError(UserError, RuntimeError):
    """ImageNet weights are not available for a backbone or cannot be loaded."""


@functools.lru_cache(maxsize=2)
def imagenet_state(spec: BackboneSpec) -> dict:
    """torchvision's ImageNet weights for ``spec`` through its weights API.

    The file is cached in torch hub's cache (``$TORCH_HOME/hub/checkpoints``);
    a file placed there by hand is used without any download.
    """
    if spec.imagenet_weights is None:
        raise ImageNetWeightsError(f"backbone {spec.name} has no ImageNet weights (vgg16 and vgg16_bn have)")
    from torchvision.models import get_weight

    weights = get_weight(spec.imagenet_weights)
    try:
        return weights.get_state_dict(progress=True, check_hash=False)
    except Exception as exc:  # noqa: BLE001 - offline, or a bad file in the cache
        import os

        from torch.hub import get_dir

        name = os.path.basename(weights.url)
        raise ImageNetWeightsError(
            f"cannot load {spec.imagenet_weights} ({type(exc).__name__}: {exc}); download {weights.url} "
            f"and place it at {os.path.join(get_dir(), 'checkpoints', name)}") from None


def load_imagenet(net: TaskNet, state: dict) -> None:
    """Copy ImageNet weights into a task network: the features and the hidden
    classifier layers; a grayscale task's first conv sums the RGB kernels; the
    task's own output layer stays as initialised."""
    own = net.state_dict()
    for key, value in state.items():
        if key.startswith("features."):
            target = key
        elif key.startswith("classifier.") and net.spec.head == "vgg_classifier":
            target = "head.2." + key[len("classifier."):]
        else:
            continue
        if target not in own:
            continue
        if own[target].shape != value.shape:
            if key == "features.0.weight" and own[target].shape[1] == 1:
                value = value.sum(dim=1, keepdim=True)
            else:
                continue  # the task's own output layer
        own[target] = value
    net.load_state_dict(own)


def build_task_net(spec: BackboneSpec, in_channels: int, num_classes: int, seed: int, task_index: int,
                   init: str = "scratch", start: str = "independent") -> TaskNet:
    """Build task ``task_index``'s network from its own seed, without touching global RNG.

    ``start`` says how the task copies begin (SPEC 6, a reading of ours):
    ``independent``: every task's backbone from its own seed; ``common``: every
    task's backbone is a copy of one reference network of the run's seed (a
    grayscale task's first conv is the colour one summed over its channels,
    the way ImageNet weights are given to a grayscale task), heads from the
    task's own seed. ``init="imagenet"`` then loads torchvision's ImageNet
    weights (lecture notes: transfer by fine-tuning), which is common by
    construction.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1009 + task_index)
        net = TaskNet(spec, in_channels, num_classes)
    if start == "common":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1009 + 997)  # the run's reference network (no task's own seed)
            reference = TaskNet(spec, 3, 2)  # a fixed head: the RNG stream must not depend on the task
        state = {k: v for k, v in reference.state_dict().items() if k.startswith("features.")}
        load_backbone(net, state)
    elif start != "independent":
        raise ValueError(f"unknown start {start!r} (independent or common)")
    if init == "imagenet":
        load_imagenet(net, imagenet_state(spec))
    elif init != "scratch":
        raise ValueError(f"unknown init {init!r} (scratch or imagenet)")
    return net


def load_backbone(net: TaskNet, state: dict) -> None:
    """Copy a colour network's ``features`` into ``net``; a grayscale first conv
    gets the colour kernels summed over their input channels."""
    own = net.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape and key == "features.0.weight" and own[key].shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        own[key] = value.clone()
    net.load_state_dict(own)


def conv_layers(features: nn.Sequential) -> list[int]:
    """Indices of the Conv2d modules in a torchvision VGG ``features``."""
    return [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]


def conv_names(spec: BackboneSpec) -> list[str]:
    """VGG names of the conv layers: conv{block}_{index}, as in the paper's Table 6."""
    names, block, k = [], 1, 0
    for v in spec.cfg:
        if v == "M":
            block, k = block + 1, 0
        else:
            k += 1
            names.append(f"conv{block}_{k}")
    return names
