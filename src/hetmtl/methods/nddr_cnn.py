"""NDDR-CNN (Gao et al., CVPR 2019): neural discriminative dimensionality reduction.

After every stage of the backbone (a VGG block, a ResNet layer), for each task i:
concatenate the T columns' feature maps (T*C channels) and apply a 1x1 convolution back to C channels, BatchNorm and
ReLU. The 1x1 weights start at 0.9 x identity on task i's own block and
0.1 / (T - 1) x identity on the others (with ``prior``: the off-diagonal share
follows R); the units learn at ``unit_lr_mult`` times the base rate (params/methods.yaml; 1x by
evidence, ours); the columns start from the
single-task run. The unit's BatchNorm, like the columns', is kept per task
whose samples it sees (see ``columns.py``). ``unit_bn: false`` drops the
unit's BatchNorm and ReLU (then identity weights reproduce the columns).
"""

from __future__ import annotations

import torch
from torch import nn

from hetmtl.methods.columns import Columns, per_task


class NDDRCNN(Columns):
    name = "nddr_cnn"

    def __init__(self, tasks, spec, cfg, seed, relations=None):
        super().__init__(tasks, spec, cfg, seed, relations)
        T, init = len(tasks), self.mixing
        self.unit_bn = bool(cfg["unit_bn"])
        self.reduce = nn.ModuleList()  # stage -> column i -> 1x1 conv
        self.norms = nn.ModuleList()  # stage -> column i -> per-task BatchNorm
        for width in self.widths:
            convs = nn.ModuleList()
            for i in range(T):
                conv = nn.Conv2d(T * width, width, kernel_size=1, bias=False)
                with torch.no_grad():
                    eye = torch.eye(width)
                    conv.weight.copy_(torch.cat([init[i, j] * eye for j in range(T)], dim=1)[:, :, None, None])
                convs.append(conv)
            self.reduce.append(convs)
            self.norms.append(nn.ModuleList(
                nn.ModuleList(nn.BatchNorm2d(width) for _ in range(T)) for _ in range(T)))

    def unit(self, b, segs, feats):
        cat = torch.cat(feats, dim=1)
        out = []
        for i, conv in enumerate(self.reduce[b]):
            y = conv(cat)
            if self.unit_bn:
                y = torch.relu(per_task(self.norms[b][i], segs, y))
            out.append(y)
        return out

    def unit_parameters(self):
        return list(self.reduce.parameters())

    def stage_unit_parameters(self, b):
        return list(self.reduce[b].parameters()) + list(self.norms[b].parameters())

    def one_task_parameters(self):
        """Also every unit BatchNorm: norms[b][i][t] normalises task t's samples only."""
        return super().one_task_parameters() + list(self.norms.parameters())

    def param_groups(self) -> list[dict]:
        """The 1x1 reductions at ``unit_lr_mult``; the units' BatchNorm at
        ``unit_bn_lr_mult`` (the base rate by default: Gao et al. raise the rate
        of the NDDR layer's weights, not of its normalisation)."""
        groups = super().param_groups()
        norms = [p for p in self.norms.parameters() if p.requires_grad]
        ids = {id(p) for p in norms}
        groups[0]["params"] = [p for p in groups[0]["params"] if id(p) not in ids]
        return groups + [{"params": norms, "lr_mult": float(self.cfg["unit_bn_lr_mult"])}]
