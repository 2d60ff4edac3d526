"""MTAL with task priors (paper: MTAL with the task-relationship prior).

As :mod:`hetmtl.methods.mtal`, but the similarity threshold of each task pair
comes from the relationship matrix R (protocol section 6, step 3): ``rho_related`` (paper:
0.4) where R_ij >= ``relation_threshold``, ``rho_unrelated`` (paper: 0.55)
elsewhere, so unrelated tasks need more similar kernels before they share.
"""

from __future__ import annotations

import torch

from hetmtl.methods.mtal import MTAL


def pair_thresholds(relations: torch.Tensor, cfg: dict) -> torch.Tensor:
    related = relations >= float(cfg["relation_threshold"])
    return torch.where(related, torch.tensor(float(cfg["rho_related"])), torch.tensor(float(cfg["rho_unrelated"])))


class MTALPrior(MTAL):
    name = "mtal_prior"

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        T = len(tasks)
        R = torch.ones(T, T) if relations is None else relations
        super().__init__(tasks, spec, {**cfg, "rho": cfg["rho_related"]}, seed, thresholds=pair_thresholds(R, cfg))
