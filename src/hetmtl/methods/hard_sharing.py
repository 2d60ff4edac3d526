"""Hard parameter sharing (paper: Multi-task; lecture notes: hard sharing).

One trunk shared by all tasks; each task keeps its own first convolution (its
native channel count) and its own head. The shared trunk starts from task 0's
initialisation, each task's first conv and head from its own.
"""

from __future__ import annotations

import torch
from torch import nn

from hetmtl.methods.base import Method, weights_of
from hetmtl.models import build_task_net


class HardSharing(Method):
    name = "hard_sharing"

    def __init__(self, tasks, spec, cfg, seed):
        super().__init__(tasks, spec, cfg, seed)
        nets = [build_task_net(spec, task.channels, task.num_classes, seed, t) for t, task in enumerate(tasks)]
        self.first = nn.ModuleList(net.features[0] for net in nets)
        self.trunk = nets[0].features[1:]
        self.heads = nn.ModuleList(net.head for net in nets)

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return self.heads[t](self.trunk(self.first[t](x)))

    def task_weights(self, t: int) -> list[torch.Tensor]:
        return weights_of(self.first[t]) + weights_of(self.trunk) + weights_of(self.heads[t])
