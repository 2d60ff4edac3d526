"""The joint training loop shared by every deep method (protocol sections 5 and 6).

Per step: one batch from every task; loss = sum over tasks of cross-entropy +
``l2_lambda`` * squared L2 norm of the task's weights; SGD with momentum. After
each epoch: the method's hook (MTAL's matching), validation accuracy per task,
a checkpoint. Test accuracy is computed once, at the end, on the last epoch's
model: nothing is ever chosen on the test split. On CUDA the forward runs under
bf16 autocast; on the CPU in float32 with deterministic algorithms.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

import torch
from tqdm import tqdm

from hetmtl.data.tasks import TaskData, to_input
from hetmtl.methods.base import Method
from hetmtl.runs import TrainConfig
from hetmtl.training.step import Diverged, NonFiniteLoss, TrainStep, autocast, step_key
from hetmtl.weightings import build as build_weighting
from hetmtl.weightings.apply import Weighting

__all__ = ["Diverged", "NonFiniteLoss", "accuracy", "check_epoch", "fit", "make_optimizer", "make_weighting",
           "recalibrate_batchnorm", "step_key"]


def check_epoch(method: Method, data: list[TaskData], epoch: int, train_loss: list[float], factor: float) -> None:
    """After an epoch, before its checkpoint: every task's mean train loss within
    ``factor`` x ln(classes) (the loss of a uniform guess; ``training.divergence_factor``,
    ours) and every weight and BatchNorm statistic finite. A model can diverge
    with a finite loss: at lr 30 on tiny, an epoch-1 loss of 3e18 and an infinite
    BatchNorm running_var still gave a FINISHED run at chance."""
    hint = ("lower the learning rate (params/training.yaml: training.lr, or training.finetune_lr for a suite "
            "with init: imagenet). Nothing of this epoch is saved: no checkpoint, no receipt.")
    for d, loss in zip(data, train_loss):
        bound = factor * math.log(d.num_classes)
        if not loss <= bound:  # NaN too
            raise Diverged(f"diverged at epoch {epoch}: task {d.name}'s mean train loss {loss:.3g} exceeds "
                           f"{factor:g} x ln({d.num_classes}) = {bound:.3g} (training.divergence_factor); {hint}")
    tensors = {k: v for k, v in itertools.chain(method.named_parameters(), method.named_buffers())
               if v.is_floating_point()}
    finite = torch.stack([torch.isfinite(v).all() for v in tensors.values()]).tolist()  # one sync
    bad = [k for k, ok in zip(tensors, finite) if not ok]
    if bad:
        raise Diverged(f"diverged at epoch {epoch}: non-finite weights or statistics in {', '.join(bad[:5])}"
                       f"{' and more' if len(bad) > 5 else ''}; {hint}")


def make_optimizer(method: Method, cfg: TrainConfig, weighting: Weighting | None = None) -> torch.optim.Optimizer:
    """SGD over the method's groups, and the weighting's own parameters (uncertainty's log-variances)."""
    extra = [{"params": list(weighting.parameters())}] if weighting is not None else []
    groups = []
    for group in method.param_groups() + extra:
        group = dict(group)
        group["lr"] = cfg.lr * group.pop("lr_mult", 1.0)
        if group["params"]:
            groups.append(group)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


_autocast = autocast  # the name the evaluation code uses


def accuracy(method: Method, t: int, data: TaskData, split: str, batch: int = 512, norm: str = "symmetric") -> float:
    with torch.no_grad():  # not a decorator: the mutation tier's tool skips decorated functions
        method.eval()
        x, y = data.x[split], data.y[split]
        correct = torch.zeros((), dtype=torch.long, device=y.device)
        with _autocast(y.device):
            for s in range(0, len(y), batch):
                correct += (method(t, to_input(x[s:s + batch], norm)).argmax(1) == y[s:s + batch]).sum()
        method.train()
        return correct.item() / max(1, len(y))


def recalibrate_batchnorm(method: Method, data: list[TaskData], batch_size: int, norm: str = "symmetric") -> None:
    """Re-estimate every BatchNorm's running statistics: reset them and average
    (cumulative mean, ``momentum=None``) over one pass of each task's training
    split through the current weights, in fixed order, without augmentation."""
    with torch.no_grad():  # not a decorator: the mutation tier's tool skips decorated functions
        norms = [m for m in method.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        method.train()
        for t, d in enumerate(data):
            x = d.x["train"]
            with _autocast(x.device):
                for s in range(0, len(x), batch_size):
                    method(t, to_input(x[s:s + batch_size], norm))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        method.needs_bn_recalibration = False


def fit(method: Method, data: list[TaskData], cfg: TrainConfig, device: torch.device,
        state: dict | None = None,
        on_epoch: Callable[[int, dict, dict], None] | None = None,
        progress: bool = True, start_epoch: int = 0, test: bool = True) -> dict:
    """Train ``method`` on ``data``; returns {"history": [...], "test": {...}, "steps": n,
    "step_losses": [[loss per task] per step], "first_step": s} with ``n`` the optimiser steps taken
    (each one batch of every task) and ``step_losses`` each step's training loss per task (the
    batch's cross-entropy, before the step) from step ``s`` (1-based) to ``n``: Fig. 12 and claim
    C10 read iterations (a checkpoint of older code resumes without the steps before it, so ``s``
    may exceed 1).

    ``state`` (from a checkpoint) resumes after its epoch. ``on_epoch(epoch,
    metrics, state)`` is called after every epoch with the metrics and the
    resumable state (the caller logs and checkpoints it). ``start_epoch``: the
    epochs already spent on this model's budget elsewhere (single-task
    pre-training); training runs epochs ``start_epoch + 1 .. cfg.epochs`` with
    those epochs' batches. ``test=False`` (a tune trial): the test split is not
    evaluated (nor read); the result's ``test`` is empty.
    """
    method.to(device, memory_format=torch.channels_last).train()
    weighting = make_weighting(method, cfg, len(data)).to(device)
    optimizer = make_optimizer(method, cfg, weighting)
    history: list[dict] = []
    start, steps_done = start_epoch, 0  # steps_done: optimiser steps, each one batch of every task
    step_losses: list[list[float]] = []  # per step: each task's batch loss
    if state is not None:
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        # first: it sets buffers a fresh one holds as None
        weighting.restore(state["weighting_snapshot"], device)
        weighting.load_state_dict(state["weighting"])
        history, start, steps_done = list(state["history"]), int(state["epoch"]), int(state["steps_done"])
        step_losses = list(state.get("step_losses", []))
    runner = TrainStep(method, data, cfg, device, weighting, optimizer)
    steps, names = runner.steps, runner.names
    train_seconds, first = 0.0, steps_done
    for epoch in range(start + 1, cfg.epochs + 1):
        runner.begin_epoch(epoch)
        per_step = torch.zeros(steps, len(data), device=device)
        started = time.perf_counter()
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress)
        for step in bar:
            per_step[step] = runner.step(step)
            steps_done += 1
        loss_sum = per_step.sum(0)
        metrics = {f"train_loss/{n}": v / steps for n, v in zip(names, loss_sum.tolist())}  # (syncs the device)
        step_losses += per_step.tolist()
        train_seconds += time.perf_counter() - started  # the steps only (Table 7's step-time ratio)
        weighting.end_epoch()
        metrics.update(method.after_epoch(epoch, optimizer, final=epoch == cfg.epochs))
        if method.needs_bn_recalibration:
            recalibrate_batchnorm(method, data, cfg.batch_size, cfg.input_norm)
        check_epoch(method, data, epoch, [metrics[f"train_loss/{n}"] for n in names], cfg.divergence_factor)
        metrics.update({f"task_weight/{names[int(t)]}": w for t, w in weighting.weights().items()})
        if weighting.kind == "gradient":  # 0: nothing shared (soft sharing, MTAL before a merge): the plain sum
            metrics["weighting/shared_coordinates"] = float(weighting.shared_count(method.shared_parameters()))
        for t, d in enumerate(data):
            metrics[f"val_acc/{d.name}"] = accuracy(method, t, d, "val", norm=cfg.input_norm)
        metrics["val_acc/mean"] = sum(metrics[f"val_acc/{n}"] for n in names) / len(names)
        history.append({"epoch": epoch, **metrics})
        if on_epoch is not None:
            on_epoch(epoch, metrics, {"model": method.state_dict(), "optimizer": optimizer.state_dict(),
                                      "weighting": weighting.state_dict(), "weighting_snapshot": weighting.snapshot(),
                                      "history": history, "epoch": epoch, "steps_done": steps_done,
                                      "step_losses": step_losses})
    test_acc = {}
    if test:  # a tune trial (test=False) neither evaluates nor reads the test split
        test_acc = {f"test_acc/{d.name}": accuracy(method, t, d, "test", norm=cfg.input_norm)
                    for t, d in enumerate(data)}
        test_acc["test_acc/mean"] = sum(test_acc.values()) / len(data)
    # train_step_s: wall seconds per optimiser step of this call, validation and checkpoints left out
    return {"history": history, "test": test_acc, "steps": steps_done, "weighting": weighting.name,
            "train_step_s": train_seconds / max(1, steps_done - first),
            "step_losses": step_losses, "first_step": steps_done - len(step_losses) + 1}


def make_weighting(method: Method, cfg: TrainConfig, num_tasks: int) -> Weighting:
    """The run's weighting (``cfg.weighting``); equal for independent networks
    (single-task), where a weight would only rescale a task's own rate."""
    if not method.joint:
        return build_weighting("equal", {}, num_tasks)
    return build_weighting(cfg.weighting, dict(cfg.weighting_params), num_tasks)


def metric_values(metrics: dict, prefix: str) -> str:
    return " ".join(f"{k.removeprefix(prefix)}={v:.4f}" for k, v in metrics.items() if k.startswith(prefix))


def epoch_line(epoch: int, epochs: int, metrics: dict, seconds: float) -> str:
    """One epoch's line: its per-task train losses, validation accuracies (and
    their mean), what else it logged that is one number (``sharing/total``,
    ``compression``, a closed-form objective), and its seconds."""
    parts = [f"epoch {epoch}/{epochs}"]
    for name, prefix in (("train_loss", "train_loss/"), ("val_acc", "val_acc/")):
        if any(k.startswith(prefix) for k in metrics):
            parts.append(f"{name} {metric_values(metrics, prefix)}")
    other = {k: v for k, v in metrics.items() if not k.startswith(("train_loss/", "val_acc/"))
             and ("/" not in k or k.endswith("/total"))}
    if other:
        parts.append(" ".join(f"{k}={v:.4g}" for k, v in other.items()))
    return " | ".join([*parts, f"{seconds:.1f} s"])
