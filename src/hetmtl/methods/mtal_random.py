"""`random_matched`: the control of MTAL's `delta` reading (ours; protocol section 6).

Random choices are strong controls of what to merge (DARE, arXiv 2311.03099;
ZipIt!'s random matching, 2305.03053) and, within a layer, the fraction shared
often carries the effect rather than the choice (Frankle et al., 2009.08576).
So this control shares, in the same seed, per conv layer and task pair, as
many kernels as the run it ``follows`` (a `delta` run: ``mtal_delta`` or
``mtal_prior_delta``) had shared by the same epoch, chosen at random, with the
same alpha, beta, schedule, start and update-space merge
(:class:`~hetmtl.methods.mtal_delta.MTALDelta`, whose parameters it takes).

The counts come from the followed run's receipt: its per-epoch metrics
``sharing/pair/i-j/<layer>`` (a DAG dependency: Snakemake's and DVC's training
job of this cell reads that run's receipt, :mod:`hetmtl.resolve`). At each
matching, for each layer and pair, the kernels still to share (the target minus
what the pair shares already) are offered as random edges (``index`` pairing:
kernel k of i with kernel k of j, k not yet shared between them; ``matched``: a
random one-to-one pairing of their unshared kernels), in one random order over
the layer, and accepted under MTAL's within-task rule up to that count per
pair. A pair can end above its target when a group joins it through a third
task, or below when the rule refuses; the control's own counts are logged as
every MTAL run's are, so the table shows what it shared.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from hetmtl.errors import UserError
from hetmtl.methods.mtal_delta import MTALDelta

PAIR_KEY = re.compile(r"^sharing/pair/(\d+)-(\d+)/(.+)$")


def read_targets(receipt: Path) -> dict[int, dict[str, dict[tuple[int, int], int]]]:
    """epoch -> layer name -> (i, j) -> kernels shared, from a followed run's receipt."""
    try:
        history = json.loads(Path(receipt).read_text())["record"]["history"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"{receipt}: no per-epoch history to match ({exc}); rerun the followed run") from None
    out: dict[int, dict] = {}
    for entry in history:
        for key, value in entry.items():
            m = PAIR_KEY.match(key)
            if m:
                out.setdefault(int(entry["epoch"]), {}).setdefault(m.group(3), {})[
                    (int(m.group(1)), int(m.group(2)))] = int(round(value))
    return out


class MTALRandom(MTALDelta):
    name = "mtal_random"

    def __init__(self, tasks, spec, cfg, seed, targets: dict | None = None):
        super().__init__(tasks, spec, {**cfg, "threshold": "fraction", "fraction": 0.0, "quantile": 1.0}, seed)
        self.targets = targets or {}

    def _share(self, optimizer) -> int:
        """One round (MTAL.share calls it under ``torch.no_grad``): per layer and task pair, as
        many random kernel pairs as the followed run shared there by this epoch."""
        if self.epoch not in self.targets:
            raise UserError(f"mtal_random: the followed run logged no sharing counts for epoch {self.epoch}; "
                            "rerun it (it must have the same warmup, share_every and epochs)")
        target = self.targets[self.epoch]
        merges = 0
        for layer, name in enumerate(self.layer_names):
            counts = self.pair_counts(layer).cpu()
            gen = self._generator(layer)
            idx = self.index(layer)
            for bank_id, members in self.banks[layer]:
                edges, quota = [], {}
                for p, i in enumerate(members):
                    for j in members[p + 1:]:
                        need = target.get(name, {}).get((i, j), 0) - int(counts[i, j])
                        if need <= 0:
                            continue
                        quota[(i, j)] = need
                        free_i = torch.nonzero(~torch.isin(idx[i], idx[j])).flatten().cpu()
                        if self.pairing == "index":
                            ka = kb = free_i[torch.randperm(len(free_i), generator=gen)]
                        else:
                            free_j = torch.nonzero(~torch.isin(idx[j], idx[i])).flatten().cpu()
                            m = min(len(free_i), len(free_j))
                            ka = free_i[torch.randperm(len(free_i), generator=gen)[:m]]
                            kb = free_j[torch.randperm(len(free_j), generator=gen)[:m]]
                        edges += [(i, a, j, b) for a, b in zip(ka.tolist(), kb.tolist())]
                if not edges:
                    continue
                order = torch.randperm(len(edges), generator=gen).tolist()  # one random order over the layer
                ranked = [(float(-r), *edges[e]) for r, e in enumerate(order)]
                T = len(self.tasks)
                anything = torch.full((T, T), float("-inf"))  # no similarity test: the choice is random
                sims = {(i, j): torch.zeros(idx.shape[1], idx.shape[1]) for p, i in enumerate(members)
                        for j in members[p + 1:]}
                roots = self._groups(layer, bank_id, members, ranked, sims, anything, quota)
                if roots is not None:
                    merges += self._merge(layer, bank_id, members, roots, optimizer)
        return merges

    def sharing_metrics(self) -> dict[str, float]:
        """MTAL's (no permutation null: this control tests no similarity)."""
        return {k: v for k, v in super().sharing_metrics().items() if not k.startswith("sharing/null/")}
