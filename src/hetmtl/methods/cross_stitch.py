"""Cross-stitch networks (Misra et al., CVPR 2016); paper: Cross-Stitch.

After every stage of the backbone (a VGG block, a ResNet layer) a cross-stitch unit mixes the T columns' feature maps
per channel: ``out_i[c] = sum_j alpha_ij[c] * x_j[c]``. alpha starts at 0.9 on
the diagonal and 0.1 / (T - 1) off it; with the ``prior`` setting the
off-diagonal share follows the task-relationship matrix R (protocol section 4). The units
learn at ``unit_lr_mult`` times the base rate (params/methods.yaml; 1x by
evidence, ours); the columns start from the single-task run. See
``columns.py`` for how heterogeneous inputs reach every column.
"""

from __future__ import annotations

import torch
from torch import nn

from hetmtl.methods.columns import Columns

# The parameters this method reads from params/methods.yaml, each required (no
# default in code): JSON Schema of each key, read by hetmtl.params without
# importing this module (a literal; ``#/definitions/...``: params.schema.yaml's).
PARAMS = {
    "pretrain_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "own_weight": {"$ref": "#/definitions/probability"},
    "unit_lr_mult": {"type": "number", "exclusiveMinimum": 0},
}
# The tuning stage's search space (README "Tuning"; the ranges are ours): the units' start
# and their rate (Misra et al.: 0.9 and 100x over a fine-tuning rate; ours: 0.1x-100x, so the range holds
# the 1x that works from scratch on the demo and the 10-100x the authors used), beside the base learning rate.
SEARCH = {
    "own_weight": {"uniform": [0.5, 1.0]},
    "unit_lr_mult": {"log_uniform": [0.1, 100]},
}



class CrossStitch(Columns):
    name = "cross_stitch"
    uses_prior = True

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        super().__init__(tasks, spec, cfg, seed, relations)
        init = self.mixing
        self.alpha = nn.ParameterList(
            nn.Parameter(init[:, :, None].repeat(1, 1, width).clone()) for width in self.widths)

    def unit(self, b, segs, feats):
        stacked = torch.stack(feats)  # T x N x C x H x W
        mixed = torch.einsum("ijc,jnchw->inchw", self.alpha[b], stacked)
        return list(mixed.unbind(0))

    def unit_parameters(self):
        return list(self.alpha)

    def stage_unit_parameters(self, b):
        return [self.alpha[b]]
