"""Per-task columns joined after every stage (base of cross-stitch and NDDR-CNN).

Each column is one task's network under the backbone contract, run stage by
stage with ``forward_stage``; the unit after each stage sees the stages'
output channels (``stage_channels``). For VGG a stage is a VGG block.

Heterogeneous inputs make "the other columns' features" ill-defined at test
time if each column only ever saw its own task's images. Our reading (protocol section 5
is silent on it): every sample goes through EVERY column, converted to that
column's channel count (grayscale repeated to three channels, colour averaged
to one), so a task's prediction depends only on its own input. The unit after
each stage mixes the T columns' feature maps of the same sample.

Each column keeps one BatchNorm per task whose samples it processes, so that
batch statistics never mix tasks; with identity mixing every column therefore
computes exactly the single-task network on its own task.

Columns start from single-task networks trained inside the method's own budget:
the first ``pretrain_fraction`` of the suite's epochs train them alone (exactly
the single_task run's first epochs; :func:`hetmtl.training.job.train_deep`),
the rest trains the stitched model, so cross-stitch and NDDR-CNN get the same
number of optimisation steps per task as every other method. The units'
parameters learn at ``unit_lr_mult`` times the base rate.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hetmtl.methods.base import Method
from hetmtl.models.base import PerTask, TaskRouter, module_paths, outside_per_task, set_module, weights_for


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
    """T task networks run stage by stage (``forward_stage``); ``unit(stage, t, feats)`` joins them."""

    def __init__(self, tasks, spec, cfg, seed, relations: torch.Tensor | None = None):
        super().__init__(tasks, spec, cfg, seed)
        T = len(tasks)
        self.router = TaskRouter()
        self.nets = nn.ModuleList(self.task_nets())
        # Every BatchNorm of a column (stem and stages) becomes one copy per task
        # whose samples it processes; the copies keep the original's block tag.
        self.norm_paths = module_paths(self.nets[0], nn.BatchNorm2d)
        self.norm_paths = [p for p in self.norm_paths if not p.startswith("head.")]
        for net in self.nets:
            for path in self.norm_paths:
                bn = net.get_submodule(path)
                copies = [copy.deepcopy(bn) for _ in range(T)]
                for c in copies:
                    for p, q in zip(c.parameters(), bn.parameters()):
                        p.hetmtl_block = getattr(q, "hetmtl_block", None)
                set_module(net, path, PerTask(copies, self.router))
        self.num_blocks = len(self.nets[0].stages)
        self.widths = self.nets[0].stage_channels
        self.unit_lr_mult = float(cfg["unit_lr_mult"])
        self.relations = relations
        # T x T starting weights of the units (0.9 own, the rest by R), shared by both unit kinds.
        self.mixing = mixing_init(relations, T, float(cfg["own_weight"]))

    def init_from(self, single_task_state: dict) -> None:
        """Load the columns from single-task networks (a SingleTask's state dict);
        every per-task BatchNorm copy of column j starts from column j's own."""
        nets = {k[len("nets."):]: v for k, v in single_task_state.items() if k.startswith("nets.")}
        T = len(self.tasks)
        state = {}
        for key, value in nets.items():
            j, rest = key.split(".", 1)
            path, _, attr = rest.rpartition(".")
            if path in self.norm_paths:
                for t in range(T):
                    state[f"{j}.{path}.copies.{t}.{attr}"] = value
            else:
                state[key] = value
        self.nets.load_state_dict(state)

    def unit(self, b: int, segs: list[tuple[int, int]], feats: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError  # pragma: no cover

    def unit_parameters(self) -> list[nn.Parameter]:  # pragma: no cover
        raise NotImplementedError

    def forward_all(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every task's batch through every column at once (one pass per column).

        ``segs`` (the router's) records which rows belong to which task, for the
        per-task BatchNorms; everything else runs on the concatenated batch.
        """
        segs = [(t, len(x)) for t, x in enumerate(xs) if x is not None]
        self.router.segs = segs
        feats = [net.forward_stem(torch.cat([adapt_channels(x, task.channels) for x in xs if x is not None]))
                 for net, task in zip(self.nets, self.tasks)]
        for b in range(self.num_blocks):
            feats = [net.forward_stage(f, b) for net, f in zip(self.nets, feats)]
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
        return weights_for(self.nets[t], t)

    def shared_parameters(self):
        """Every sample goes through every column: each column's parameters and
        the units serve every task, but for what serves one task only
        (:meth:`one_task_parameters`) and the per-task BatchNorms."""
        own = {id(p) for p in self.one_task_parameters()}
        return [(p, None) for p in outside_per_task(self) if id(p) not in own]

    def one_task_parameters(self) -> list[nn.Parameter]:
        """The heads, and the last unit: its output for column t reaches task t's head only."""
        return [p for net in self.nets for p in net.head.parameters()] + self.stage_unit_parameters(
            self.num_blocks - 1)

    def stage_unit_parameters(self, b: int) -> list[nn.Parameter]:  # pragma: no cover
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        units = {id(p) for p in self.unit_parameters()}
        base = [p for p in self.parameters() if p.requires_grad and id(p) not in units]
        return [{"params": base},
                {"params": [p for p in self.unit_parameters() if p.requires_grad], "lr_mult": self.unit_lr_mult}]
