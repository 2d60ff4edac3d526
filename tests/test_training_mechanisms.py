"""Mechanisms of training, the relations stage and the weighting that alike toy tasks
cannot tell from their distortions (issue 29), on the unequal toys of tests/toys.py."""

from __future__ import annotations

import math

import pytest
import torch

import toys
from hetmtl.data.tasks import epoch_batches, to_input
from hetmtl.methods import METHODS
from hetmtl.methods.mtal import MTAL
from hetmtl.training import relations
from hetmtl.training.loop import (
    Diverged,
    TrainConfig,
    accuracy,
    check_epoch,
    fit,
    make_optimizer,
    make_weighting,
    recalibrate_batchnorm,
)
from hetmtl.training.step import TrainStep
from hetmtl.weightings import build

CFG = TrainConfig(epochs=2, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)
HS_CFG = {"relation_threshold": 0.5}


def _fake_fit(calls: list, accuracy_of):
    """relations.fit's stand-in: records each run and gives a history of three epochs whose
    last validation accuracies are ``accuracy_of(method, task, seed)`` and the earlier ones not."""
    def fake(method, data, cfg, device, on_epoch=None, **kw):
        calls.append({"method": type(method).__name__, "tasks": [d.name for d in data],
                      "sizes": [d.size() for d in data], "cfg": cfg, "kw": kw})
        history = [{f"val_acc/{d.name}": 0.01 * e for d in data} for e in (1, 2)]
        history.append({f"val_acc/{d.name}": accuracy_of(type(method).__name__, d.name, cfg.seed) for d in data})
        for epoch, metrics in enumerate(history, 1):
            on_epoch(epoch, metrics, {})
        return {"history": history}
    return fake


def test_relations_read_the_last_epoch_and_give_a_symmetric_r(monkeypatch):
    """R_ij = R_ji = sigmoid(mean over seeds of the pair's mean last-epoch gain / temperature),
    each pair with its own gain, each seed with its own (four unequal tasks, two seeds)."""
    gain = {"c40": 0.10, "g12": -0.04, "g24": 0.02, "c20": 0.07}  # per task: together - alone
    base = {"c40": 0.5, "g12": 0.4, "g24": 0.7, "c20": 0.55}  # alone: each task its own accuracy
    calls = []
    monkeypatch.setattr(relations, "fit", _fake_fit(
        calls, lambda method, task, seed: base[task] + ((1 + seed) * gain[task] if method == "HardSharing" else 0.0)))
    seeds = [0, 1]
    R, detail = relations.estimate(lambda seed: toys.tasks(seed), toys.BN, CFG, 0.05, HS_CFG, seeds)
    names = [d.name for d in toys.tasks()]
    for i in range(4):
        assert R[i, i] == 1
        for j in range(4):
            if i != j:
                mean = sum((1 + s) * (gain[names[i]] + gain[names[j]]) / 2 for s in seeds) / len(seeds)
                want = 1 / (1 + math.exp(-mean / 0.05))
                assert R[i, j] == pytest.approx(want, abs=1e-9) and R[j, i] == R[i, j], (i, j)
    assert len(calls) == 6 * 2 * len(seeds)
    assert R.dtype == torch.float64  # thresholds compare R at full precision (R4-like ties)
    # the detail beside R: each pair's mean gain, its spread over seeds, every run's accuracies
    pair = detail["pairs"]["c40+g12"]
    gains = [(1 + s) * (gain["c40"] + gain["g12"]) / 2 for s in seeds]
    assert pair["gain_mean"] == pytest.approx(sum(gains) / 2)
    want_std = float(torch.tensor(gains, dtype=torch.float64).std())
    assert pair["gain_std"] == pytest.approx(want_std, rel=1e-12, abs=0)  # float64 throughout (float32: 1e-8)
    assert detail["gain_std"][0][1] == detail["gain_std"][1][0] == pytest.approx(pair["gain_std"])
    assert [r["seed"] for r in pair["runs"]] == seeds
    assert pair["runs"][1]["alone"] == [0.5, 0.4]
    assert pair["runs"][1]["together"] == pytest.approx([0.5 + 2 * gain["c40"], 0.4 + 2 * gain["g12"]])
    _, single = relations.estimate(lambda seed: toys.tasks(seed), toys.BN, CFG, 0.05, HS_CFG, [0])
    assert single["pairs"]["c40+g12"]["gain_std"] == 0.0  # one seed: no spread (not NaN)


def test_relations_runs_log_each_epoch_of_epochs_with_its_seconds_and_no_progress_bar(monkeypatch, capsys):
    """Every run of the stage prints "epoch e/E ... s" per epoch in the job's log (its own
    clock per epoch) and no progress bar."""
    calls = []
    monkeypatch.setattr(relations, "fit", _fake_fit(calls, lambda method, task, seed: 0.5))
    ticks = iter(range(0, 10_000, 10))  # a clock that advances 10 s at every reading
    monkeypatch.setattr(relations.time, "time", lambda: float(next(ticks)))
    relations.estimate(lambda seed: toys.tasks(seed, count=2), toys.BN, CFG, 0.05, HS_CFG, [0])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[relations]")]
    assert len(lines) == 2 * 3
    for n, line in enumerate(lines):
        assert f": epoch {n % 3 + 1}/{CFG.epochs} |" in line, line
        assert line.endswith("| 10.0 s"), line  # each epoch's own seconds, not the run's so far
    assert all(c["kw"].get("progress") is False for c in calls)


def test_relations_train_alone_and_together_at_equal_steps(monkeypatch):
    """For every pair and seed, the single-task networks train side by side on the pair's
    joint schedule (one batch of each task per step, an epoch the larger task's batch count):
    the same tasks, sizes and configuration as hard sharing, so R measures sharing."""
    calls = []
    monkeypatch.setattr(relations, "fit", _fake_fit(calls, lambda method, task, seed: 0.5))
    relations.estimate(lambda seed: toys.tasks(seed), toys.BN, CFG, 0.05, HS_CFG, [0, 3])
    alone = [c for c in calls if c["method"] == "SingleTask"]
    together = [c for c in calls if c["method"] == "HardSharing"]
    assert len(alone) == len(together) == 6 * 2
    for a, t in zip(alone, together):
        assert a["tasks"] == t["tasks"] and len(a["tasks"]) == 2 and a["sizes"] == t["sizes"]
        assert a["cfg"] == t["cfg"]
    assert {tuple(c["sizes"]) for c in alone} >= {(40, 12), (12, 24)}  # pairs of unequal tasks


@pytest.mark.parametrize("order", [(1, 3), (3, 1)])
def test_an_epoch_is_the_largest_tasks_batch_count_whatever_the_order(order):
    """12 and 20 training images at batch 8: an epoch is ceil(20 / 8) = 3 steps, the small task
    cycling through fresh permutations; every image of the larger task is seen once an epoch."""
    data = [toys.tasks()[i] for i in order]
    method = METHODS["single_task"](toys.infos(data), toys.BN, {}, 0)
    result = fit(method, data, CFG, torch.device("cpu"), progress=False)
    assert result["steps"] == 3 * CFG.epochs
    batches = epoch_batches(20, 8, 3, 0, 0, 1)
    assert sorted(batches.flatten()[:20].tolist()) == list(range(20))
    small = epoch_batches(12, 8, 3, 0, 1, 1).flatten()
    assert sorted(small[:12].tolist()) == list(range(12)) and sorted(small[12:24].tolist()) == list(range(12))


class _Brightness(torch.nn.Module):
    """A model whose answer is known: class 1 for an image brighter than the median, else 0."""

    def forward(self, t, x):
        bright = (x.mean((1, 2, 3)) > x.mean((1, 2, 3)).median()).long()
        return torch.nn.functional.one_hot(bright, 5).float()


def test_accuracy_over_a_partial_last_batch_is_the_share_of_correct_images():
    """Validation and test accuracy count every image once, the last batch partial (12, 6
    and 10 images at batches of 5 and 7): correct images over images, between 0 and 1."""
    model, wants = _Brightness(), []
    for t, d in enumerate(toys.tasks()):
        x, y = d.x["val"], d.y["val"]
        for batch in (5, 7, 512):
            want = sum(int((model(t, to_input(x[s:s + batch])).argmax(1) == y[s:s + batch]).sum())
                       for s in range(0, len(y), batch)) / len(y)
            acc = accuracy(model, t, d, "val", batch=batch)
            assert acc == pytest.approx(want) and 0 <= acc <= 1
            wants.append(want)
    assert min(wants) > 0 and min(wants) < 1  # a wrong denominator or a dropped batch shows


def test_the_weighting_sees_the_shared_coordinates_of_each_epoch_after_merges():
    """A gradient weighting acts on what two tasks use, which MTAL's merges change between
    epochs: the step's shared parameters are re-read at every epoch's start."""
    data = toys.tasks(count=3)
    m = MTAL(toys.infos(data), toys.BN, {"rho": -2.0, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1,
                                         "start": "independent"}, 0)
    cfg = TrainConfig(**{**CFG.__dict__, "weighting": "mgda"})
    weighting = make_weighting(m, cfg, len(data))
    runner = TrainStep(m, data, cfg, torch.device("cpu"), weighting, make_optimizer(m, cfg, weighting))
    runner.begin_epoch(1)
    assert runner.shared == [] and weighting.shared_count(runner.shared) == 0
    assert m.share() > 0
    runner.begin_epoch(2)
    now = m.shared_parameters()
    assert len(runner.shared) == len(now) > 0
    for (p, rows), (q, rows_now) in zip(runner.shared, now):
        assert p is q and torch.equal(rows, rows_now)
    assert weighting.shared_count(runner.shared) == weighting.shared_count(now) > 0


def test_a_gradient_weighting_with_nothing_shared_is_the_plain_sum_with_the_regulariser():
    """Soft sharing under a gradient weighting: nothing is shared (its coupling is a penalty),
    so the step is the gradient of the task losses' sum plus the penalty, the penalty kept;
    a frozen or an all-unshared declared parameter counts as nothing shared."""
    p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    frozen = torch.zeros(3)
    for shared in ([], [(frozen, None)], [(p, torch.zeros(3, dtype=torch.bool))]):
        p.grad = None
        losses = torch.stack([(2 * p).sum(), (p ** 2).sum()])
        build("mgda", {}, 2).backward(losses, 3 * (p ** 3).sum(), shared, [p])
        torch.testing.assert_close(p.grad, 2 + 2 * p.detach() + 9 * p.detach() ** 2)
        assert frozen.grad is None


def test_the_shared_coordinate_count_counts_the_shared_rows_only():
    p = torch.zeros(4, 3, requires_grad=True)
    w = build("mgda", {}, 2)
    assert w.shared_count([(p, None)]) == 12
    assert w.shared_count([(p, torch.tensor([True, False, True, False]))]) == 6
    assert w.shared_count([(torch.zeros(5), None)]) == 0  # frozen: nothing to aggregate


def test_uncertainty_logs_each_tasks_weight_as_half_exp_minus_its_log_variance():
    w = build("uncertainty", {}, 3)
    s = torch.tensor([0.3, -0.2, 1.1])
    with torch.no_grad():
        w.impl.log_var.copy_(s)
    got = w.weights()
    assert list(got) == ["0", "1", "2"]
    assert [got[k] for k in got] == pytest.approx((0.5 * torch.exp(-s)).tolist())


def test_a_restored_weighting_state_moves_its_attributes_to_the_device_and_keeps_its_buffers():
    """A checkpoint loads on the CPU; the weighting's plain attributes (tensors, lists of them)
    go to the run's device, its buffers stay where TorchJD keeps them ("meta": a device that is
    not the CPU, on any machine)."""
    w = build("dwa", {}, 2)
    w.restore({"": {"avg": torch.zeros(2), "hist": [torch.ones(1), 3], "buffer:ema": torch.ones(2)}},
              torch.device("meta"))
    assert w.impl.avg.device.type == "meta" and w.impl.hist[0].device.type == "meta" and w.impl.hist[1] == 3
    assert w.impl.ema.device.type == "cpu"
    w.restore({"": {"avg": torch.zeros(2)}})  # no device: left as loaded
    assert w.impl.avg.device.type == "cpu"


# ------------------------------------------------------------------ written against mutmut's survivors (issue 29)

def _single_task(data):
    return METHODS["single_task"](toys.infos(data), toys.BN, {}, 0)


DIVERGED_HINT = ("; lower the learning rate (params/training.yaml: training.lr, or training.finetune_lr for a suite "
                 "with init: imagenet). Nothing of this epoch is saved: no checkpoint, no receipt.")


def test_divergence_messages_name_at_most_five_tensors_and_advise_a_lower_rate():
    """A loss exactly at factor x ln(classes) passes (the bound is inclusive); just above, and a non-finite
    weight (a parameter, not only a BatchNorm statistic), stop the run with the advice. The message names the
    first five non-finite tensors, then ' and more' only when there are more than five."""
    data = toys.tasks(count=3)
    factor = 3.0
    at = [factor * math.log(d.num_classes) for d in data]
    check_epoch(_single_task(data), data, 2, at, factor)
    above = [math.nextafter(at[0], math.inf)] + at[1:]
    with pytest.raises(Diverged) as err:
        check_epoch(_single_task(data), data, 2, above, factor)
    assert str(err.value).startswith(f"diverged at epoch 2: task {data[0].name}'s")
    assert str(err.value).endswith(DIVERGED_HINT)
    for n in (5, 6):
        method = _single_task(data)
        params = [(k, p) for k, p in method.named_parameters() if p.is_floating_point()][:n]
        with torch.no_grad():
            for _, p in params:
                p.view(-1)[0] = float("nan")
        with pytest.raises(Diverged) as err:
            check_epoch(method, data, 2, [1.0] * len(data), factor)
        names = ", ".join(k for k, _ in params[:5])
        more = " and more" if n > 5 else ""
        assert str(err.value) == f"diverged at epoch 2: non-finite weights or statistics in {names}{more}" + \
            DIVERGED_HINT


class _Level(torch.nn.Module):
    """The class of an image from its mean input level (the toys' classes differ in brightness): its answer
    depends on the normalisation."""

    def forward(self, t, x):
        level = torch.bucketize(x.mean((1, 2, 3)), torch.tensor([-0.4, 0.0, 0.4, 0.7], device=x.device))
        return torch.nn.functional.one_hot(level, 5).float()


def test_accuracy_reads_the_normalisation_and_counts_a_one_image_split_whole():
    """With ``imagenet`` normalisation accuracy feeds the network the ImageNet-standardised images (another
    answer than ``symmetric``'s here); a split of one image scores 0 or 1. The count is made on the labels'
    device: with the default device ``meta`` (a tensor made elsewhere breaks, as a CPU count beside CUDA
    labels does) the result is the same."""
    model = _Level()
    d = toys.tasks(count=4)[3]  # colour: the two normalisations differ per channel
    x, y = d.x["val"], d.y["val"]

    def want(norm):
        return float((model(0, to_input(x, norm)).argmax(1) == y).float().mean())

    assert want("imagenet") != want("symmetric")
    for norm in ("imagenet", "symmetric"):
        assert accuracy(model, 0, d, "val", norm=norm) == pytest.approx(want(norm))
    torch.set_default_device("meta")
    try:
        on_meta = accuracy(model, 0, d, "val", norm="imagenet")
    finally:
        torch.set_default_device(None)
    assert on_meta == pytest.approx(want("imagenet"))
    one = next(k for k in range(len(y)) if int(model(0, to_input(x[k:k + 1])).argmax(1)) == int(y[k]))
    d.x["val"], d.y["val"] = x[one:one + 1], y[one:one + 1]
    assert accuracy(model, 0, d, "val") == 1.0


def test_batchnorm_recalibration_reads_the_normalisation():
    """The statistics are re-estimated from the inputs the network sees: ImageNet-standardised images give
    other running means than [-1, 1] ones."""
    data = toys.tasks(count=2)
    stats = {}
    for norm in ("symmetric", "imagenet"):
        m = _single_task(data)
        recalibrate_batchnorm(m, data, 8, norm=norm)
        stats[norm] = torch.cat([b for k, b in m.named_buffers() if k.endswith("running_mean")])
        assert not m.needs_bn_recalibration
    assert not torch.allclose(stats["symmetric"], stats["imagenet"])
