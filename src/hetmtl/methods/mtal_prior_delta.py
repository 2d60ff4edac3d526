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

# The parameters this method reads from params/methods.yaml, each required (no
# default in code): JSON Schema of each key, read by hetmtl.params without
# importing this module (a literal; ``#/definitions/...``: params.schema.yaml's).
PARAMS = {
    "alpha": {"$ref": "#/definitions/probability"},
    "beta": {"$ref": "#/definitions/probability"},
    "warmup": {"type": "integer", "minimum": 1},
    "share_every": {"$ref": "#/definitions/positive_int"},
    "pairing": {"type": "string", "enum": ["index", "matched"]},
    "project_w0": {"type": "boolean"},
    "threshold": {"type": "string", "enum": ["null", "fraction"]},
    "quantile_related": {"$ref": "#/definitions/probability"},  # threshold null, R_ij >= relation_threshold
    "quantile_unrelated": {"$ref": "#/definitions/probability"},  # threshold null, elsewhere
    "fraction_related": {"$ref": "#/definitions/probability"},  # threshold fraction, related pairs
    "fraction_unrelated": {"$ref": "#/definitions/probability"},  # threshold fraction, elsewhere
    "relation_threshold": {"$ref": "#/definitions/probability"},  # R_ij >= this counts as related
}
SEARCH = {
    "quantile_related": {"uniform": [0.99, 0.9999]},
    "quantile_unrelated": {"uniform": [0.99, 0.9999]},
}


def pair_levels(relations: torch.Tensor, cfg: dict) -> torch.Tensor:
    """T x T: each task pair's threshold level (a quantile or a fraction) from R."""
    key = "quantile" if cfg["threshold"] == "null" else "fraction"
    related = relations >= float(cfg["relation_threshold"])
    return torch.where(related, torch.tensor(float(cfg[f"{key}_related"])),
                       torch.tensor(float(cfg[f"{key}_unrelated"])))


class MTALPriorDelta(MTALDelta):
    name = "mtal_prior_delta"
    uses_prior = True

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        T = len(tasks)
        R = torch.ones(T, T) if relations is None else relations
        super().__init__(tasks, spec, {**cfg, "quantile": cfg["quantile_related"],
                                       "fraction": cfg["fraction_related"]}, seed, levels=pair_levels(R, cfg))
