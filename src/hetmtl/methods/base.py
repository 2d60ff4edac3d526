"""What every method provides to the training loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hetmtl.methods.registry import METHOD_SPECS, TRAIN
from hetmtl.models import BackboneSpec


@dataclass(frozen=True)
class TaskInfo:
    name: str
    channels: int
    num_classes: int


class Method(nn.Module):
    """A multi-task model: ``forward(t, x)`` gives task ``t``'s logits.

    Subclasses set ``name``, and take ``uses_prior``, ``deep``, ``joint`` and ``phases`` from
    their declaration in :data:`hetmtl.methods.registry.METHOD_SPECS` (declared
    once, there, where params reads them too). The training loop adds, for every task, the
    cross-entropy and ``l2_lambda * sum(w ** 2 for w in task_weights(t))``
    (protocol section 6, step 6; shared weights are penalised once per task that
    uses them, as the per-task sum in the objective says).
    """

    name: str = ""
    # Set from the class's registry entry (hetmtl.methods.registry.MethodSpec, which says what each means)
    uses_prior: bool = False
    deep: bool = True
    joint: bool = True
    phases: tuple[str, ...] = (TRAIN,)
    # Set by a method whose weights changed outside the optimiser (MTAL's merge):
    # the loop then re-estimates every BatchNorm's statistics on the training split.
    needs_bn_recalibration: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declared = METHOD_SPECS.get(cls.__dict__.get("name", ""))
        if declared is not None:  # a named method: its flags are its declaration's
            cls.uses_prior, cls.deep, cls.joint = declared.uses_prior, declared.deep, declared.joint
            cls.phases = declared.phases

    def __init__(self, tasks: list[TaskInfo], spec: BackboneSpec, cfg: dict, seed: int):
        super().__init__()
        self.tasks = tasks
        self.spec = spec
        self.cfg = dict(cfg)
        self.seed = seed

    def task_nets(self, start: str = "independent") -> list:
        """Every task's network, each from its own seed (and ImageNet weights if
        asked); ``start="common"`` starts every backbone from one reference copy
        (MTAL's start reading, :func:`hetmtl.models.base.build_task_net`)."""
        from hetmtl.models import build_task_net

        init = self.cfg.get("init", "scratch")
        return [build_task_net(self.spec, task.channels, task.num_classes, self.seed, t, init, start)
                for t, task in enumerate(self.tasks)]

    def shared_parameters(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """The parameters that more than one task's loss uses, for a gradient
        aggregator (:mod:`hetmtl.weightings`): (parameter, None) for all of it,
        or (parameter, a boolean mask of its rows) when only those rows are
        shared (MTAL's kernel bank). Every other parameter is task-specific: its
        gradient is its one task's (a test checks both directions per method).
        None here: independent networks (single-task) and soft sharing, whose
        coupling is a penalty, not a parameter two tasks use."""
        return []

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_all(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every task's logits for one batch per task (methods may batch across tasks)."""
        return [self(t, x) for t, x in enumerate(xs)]

    def task_weights(self, t: int) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Optimiser groups; a group may carry ``lr_mult`` (a multiple of the base rate)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def extra_loss(self) -> torch.Tensor | None:
        """A method's own term of the objective (soft sharing's penalty), or None."""
        return None

    def freeze_blocks(self, k: int) -> int:
        """Freeze every parameter of the first ``k`` blocks; return how many.

        A block is a stage of the backbone contract, the stem belonging to block
        0 (:func:`hetmtl.models.base.tag_stages`): for VGG exactly its blocks
        (convolutions up to and including each max-pool), for ResNet-18 block 0
        is conv1, bn1 and layer1, block i is layer(i+1). Task networks tag their
        stem and stage parameters with ``hetmtl_block``; methods that make new
        parameters from them (MTAL's kernel banks, per-task BatchNorm copies)
        carry the tag over.
        """
        frozen = 0
        for p in self.parameters():
            if getattr(p, "hetmtl_block", None) is not None and p.hetmtl_block < k:
                p.requires_grad_(False)
                frozen += 1
        return frozen

    def after_epoch(self, epoch: int, optimizer: torch.optim.Optimizer, final: bool = False) -> dict[str, float]:
        """Called after each finished epoch (1-based; ``final`` after the last); returns metrics to log."""
        return {}


def weights_of(module: nn.Module) -> list[torch.Tensor]:
    """The weight tensors (not biases) of a module: what the L2 penalty covers."""
    return [p for n, p in module.named_parameters() if n.endswith("weight")]
