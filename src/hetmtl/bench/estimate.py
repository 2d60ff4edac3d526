"""The cost of a suite's whole grid: every training job and sweep point of
``params`` (:meth:`Params.runs`, :meth:`Params.sweep_runs`), costed in FLOPs from
its counted step (:mod:`hetmtl.bench.flops`) and its schedule, then in time from
a rate per method. A pure function of params and the counts: no data, no device.

A job's FLOPs (ours, the model of the estimate):

- training: ``steps_per_epoch`` x (P x the single-task step + (E - P) x the
  method's step), with P the single-task epochs inside a cross-stitch or
  NDDR-CNN budget and E the run's epochs; ``steps_per_epoch`` the largest
  task's batches per epoch (:func:`hetmtl.data.tasks.steps_per_epoch`); with a
  gradient aggregator the method's step is the forward and one backward per
  task, but for MTAL's first ``warmup`` epochs (nothing shared yet);
- evaluation: every epoch the validation split of every task, once the test
  split, one forward per image.

Not counted: the relations stage and tune trials (their own stages), MTAL's
matching and BatchNorm re-estimation after a merge, checkpoints and logging.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from hetmtl.bench.flops import StepFlops, build_meta, step_flops
from hetmtl.bench.shapes import TaskShape, task_shape
from hetmtl.methods import METHODS
from hetmtl.resolve import resolve
from hetmtl.runs import RunId
from hetmtl.weightings.registry import WEIGHTINGS


@dataclass(frozen=True)
class JobCost:
    run: RunId
    method: str  # the grid's name (a variant's own)
    weighting: str
    epochs: int
    pretrain_epochs: int
    steps_per_epoch: int
    train_flops: int
    eval_flops: int
    gradient: bool = False  # trained with a gradient aggregator (hetmtl.weightings, kind "gradient")

    @property
    def flops(self) -> int:
        return self.train_flops + self.eval_flops

    @property
    def part(self) -> str:
        """Where the job belongs: the grid (Tables 2-6), or a sweep."""
        return "grid" if self.run.sweep is None else f"sweep {self.run.sweep}"


@dataclass(frozen=True)
class Shape:
    """What a job's cost depends on, counted once per (method, group, setting)."""
    shapes: tuple[TaskShape, ...]
    joint: StepFlops
    pretrain: StepFlops | None
    batch_size: int


def job_cost(run: RunId, resolved, shape: Shape) -> JobCost:
    cfg = resolved.train
    E, P, B = cfg.epochs, resolved.pretrain_epochs, shape.batch_size
    T = len(shape.shapes)
    S = max(math.ceil(s.split["train"] / B) for s in shape.shapes)
    gradient = METHODS[resolved.method_class].joint and WEIGHTINGS[cfg.weighting][0] == "gradient"
    joint_step = shape.joint.step_with(T, gradient)
    pre_step = shape.pretrain.step if shape.pretrain is not None else 0  # single-task: never weighted
    # MTAL shares nothing before its first matching (after epoch `warmup`): an aggregator's step is then
    # the plain sum's; after it, one backward per task (an upper bound: a matching may share nothing)
    W = min(E - P, int(resolved.method_params.get("warmup", 0))) if gradient else 0
    train = S * (P * pre_step + W * shape.joint.step + (E - P - W) * joint_step)

    def evaluation(flops: StepFlops, split: str) -> int:
        return sum(f * s.split[split] for f, s in zip(flops.eval_per_image, shape.shapes))

    pre_eval = shape.pretrain or shape.joint
    evals = P * evaluation(pre_eval, "val") + (E - P) * evaluation(shape.joint, "val") \
        + evaluation(shape.joint, "test")
    return JobCost(run, run.method, cfg.weighting, E, P, S, int(train), int(evals), gradient)


def job_costs(params, suite: str, methods: list[str] | None = None, counts: dict | None = None) -> list[JobCost]:
    """The cost of every deep training job and sweep point of ``suite`` (of
    ``methods`` when given); closed-form methods (MTDA) cost no GPU time.
    ``counts``: a cache of counted steps to reuse across calls (keyed by all
    a count reads: the method and its parameters, the task shapes, batch
    size, L2, pre-training, backbone and frozen blocks; not the weighting, whose
    kind :func:`job_cost` applies)."""
    shapes: dict[str, tuple[TaskShape, ...]] = {}
    counted: dict[tuple, Shape] = {} if counts is None else counts
    resolved_by: dict[RunId, object] = {}  # a run's seed changes neither its shape nor its schedule
    out = []
    for run in params.runs(suite) + params.sweep_runs(suite):
        if methods is not None and run.method not in methods:
            continue
        like = replace(run, seed=0)
        if like not in resolved_by:
            resolved_by[like] = resolve(params, run, tune=False, inputs=False)
        resolved = resolved_by[like]
        if not METHODS[resolved.method_class].deep:
            continue
        if run.group not in shapes:
            shapes[run.group] = tuple(task_shape(params, suite, t) for t in resolved.tasks)
        cfg = resolved.train
        key = (run.method, run.setting, tuple((t.channels, t.classes, t.image_size) for t in shapes[run.group]),
               cfg.batch_size, cfg.l2_lambda,
               bool(resolved.pretrain_epochs), resolved.backbone, resolved.freeze_blocks,
               json.dumps({k: v for k, v in resolved.method_params.items() if k != "weighting"}, sort_keys=True))
        if key not in counted:
            counted[key] = count_shape(resolved, shapes[run.group])
        out.append(job_cost(run, resolved, counted[key]))
    return out


def count_shape(resolved, shapes: tuple[TaskShape, ...]) -> Shape:
    cfg = resolved.train
    joint = step_flops(build_meta(resolved, list(shapes)), list(shapes), cfg.batch_size, cfg.l2_lambda)
    pretrain = None
    if resolved.pretrain_epochs:
        pretrain = step_flops(build_meta(resolved, list(shapes), pretrain=True), list(shapes), cfg.batch_size,
                              cfg.l2_lambda)
    return Shape(shapes, joint, pretrain, cfg.batch_size)


def estimate(costs: list[JobCost], rates: dict[str, float], gradient_rate: float | None = None) -> dict:
    """Seconds of the jobs at ``rates`` (FLOP/s per grid method name): per method
    and in total; a job trained with a gradient aggregator at ``gradient_rate``
    when given (its step's rate differs: a Jacobian, a solver). A method
    without a rate is left out and listed."""
    per_method: dict[str, dict] = {}
    per_part: dict[str, dict] = {}

    def rate(c: JobCost) -> float | None:
        if not rates.get(c.method):
            return None
        return gradient_rate if c.gradient and gradient_rate else rates[c.method]

    for c in costs:
        m = per_method.setdefault(c.method, {"jobs": 0, "flops": 0, "seconds": 0.0})
        part = per_part.setdefault(c.part, {"jobs": 0, "flops": 0, "seconds": 0.0})
        for entry in (m, part):
            entry["jobs"] += 1
            entry["flops"] += c.flops
            if rate(c):
                entry["seconds"] += c.flops / rate(c)
    missing = sorted(m for m in per_method if not rates.get(m))
    for name in missing:
        per_method[name]["seconds"] = None
    seconds = sum(m["seconds"] for m in per_method.values() if m["seconds"] is not None)
    return {"jobs": len(costs), "flops": sum(c.flops for c in costs),
            "train_flops": sum(c.train_flops for c in costs), "eval_flops": sum(c.eval_flops for c in costs),
            "seconds": seconds, "hours": seconds / 3600, "per_method": per_method, "per_part": per_part,
            "without_rate": missing}
