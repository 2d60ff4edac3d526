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


class CrossStitch(Columns):
    name = "cross_stitch"

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
