"""MTAL with task priors (paper: MTAL with the task-relationship prior).

As :mod:`hetmtl.methods.mtal`, but the similarity threshold of each task pair
comes from the relationship matrix R (protocol section 6, step 3): ``rho_related`` (paper:
0.4) where R_ij >= ``relation_threshold``, ``rho_unrelated`` (paper: 0.55)
elsewhere, so unrelated tasks need more similar kernels before they share.
"""

from __future__ import annotations

import torch

from hetmtl.methods.mtal import MTAL

# The parameters this method reads from params/methods.yaml, each required (no
# default in code): JSON Schema of each key, read by hetmtl.params without
# importing this module (a literal; ``#/definitions/...``: params.schema.yaml's).
PARAMS = {
    "rho_related": {"type": "number", "minimum": -1, "maximum": 1.5},  # the paper: 0.4
    "rho_unrelated": {"type": "number", "minimum": -1, "maximum": 1.5},  # the paper: 0.55
    "relation_threshold": {"$ref": "#/definitions/probability"},  # R_ij >= this counts as related
    "alpha": {"$ref": "#/definitions/probability"},  # Eq. 5: weight of the lower-indexed task's kernel
    "beta": {"$ref": "#/definitions/probability"},  # Eq. 5: weight of the other kernel
    "warmup": {"type": "integer", "minimum": 1},  # epochs before the first matching
    "share_every": {"$ref": "#/definitions/positive_int"},
    "start": {"type": "string", "enum": ["independent", "common"]},  # ours: how the task copies start
}
# The tuning stage's search space (README "Tuning"; the ranges are ours: Fig. 9's 0.1 .. 0.9
# for each threshold), beside the learning rate.
SEARCH = {
    "rho_related": {"uniform": [0.1, 0.9]},
    "rho_unrelated": {"uniform": [0.1, 0.9]},
}



def pair_thresholds(relations: torch.Tensor, cfg: dict) -> torch.Tensor:
    related = relations >= float(cfg["relation_threshold"])
    return torch.where(related, torch.tensor(float(cfg["rho_related"])), torch.tensor(float(cfg["rho_unrelated"])))


class MTALPrior(MTAL):
    name = "mtal_prior"
    uses_prior = True

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        T = len(tasks)
        R = torch.ones(T, T) if relations is None else relations
        super().__init__(tasks, spec, {**cfg, "rho": cfg["rho_related"]}, seed, thresholds=pair_thresholds(R, cfg))
