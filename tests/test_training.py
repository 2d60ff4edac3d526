"""The joint training loop: determinism, resume, NaN stop, batches, hard sharing."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import ROOT, fake_task, outcome
from hetmtl.data.tasks import epoch_batches
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.models import BACKBONES
from hetmtl.models.base import PerTask
from hetmtl.training.loop import Diverged, NonFiniteLoss, TrainConfig, check_epoch, fit

SPEC = BACKBONES["vgg_tiny"]
MTAL_CFG = {"rho": 0.2, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "start": "independent"}


def cfg(**kw):
    base = dict(epochs=3, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)
    return TrainConfig(**{**base, **kw})


def build(name, tasks, seed=0):
    return METHODS[name]([TaskInfo(d.name, d.channels, d.num_classes) for d in tasks], SPEC,
                         {"mtal": MTAL_CFG, "hard_sharing": {"relation_threshold": 0.5}}.get(name, {}), seed)


@pytest.mark.parametrize("name", ["single_task", "hard_sharing", "mtal"])
def test_same_seed_same_numbers(name, toy_tasks):
    torch.use_deterministic_algorithms(True)
    a = fit(build(name, toy_tasks), toy_tasks, cfg(), torch.device("cpu"), progress=False)
    b = fit(build(name, toy_tasks), toy_tasks, cfg(), torch.device("cpu"), progress=False)
    assert outcome(a) == outcome(b)


def test_different_seed_different_numbers(toy_tasks):
    a = fit(build("single_task", toy_tasks, 0), toy_tasks, cfg(seed=0), torch.device("cpu"), progress=False)
    b = fit(build("single_task", toy_tasks, 1), toy_tasks, cfg(seed=1), torch.device("cpu"), progress=False)
    assert a["history"][-1] != b["history"][-1]


def test_resume_continues_exactly(toy_tasks):
    """Interrupt after epoch 2, resume from its state: same numbers as one run."""
    torch.use_deterministic_algorithms(True)
    full = fit(build("mtal", toy_tasks), toy_tasks, cfg(), torch.device("cpu"), progress=False)
    saved = {}

    def stop_after_two(epoch, metrics, state):
        if epoch == 2:
            saved.update(torch.utils._pytree.tree_map(
                lambda v: v.clone() if isinstance(v, torch.Tensor) else v, state))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(build("mtal", toy_tasks), toy_tasks, cfg(), torch.device("cpu"), on_epoch=stop_after_two, progress=False)
    resumed = fit(build("mtal", toy_tasks), toy_tasks, cfg(), torch.device("cpu"), state=saved, progress=False)
    assert outcome(resumed) == outcome(full)


def test_nan_loss_stops_the_run_with_a_message(toy_tasks):
    with pytest.raises(NonFiniteLoss, match="non-finite loss at epoch 1"):
        fit(build("single_task", toy_tasks), toy_tasks, cfg(lr=1e30), torch.device("cpu"), progress=False)


def test_a_diverged_run_with_a_finite_loss_stops_before_its_checkpoint(toy_tasks):
    """At lr 10 the loss stays finite (thousands of nats) and the run used to end
    FINISHED at chance; it stops at the end of epoch 1, before that epoch's state
    reaches on_epoch (the checkpoint), so the last good checkpoint is kept."""
    tasks = [fake_task("a", 1, 4, n=64), fake_task("b", 3, 4, n=64, seed=5)]
    checkpointed = []
    with pytest.raises(Diverged, match=r"diverged at epoch 1: task \w+'s mean train loss [0-9.e+]+ exceeds "
                                       r"100 x ln\(4\) = 139 \(training.divergence_factor\)"):
        fit(build("single_task", tasks), tasks, cfg(lr=10, epochs=2, divergence_factor=100), torch.device("cpu"),
            on_epoch=lambda e, m, s: checkpointed.append(e), progress=False)
    assert checkpointed == []
    # the same run at the paper's rate passes every epoch's check
    fit(build("single_task", tasks), tasks, cfg(epochs=2, divergence_factor=100), torch.device("cpu"),
        on_epoch=lambda e, m, s: checkpointed.append(e), progress=False)
    assert checkpointed == [1, 2]


def test_non_finite_batchnorm_statistics_stop_the_run(toy_tasks):
    method = build("single_task", toy_tasks)
    check_epoch(method, toy_tasks, 3, [1.0] * len(toy_tasks), 100.0)  # a healthy model passes
    name, buffer = next((n, b) for n, b in method.named_buffers() if n.endswith("running_var"))
    buffer[0] = float("inf")
    with pytest.raises(Diverged, match=f"diverged at epoch 3: non-finite weights or statistics in {name}"):
        check_epoch(method, toy_tasks, 3, [1.0] * len(toy_tasks), 100.0)


def test_training_learns_a_separable_task():
    tasks = [fake_task("a", 1, 4, n=64), fake_task("b", 3, 4, n=64, seed=5)]
    out = fit(build("single_task", tasks), tasks, cfg(epochs=8, lr=0.05), torch.device("cpu"), progress=False)
    assert out["history"][-1]["train_loss/a"] < out["history"][0]["train_loss/a"]
    assert out["test"]["test_acc/mean"] > 0.5  # chance is 0.25


def test_epoch_batches_cycle_the_smaller_task():
    b = epoch_batches(n=10, batch_size=4, steps=6, seed=0, task_index=1, epoch=3)
    assert b.shape == (6, 4)
    flat = b.flatten().tolist()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert torch.equal(b, epoch_batches(10, 4, 6, 0, 1, 3))
    assert not torch.equal(b, epoch_batches(10, 4, 6, 0, 1, 4))


def test_hard_sharing_trunk_gets_gradients_from_every_task(toy_tasks):
    m = build("hard_sharing", toy_tasks)
    trunk_w = next(p for p in m.trunks[0].parameters() if p.dim() == 4)  # a shared conv kernel
    grads = []
    for t, d in enumerate(toy_tasks):
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(t, d.x["train"][:8].float()), d.y["train"][:8]).backward()
        grads.append(trunk_w.grad.abs().sum().item())
        assert m.stems[t].weight.grad is not None and m.stems[t].weight.shape[1] == d.channels
    assert all(g > 0 and math.isfinite(g) for g in grads)
    norms = [mod for mod in m.trunks[0].modules() if isinstance(mod, PerTask)]
    assert norms and all(len(n.copies) == len(toy_tasks) for n in norms)  # BatchNorm stays per task
    assert not [mod for mod in m.trunks[0].modules() if isinstance(mod, torch.nn.BatchNorm2d)
                and not any(mod is c for n in norms for c in n.copies)]
    assert len({id(p) for p in m.parameters()}) < sum(
        len(list(build("single_task", toy_tasks).nets[t].parameters())) for t in range(3))


def test_l2_penalty_shrinks_the_weights(toy_tasks):
    torch.use_deterministic_algorithms(True)
    plain = build("single_task", toy_tasks)
    penalised = build("single_task", toy_tasks)
    fit(plain, toy_tasks, cfg(epochs=1, l2_lambda=0.0), torch.device("cpu"), progress=False)
    fit(penalised, toy_tasks, cfg(epochs=1, l2_lambda=1.0), torch.device("cpu"), progress=False)
    norm = lambda m: sum(w.pow(2).sum() for t in range(3) for w in m.task_weights(t)).item()  # noqa: E731
    assert norm(penalised) < 0.9 * norm(plain)


def _l2_cases(toy_tasks):
    from hetmtl.methods.mtal import MTAL
    from hetmtl.params import load_params
    from hetmtl.resolve import method_params

    params = load_params(ROOT)
    infos = [TaskInfo(d.name, d.channels, d.num_classes) for d in toy_tasks]
    for name in ("single_task", "hard_sharing", "soft_sharing", "cross_stitch", "nddr_cnn"):
        yield name, METHODS[name](infos, SPEC, {**method_params(params, name), "init": "scratch"}, 0)
    merged = MTAL(infos, SPEC, {**method_params(params, "mtal"), "rho": -1.01, "start": "common", "init": "scratch"},
                  0)
    merged.share()  # every comparable kernel merged: bank rows two tasks' kernels use
    assert merged.sharing_metrics()["sharing/total"] > 0
    yield "mtal (merged)", merged


def test_the_closed_form_l2_gradient_is_the_penaltys_gradient(toy_tasks):
    """The step adds 2 x lambda x n x w after the backward pass (n: how many task
    weights an entry is); back-propagating the penalty gives the same gradient,
    for every method: a trunk two tasks use, MTAL's shared bank rows, frozen blocks."""
    from hetmtl.training.step import L2, l2_penalty

    for name, method in _l2_cases(toy_tasks):
        # its value (the NaN check's): the penalty's; a frozen weight's term is a constant left out
        assert L2(method, len(toy_tasks), 0.3).value().item() == pytest.approx(
            l2_penalty(method, len(toy_tasks), 0.3).item(), rel=1e-5), name
        method.freeze_blocks(1)
        trainable = [p for p in method.parameters() if p.requires_grad]
        penalty = l2_penalty(method, len(toy_tasks), 0.3)
        expected = torch.autograd.grad(penalty, trainable, allow_unused=True)
        for p in trainable:
            p.grad = None
        l2 = L2(method, len(toy_tasks), 0.3)
        l2.add_to_gradients()
        if name.startswith("mtal"):
            assert l2.rows  # counts per bank row: shared rows 2, the others 1 or 0
        for p, e in zip(trainable, expected):
            e = torch.zeros_like(p) if e is None else e
            got = torch.zeros_like(p) if p.grad is None else p.grad  # no weight of a task: untouched (biases)
            assert torch.allclose(got, e, rtol=1e-6, atol=1e-9), name
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in trainable), name
        assert all(p.grad is None for p in method.parameters() if not p.requires_grad), name  # frozen: untouched


def test_augmentation_crops_and_flips_on_the_uint8_batch():
    from hetmtl.training.augment import epoch_augment

    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    assert epoch_augment(0, False, 3, 2, 0, 0, 1) is None
    aug = epoch_augment(2, True, 3, 2, seed=0, task_index=0, epoch=1)
    out = aug.apply(x, 1)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):
        oy, ox = aug.offsets[1, n].tolist()
        crop = padded[n, :, oy:oy + 4, ox:ox + 4]
        expected = crop.flip(-1) if bool(aug.flips[1, n]) else crop
        assert torch.equal(out[n], expected)
    again = epoch_augment(2, True, 3, 2, seed=0, task_index=0, epoch=1)
    assert torch.equal(again.offsets, aug.offsets) and torch.equal(again.flips, aug.flips)
    assert not torch.equal(epoch_augment(2, True, 3, 2, seed=0, task_index=0, epoch=2).offsets, aug.offsets)
    from hetmtl.training.augment import EpochAugment

    flip_all = EpochAugment(torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool), 0)
    assert torch.equal(flip_all.apply(x, 0), x.flip(-1))
    no_flip = epoch_augment(2, False, 50, 8, seed=0, task_index=0, epoch=1)
    assert not no_flip.flips.any() and aug.offsets.max() <= 4
    # every step of an epoch: exactly the images drawn to flip are flipped (the step's
    # host-side flag decides whether to look at all)
    flips_only = epoch_augment(0, True, 4, 8, seed=0, task_index=0, epoch=1)
    batch = torch.randint(0, 255, (8, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert flips_only.flips.any()
    for step in range(4):
        out = flips_only.apply(batch, step)
        for n in range(8):
            assert torch.equal(out[n], batch[n].flip(-1) if bool(flips_only.flips[step, n]) else batch[n])


def test_augmentation_changes_training_but_never_evaluation(toy_tasks):
    torch.use_deterministic_algorithms(True)
    plain = fit(build("single_task", toy_tasks), toy_tasks, cfg(epochs=1), torch.device("cpu"), progress=False)
    aug = fit(build("single_task", toy_tasks), toy_tasks, cfg(epochs=1, crop_pad=2, flip=(True, True, True)),
              torch.device("cpu"), progress=False)
    assert plain["history"][0]["train_loss/g1"] != aug["history"][0]["train_loss/g1"]
    model = build("single_task", toy_tasks)
    from hetmtl.training.loop import accuracy

    a = accuracy(model, 0, toy_tasks[0], "test")
    assert accuracy(model, 0, toy_tasks[0], "test") == a  # evaluation is deterministic: nothing random


def test_flip_only_where_meaningful_and_imagenet_inputs(params):
    from torchvision.transforms import Normalize

    from hetmtl.data.tasks import to_input
    from hetmtl.resolve import train_config

    tiny = train_config(params, "tiny", 0, params.tasks_of("unrelated"))
    assert tiny.flip == (False, True, True, True) and tiny.crop_pad == 2  # HD, Coil-20, Art, Amazon
    assert train_config(params, "tiny", 0, params.tasks_of("related")).flip == (False,) * 4
    paper = train_config(params, "paper", 0, params.tasks_of("unrelated"))
    assert paper.input_norm == "imagenet" and paper.lr == params["training"]["finetune_lr"]
    x = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    expected = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(x.float() / 255)
    torch.testing.assert_close(to_input(x, "imagenet"), expected)
    gray = to_input(x[:, :1], "imagenet")
    torch.testing.assert_close(gray, (x[:, :1].float() / 255 - 0.449) / 0.226, atol=1e-3, rtol=1e-3)


def test_the_l2_counts_follow_mtals_merges(toy_tasks):
    """What two tasks use changes at MTAL's merges (between epochs): the step
    counts the task weights again at the next epoch."""
    from hetmtl.methods.mtal import MTAL
    from hetmtl.training.loop import make_optimizer, make_weighting
    from hetmtl.training.step import L2, TrainStep

    infos = [TaskInfo(d.name, d.channels, d.num_classes) for d in toy_tasks]
    m = MTAL(infos, SPEC, {"rho": -1.01, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1,
                           "start": "common", "init": "scratch"}, 0)
    config = cfg(epochs=2)
    weighting = make_weighting(m, config, len(toy_tasks))
    runner = TrainStep(m, toy_tasks, config, torch.device("cpu"), weighting, make_optimizer(m, config, weighting))
    runner.begin_epoch(1)
    assert not runner.l2.rows  # before a merge every used row is one task's kernel
    m.share()
    runner.begin_epoch(2)
    fresh = L2(m, len(toy_tasks), config.l2_lambda)
    assert runner.l2.rows and [n.tolist() for _, n in runner.l2.rows] == [n.tolist() for _, n in fresh.rows]


def test_the_loss_is_kept_per_optimisation_step_and_each_epochs_mean_is_its_train_loss(toy_tasks):
    """Fig. 12 and claim C10 read iterations: one loss per task per optimisation step, from step 1
    (a resumed fit keeps the steps before it: test_resume_continues_exactly compares them too)."""
    out = fit(build("mtal", toy_tasks), toy_tasks, cfg(), torch.device("cpu"), progress=False)
    losses, steps = out["step_losses"], out["steps"]
    assert out["first_step"] == 1 and len(losses) == steps and all(len(row) == len(toy_tasks) for row in losses)
    per_epoch = steps // cfg().epochs
    for e, entry in enumerate(out["history"]):
        for t, d in enumerate(toy_tasks):
            epoch = [row[t] for row in losses[e * per_epoch:(e + 1) * per_epoch]]
            assert entry[f"train_loss/{d.name}"] == pytest.approx(sum(epoch) / len(epoch), rel=1e-5)
    assert len({row[0] for row in losses}) > 1  # each step its own batch's loss, not an epoch's mean repeated


def test_cross_stitch_counts_its_pretraining_steps_in_the_per_step_loss(toy_tasks):
    from hetmtl.params import load_params
    from hetmtl.training.job import train_deep

    mcfg = {**load_params(ROOT)["methods"]["cross_stitch"], "init": "scratch"}
    infos = [TaskInfo(d.name, d.channels, d.num_classes) for d in toy_tasks]
    out = train_deep(METHODS["cross_stitch"](infos, SPEC, mcfg, 0), toy_tasks, cfg(), torch.device("cpu"), None,
                     lambda *a: None, False, infos, SPEC, mcfg, test=False)
    assert out["first_step"] == 1 and len(out["step_losses"]) == out["steps"]
