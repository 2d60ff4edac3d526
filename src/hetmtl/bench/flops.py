"""FLOPs of a run's training step and of one evaluated image, counted with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device: the shapes flow,
nothing is computed or allocated, so the paper's VGG-16 counts in a second on
a laptop.

What is counted is what the FLOP counter counts: the matrix multiplications and
convolutions (2 FLOPs per multiply-add), forward and backward, the convention of
MFU; BatchNorm, activations, pooling and the optimiser's update are not. The
step is the loop's: every task's batch forward, the cross-entropies, the
regulariser (the method's own term and the L2 penalty) and the backward of
their sum. A gradient aggregator's step (``hetmtl.weightings``, kind
``gradient``) is costed as the forward plus one backward per task (ours: how
TorchJD's Jacobian computes it, each task's row through the whole graph); its
solver is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from hetmtl.bench.shapes import TaskShape
from hetmtl.methods import TaskInfo
from hetmtl.methods.build import build_method


@dataclass(frozen=True)
class StepFlops:
    forward: int  # one step's forward (every task's batch) and loss
    backward: int  # its backward
    eval_per_image: tuple[int, ...]  # the forward of one image of each task, eval mode

    @property
    def step(self) -> int:
        return self.forward + self.backward

    def step_with(self, tasks: int, per_task_backward: bool) -> int:
        """A step's FLOPs: one backward, or one per task (a gradient aggregator's Jacobian)."""
        return self.forward + (tasks if per_task_backward else 1) * self.backward


def counted(fn) -> int:
    """The FLOPs ``fn()`` runs (matrix multiplications and convolutions)."""
    with FlopCounterMode(display=False) as mode:
        fn()
    return int(mode.get_total_flops())


def build_meta(resolved, shapes: list[TaskShape], pretrain: bool = False):
    """The run's method on the meta device, from scratch (the weights' values do
    not change the count; ImageNet weights need not be in the cache), with a
    uniform R (R sets values, never shapes: hard sharing's trunks take each
    task's batch whatever their clusters); its frozen blocks frozen as in the
    run (they have no weight gradient to count).
    ``pretrain``: the single-task columns a cross-stitch or NDDR-CNN run trains
    first (:func:`hetmtl.training.job.train_deep`)."""
    from hetmtl.methods.single_task import SingleTask
    from hetmtl.models import BACKBONES

    tasks = [TaskInfo(s.name, s.channels, s.classes) for s in shapes]
    resolved = replace(resolved, relations=None)
    with torch.device("meta"):
        if not pretrain:
            return build_method(resolved, tasks, overrides={"init": "scratch"})
        method = SingleTask(tasks, BACKBONES[resolved.backbone], {"init": "scratch"}, resolved.run.seed)
        if resolved.freeze_blocks:
            method.freeze_blocks(resolved.freeze_blocks)
        return method


def step_flops(method, shapes: list[TaskShape], batch_size: int, l2_lambda: float) -> StepFlops:
    """Count one training step of ``method`` (built by :func:`build_meta`) at ``batch_size`` per task."""
    from hetmtl.training.step import l2_penalty

    method.train()
    xs = [torch.empty(batch_size, s.channels, s.image_size, s.image_size, device="meta")
          .contiguous(memory_format=torch.channels_last) for s in shapes]
    ys = [torch.zeros(batch_size, dtype=torch.long, device="meta") for _ in shapes]
    box = {}

    def forward():
        logits = method.forward_all(xs)
        loss = torch.stack([F.cross_entropy(lg.float(), y) for lg, y in zip(logits, ys)]).sum()
        extra = method.extra_loss()
        if extra is not None:
            loss = loss + extra
        if l2_lambda:
            loss = loss + l2_penalty(method, len(shapes), l2_lambda)
        box["loss"] = loss

    fwd = counted(forward)
    bwd = counted(lambda: box["loss"].backward())
    method.eval()
    per_image = []
    with torch.no_grad():
        for t, s in enumerate(shapes):
            x = torch.empty(1, s.channels, s.image_size, s.image_size, device="meta")
            per_image.append(counted(lambda t=t, x=x: method(t, x)))
    method.train()
    return StepFlops(fwd, bwd, tuple(per_image))
