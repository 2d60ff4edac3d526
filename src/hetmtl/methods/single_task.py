"""Single-task baseline (paper: Single-task): one network per task, no sharing.

The T networks are trained side by side in the joint loop, each only by its
own task's loss, with the same per-task batch schedule as the joint methods;
so the only difference between this and a joint method is the sharing. This is
also the reference that MTAL with rho > 1 must reproduce exactly (protocol section 6).
"""

from __future__ import annotations

import torch
from torch import nn

from hetmtl.methods.base import Method, weights_of


class SingleTask(Method):
    name = "single_task"

    def __init__(self, tasks, spec, cfg, seed):
        super().__init__(tasks, spec, cfg, seed)
        self.nets = nn.ModuleList(self.task_nets())

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return self.nets[t](x)

    def task_weights(self, t: int) -> list[torch.Tensor]:
        return weights_of(self.nets[t])
