"""The backbone contract every method works through (protocol section 5).

One task's network (:class:`TaskNet`) is

* ``stem``: the layers that see the input, built for the task's own channel
  count (VGG: the first convolution; ResNet: ``conv1``);
* ``stages``: an ``nn.ModuleList``; ``forward_stage(x, i)`` runs stage ``i``
  (the design of Multi-Task-Learning-PyTorch, which lets cross-stitch and
  NDDR-CNN wrap any backbone); ``stage_names`` and ``stage_channels`` (the
  output channels of every stage) describe them;
* ``head``: the task's classifier, sized to its class count;
* ``shareable_convs()``: the named convolutions MTAL may share, in forward
  order, each with its own stride, padding, dilation, groups and bias (or none).

A backbone module (``hetmtl.models.<family>``, the registry's ``family``)
defines a ``Net`` subclass; everything else lives here: per-task seeding, the
common start, ImageNet weights through torchvision's weights API (a grayscale
stem sums the RGB kernels), and the stage tags that ``freeze_blocks`` reads:
every parameter of the stem and of stage 0 is block 0, stage ``i``'s are
block ``i`` (for VGG exactly its blocks up to each max-pool; for ResNet-18
block 0 is conv1, bn1 and layer1, block i is layer(i+1)).
"""

from __future__ import annotations

import functools
import importlib

import torch
from torch import nn

from hetmtl.errors import UserError
from hetmtl.models.registry import BACKBONES, BackboneSpec


class TaskNet(nn.Module):
    """One task's network under the contract; subclasses build ``stem``,
    ``stages``, ``head`` (registered in that order) and set ``stage_names``."""

    spec: BackboneSpec
    stem: nn.Module
    stages: nn.ModuleList
    head: nn.Module
    stage_names: list[str]
    # torchvision's key prefix of the stem's module and of the stages' contents
    # (the state-dict keys inside a stage are torchvision's, below this prefix)
    tv_stem: str = ""
    tv_prefix: str = ""

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def forward_stage(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self.stages[i](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for i in range(len(self.stages)):
            x = self.forward_stage(x, i)
        return self.head(x)

    @property
    def stage_channels(self) -> list[int]:
        """Output channels of every stage (those of the last convolution up to its
        end: a VGG stage may hold none, its block's conv being the stem)."""
        out, width = [], None
        for part in (self.stem, *self.stages):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    width = m.out_channels
            out.append(width)
        return out[1:]

    def shareable_convs(self) -> dict[str, nn.Conv2d]:
        """The convolutions MTAL may share, by name, in forward order: the stem's
        (named by torchvision's name) and every conv inside a stage, named by its
        torchvision path. Backbones may rename (VGG: conv{block}_{k})."""
        out = {}
        for path, m in self.stem.named_modules():
            if isinstance(m, nn.Conv2d):
                out[_join(self.tv_stem, path)] = m
        for stage in self.stages:
            for path, m in stage.named_modules():
                if isinstance(m, nn.Conv2d):
                    out[path] = m
        return out

    def torchvision_key(self, key: str) -> str | None:
        """torchvision's state-dict key of one of our keys (None: the head, which
        a backbone maps itself or not at all)."""
        if key.startswith("stem."):
            return _join(self.tv_stem, key[len("stem."):])
        if key.startswith("stages."):
            return self.tv_prefix + key.split(".", 2)[2]
        return None

    @classmethod
    def layer_names(cls, spec: BackboneSpec) -> list[str]:
        """Names of ``shareable_convs`` without building real weights."""
        with torch.device("meta"):
            return list(cls(spec, 3, 2).shareable_convs())


def _join(prefix: str, path: str) -> str:
    return ".".join(p for p in (prefix, path) if p)


def tag_stages(net: TaskNet) -> None:
    """Mark every stem and stage parameter with its block, for freeze_blocks."""
    for p in net.stem.parameters():
        p.hetmtl_block = 0
    for i, stage in enumerate(net.stages):
        for p in stage.parameters():
            p.hetmtl_block = i


def net_class(spec: BackboneSpec) -> type[TaskNet]:
    """The ``Net`` of the backbone's module (``hetmtl.models.<family>``)."""
    return importlib.import_module(f"hetmtl.models.{spec.family}").Net


def conv_names(spec: BackboneSpec) -> list[str]:
    """Names of the convolutions MTAL may share (VGG: conv{block}_{index}, as in
    the paper's Table 6; ResNet: torchvision's module paths)."""
    return net_class(spec).layer_names(spec)


class ImageNetWeightsError(UserError, RuntimeError):
    """ImageNet weights are not available for a backbone or cannot be loaded."""


@functools.lru_cache(maxsize=2)
def imagenet_state(spec: BackboneSpec) -> dict:
    """torchvision's ImageNet weights for ``spec`` through its weights API.

    The file is cached in torch hub's cache (``$TORCH_HOME/hub/checkpoints``);
    a file placed there by hand is used without any download.
    """
    if spec.imagenet_weights is None:
        with_weights = ", ".join(sorted(name for name, s in BACKBONES.items() if s.imagenet_weights))
        raise ImageNetWeightsError(f"backbone {spec.name} has no ImageNet weights ({with_weights} have)")
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
    """Copy ImageNet weights into a task network: the stem, the stages and what
    the backbone maps of its head (VGG-16's hidden classifier layers); a
    grayscale stem sums the RGB kernels; the task's own output layer stays as
    initialised."""
    own = net.state_dict()
    for key in own:
        source = net.torchvision_key(key)
        if source is None or source not in state:
            continue
        value = state[source]
        if own[key].shape != value.shape:
            if key == "stem.weight" and own[key].shape[1] == 1:
                value = value.sum(dim=1, keepdim=True)
            else:
                continue  # the task's own output layer
        own[key] = value
    net.load_state_dict(own)


def build_task_net(spec: BackboneSpec, in_channels: int, num_classes: int, seed: int, task_index: int,
                   init: str = "scratch", start: str = "independent") -> TaskNet:
    """Build task ``task_index``'s network from its own seed, without touching global RNG.

    ``start`` says how the task copies begin (protocol section 6, a reading of ours):
    ``independent``: every task's backbone from its own seed; ``common``: every
    task's backbone is a copy of one reference network of the run's seed (a
    grayscale task's stem is the colour one summed over its channels,
    the way ImageNet weights are given to a grayscale task), heads from the
    task's own seed. ``init="imagenet"`` then loads torchvision's ImageNet
    weights (lecture notes: transfer by fine-tuning), which is common by
    construction.
    """
    cls = net_class(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1009 + task_index)
        net = cls(spec, in_channels, num_classes)
    if start == "common":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1009 + 997)  # the run's reference network (no task's own seed)
            reference = cls(spec, 3, 2)  # a fixed head: the RNG stream must not depend on the task
        state = {k: v for k, v in reference.state_dict().items() if k.startswith(("stem.", "stages."))}
        load_backbone(net, state)
    elif start != "independent":
        raise ValueError(f"unknown start {start!r} (independent or common)")
    if init == "imagenet":
        load_imagenet(net, imagenet_state(spec))
    elif init != "scratch":
        raise ValueError(f"unknown init {init!r} (scratch or imagenet)")
    tag_stages(net)
    return net


def load_backbone(net: TaskNet, state: dict) -> None:
    """Copy a colour network's stem and stages into ``net``; a grayscale stem
    gets the colour kernels summed over their input channels."""
    own = net.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape and key == "stem.weight" and own[key].shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        own[key] = value.clone()
    net.load_state_dict(own)


def weights_for(module: nn.Module, t: int) -> list[torch.Tensor]:
    """Task ``t``'s weight tensors (not biases) of a module in the order of its
    own parameters, where per-task parts (:class:`PerTask`) give task t's copy and
    a module with ``task_weight()`` (MTAL's shared convolutions) its gathered kernel."""
    if isinstance(module, PerTask):
        return weights_for(module.copies[t], t)
    if hasattr(module, "task_weight"):
        return [module.task_weight()]
    out = [p for n, p in module.named_parameters(recurse=False) if n.endswith("weight")]
    for child in module.children():
        out += weights_for(child, t)
    return out


class TaskRouter:
    """Which rows of the current batch belong to which task: ``segs``, a list of
    (task, rows). Held by a method and shared by its :class:`PerTask` modules."""

    def __init__(self):
        self.segs: list[tuple[int, int]] = [(0, 0)]


class PerTask(nn.Module):
    """One copy of a module per task (BatchNorm of a shared trunk or column):
    task t's copy is applied to task t's rows of the batch (the router's segs)."""

    def __init__(self, copies: list[nn.Module], router: TaskRouter):
        super().__init__()
        self.copies = nn.ModuleList(copies)
        self.router = router

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        segs = self.router.segs
        if len(segs) == 1:
            return self.copies[segs[0][0]](x)
        return torch.cat([self.copies[t](part) for (t, _), part in zip(segs, x.split([n for _, n in segs]))])


def outside_per_task(root: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``root`` not held by a :class:`PerTask` (whose copies
    each belong to one task): what a shared trunk or column shares."""
    own = {id(p) for m in root.modules() if isinstance(m, PerTask) for p in m.parameters()}
    return [p for p in root.parameters() if id(p) not in own]


def module_paths(root: nn.Module, kind: type) -> list[str]:
    """Paths of every submodule of type ``kind`` (in module order)."""
    return [path for path, m in root.named_modules() if isinstance(m, kind)]


def get_module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path)


def set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)
