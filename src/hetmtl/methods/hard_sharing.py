"""Hard parameter sharing (paper: Multi-task; lecture notes: hard sharing).

A trunk of convolutions shared by the tasks; each task keeps its own first
convolution (its native channel count) and its own head. With the ``prior``
setting there is one trunk per cluster of related tasks: the connected
components of ``R >= relation_threshold`` (SPEC 4); without a prior, one trunk
for all. With the VGG-BN layout every task also keeps its own BatchNorm layers:
a shared BatchNorm would evaluate every task with running statistics averaged
over heterogeneous inputs, which measures the statistics and not the sharing
(MTAL keeps per-task BatchNorm for the same reason). A trunk starts from the
initialisation of its cluster's first task, each task's own layers from its own.
"""

from __future__ import annotations

import torch
from scipy.sparse.csgraph import connected_components
from torch import nn

from hetmtl.methods.base import Method, weights_of


def clusters(relations: torch.Tensor | None, T: int, threshold: float) -> list[int]:
    """Cluster id per task: connected components of R >= threshold."""
    if relations is None:
        return [0] * T
    _, labels = connected_components((relations >= threshold).numpy().astype(int), directed=False)
    return [int(v) for v in labels]


class HardSharing(Method):
    name = "hard_sharing"
    uses_prior = True

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        super().__init__(tasks, spec, cfg, seed)
        nets = self.task_nets()
        self.cluster = clusters(relations, len(tasks), float(cfg.get("relation_threshold", 0.5)))
        self.first = nn.ModuleList(net.features[0] for net in nets)
        # trunks[c][k]: cluster c's k-th layer: a shared module, or one BatchNorm per task.
        self.trunks = nn.ModuleList()
        for c in sorted(set(self.cluster)):
            lead = nets[self.cluster.index(c)]
            self.trunks.append(nn.ModuleList(
                nn.ModuleList(net.features[i] for net in nets) if isinstance(m, nn.BatchNorm2d) else m
                for i, m in enumerate(lead.features) if i > 0))
        self.heads = nn.ModuleList(net.head for net in nets)

    def _trunk(self, t: int):
        return [m[t] if isinstance(m, nn.ModuleList) else m for m in self.trunks[self.cluster[t]]]

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        x = self.first[t](x)
        for m in self._trunk(t):
            x = m(x)
        return self.heads[t](x)

    def task_weights(self, t: int) -> list[torch.Tensor]:
        return (weights_of(self.first[t]) + [w for m in self._trunk(t) for w in weights_of(m)]
                + weights_of(self.heads[t]))
