"""One optimiser step of the joint training loop, the unit that ``fit`` repeats
and ``hetmtl bench`` times (the same object, so the bench measures the real step).

A step takes one batch from every task (the epoch's schedule: its batch order
and augmentation, drawn once per epoch and held on the device), runs the forward
under the device's autocast (bf16 on CUDA), the cross-entropy of every task,
the method's own regulariser, the NaN check every ``nan_check_every`` steps (the
only host-device synchronisation of a step with a loss weighting), the
weighting's backward, the L2 penalty's gradient (:class:`L2`, in closed form)
and the optimiser's step.
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
    tasks use counts for both), as a differentiable term: the definition that
    :class:`L2` applies in closed form (and what ``hetmtl bench`` counts)."""
    weights = [w for t in range(num_tasks) for w in method.task_weights(t)]
    return l2_lambda * torch.stack([w.pow(2).sum() for w in weights]).sum()


class L2:
    """The L2 penalty's gradient in closed form, added to the gradients after the
    backward pass: 2 x ``l2_lambda`` x n x w for every trainable tensor w, with n
    how many task weights each of its entries is (2 for a trunk two tasks use,
    per row for MTAL's kernel banks; 0 for a bias). The same gradient as
    back-propagating :func:`l2_penalty`, without its graph: one fused
    multiply-add per tensor instead of a square, a sum and their backward for
    each of them, each step. ``n`` comes from the task weights themselves (the
    gradient of their plain sum), recounted when the method says what tasks use
    changed (``refresh`` at each epoch: MTAL's merges)."""

    def __init__(self, method: Method, num_tasks: int, l2_lambda: float):
        self.method, self.num_tasks, self.l2_lambda = method, num_tasks, l2_lambda
        self.refresh()

    def refresh(self) -> None:
        leaves = [p for p in self.method.parameters() if p.requires_grad]
        weights = [w for t in range(self.num_tasks) for w in self.method.task_weights(t) if w.requires_grad]
        counts = torch.autograd.grad(torch.stack([w.sum() for w in weights]).sum(), leaves, allow_unused=True) \
            if weights else [None] * len(leaves)
        self.scaled: dict[float, list[torch.Tensor]] = {}  # n (one for the whole tensor) -> tensors
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] = []  # (tensor, n per entry)
        for p, n in zip(leaves, counts):
            if n is None or not bool(n.any()):
                continue
            lo, hi = n.aminmax()
            if lo == hi:
                self.scaled.setdefault(float(hi), []).append(p)
            else:
                self.rows.append((p, n.detach()))

    def add_to_gradients(self) -> None:
        twice = 2.0 * self.l2_lambda
        for n, params in self.scaled.items():
            grads = [_grad(p) for p in params]
            torch._foreach_add_(grads, [p.detach() for p in params], alpha=twice * n)
        if self.rows:
            torch._foreach_addcmul_([_grad(p) for p, _ in self.rows], [n for _, n in self.rows],
                                    [p.detach() for p, _ in self.rows], value=twice)

    def value(self) -> torch.Tensor:
        """The penalty's value (for the NaN check), without a graph."""
        with torch.no_grad():
            total = [n * p.pow(2).sum() for n, params in self.scaled.items() for p in params]
            total += [(n * p.pow(2)).sum() for p, n in self.rows]
            return self.l2_lambda * torch.stack(total).sum() if total else torch.zeros(())


def _grad(p: torch.Tensor) -> torch.Tensor:
    if p.grad is None:
        p.grad = torch.zeros_like(p)
    return p.grad


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
        self.l2 = L2(method, len(data), cfg.l2_lambda) if cfg.l2_lambda else None
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
        if self.l2 is not None and epoch > 1:
            self.l2.refresh()

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
        regulariser = method.extra_loss()  # soft sharing's penalty; the L2 penalty is added in closed form
        if (step + 1) % cfg.nan_check_every == 0 or step + 1 == self.steps:
            self.check_finite(task_losses, regulariser, step)
        self.weighting.backward(task_losses, regulariser, self.shared, self.trainable,
                                rng_key=step_key(cfg.seed, self.epoch, step))
        if self.l2 is not None:  # outside any aggregation, as the regulariser
            self.l2.add_to_gradients()
        self.optimizer.step()
        return task_losses.detach()

    def check_finite(self, task_losses: torch.Tensor, regulariser, step: int) -> None:
        total = task_losses.detach().sum() + (0 if regulariser is None else regulariser.detach())
        if self.l2 is not None:
            total = total + self.l2.value()
        if not torch.isfinite(total).item():  # the step's one synchronisation, every nan_check_every steps
            bad = [n for n, v in zip(self.names, task_losses.tolist()) if not math.isfinite(v)]
            raise NonFiniteLoss(
                f"non-finite loss at epoch {self.epoch}, step {step + 1}: "
                f"tasks {bad or self.names} (total {total.item()}); lower the learning rate "
                "or check the data. The last good checkpoint is kept.")


def step_key(seed: int, epoch: int, step: int) -> int:
    """The seed of a step's random draws (rlw, random, PCGrad's order): the same on resumption."""
    return (seed * 1_000_003 + epoch) * 1_000_003 + step
