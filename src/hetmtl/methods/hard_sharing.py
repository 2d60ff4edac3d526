"""Hard parameter sharing (paper: Multi-task; lecture notes: hard sharing).

One trunk of convolutions shared by all tasks; each task keeps its own first
convolution (its native channel count) and its own head. With the VGG-BN
layout every task also keeps its own BatchNorm layers: a shared BatchNorm would
evaluate every task with running statistics averaged over heterogeneous inputs,
which measures the statistics and not the sharing (MTAL keeps per-task
BatchNorm for the same reason). The shared convolutions start from task 0's
initialisation, each task's own layers from its own.
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
        # Each trunk position: one shared module, or a ModuleList with one BatchNorm per task.
        self.trunk = nn.ModuleList(
            nn.ModuleList(net.features[i] for net in nets) if isinstance(m, nn.BatchNorm2d) else m
            for i, m in enumerate(nets[0].features) if i > 0
        )
        self.heads = nn.ModuleList(net.head for net in nets)

    def _trunk(self, t: int):
        return [m[t] if isinstance(m, nn.ModuleList) else m for m in self.trunk]

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        x = self.first[t](x)
        for m in self._trunk(t):
            x = m(x)
        return self.heads[t](x)

    def task_weights(self, t: int) -> list[torch.Tensor]:
        return (weights_of(self.first[t]) + [w for m in self._trunk(t) for w in weights_of(m)]
                + weights_of(self.heads[t]))
