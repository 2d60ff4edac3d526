"""A method instance from a resolved run (:class:`hetmtl.resolve.ResolvedRun`).

The one place that turns a run's record into a model: training builds the
model it trains here, reporting the model it reloads from ``model.pt``.
"""

from __future__ import annotations

import torch

from hetmtl.errors import UserError
from hetmtl.methods import METHODS, Method, TaskInfo
from hetmtl.models import BACKBONES


def build_method(run, tasks: list[TaskInfo], overrides: dict | None = None) -> Method:
    """Run ``run``'s method for ``tasks``: its registered class with the run's
    parameters (``overrides`` on top), R for a method that takes a prior, and
    the run's frozen blocks."""
    if run.method_class not in METHODS:
        raise UserError(f"params/methods.yaml: methods: unknown method {run.run.method!r} "
                        f"(declared in hetmtl/methods/registry.py: {', '.join(METHODS)})")
    cls = METHODS[run.method_class]
    cfg = {**run.method_params, **(overrides or {})}
    args = (tasks, BACKBONES[run.backbone], cfg, run.run.seed)
    if cls.uses_prior:
        R = None if run.relations is None else torch.tensor(run.relations, dtype=torch.float32)
        method = cls(*args, relations=R)
    elif "follows" in cfg:  # random_matched: the followed run's sharing counts
        from hetmtl.methods.mtal_random import read_targets

        # None only for a record resolved without its inputs (hetmtl bench: the shape of a run, never
        # trained); a training job's record always has it (resolve requires the receipt)
        method = cls(*args, targets=None if run.followed is None else read_targets(run.followed))
    else:
        method = cls(*args)
    if run.freeze_blocks and method.deep:
        method.freeze_blocks(run.freeze_blocks)
    return method
