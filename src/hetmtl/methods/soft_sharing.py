"""Soft parameter sharing (lecture notes): one network per task plus a penalty.

``gamma * sum over task pairs (i, j) of w_ij * ||theta_i - theta_j||^2`` over
corresponding layers whose shapes agree (a grayscale and a colour task's first
convolutions, and heads of different class counts, are not compared). ``w_ij``
is 1 without a prior and R_ij with the ``prior`` setting. With gamma = 0 this
is the single-task baseline exactly.
"""

from __future__ import annotations

import torch

from hetmtl.methods.single_task import SingleTask


class SoftSharing(SingleTask):
    name = "soft_sharing"
    uses_prior = True

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        super().__init__(tasks, spec, cfg, seed)
        T = len(tasks)
        self.gamma = float(cfg.get("gamma", 0.0))
        R = torch.ones(T, T) if relations is None else relations.clone().float()
        self.register_buffer("pair_weights", R)

    def extra_loss(self) -> torch.Tensor:
        params = [list(net.parameters()) for net in self.nets]
        total = params[0][0].new_zeros(())
        for i in range(len(params)):
            for j in range(i + 1, len(params)):
                for a, b in zip(params[i], params[j]):
                    if a.shape == b.shape:
                        total = total + self.pair_weights[i, j] * (a - b).pow(2).sum()
        return self.gamma * total
