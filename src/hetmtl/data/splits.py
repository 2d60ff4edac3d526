"""Train/validation/test splits, drawn per run seed from the prepared images.

The class subset of a task is drawn once (``selection_seed``, at prepare time);
the split is drawn at load time from ``split.seed`` and the run's seed, so the
spread over seeds covers the data split as well as the initialisation
(``split.per_seed: false`` keeps one split for every seed; ours, protocol section 5 is
silent). Every class is cut by the same fractions, disjointly; the test split
is never used for any choice.
"""

from __future__ import annotations

import numpy as np

from hetmtl.errors import UserError

SPLITS = ("train", "val", "test")


class SplitError(UserError, ValueError):
    pass


def split_seed(split: dict, run_seed: int) -> list[int]:
    """The generator seed of a run's split."""
    return [split["seed"], run_seed] if split["per_seed"] else [split["seed"]]


def stratified_split(labels: np.ndarray, fractions: dict, seed) -> dict[str, np.ndarray]:
    """Indices per split; every class is cut by the same fractions, disjointly."""
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = len(idx)
        if n < 3:
            raise SplitError(f"class {c} has {n} images; at least 3 are needed to split")
        n_test = max(1, int(round(fractions["test"] * n)))
        n_val = max(1, int(round(fractions["val"] * n)))
        n_train = n - n_test - n_val
        out["train"].append(idx[:n_train])
        out["val"].append(idx[n_train:n_train + n_val])
        out["test"].append(idx[n_train + n_val:])
    return {s: np.sort(np.concatenate(v)) for s, v in out.items()}


def run_split(labels: np.ndarray, split: dict, run_seed: int) -> dict[str, np.ndarray]:
    """The split of one run (``split`` as in params/datasets.yaml)."""
    return stratified_split(labels, split, split_seed(split, run_seed))
