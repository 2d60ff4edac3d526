"""MTAL, the `delta` reading (ours; protocol section 6, README "MTAL's readings").

From independent starts MTAL shares only first-layer kernels (by chance); from a
common start it shares every layer after the first matching (hard sharing under
another name), because raw weights of a shared start are dominated by the start.
Work that decides what to merge from a shared start compares the task-specific
UPDATES (task arithmetic, arXiv 2212.04089; TIES-merging, 2306.01708). This
reading does the same, each choice a parameter of ``params/methods.yaml``:

1. Start: every task copy starts from one w0, the suite's init (one random
   start, the ``common`` start of :mod:`hetmtl.methods.mtal`, or the ImageNet
   weights). Each bank slot keeps its reference w0 (a buffer).
2. Similarity: the cosine of two kernels' updates d_t = w_t - w0, per layer and
   task pair as one matrix product. ``project_w0`` (default true) first removes
   from each update its component along the kernel's own w0: weight decay pulls
   every task's kernels toward zero along w0 alike, which would inflate the
   cosine of any two tasks.
3. Pairing (``pairing``): ``index`` (default) compares task i's kernel k with
   task j's kernel k only. The copies start from ONE w0, so kernel k of every
   task starts identical and the channel-permutation symmetry that forbids
   index-wise comparison of independently started networks (arXiv 2110.06296,
   2209.04836) is broken by the start itself; ``matched`` is the paper's
   one-to-one greedy matching over all K x K pairs.
4. Threshold (``threshold``): ``null`` (default) per layer and task pair, the
   ``quantile`` (default 0.999) of a permutation null: the cosines of kernel k
   of task i with kernel pi(k) of task j for a random permutation pi of the
   layer's kernels, whose distribution over permutations is that of the
   off-diagonal entries of the K x K cosine matrix (computed exactly, not
   sampled); ``fraction``: the threshold that lets the given ``fraction`` of
   the layer's candidates (the diagonal; ``matched``: each row's best) pass.
   The prior variant (:mod:`hetmtl.methods.mtal_prior_delta`) takes per-pair
   levels from R. The permutation null's own sharing is measured alongside: at
   every matching, one random permutation per layer and pair without a fixed
   point (:func:`derangement`: kernel k is never its own partner; a generator of
   its own, seeded by run seed, epoch and layer: training's RNG is untouched)
   and the kernels whose permuted partner passes the threshold; logged as
   ``sharing/null/<layer>`` (accumulated over matchings like the sharing).
5. Merge in update space: a fresh pair gets w0' + alpha d_a + beta d_b, a group
   w0' + the kernel-count weighted mean of its slots' updates (the same
   coefficients as :mod:`hetmtl.methods.mtal`), with the slot's new reference
   w0' = sum(c * w0) / sum(c) over its slots (c: the task kernels a slot stands
   for; with ``index`` pairing all w0 of a group are the same kernel). The
   within-task rule, BatchNorm re-estimation after a merge, the schedule and
   the budget are MTAL's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hetmtl.methods.mtal import MTAL


def derangement(K: int, gen: torch.Generator) -> torch.Tensor:
    """A random permutation of K kernels without a fixed point (a random K-cycle: sigma's
    cycle shift), so the null never pairs a kernel with itself (a shared kernel's own
    partner would pass at cosine 1 and inflate the null)."""
    sigma = torch.randperm(K, generator=gen)
    return sigma[(torch.argsort(sigma) + 1) % K]


class MTALDelta(MTAL):
    name = "mtal_delta"

    def __init__(self, tasks, spec, cfg, seed, levels: torch.Tensor | None = None):
        # one w0 for every task copy; MTAL's rho is not used (thresholds per layer, below; 1.5: finite, never passed)
        super().__init__(tasks, spec, {**cfg, "start": "common", "rho": 1.5}, seed)
        T = len(tasks)
        self.pairing, self.project_w0 = cfg["pairing"], bool(cfg["project_w0"])
        self.mode = cfg["threshold"]
        if levels is None:
            levels = torch.full((T, T), float(cfg["quantile"] if self.mode == "null" else cfg["fraction"]))
        self.register_buffer("levels", levels.clone().float())
        for bank_id, w in enumerate(self.bank_w):  # each slot's reference w0 (and its bias's)
            self.register_buffer(f"ref_w_{bank_id}", w.detach().clone())
            b = self.bias_bank(bank_id)
            if b is not None:
                self.register_buffer(f"ref_b_{bank_id}", b.detach().clone())
        for layer in range(self.num_layers):  # the permutation null's kernels that passed, so far
            self.register_buffer(f"null_{layer}", torch.zeros_like(self.index(layer), dtype=torch.bool))
        self.epoch = 0

    def ref_w(self, bank: int) -> torch.Tensor:
        return getattr(self, f"ref_w_{bank}")

    def ref_b(self, bank: int) -> torch.Tensor | None:
        return getattr(self, f"ref_b_{bank}", None)

    # ------------------------------------------------------------ similarity

    def updates(self, layer: int, t: int) -> torch.Tensor:
        """Task t's kernels of conv layer ``layer`` minus their w0 (K x fan-in), with
        each row's component along its w0 removed when ``project_w0``."""
        bank = self.task_bank[layer][t]
        idx = self.index(layer)[t]
        w0 = self.ref_w(bank)[idx].flatten(1)
        d = self.bank_w[bank][idx].detach().flatten(1) - w0
        if self.project_w0:
            u = F.normalize(w0, dim=1)
            d = d - (d * u).sum(1, keepdim=True) * u
        return d

    def similarity(self, layer: int, i: int, j: int) -> torch.Tensor:
        """Cosine similarity of task i's and task j's updates (K x K), one matmul."""
        return F.normalize(self.updates(layer, i), dim=1) @ F.normalize(self.updates(layer, j), dim=1).T

    def _generator(self, layer: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.epoch * 1009 + layer)

    def layer_thresholds(self, layer: int, sims: dict) -> torch.Tensor:
        """Per task pair of this layer: the permutation null's quantile (``null``) or the
        level that lets ``fraction`` of the candidates pass; records the null's hits."""
        T = self.levels.shape[0]
        thr = torch.full((T, T), float("inf"))
        gen = self._generator(layer)
        null = getattr(self, f"null_{layer}")
        for (i, j), sim in sims.items():
            K = sim.shape[0]
            level = float(self.levels[i, j])
            if self.mode == "null":
                off = sim[~torch.eye(K, dtype=torch.bool, device=sim.device)]
                t = torch.quantile(off.float(), level)
            else:
                cand = sim.diagonal() if self.pairing == "index" else sim.max(dim=1).values
                t = torch.quantile(cand.float(), 1.0 - level)
            thr[i, j] = thr[j, i] = float(t)
            perm = derangement(K, gen).to(sim.device)
            hit = sim[torch.arange(K, device=sim.device), perm] > t
            null[i] |= hit
            null[j, perm[hit]] = True
        return thr.to(self.thresholds.device)

    def candidates(self, layer: int, sims: dict, thr: torch.Tensor) -> list[tuple]:
        """``index``: kernel k of task i with kernel k of task j when their cosine passes;
        ``matched``: MTAL's greedy one-to-one matching."""
        if self.pairing == "matched":
            return super().candidates(layer, sims, thr)
        edges = []
        for (i, j), sim in sims.items():
            d = sim.diagonal()
            k = torch.nonzero(d > float(thr[i, j])).flatten()
            edges += [(v, i, a, j, a) for v, a in zip(d[k].tolist(), k.tolist())]
        return edges

    # ------------------------------------------------------------ merge

    def _merge(self, layer, bank_id, members, roots, optimizer) -> int:
        """MTAL's merge of the slots' updates (w - w0), then each group's reference
        w0' = sum(c * w0) / sum(c) added back (c: task kernels per slot). Called from
        :meth:`MTAL.share` alone, under its ``torch.no_grad`` (not a decorator: the mutation
        tier's tool skips decorated functions)."""
        w, b = self.bank_w[bank_id], self.bias_bank(bank_id)
        idx = self.index(layer)
        n, dev = w.shape[0], w.device
        labels = torch.from_numpy(roots).to(dev)
        counts = torch.zeros(n, dtype=w.dtype, device=dev)
        for t in members:
            counts.index_add_(0, idx[t], torch.ones(idx.shape[1], dtype=w.dtype, device=dev))
        used = counts > 0
        size = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, labels, used.long())
        g = torch.nonzero(used & (size[labels] >= 2)).flatten()
        roots_g = labels[g].unique()
        pairs = [(w, self.ref_w(bank_id))] + ([] if b is None else [(b, self.ref_b(bank_id))])
        for p, ref in pairs:
            p.data[g] -= ref[g]
        merged = super()._merge(layer, bank_id, members, roots, optimizer)
        total = torch.zeros(n, dtype=w.dtype, device=dev).index_add_(0, labels[g], counts[g])
        for p, ref in pairs:
            shape = (-1,) + (1,) * (ref.dim() - 1)
            acc = torch.zeros_like(ref).index_add_(0, labels[g], ref[g] * counts[g].view(shape))
            ref[roots_g] = acc[roots_g] / total[roots_g].view(shape)
            p.data[g] += ref[g]
        return merged

    def after_epoch(self, epoch, optimizer, final: bool = False) -> dict[str, float]:
        self.epoch = int(epoch)
        return super().after_epoch(epoch, optimizer, final)

    def sharing_metrics(self) -> dict[str, float]:
        """MTAL's, plus the permutation null's sharing per layer and in total."""
        out = super().sharing_metrics()
        hits, total = 0, 0
        for layer, name in enumerate(self.layer_names):
            null = getattr(self, f"null_{layer}")
            out[f"sharing/null/{name}"] = float(null.float().mean())
            hits += int(null.sum())
            total += null.numel()
        out["sharing/null/total"] = hits / total
        return out
