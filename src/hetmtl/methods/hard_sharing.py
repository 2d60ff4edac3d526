"""Hard parameter sharing (paper: Multi-task; lecture notes: hard sharing).

A trunk shared by the tasks: every stage of the backbone contract after the
stem; each task keeps its own stem (its native channel count) and its own head.
With the ``prior`` setting there is one trunk per cluster of related tasks: the
connected components of ``R >= relation_threshold`` (protocol section 4); without a prior,
one trunk for all. Every BatchNorm inside a trunk stays per task (a
:class:`~hetmtl.models.base.PerTask` holding every task's own): a shared
BatchNorm would evaluate every task with running statistics averaged over
heterogeneous inputs, which measures the statistics and not the sharing (MTAL
keeps per-task BatchNorm for the same reason). A trunk starts from the
initialisation of its cluster's first task, each task's own layers from its own.
"""

from __future__ import annotations

import torch
from scipy.sparse.csgraph import connected_components
from torch import nn

from hetmtl.methods.base import Method, weights_of
from hetmtl.models.base import PerTask, TaskRouter, module_paths, outside_per_task, set_module, weights_for


def clusters(relations: torch.Tensor | None, T: int, threshold: float) -> list[int]:
    """Cluster id per task: connected components of R >= threshold."""
    if relations is None:
        return [0] * T
    _, labels = connected_components((relations >= threshold).numpy().astype(int), directed=False)
    return [int(v) for v in labels]


class HardSharing(Method):
    name = "hard_sharing"

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        super().__init__(tasks, spec, cfg, seed)
        nets = self.task_nets()
        self.cluster = clusters(relations, len(tasks), float(cfg["relation_threshold"]))
        self.router = TaskRouter()
        self.stems = nn.ModuleList(net.stem for net in nets)
        # trunks[c]: cluster c's stages (its first task's), each BatchNorm one per task.
        paths = module_paths(nets[0].stages, nn.BatchNorm2d)
        norms = {path: [net.stages.get_submodule(path) for net in nets] for path in paths}
        self.trunks = nn.ModuleList()
        for c in sorted(set(self.cluster)):
            lead = nets[self.cluster.index(c)].stages
            for path in paths:
                set_module(lead, path, PerTask(norms[path], self.router))
            self.trunks.append(lead)
        self.heads = nn.ModuleList(net.head for net in nets)

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        self.router.segs = [(t, len(x))]
        x = self.stems[t](x)
        for stage in self.trunks[self.cluster[t]]:
            x = stage(x)
        return self.heads[t](x)

    def task_weights(self, t: int) -> list[torch.Tensor]:
        return weights_of(self.stems[t]) + weights_for(self.trunks[self.cluster[t]], t) + weights_of(self.heads[t])

    def shared_parameters(self):
        """A trunk's parameters but its per-task BatchNorms, for a trunk of two or more tasks."""
        return [(p, None) for c, trunk in enumerate(self.trunks) if self.cluster.count(c) >= 2
                for p in outside_per_task(trunk)]
