"""The tuning stage (README "Tuning"): what it searches for a method, and the values of each trial.

This file is the tune stage's own code beside its method's (:data:`hetmtl.params.digests.TUNE_CODE`):
an edit of it reruns every tune job.
"""

from __future__ import annotations

import hashlib
import json
import math
import random

from hetmtl.methods.registry import METHOD_SPECS
from hetmtl.params.errors import ParamsError


class Tune:
    """The tuning stage's part of :class:`hetmtl.params.Params`."""

    def tunes(self, suite: str) -> bool:
        """Whether the suite tunes: ``suite.tune.trials`` > 0 (0: the defaults, no tune jobs)."""
        return self.suite(suite)["tune"]["trials"] > 0

    def tune_cells(self, suite: str) -> list[tuple[str, str, str]]:
        """(group, setting, method) of every tune job: each cell of the grid when the
        suite tunes (the same trials for every method), none otherwise."""
        if not self.tunes(suite):
            return []
        return list(dict.fromkeys((r.group, r.setting, r.method) for r in self.runs(suite)
                                  if self.follows(r.method) is None))  # a follower trains with its run's choice

    def search_space(self, method: str) -> dict:
        """What the tuning stage searches for a method: its declaration's ``search``
        (:mod:`hetmtl.methods.registry`; a variant: its base's) and, for a deep method,
        the learning rate (params/training.yaml ``tuning.lr``)."""
        declared = METHOD_SPECS[self.base_method(method)]
        space = dict(declared.search)
        if declared.deep:
            space["lr"] = self.data["tuning"]["lr"]
        return space

    def tune_trials(self, suite: str, group: str, setting: str, method: str) -> list[dict]:
        """The values of each trial of a tune cell: trial 0 the defaults (params/methods.yaml,
        and the suite's rate: training.lr, finetune_lr from ImageNet weights), so the
        choice is never worse on validation than the untuned run; the others drawn from
        (``suite.tune.seed``, group, setting, method, trial) alone, so the same whatever
        order jobs run in (ours, issue 30; DomainBed's first trial is the defaults too)."""
        scale = self.suite(suite)["tune"]
        space = self.search_space(method)
        drawn = [sample(space, scale["seed"], group, setting, method, k) for k in range(1, scale["trials"])]
        return [self.tune_defaults(suite, method), *drawn][:scale["trials"]]

    def tune_defaults(self, suite: str, method: str) -> dict:
        """The untuned values of what the tune stage searches for ``method``."""
        mcfg, tr = self.method(method), self.data["training"]
        rate = tr["finetune_lr"] if self.suite(suite).get("init") == "imagenet" else tr["lr"]
        out = {}
        for name in sorted(self.search_space(method)):
            if name != "lr" and name not in mcfg:
                raise ParamsError(f"{self.files['methods']}: methods.{method}.{name}: searched by the tune stage, "
                                  "so it needs a default here (the tune stage's trial 0)")
            out[name] = rate if name == "lr" else mcfg[name]
        return out


def _round(value: float) -> float:
    """A drawn real, to 4 significant digits (what a caption can show)."""
    return float(f"{value:.4g}")


def sample(space: dict, seed: int, group: str, setting: str, method: str, trial: int) -> dict:
    """One trial's values from ``space`` (name -> {uniform | log_uniform | int_uniform:
    [low, high]} or {choice: [...]}): a generator seeded by the digest of
    (seed, group, setting, method, trial), the names in sorted order."""
    key = json.dumps([seed, group, setting, method, trial])
    rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
    out = {}
    for name in sorted(space):
        [(kind, arg)] = space[name].items()
        if kind == "uniform":
            out[name] = _round(rng.uniform(*arg))
        elif kind == "log_uniform":
            out[name] = _round(math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1]))))
        elif kind == "int_uniform":
            out[name] = rng.randint(*arg)
        else:
            out[name] = arg[rng.randrange(len(arg))]
    return out
