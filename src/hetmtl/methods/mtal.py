"""MTAL: sharing similar convolution kernel pairs across tasks (SPEC section 6).

The paper's text lost its equations; this module implements OUR RECONSTRUCTION
of them, each choice a parameter in ``params/methods.yaml``:

1. Kernel bank. Every task has its own copy of the backbone. In conv layer l,
   task t's K kernels are rows of a per-layer bank ``B_l`` (one slot per task
   kernel at the start: T*K slots), selected by an index map ``I_(t,l)``. Two task
   kernels are shared when their indices point to the same slot; the gradients of
   both tasks then flow into that one slot (the gather's backward adds them).
   Kernels of different shapes (the first layer of a grayscale and of a colour
   task) live in different banks and are never compared. A slot holds a kernel's
   weights and its bias; similarity looks at the weights only.
2. Similarity (Eq. 3): cosine similarity of the vectorised kernels, for every
   task pair (i, j) and layer as ONE matrix product of the row-normalised kernel
   matrices (K x K per pair).
3. Selection (Eq. 4): (a in task i, b in task j) is a candidate when its
   similarity exceeds ``rho_ij``; candidates are matched one-to-one, greedily by
   descending similarity (computed without a per-kernel loop as repeated rounds
   of mutually-best pairs, which is the greedy matching). ``mtal`` uses one rho
   for every pair; ``thresholds`` takes a T x T matrix (``mtal_prior``).
4. Aggregation (Eq. 5): a matched pair is replaced by ``alpha * w_a + beta * w_b``
   in one slot that both indices then use. Kernels matched across more than two
   tasks form a group (union-find over slots) whose slot holds the group mean
   (Eq. 6). Momentum buffers are merged the same way.
5. Schedule: matching runs after epoch ``warmup`` and then every ``share_every``
   epochs; sharing is permanent.
6. Objective (Eq. 7-8): the training loop's sum of per-task cross-entropy plus
   lambda times the squared L2 norm of each task's (gathered) weights.
7. Reported: per-layer kernel sharing ratio (share of the T*K task kernels that
   use a slot used by another task kernel) and the compression (unique slots in
   use / T*K over the whole network), as in the paper's Table 6.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import nn

from hetmtl.methods.base import Method, weights_of
from hetmtl.models import conv_layers, conv_names


def greedy_match(sim: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One-to-one matching of rows to columns with ``sim > threshold``.

    Equal to the greedy algorithm (take the most similar remaining pair, drop
    its row and column, repeat) for distinct similarities: each round accepts
    every pair that is the best of both its row and its column.
    """
    s = sim.masked_fill(~(sim > threshold), float("-inf"))
    rows_out, cols_out = [], []
    n_rows, n_cols = s.shape
    r_idx = torch.arange(n_rows, device=s.device)
    while True:
        row_best_val, row_best = s.max(dim=1)
        col_best = s.argmax(dim=0)
        mutual = (col_best[row_best] == r_idx) & torch.isfinite(row_best_val)
        if not bool(mutual.any()):
            break
        rows, cols = r_idx[mutual], row_best[mutual]
        rows_out.append(rows)
        cols_out.append(cols)
        s[rows, :] = float("-inf")
        s[:, cols] = float("-inf")
    if not rows_out:
        empty = torch.empty(0, dtype=torch.long, device=s.device)
        return empty, empty
    return torch.cat(rows_out), torch.cat(cols_out)


class MTAL(Method):
    name = "mtal"

    def __init__(self, tasks, spec, cfg, seed, thresholds: torch.Tensor | None = None):
        super().__init__(tasks, spec, cfg, seed)
        nets = self.task_nets()
        T = len(tasks)
        if thresholds is None:
            thresholds = torch.full((T, T), float(cfg["rho"]))
        self.register_buffer("thresholds", thresholds.clone().float())
        self.alpha, self.beta = float(cfg["alpha"]), float(cfg["beta"])
        self.warmup, self.share_every = int(cfg["warmup"]), int(cfg["share_every"])
        self.layer_names = conv_names(spec)

        # The forward plan: ("conv", layer) / ("bn", layer) / ("relu",) / ("pool",), from
        # torchvision's layout. BatchNorm layers (VGG-BN) stay task-specific.
        self.plan: list[tuple] = []
        self.norms = nn.ModuleList()  # layer -> per-task BatchNorm (VGG-BN backbones)
        layer = 0
        for pos, m in enumerate(nets[0].features):
            if isinstance(m, nn.Conv2d):
                self.plan.append(("conv", layer))
                layer += 1
            elif isinstance(m, nn.BatchNorm2d):
                self.plan.append(("bn", len(self.norms)))
                self.norms.append(nn.ModuleList(net.features[pos] for net in nets))
            elif isinstance(m, nn.ReLU):
                self.plan.append(("relu",))
            elif isinstance(m, nn.MaxPool2d):
                self.plan.append(("pool",))
            else:  # pragma: no cover - VGG features hold nothing else
                raise TypeError(f"unexpected layer {m}")
        self.num_layers = layer

        # Banks: per layer, tasks grouped by kernel shape; one bank per group.
        self.bank_w = nn.ParameterList()
        self.bank_b = nn.ParameterList()
        self.banks: list[list[tuple[int, list[int]]]] = []  # layer -> [(bank id, member tasks)]
        self.task_bank: list[list[int]] = []  # layer -> bank id per task
        for layer in range(self.num_layers):
            convs = [net.features[conv_layers(net.features)[layer]] for net in nets]
            shapes: dict[tuple, list[int]] = {}
            for t, conv in enumerate(convs):
                shapes.setdefault(tuple(conv.weight.shape), []).append(t)
            layer_banks, per_task = [], [0] * T
            K = convs[0].out_channels
            idx = torch.zeros(T, K, dtype=torch.long)
            for members in shapes.values():
                bank_id = len(self.bank_w)
                self.bank_w.append(nn.Parameter(torch.cat([convs[t].weight.detach() for t in members]).clone()))
                self.bank_b.append(nn.Parameter(torch.cat([convs[t].bias.detach() for t in members]).clone()))
                self.bank_w[-1].hetmtl_block = self.bank_b[-1].hetmtl_block = convs[0].weight.hetmtl_block
                for pos, t in enumerate(members):
                    per_task[t] = bank_id
                    idx[t] = torch.arange(pos * K, (pos + 1) * K)
                layer_banks.append((bank_id, members))
            self.banks.append(layer_banks)
            self.task_bank.append(per_task)
            self.register_buffer(f"index_{layer}", idx)
        self.heads = nn.ModuleList(net.head for net in nets)

    # ------------------------------------------------------------------ forward

    def index(self, layer: int) -> torch.Tensor:
        return getattr(self, f"index_{layer}")

    def kernel(self, t: int, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        bank = self.task_bank[layer][t]
        idx = self.index(layer)[t]
        return self.bank_w[bank][idx], self.bank_b[bank][idx]

    def _features(self, t: int, x: torch.Tensor, until: int | None = None) -> torch.Tensor:
        """Run task t's convolutional part; stop after conv layer ``until`` if given."""
        for op in self.plan:
            if op[0] == "conv":
                w, b = self.kernel(t, op[1])
                x = F.conv2d(x, w, b, padding=1)
                if op[1] == until:
                    return x
            elif op[0] == "bn":
                x = self.norms[op[1]][t](x)
            elif op[0] == "relu":
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        if until is not None:
            raise IndexError(f"no conv layer {until}")
        return x

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return self.heads[t](self._features(t, x))

    def activations(self, t: int, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Task t's response of conv layer ``layer`` (before its BatchNorm) to ``x``."""
        return self._features(t, x, until=layer)

    def task_weights(self, t: int) -> list[torch.Tensor]:
        out = []  # in the order of the task network's own parameters (as single_task)
        for op in self.plan:
            if op[0] == "conv":
                out.append(self.kernel(t, op[1])[0])
            elif op[0] == "bn":
                out.extend(weights_of(self.norms[op[1]][t]))
        return out + weights_of(self.heads[t])

    # ------------------------------------------------------------------ sharing

    def similarity(self, layer: int, i: int, j: int) -> torch.Tensor:
        """Cosine similarity of task i's and task j's kernels (K x K), one matmul."""
        wi = F.normalize(self.kernel(i, layer)[0].detach().flatten(1), dim=1)
        wj = F.normalize(self.kernel(j, layer)[0].detach().flatten(1), dim=1)
        return wi @ wj.T

    @torch.no_grad()
    def share(self, optimizer: torch.optim.Optimizer | None = None) -> int:
        """One matching round over every layer and task pair; returns the merges made."""
        merges = 0
        for layer in range(self.num_layers):
            idx = self.index(layer)
            for bank_id, members in self.banks[layer]:
                edges_a, edges_b = [], []
                for p, i in enumerate(members):
                    for j in members[p + 1:]:
                        a, b = greedy_match(self.similarity(layer, i, j), float(self.thresholds[i, j]))
                        edges_a.append(idx[i][a])
                        edges_b.append(idx[j][b])
                if not edges_a:
                    continue
                sa, sb = torch.cat(edges_a), torch.cat(edges_b)
                keep = sa != sb  # pairs already sharing a slot need nothing
                sa, sb = sa[keep], sb[keep]
                if len(sa) == 0:
                    continue
                merges += self._merge(layer, bank_id, members, sa, sb, optimizer)
        return merges

    def _merge(self, layer, bank_id, members, sa, sb, optimizer) -> int:
        w, b = self.bank_w[bank_id], self.bank_b[bank_id]
        n = w.shape[0]
        graph = coo_matrix((np.ones(len(sa)), (sa.cpu().numpy(), sb.cpu().numpy())), shape=(n, n))
        n_comp, labels_np = connected_components(graph, directed=False)
        labels = torch.from_numpy(labels_np).to(w.device)
        size = torch.bincount(labels, minlength=n_comp)
        # Coefficients: alpha/beta for a two-slot group made by one pair, the mean otherwise.
        coef = 1.0 / size[labels].to(w.dtype)
        pair = size[labels[sa]] == 2
        coef[sa[pair]] = self.alpha
        coef[sb[pair]] = self.beta
        # Representative slot of each group: its smallest slot.
        slots = torch.arange(n, device=w.device)
        rep = torch.full((n_comp,), n, dtype=torch.long, device=w.device).scatter_reduce(
            0, labels, slots, reduce="amin")
        grouped = size[labels] >= 2
        targets = rep[labels[grouped]].unique()

        def combine(t: torch.Tensor) -> None:
            shape = (-1,) + (1,) * (t.dim() - 1)
            total = torch.zeros((n_comp,) + t.shape[1:], dtype=t.dtype, device=t.device)
            total.index_add_(0, labels[grouped], t[grouped] * coef[grouped].view(shape))
            t[targets] = total[labels[targets]]

        tensors = [w.data, b.data]
        if optimizer is not None:
            for p in (w, b):
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    tensors.append(buf)
        for t in tensors:
            combine(t)
        idx = self.index(layer)
        for t in members:
            idx[t] = rep[labels[idx[t]]]
        # Slots nobody points to any more are dead; clear their momentum.
        used = torch.zeros(n, dtype=torch.bool, device=w.device)
        for t in members:
            used[idx[t]] = True
        for buf in tensors[2:]:
            buf[~used] = 0
        return int(grouped.sum()) - len(targets)

    def after_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        if epoch >= self.warmup and (epoch - self.warmup) % self.share_every == 0:
            self.share(optimizer)
        return self.sharing_metrics()

    def sharing_metrics(self) -> dict[str, float]:
        """Per-layer kernel sharing ratio and whole-network compression (Table 6)."""
        out, shared_total, unique_total, kernels_total = {}, 0, 0, 0
        for layer, name in enumerate(self.layer_names):
            idx = self.index(layer)
            shared, unique = 0, 0
            for bank_id, members in self.banks[layer]:
                flat = idx[members].flatten()
                counts = torch.bincount(flat, minlength=self.bank_w[bank_id].shape[0])
                shared += int((counts[flat] >= 2).sum())
                unique += int((counts > 0).sum())
            out[f"sharing/{name}"] = shared / idx.numel()
            shared_total += shared
            unique_total += unique
            kernels_total += idx.numel()
        out["sharing/total"] = shared_total / kernels_total
        out["compression"] = unique_total / kernels_total
        return out

