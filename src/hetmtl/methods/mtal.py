"""MTAL: sharing similar convolution kernel pairs across tasks (protocol section 6).

The paper's text lost its equations; this module implements OUR RECONSTRUCTION
of them, each choice a parameter in ``params/methods.yaml``:

1. Kernel bank. Every task has its own copy of the backbone; the layers are the
   backbone contract's named shareable convolutions (``shareable_convs``: VGG's
   conv{block}_{k}, ResNet's conv1, layer1.0.conv1, ..., the downsample
   convolutions), each task's replaced by a :class:`SharedConv` that reads its
   kernels from the bank and keeps that convolution's own stride, padding,
   dilation and groups. In conv layer l,
   task t's K kernels are rows of a per-layer bank ``B_l`` (one slot per task
   kernel at the start: T*K slots), selected by an index map ``I_(t,l)``. Two task
   kernels are shared when their indices point to the same slot; the gradients of
   both tasks then flow into that one slot (the gather's backward adds them).
   Kernels of different shapes (the first layer of a grayscale and of a colour
   task) live in different banks and are never compared. A slot holds a kernel's
   weights and its bias (if the conv has one); similarity looks at the weights only.
2. Similarity (Eq. 3): cosine similarity of the vectorised kernels, for every
   task pair (i, j) and layer as ONE matrix product of the row-normalised kernel
   matrices (K x K per pair).
3. Selection (Eq. 4): (a in task i, b in task j) is a candidate when its
   similarity exceeds ``rho_ij``; candidates are matched one-to-one per task
   pair, greedily by descending similarity (computed without a per-kernel loop
   as repeated rounds of mutually-best pairs, which is the greedy matching).
   ``mtal`` uses one rho for every pair; ``thresholds`` takes a T x T matrix
   (``mtal_prior``).
4. Aggregation (Eq. 5-6): the matched pairs of all task pairs of a layer are
   accepted in descending similarity, each joining the groups (union-find over
   slots) of its two kernels, EXCEPT an edge whose two groups already hold a
   kernel of a common task (a group never holds two kernels of one task:
   sharing is between tasks; without this rule chains i.a - j.b - k.c - i.a'
   collapsed a task's own kernels) or whose groups hold a cross pair of kernels
   less similar than their own pair's threshold (ours: a group is a set of
   kernels every two of which could be shared directly, so with ``mtal_prior``
   two unrelated tasks never share through a related third one). A group's slot holds the mean of its task
   kernels: each slot weighted by the number of task kernels it stands for; a
   fresh pair of two unshared kernels gets ``alpha * w_a + beta * w_b`` (a in
   the lower-indexed task). Momentum buffers are merged the same way.
5. Schedule: matching runs after epoch ``warmup`` and then every
   ``share_every`` epochs, never after the last epoch (params refuse a warmup
   that leaves none after it); sharing is permanent. After a merge every
   BatchNorm re-estimates its running statistics with one pass over the
   training split (the loop's :func:`~hetmtl.training.loop.recalibrate_batchnorm`),
   so that validation right after the merge, and the next epoch's start, see
   statistics of the merged weights rather than of the kernels before it.
6. Objective (Eq. 7-8): the training loop's sum of per-task cross-entropy plus
   lambda times the squared L2 norm of each task's (gathered) weights.
7. Reported: per-layer kernel sharing ratio (share of the T*K task kernels that
   use a slot used by another task kernel), the compression by kernel count
   (unique slots in use / T*K over the whole network, as in the paper's Table
   6), by parameters (parameters in use / those of T unshared networks: the
   memory the paper claims to save) and the number of within-task duplicates
   (0 by construction; logged so that a reader can check).
8. Start (``start``, ours: the paper does not say): ``independent`` copies
   from each task's own random start, or ``common`` copies of one reference
   network (see README: independent starts share only chance matches beyond
   the first layer, a common start shares every layer; both are reported).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hetmtl.methods.base import Method
from hetmtl.models.base import module_paths, set_module, weights_for


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


class SharedConv(nn.Module):
    """Task ``t``'s convolution ``layer`` with its kernels (and bias) fetched from
    MTAL's bank through the index map; it keeps the replaced convolution's
    stride, padding, dilation and groups. The back reference to MTAL is not a
    submodule, so parameters and state dict hold every bank once."""

    def __init__(self, owner: MTAL, t: int, layer: int, conv: nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"MTAL shares zero-padded convolutions only, not padding_mode={conv.padding_mode!r}")
        object.__setattr__(self, "owner", owner)
        self.t, self.layer = t, layer
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def task_weight(self) -> torch.Tensor:
        return self.owner.kernel(self.t, self.layer)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.owner.kernel(self.t, self.layer)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"task={self.t}, layer={self.layer}, stride={self.stride}, padding={self.padding}"


class _Stop(Exception):
    """Ends a forward pass at the layer whose activations were asked for."""


class MTAL(Method):
    name = "mtal"

    def __init__(self, tasks, spec, cfg, seed, thresholds: torch.Tensor | None = None):
        super().__init__(tasks, spec, cfg, seed)
        nets = self.task_nets(start=cfg["start"])
        T = len(tasks)
        if thresholds is None:
            thresholds = torch.full((T, T), float(cfg["rho"]))
        self.register_buffer("thresholds", thresholds.clone().float())
        self.alpha, self.beta = float(cfg["alpha"]), float(cfg["beta"])
        self.warmup, self.share_every = int(cfg["warmup"]), int(cfg["share_every"])
        # Parameters of the T task networks as if nothing were shared (the
        # denominator of the parameter-weighted compression).
        self.unshared_params = sum(p.numel() for net in nets for p in net.parameters())
        task_convs = [net.shareable_convs() for net in nets]
        self.layer_names = list(task_convs[0])
        self.num_layers = len(self.layer_names)

        # Banks: per shareable conv, tasks grouped by kernel shape; one bank per group.
        self.bank_w = nn.ParameterList()
        self.bank_b = nn.ParameterDict()  # bank id (str) -> biases; absent for a conv without bias
        self.banks: list[list[tuple[int, list[int]]]] = []  # layer -> [(bank id, member tasks)]
        self.task_bank: list[list[int]] = []  # layer -> bank id per task
        for layer, name in enumerate(self.layer_names):
            convs = [c[name] for c in task_convs]
            shapes: dict[tuple, list[int]] = {}
            for t, conv in enumerate(convs):
                shapes.setdefault((tuple(conv.weight.shape), conv.bias is not None), []).append(t)
            layer_banks, per_task = [], [0] * T
            K = convs[0].out_channels
            idx = torch.zeros(T, K, dtype=torch.long)
            for members in shapes.values():
                bank_id = len(self.bank_w)
                self.bank_w.append(nn.Parameter(torch.cat([convs[t].weight.detach() for t in members]).clone()))
                self.bank_w[-1].hetmtl_block = getattr(convs[members[0]].weight, "hetmtl_block", None)
                if convs[members[0]].bias is not None:
                    bias = nn.Parameter(torch.cat([convs[t].bias.detach() for t in members]).clone())
                    bias.hetmtl_block = self.bank_w[-1].hetmtl_block
                    self.bank_b[str(bank_id)] = bias
                for pos, t in enumerate(members):
                    per_task[t] = bank_id
                    idx[t] = torch.arange(pos * K, (pos + 1) * K)
                layer_banks.append((bank_id, members))
            self.banks.append(layer_banks)
            self.task_bank.append(per_task)
            self.register_buffer(f"index_{layer}", idx)
        # Each task network stays intact but for its shareable convolutions, which
        # now read their kernels from the banks.
        self.shared: list[list[SharedConv]] = []  # task -> layer -> its SharedConv (held by nets)
        for t, (net, convs) in enumerate(zip(nets, task_convs)):
            paths = {id(m): path for path, m in net.named_modules()}
            self.shared.append([])
            for layer, conv in enumerate(convs.values()):
                shared = SharedConv(self, t, layer, conv)
                set_module(net, paths[id(conv)], shared)
                self.shared[t].append(shared)
        self.nets = nn.ModuleList(nets)

    # ------------------------------------------------------------------ forward

    def index(self, layer: int) -> torch.Tensor:
        return getattr(self, f"index_{layer}")

    def bias_bank(self, bank: int) -> nn.Parameter | None:
        return self.bank_b[str(bank)] if str(bank) in self.bank_b else None

    def kernel(self, t: int, layer: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        bank = self.task_bank[layer][t]
        idx = self.index(layer)[t]
        bias = self.bias_bank(bank)
        return self.bank_w[bank][idx], (None if bias is None else bias[idx])

    @property
    def norms(self) -> list[list[nn.Module]]:
        """Every BatchNorm of the backbone (in module order), one per task."""
        paths = [p for p in module_paths(self.nets[0], nn.BatchNorm2d) if not p.startswith("head.")]
        return [[net.get_submodule(p) for net in self.nets] for p in paths]

    def forward(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return self.nets[t](x)

    def activations(self, t: int, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Task t's response of conv layer ``layer`` (before its BatchNorm) to ``x``."""
        out = {}

        def hook(module, inputs, output):
            out["y"] = output
            raise _Stop

        handle = self.shared[t][layer].register_forward_hook(hook)
        try:
            self.nets[t](x)
        except _Stop:
            pass
        finally:
            handle.remove()
        return out["y"]

    def shared_parameters(self):
        """The kernel banks' slots that kernels of two or more tasks use (weights
        and biases); every other slot, and all else, is one task's."""
        out = []
        for layer in range(self.num_layers):
            idx = self.index(layer)
            for bank_id, members in self.banks[layer]:
                counts = torch.bincount(idx[members].flatten(), minlength=self.bank_w[bank_id].shape[0])
                rows = counts >= 2  # no slot holds two kernels of one task (within-task rule)
                if not rows.any():
                    continue
                out.append((self.bank_w[bank_id], rows))
                if self.bias_bank(bank_id) is not None:
                    out.append((self.bias_bank(bank_id), rows))
        return out

    def task_weights(self, t: int) -> list[torch.Tensor]:
        """In the order of the task network's own parameters (as single_task)."""
        return weights_for(self.nets[t], t)

    # ------------------------------------------------------------------ sharing

    def comparable(self, layer: int, i: int, j: int) -> bool:
        """Whether tasks i and j have kernels of one shape in conv layer ``layer``
        (the only kernels MTAL ever compares and shares)."""
        return self.task_bank[layer][i] == self.task_bank[layer][j]

    def similarity(self, layer: int, i: int, j: int) -> torch.Tensor:
        """Cosine similarity of task i's and task j's kernels (K x K), one matmul."""
        wi = F.normalize(self.kernel(i, layer)[0].detach().flatten(1), dim=1)
        wj = F.normalize(self.kernel(j, layer)[0].detach().flatten(1), dim=1)
        return wi @ wj.T

    def share(self, optimizer: torch.optim.Optimizer | None = None) -> int:
        """One matching round over every layer, without autograd (:meth:`_share`)."""
        with torch.no_grad():
            return self._share(optimizer)

    def _share(self, optimizer: torch.optim.Optimizer | None) -> int:
        """One matching round over every layer; returns the number of slots merged away.

        Per layer and bank: the candidate edges are every task pair's one-to-one
        greedy matching above its threshold (step 3). They are then accepted in
        descending order of similarity over the whole layer, each joining the
        groups of its two kernels, unless (the rules of step 4) the two groups
        already hold a kernel of a common task, or some kernel of one group and
        some kernel of the other are not similar enough for their own task pair
        (below rho_tu): a group is a set of kernels of distinct tasks every two
        of which pass their pair's threshold, so unrelated tasks never share
        through a related third one. (Not a decorated method, so that the mutation
        tier's tool mutates it: mutmut skips decorated functions.)
        """
        merges = 0
        for layer in range(self.num_layers):
            for bank_id, members in self.banks[layer]:
                sims = {(i, j): self.similarity(layer, i, j) for p, i in enumerate(members) for j in members[p + 1:]}
                if not sims:
                    continue
                thr = self.layer_thresholds(layer, sims)
                edges = self.candidates(layer, sims, thr)
                if not edges:
                    continue
                edges.sort(key=lambda e: -e[0])  # stable: ties keep the task-pair order
                roots = self._groups(layer, bank_id, members, edges, {k: v.cpu() for k, v in sims.items()}, thr)
                if roots is not None:
                    merges += self._merge(layer, bank_id, members, roots, optimizer)
        return merges

    def layer_thresholds(self, layer: int, sims: dict) -> torch.Tensor:
        """The T x T thresholds of conv layer ``layer`` (a subclass may calibrate them per
        layer from ``sims``, :mod:`hetmtl.methods.mtal_delta`): here rho_ij, the same in every layer."""
        return self.thresholds

    def candidates(self, layer: int, sims: dict, thr: torch.Tensor) -> list[tuple]:
        """Candidate edges (similarity, i, a, j, b): every task pair's one-to-one greedy
        matching above its threshold (step 3), in task-pair order."""
        edges = []
        for (i, j), sim in sims.items():
            a, b = greedy_match(sim, float(thr[i, j]))
            edges += [(v, i, ka, j, kb) for v, ka, kb in zip(sim[a, b].tolist(), a.tolist(), b.tolist())]
        return edges

    def _groups(self, layer: int, bank_id: int, members: list[int], edges: list[tuple],
                sims: dict, thresholds: torch.Tensor | None = None,
                quota: dict | None = None) -> np.ndarray | None:
        """Union-find over slots along the edges (in the given order), refusing an
        edge whose groups share a task or hold a cross pair below its own pair's
        threshold (``thresholds``: the layer's, default rho_ij), and, with ``quota``
        ((i, j) -> n), an edge of a task pair that already had n edges accepted.
        Returns each slot's group root, or None when no edge was accepted."""
        n = self.bank_w[bank_id].shape[0]
        idx = self.index(layer).cpu().numpy()
        thr = (self.thresholds if thresholds is None else thresholds).cpu().numpy()
        parent = np.arange(n)
        tasks = np.zeros(n, dtype=np.int64)  # bit t set: the group holds a kernel of task t
        kernels: dict[int, list[tuple[int, int]]] = {}  # root slot -> its (task, kernel) members
        for t in members:
            np.bitwise_or.at(tasks, idx[t], np.int64(1) << t)
            for k, slot in enumerate(idx[t].tolist()):
                kernels.setdefault(slot, []).append((t, k))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def similar(t: int, k: int, u: int, q: int) -> bool:
            v = float(sims[(t, u)][k, q]) if t < u else float(sims[(u, t)][q, k])
            return v > thr[t, u]

        accepted = 0
        taken: dict[tuple[int, int], int] = {}
        for _, i, a, j, b in edges:  # at most K edges per task pair
            if quota is not None and taken.get((i, j), 0) >= quota.get((i, j), 0):
                continue
            ra, rb = find(int(idx[i][a])), find(int(idx[j][b]))
            if ra == rb or tasks[ra] & tasks[rb]:
                continue  # already one slot, or a group would hold two kernels of one task
            if not all(similar(t, k, u, q) for t, k in kernels[ra] for u, q in kernels[rb]):
                continue  # some cross pair is not similar enough for its own pair's threshold
            lo, hi = min(ra, rb), max(ra, rb)  # the group's smallest slot is its root
            parent[hi] = lo
            tasks[lo] |= tasks[hi]
            kernels[lo] += kernels.pop(hi)
            accepted += 1
            taken[(i, j)] = taken.get((i, j), 0) + 1
        if not accepted:
            return None
        return np.array([find(x) for x in range(n)])

    def _merge(self, layer, bank_id, members, roots: np.ndarray, optimizer) -> int:
        """Write each group's aggregate into its root slot and point its kernels there.

        Each slot is weighted by the number of task kernels it stands for (Eq. 6,
        the mean over the group's task kernels); a group made of exactly two
        unshared kernels uses alpha (the lower-indexed task's kernel) and beta
        (Eq. 5). Momentum buffers are merged with the same coefficients.
        """
        w, b = self.bank_w[bank_id], self.bias_bank(bank_id)
        n, dev = w.shape[0], w.device
        idx = self.index(layer)
        labels = torch.from_numpy(roots).to(dev)
        counts = torch.zeros(n, dtype=w.dtype, device=dev)
        owner = torch.full((n,), len(self.tasks), dtype=torch.long, device=dev)  # lowest task using a slot
        for t in members:
            counts.index_add_(0, idx[t], torch.ones(idx.shape[1], dtype=w.dtype, device=dev))
            owner[idx[t]] = torch.minimum(owner[idx[t]], torch.full_like(idx[t], t))
        used = counts > 0
        size = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, labels, used.long())
        grouped = used & (size[labels] >= 2)
        total = torch.zeros(n, dtype=w.dtype, device=dev).index_add_(0, labels, counts)
        coef = counts / total[labels].clamp_min(1)
        # A fresh pair: two slots of one kernel each. alpha for the lower-indexed task's kernel.
        fresh = grouped & (size[labels] == 2) & (total[labels] == 2)
        if bool(fresh.any()):
            slots = torch.nonzero(fresh).flatten()
            partner_owner = torch.zeros(n, dtype=torch.long, device=dev)
            partner_owner.index_add_(0, labels[slots], owner[slots])  # sum of the two owners per group
            other = partner_owner[labels[slots]] - owner[slots]
            coef[slots] = torch.where(owner[slots] < other, torch.tensor(self.alpha, dtype=w.dtype, device=dev),
                                      torch.tensor(self.beta, dtype=w.dtype, device=dev))
        g = torch.nonzero(grouped).flatten()
        roots_g = labels[g].unique()

        def combine(t: torch.Tensor) -> None:
            shape = (-1,) + (1,) * (t.dim() - 1)
            acc = torch.zeros((n,) + t.shape[1:], dtype=t.dtype, device=t.device)
            acc.index_add_(0, labels[g], t[g] * coef[g].view(shape))
            t[roots_g] = acc[roots_g]

        params = [w] if b is None else [w, b]
        tensors = [p.data for p in params]
        if optimizer is not None:
            for p in params:
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    tensors.append(buf)
        for t in tensors:
            combine(t)
        for t in members:
            idx[t] = labels[idx[t]]
        alive = torch.zeros(n, dtype=torch.bool, device=dev)
        for t in members:
            alive[idx[t]] = True
        for buf in tensors[len(params):]:
            buf[~alive] = 0  # slots nobody points to any more: clear their momentum
        return int(len(g) - len(roots_g))

    def after_epoch(self, epoch: int, optimizer: torch.optim.Optimizer, final: bool = False) -> dict[str, float]:
        """Match after epoch ``warmup`` and every ``share_every`` epochs, never after
        the last one (a merge is always followed by training before evaluation).
        After a merge the loop re-estimates every BatchNorm's statistics on the
        training split (``needs_bn_recalibration``), so that validation and the
        next epoch see statistics of the merged weights."""
        if not final and epoch >= self.warmup and (epoch - self.warmup) % self.share_every == 0:
            if self.share(optimizer):
                self.needs_bn_recalibration = True
        return self.sharing_metrics()

    # ------------------------------------------------------------ what is shared

    def sharing_metrics(self) -> dict[str, float]:
        """Table 6: per-layer kernel sharing ratio, whole-network sharing, the
        kernel-count compression (unique slots in use / task kernels), the
        parameter-weighted compression (parameters in use / parameters of the T
        unshared task networks: the memory the paper claims to save) and the
        number of within-task duplicates (two kernels of one task in one slot: 0
        by construction)."""
        out, shared_total, unique_total, kernels_total = {}, 0, 0, 0
        saved_params, duplicates = 0, 0
        for layer, name in enumerate(self.layer_names):
            idx = self.index(layer)
            shared, unique = 0, 0
            for bank_id, members in self.banks[layer]:
                flat = idx[members].flatten()
                counts = torch.bincount(flat, minlength=self.bank_w[bank_id].shape[0])
                shared += int((counts[flat] >= 2).sum())
                used = int((counts > 0).sum())
                unique += used
                per_kernel = self.bank_w[bank_id][0].numel() + (self.bias_bank(bank_id) is not None)  # and bias
                saved_params += (len(flat) - used) * per_kernel
            duplicates += sum(idx.shape[1] - int(idx[t].unique().numel()) for t in range(idx.shape[0]))
            out[f"sharing/{name}"] = shared / idx.numel()
            shared_total += shared
            unique_total += unique
            kernels_total += idx.numel()
        out["sharing/total"] = shared_total / kernels_total
        out.update(self.pair_metrics())
        out["compression"] = unique_total / kernels_total
        out["compression_params"] = 1.0 - saved_params / self.unshared_params
        out["within_task_duplicates"] = float(duplicates)
        return out

    def pair_counts(self, layer: int) -> torch.Tensor:
        """T x T: how many slots of conv layer ``layer`` tasks i and j both use (the
        kernels they share with each other; a slot holds at most one kernel of a
        task), one matrix product of the tasks' slot-usage indicators."""
        idx = self.index(layer)
        T = idx.shape[0]
        offset = torch.tensor([0] + [w.shape[0] for w in self.bank_w], device=idx.device).cumsum(0)
        bank = torch.tensor(self.task_bank[layer], device=idx.device)
        glob = idx + offset[bank].view(T, 1)  # a slot's id over every bank
        used = torch.zeros(T, int(offset[-1]), device=idx.device)
        used.scatter_(1, glob, 1.0)
        return (used @ used.T).round().long()

    def pair_metrics(self) -> dict[str, float]:
        """Per task pair (i < j, the group's task order): ``sharing/pair/i-j/<layer>``,
        the kernels i and j share in that layer (a count), and ``sharing/pair/i-j``,
        their shared fraction beyond the first conv layer (shared kernels over the
        kernels of one task there): the per-pair table and figure (ours)."""
        T = self.index(0).shape[0]
        out, num, den = {}, torch.zeros(T, T), 0
        for layer, name in enumerate(self.layer_names):
            counts = self.pair_counts(layer).cpu()
            for i in range(T):
                for j in range(i + 1, T):
                    out[f"sharing/pair/{i}-{j}/{name}"] = float(counts[i, j])
            if layer:
                num += counts
                den += self.index(layer).shape[1]
        for i in range(T):
            for j in range(i + 1, T):
                out[f"sharing/pair/{i}-{j}"] = float(num[i, j]) / den if den else 0.0
        return out

    def shared_kernels(self, layer: int) -> list[list[tuple[int, int]]]:
        """Groups of (task, kernel) that use one slot of conv layer ``layer``, most
        widely shared first (for the activation figures)."""
        idx = self.index(layer)
        users: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for t in range(idx.shape[0]):
            bank = self.task_bank[layer][t]
            for k, slot in enumerate(idx[t].tolist()):
                users.setdefault((bank, slot), []).append((t, k))
        return sorted((v for v in users.values() if len({t for t, _ in v}) >= 2), key=len, reverse=True)
