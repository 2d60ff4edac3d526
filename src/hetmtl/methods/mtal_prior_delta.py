"""MTAL with the task prior, the `delta` reading (ours; :mod:`hetmtl.methods.mtal_delta`).

As :mod:`hetmtl.methods.mtal_delta`, but each task pair's threshold level comes
from R (protocol section 6, step 3, as :mod:`hetmtl.methods.mtal_prior` does for rho):
where R_ij >= ``relation_threshold`` the related level (``quantile_related`` of
the permutation null, or ``fraction_related``), elsewhere the unrelated one
(stricter by default), so unrelated tasks need updates that are more unusually
alike before they share.
"""

from __future__ import annotations

import torch

from hetmtl.methods.mtal_delta import MTALDelta


def pair_levels(relations: torch.Tensor, cfg: dict) -> torch.Tensor:
    """T x T: each task pair's threshold level (a quantile or a fraction) from R."""
    key = "quantile" if cfg["threshold"] == "null" else "fraction"
    related = relations >= float(cfg["relation_threshold"])
    return torch.where(related, torch.tensor(float(cfg[f"{key}_related"])),
                       torch.tensor(float(cfg[f"{key}_unrelated"])))


class MTALPriorDelta(MTALDelta):
    name = "mtal_prior_delta"

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        T = len(tasks)
        R = torch.ones(T, T) if relations is None else relations
        super().__init__(tasks, spec, {**cfg, "quantile": cfg["quantile_related"],
                                       "fraction": cfg["fraction_related"]}, seed, levels=pair_levels(R, cfg))
