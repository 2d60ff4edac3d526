"""What every method provides to the training loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hetmtl.models import BackboneSpec


@dataclass(frozen=True)
class TaskInfo:
    name: str
    channels: int
    num_classes: int


class Method(nn.Module):
    """A multi-task model: ``forward(t, x)`` gives task ``t``'s logits.

    Subclasses set ``name``; the training loop adds, for every task, the
    cross-entropy and ``l2_lambda * sum(w ** 2 for w in task_weights(t))``
    (SPEC section 6, step 6; shared weights are penalised once per task that
    uses them, as the per-task sum in the objective says).
    """

    name: str = ""
    uses_prior: bool = False

    def __init__(self, tasks: list[TaskInfo], spec: BackboneSpec, cfg: dict, seed: int):
        super().__init__()
        self.tasks = tasks
        self.spec = spec
        self.cfg = dict(cfg)
        self.seed = seed

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def task_weights(self, t: int) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def after_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """Called after each finished epoch (1-based); returns metrics to log."""
        return {}


def weights_of(module: nn.Module) -> list[torch.Tensor]:
    """The weight tensors (not biases) of a module: what the L2 penalty covers."""
    return [p for n, p in module.named_parameters() if n.endswith("weight")]
