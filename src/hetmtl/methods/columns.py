"""Per-task columns joined after every VGG block (base of cross-stitch and NDDR-CNN).

Heterogeneous inputs make "the other columns' features" ill-defined at test
time if each column only ever saw its own task's images. Our reading (SPEC 5
is silent on it): every sample goes through EVERY column, converted to that
column's channel count (grayscale repeated to three channels, colour averaged
to one), so a task's prediction depends only on its own input. The unit after
each block mixes the T columns' feature maps of the same sample.

Each column keeps one BatchNorm per task whose samples it processes, so that
batch statistics never mix tasks; with identity mixing every column therefore
computes exactly the single-task network on its own task.

Columns start from single-task networks trained inside the method's own budget:
the first ``pretrain_fraction`` of the suite's epochs train them alone (exactly
the single_task run's first epochs; :func:`hetmtl.training.job.train_deep`),
the rest trains the stitched model, so cross-stitch and NDDR-CNN get the same
number of optimisation steps per task as every other method. The units'
parameters learn at ``unit_lr_mult`` (100x) the base rate.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hetmtl.methods.base import Method, weights_of


def adapt_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if channels == 1:
        return x.mean(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")


def mixing_init(relations: torch.Tensor | None, T: int, own: float = 0.9) -> torch.Tensor:
    """T x T mixing weights: ``own`` on the diagonal, the rest spread by R.

    Off-diagonal row i is (1 - own) * R_ij / sum_k!=i R_ik; a uniform R (or
    none) gives (1 - own) / (T - 1), the published initialisation.
    """
    R = torch.ones(T, T) if relations is None else relations.clone().float()
    R.fill_diagonal_(0)
    rows = R.sum(1, keepdim=True)
    off = torch.where(rows > 0, R / rows.clamp_min(1e-12), torch.full_like(R, 1.0 / max(T - 1, 1)))
    off.fill_diagonal_(0)
    return own * torch.eye(T) + (1 - own) * off


def per_task(modules: nn.ModuleList, segs: list[tuple[int, int]], x: torch.Tensor) -> torch.Tensor:
    """Apply task t's module to task t's rows of a concatenated batch."""
    if len(segs) == 1:
        return modules[segs[0][0]](x)
    return torch.cat([modules[t](part) for (t, _), part in zip(segs, x.split([n for _, n in segs]))])


class Columns(Method):
    """T task networks run block by block; ``unit(block, t, feats)`` joins them."""

    def __init__(self, tasks, spec, cfg, seed, relations: torch.Tensor | None = None):
        super().__init__(tasks, spec, cfg, seed)
        T = len(tasks)
        self.nets = nn.ModuleList(self.task_nets())
        # blocks[j][b]: column j's b-th block; BatchNorms replaced by one per task.
        self.blocks = nn.ModuleList()
        for net in self.nets:
            column, block = nn.ModuleList(), []
            for m in net.features:
                block.append(nn.ModuleList(copy.deepcopy(m) for _ in range(T)) if isinstance(m, nn.BatchNorm2d) else m)
                if isinstance(m, nn.MaxPool2d):
                    column.append(nn.ModuleList(block))
                    block = []
            self.blocks.append(column)
        for column in self.blocks:  # the per-task BatchNorm copies keep their block tag
            for b, blk in enumerate(column):
                for p in blk.parameters():
                    p.hetmtl_block = b
        self.num_blocks = len(self.blocks[0])
        self.widths = [[m for m in blk if isinstance(m, nn.Conv2d)][-1].out_channels for blk in self.blocks[0]]
        self.unit_lr_mult = float(cfg.get("unit_lr_mult", 100.0))
        self.relations = relations
        # T x T starting weights of the units (0.9 own, the rest by R), shared by both unit kinds.
        self.mixing = mixing_init(relations, T, float(cfg.get("own_weight", 0.9)))

    def init_from(self, single_task_state: dict) -> None:
        """Load the columns from single-task networks (a SingleTask's state dict)."""
        nets = {k[len("nets."):]: v for k, v in single_task_state.items() if k.startswith("nets.")}
        self.nets.load_state_dict(nets)
        # Every per-task BatchNorm copy of column j starts from column j's own.
        for net, column in zip(self.nets, self.blocks):
            originals = iter(m for m in net.features if isinstance(m, nn.BatchNorm2d))
            for blk in column:
                for m in blk:
                    if isinstance(m, nn.ModuleList):
                        src = next(originals)
                        for copy_ in m:
                            copy_.load_state_dict(src.state_dict())

    def _block(self, j: int, b: int, segs: list[tuple[int, int]], x: torch.Tensor) -> torch.Tensor:
        for m in self.blocks[j][b]:
            x = per_task(m, segs, x) if isinstance(m, nn.ModuleList) else m(x)
        return x

    def unit(self, b: int, segs: list[tuple[int, int]], feats: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError  # pragma: no cover

    def unit_parameters(self) -> list[nn.Parameter]:  # pragma: no cover
        raise NotImplementedError

    def forward_all(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every task's batch through every column at once (one pass per column).

        ``segs`` records which rows belong to which task, for the per-task
        BatchNorms; everything else runs on the concatenated batch.
        """
        segs = [(t, len(x)) for t, x in enumerate(xs) if x is not None]
        feats = [torch.cat([adapt_channels(x, task.channels) for x in xs if x is not None])
                 for task in self.tasks]
        for b in range(self.num_blocks):
            feats = [self._block(j, b, segs, f) for j, f in enumerate(feats)]
            feats = self.unit(b, segs, feats)
        out, start = [None] * len(xs), 0
        for t, n in segs:
            out[t] = self.nets[t].head(feats[t][start:start + n])
            start += n
        return out

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        xs = [None] * len(self.tasks)
        xs[t] = x
        return self.forward_all(xs)[t]

    def task_weights(self, t: int) -> list[torch.Tensor]:
        own = [w for blk in self.blocks[t] for m in blk
               for w in weights_of(m[t] if isinstance(m, nn.ModuleList) else m)]
        return own + weights_of(self.nets[t].head)

    def param_groups(self) -> list[dict]:
        units = {id(p) for p in self.unit_parameters()}
        base = [p for p in self.parameters() if p.requires_grad and id(p) not in units]
        return [{"params": base},
                {"params": [p for p in self.unit_parameters() if p.requires_grad], "lr_mult": self.unit_lr_mult}]
