"""One optimiser step of the joint training loop, the unit that ``fit`` repeats
and ``hetmtl bench`` times (the same object, so the bench measures the real step).

A step takes one batch from every task (the epoch's schedule: its batch order
and augmentation, drawn once per epoch and held on the device), runs the forward
under the device's autocast (bf16 on CUDA), the cross-entropy of every task,
the regulariser (the method's own term and the L2 penalty), the NaN check every
``nan_check_every`` steps (the only host-device synchronisation of a step with a
loss weighting), the weighting's backward and the optimiser's step.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from hetmtl.data.tasks import TaskData, epoch_batches, steps_per_epoch, to_input
from hetmtl.errors import UserError
from hetmtl.methods.base import Method
from hetmtl.runs import TrainConfig
from hetmtl.training.augment import epoch_augment
from hetmtl.weightings.apply import Weighting


class Diverged(UserError, RuntimeError):
    """Training left the range where its numbers mean anything: the run stops
    (FAILED, no receipt, the last good checkpoint kept)."""


class NonFiniteLoss(Diverged):
    """The loss became NaN or infinite."""


def autocast(device: torch.device):
    """bf16 autocast on CUDA; float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def l2_penalty(method: Method, num_tasks: int, l2_lambda: float) -> torch.Tensor:
    """``l2_lambda`` x the squared L2 norm of every task's weights (a weight two
    tasks use counts for both): the squares of all of them in one fused reduction
    (``torch._foreach_norm``-free: per-tensor sums of squares stacked once), the
    same gradient, 2 x l2_lambda x w, as the per-tensor sum it replaces."""
    weights = [w for t in range(num_tasks) for w in method.task_weights(t)]
    return l2_lambda * torch.stack([w.pow(2).sum() for w in weights]).sum()


class TrainStep:
    """The step of ``fit`` for ``method`` on ``data``: ``begin_epoch(e)`` then
    ``step(i)`` for i in ``range(steps)``; ``step`` returns the detached task losses."""

    def __init__(self, method: Method, data: list[TaskData], cfg: TrainConfig, device: torch.device,
                 weighting: Weighting, optimizer: torch.optim.Optimizer):
        self.method, self.data, self.cfg, self.device = method, data, cfg, device
        self.weighting, self.optimizer = weighting, optimizer
        self.steps = steps_per_epoch(data, cfg.batch_size)
        self.names = [d.name for d in data]
        self.trainable = [p for p in method.parameters() if p.requires_grad] + list(weighting.parameters())
        self.epoch = 0

    def begin_epoch(self, epoch: int) -> None:
        """The epoch's batch order and augmentation (seeded by run seed, task and
        epoch: every method sees the same batches), on the device; and what two
        tasks use, which changes only between epochs (MTAL's merges)."""
        cfg, steps = self.cfg, self.steps
        self.epoch = epoch
        self.batches = [epoch_batches(d.size(), cfg.batch_size, steps, cfg.seed, t, epoch).to(self.device)
                        for t, d in enumerate(self.data)]
        self.augments = [None if a is None else a.to(self.device) for a in
                         (epoch_augment(cfg.crop_pad, bool(cfg.flip and cfg.flip[t]), steps, cfg.batch_size,
                                        cfg.seed, t, epoch) for t in range(len(self.data)))]
        self.shared = self.method.shared_parameters() if self.weighting.kind == "gradient" else []

    def inputs(self, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Batch ``step`` of every task: the network inputs (float, channels_last) and the labels."""
        idx = [b[step] for b in self.batches]
        images = [d.x["train"][i] for d, i in zip(self.data, idx)]
        images = [x if a is None else a.apply(x, step) for x, a in zip(images, self.augments)]
        return ([to_input(x, self.cfg.input_norm) for x in images],
                [d.y["train"][i] for d, i in zip(self.data, idx)])

    def step(self, step: int) -> torch.Tensor:
        cfg, method = self.cfg, self.method
        self.optimizer.zero_grad(set_to_none=True)
        xs, ys = self.inputs(step)
        with autocast(self.device):
            logits = method.forward_all(xs)
        task_losses = torch.stack([F.cross_entropy(lg.float(), y) for lg, y in zip(logits, ys)])
        regulariser = method.extra_loss()
        if cfg.l2_lambda:
            l2 = l2_penalty(method, len(self.data), cfg.l2_lambda)
            regulariser = l2 if regulariser is None else regulariser + l2
        if (step + 1) % cfg.nan_check_every == 0 or step + 1 == self.steps:
            self.check_finite(task_losses, regulariser, step)
        self.weighting.backward(task_losses, regulariser, self.shared, self.trainable,
                                rng_key=step_key(cfg.seed, self.epoch, step))
        self.optimizer.step()
        return task_losses.detach()

    def check_finite(self, task_losses: torch.Tensor, regulariser, step: int) -> None:
        total = task_losses.detach().sum() + (0 if regulariser is None else regulariser.detach())
        if not torch.isfinite(total).item():  # the step's one synchronisation, every nan_check_every steps
            bad = [n for n, v in zip(self.names, task_losses.tolist()) if not math.isfinite(v)]
            raise NonFiniteLoss(
                f"non-finite loss at epoch {self.epoch}, step {step + 1}: "
                f"tasks {bad or self.names} (total {total.item()}); lower the learning rate "
                "or check the data. The last good checkpoint is kept.")


def step_key(seed: int, epoch: int, step: int) -> int:
    """The seed of a step's random draws (rlw, random, PCGrad's order): the same on resumption."""
    return (seed * 1_000_003 + epoch) * 1_000_003 + step
