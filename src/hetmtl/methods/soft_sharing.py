"""Soft parameter sharing (lecture notes): one network per task plus a penalty.

``gamma * sum over task pairs (i, j) of w_ij * ||theta_i - theta_j||^2`` over
corresponding BACKBONE convolutions (weights and biases) whose shapes agree (a
grayscale and a colour task's first convolutions are not compared). Heads and
BatchNorm stay free: a digit's output row has nothing to do with a letter's,
and BatchNorm parameters follow each task's own input statistics (protocol section 5).
``w_ij`` is 1 without a prior and R_ij with the ``prior`` setting. With
gamma = 0 this is the single-task baseline exactly.
"""

from __future__ import annotations

import torch

from hetmtl.methods.single_task import SingleTask


class SoftSharing(SingleTask):
    name = "soft_sharing"

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        super().__init__(tasks, spec, cfg, seed)
        T = len(tasks)
        self.gamma = float(cfg["gamma"])
        R = torch.ones(T, T) if relations is None else relations.clone().float()
        self.register_buffer("pair_weights", R)

    def coupled_parameters(self, t: int) -> list[torch.Tensor]:
        """Task t's backbone convolution weights and biases (the contract's shareable
        convolutions), in layer order."""
        return [p for conv in self.nets[t].shareable_convs().values() for p in conv.parameters()]

    def extra_loss(self) -> torch.Tensor:
        params = [self.coupled_parameters(t) for t in range(len(self.nets))]
        total = params[0][0].new_zeros(())
        for i in range(len(params)):
            for j in range(i + 1, len(params)):
                for a, b in zip(params[i], params[j]):
                    if a.shape == b.shape:
                        total = total + self.pair_weights[i, j] * (a - b).pow(2).sum()
        return self.gamma * total
