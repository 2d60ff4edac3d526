"""Timing a run's training step three ways, on one device, with the same model,
batches and dtype:

- ``step``: the loop's own step (:class:`hetmtl.training.step.TrainStep`), the
  object ``fit`` repeats;
- ``bare``: a plain PyTorch loop written for the same step (the same batches and
  augmentation, forward under the same autocast, the cross-entropies, the L2
  penalty as a per-tensor sum, ``backward``, ``SGD.step`` over the method's
  parameter groups) and nothing else; and
  the same loop doing what the protocol evaluates (the validation split after
  every epoch, the protocol's per-epoch ``val_acc``, and the test split once): the
  reference the harness is held to;
- ``harness``: ``fit`` itself for some epochs (validation, the epoch's checks,
  the method's epoch work, checkpoints as a job writes them) plus the test
  evaluation a job runs once, its share spread over the suite's epochs.

The harness's own cost is then its time over the bare job's: checkpoints,
divergence checks, bookkeeping (the method's epoch work, MTAL's matching, is
in both). Evaluation is the protocol's,
reported as its share of the bare job.

Each timing runs ``warmup`` steps first and synchronises the device only at its
ends. Data are the suite's prepared tasks when they exist, otherwise random
uint8 images of the tasks' shapes (:mod:`hetmtl.bench.shapes`): a step's time
does not depend on the pixels.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from hetmtl.bench.shapes import TaskShape
from hetmtl.data.tasks import TaskData, load_task, to_input
from hetmtl.training import checkpoint
from hetmtl.training.loop import accuracy, fit, make_optimizer, make_weighting, recalibrate_batchnorm
from hetmtl.training.step import TrainStep, autocast


def synthetic_task(shape: TaskShape, device: torch.device, seed: int) -> TaskData:
    """Random uint8 images and labels of ``shape``'s sizes, on ``device``."""
    g = torch.Generator().manual_seed(seed)
    x, y = {}, {}
    for split, n in shape.split.items():
        x[split] = torch.randint(0, 256, (n, shape.channels, shape.image_size, shape.image_size),
                                 generator=g, dtype=torch.uint8).to(device)
        y[split] = torch.randint(0, shape.classes, (n,), generator=g).to(device)
    return TaskData(shape.name, shape.channels, shape.classes, x, y, {"synthetic": True})


def bench_data(resolved, shapes: list[TaskShape], device: torch.device) -> tuple[list[TaskData], str]:
    """The run's tasks, prepared (``"prepared"``) or synthetic (``"synthetic"``)."""
    if all(s.exact for s in shapes):
        return [load_task(resolved.run.suite, t, device, resolved.split, resolved.run.seed)
                for t in resolved.tasks], "prepared"
    return [synthetic_task(s, device, k) for k, s in enumerate(shapes)], "synthetic"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run_step, steps_per_epoch: int, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per call of ``run_step(i)`` over ``steps`` calls after ``warmup``."""
    for i in range(warmup):
        run_step(i % steps_per_epoch)
    _sync(device)
    started = time.perf_counter()
    for i in range(warmup, warmup + steps):
        run_step(i % steps_per_epoch)
    _sync(device)
    return (time.perf_counter() - started) / steps


def prepare(method, cfg, device: torch.device):
    """The method on the device as ``fit`` puts it (channels_last, train mode)."""
    return method.to(device, memory_format=torch.channels_last).train()


def time_step(method, data, cfg, device, warmup: int, steps: int, compile_forward: bool = False) -> float:
    """Seconds per step of the loop's own step (``compile_forward``: its forward through ``torch.compile``)."""
    method = prepare(method, cfg, device)
    weighting = make_weighting(method, cfg, len(data)).to(device)
    runner = TrainStep(method, data, cfg, device, weighting, make_optimizer(method, cfg, weighting))
    if compile_forward:
        method.forward_all = torch.compile(method.forward_all)
    runner.begin_epoch(1)
    return _timed(runner.step, runner.steps, warmup, steps, device)


def _bare_step(method, data, cfg, device):
    """A plain loop's step on the same batches (see the module's docstring);
    returns (begin_epoch, step, steps per epoch, optimiser)."""
    method = prepare(method, cfg, device)
    opt = make_optimizer(method, cfg)  # SGD over the method's groups and their rates (cross-stitch's units)
    runner = TrainStep(method, data, cfg, device, make_weighting(method, cfg, len(data)), opt)

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        xs, ys = runner.inputs(i)
        with autocast(device):
            logits = method.forward_all(xs)
        loss = sum(F.cross_entropy(lg.float(), y) for lg, y in zip(logits, ys))
        extra = method.extra_loss()
        if extra is not None:
            loss = loss + extra
        if cfg.l2_lambda:
            loss = loss + cfg.l2_lambda * sum(w.pow(2).sum() for t in range(len(data)) for w in method.task_weights(t))
        loss.backward()
        opt.step()

    return runner.begin_epoch, step, runner.steps, opt


def time_bare(method, data, cfg, device, warmup: int, steps: int) -> float:
    """Seconds per step of a plain loop on the same step."""
    begin_epoch, step, per_epoch, _ = _bare_step(method, data, cfg, device)
    begin_epoch(1)  # the same batches and augmentation draws as the loop's first epoch
    return _timed(step, per_epoch, warmup, steps, device)


@torch.no_grad()
def _plain_eval(method, data, split: str, cfg, device, batch: int = 512) -> None:
    """What the protocol evaluates, written plainly: every task's ``split``, one forward per image."""
    method.eval()
    correct = []
    with autocast(device):
        for t, d in enumerate(data):
            x, y = d.x[split], d.y[split]
            correct += [(method(t, to_input(x[s:s + batch], cfg.input_norm)).argmax(1) == y[s:s + batch]).sum()
                        for s in range(0, len(y), batch)]
    torch.stack(correct).tolist()
    method.train()


def time_bare_job(method, data, cfg, device, epochs: int, suite_epochs: int) -> dict:
    """The protocol as a plain loop: ``epochs`` epochs of the bare step, the
    the method's own epoch work (MTAL's matching, and the BatchNorm
    re-estimate after a merge), the validation split evaluated after each
    (the protocol: per-epoch validation accuracy), the test split once; seconds per step, the test's share spread over
    ``suite_epochs`` as in :func:`time_harness`."""
    _sync(device)
    started = time.perf_counter()  # its setup timed too, as fit's is in time_harness
    begin_epoch, step, per_epoch, opt = _bare_step(method, data, cfg, device)
    evaluation = 0.0
    for epoch in range(1, epochs + 1):
        begin_epoch(epoch)
        for i in range(per_epoch):
            step(i)
        method.after_epoch(epoch, opt, final=epoch == epochs)  # the method's own (MTAL's matching)
        if method.needs_bn_recalibration:
            recalibrate_batchnorm(method, data, cfg.batch_size, cfg.input_norm)
        mark = time.perf_counter()
        _plain_eval(method, data, "val", cfg, device)
        evaluation += time.perf_counter() - mark
    _sync(device)
    total = time.perf_counter() - started
    mark = time.perf_counter()
    _plain_eval(method, data, "test", cfg, device)
    _sync(device)
    test = time.perf_counter() - mark
    steps = per_epoch * epochs
    per_step = (total + test * epochs / suite_epochs) / steps
    return {"steps": steps, "per_step_s": per_step,
            "evaluation_share": (evaluation + test * epochs / suite_epochs) / (per_step * steps)}


def time_harness(method, data, cfg, device, epochs: int, suite_epochs: int, scratch: Path | None = None) -> dict:
    """``fit`` for ``epochs`` epochs with a job's checkpoints, then the test
    evaluation as a job runs it: seconds per step (the test's share spread over
    ``suite_epochs``), and of the steps alone."""
    cfg = replace(cfg, epochs=epochs)
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:  # checkpoints where a job writes them (not a RAM /tmp)
        path, cadence = Path(tmp) / "checkpoint.pt", checkpoint.Cadence()

        def on_epoch(epoch, metrics, state):  # as a job: a checkpoint when due (training/checkpoint.py)
            cadence.save(path, {**state, "key": {"bench": True}})

        _sync(device)
        started = time.perf_counter()
        result = fit(method, data, cfg, device, on_epoch=on_epoch, progress=False, test=False)
        _sync(device)
        total = time.perf_counter() - started
    started = time.perf_counter()
    for t, d in enumerate(data):
        accuracy(method, t, d, "test", norm=cfg.input_norm)
    _sync(device)
    test = time.perf_counter() - started
    steps = result["steps"]
    return {"steps": steps, "step_s": result["train_step_s"],
            "per_step_s": (total + test * epochs / suite_epochs) / steps}


def fresh(method):
    """An independent copy of a freshly built method (each timing trains its own)."""
    return copy.deepcopy(method)
