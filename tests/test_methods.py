"""A mechanism test for every method: each fails when its mechanism is removed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from contract_cases import BACKBONE_NAMES, EPOCHS, case

from conftest import fake_task, outcome
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.methods.columns import adapt_channels, mixing_init
from hetmtl.methods.hard_sharing import clusters
from hetmtl.methods.mtal_prior import pair_thresholds
from hetmtl.models import BACKBONES
from hetmtl.training.loop import TrainConfig, fit, make_optimizer

SPEC = BACKBONES["vgg_tiny"]


def cfg(**kw):
    base = dict(epochs=2, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)
    return TrainConfig(**{**base, **kw})


def infos(tasks):
    return [TaskInfo(d.name, d.channels, d.num_classes) for d in tasks]


def run(method, tasks, **kw):
    torch.use_deterministic_algorithms(True)
    return fit(method, tasks, cfg(**kw), torch.device("cpu"), progress=False)


CS_CFG = {"pretrain_fraction": 0.5, "own_weight": 0.9, "unit_lr_mult": 100, "unit_bn": True, "unit_bn_lr_mult": 1}
HS_CFG = {"relation_threshold": 0.5}


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_cross_stitch_with_identity_mixing_equals_independent_columns(backbone, toy_tasks):
    spec, tasks = case(backbone, toy_tasks)
    single = METHODS["single_task"](infos(tasks), spec, {}, 0)
    cs = METHODS["cross_stitch"](infos(tasks), spec, {**CS_CFG, "own_weight": 1.0}, 0)
    cs.init_from(single.state_dict())
    for a in cs.alpha:
        a.requires_grad_(False)  # keep the identity
    for t, d in enumerate(tasks):
        x = d.x["test"][:6].float() / 255
        single.eval(), cs.eval()
        torch.testing.assert_close(cs(t, x), single(t, x), rtol=0, atol=0)
    a, b = run(single, tasks, epochs=EPOCHS[backbone]), run(cs, tasks, epochs=EPOCHS[backbone])
    assert a["test"] == b["test"]
    torch.testing.assert_close(torch.tensor([h["train_loss/g1"] for h in a["history"]]),
                               torch.tensor([h["train_loss/g1"] for h in b["history"]]))


def test_cross_stitch_mixing_changes_the_output(toy_tasks):
    cs = METHODS["cross_stitch"](infos(toy_tasks), SPEC, CS_CFG, 0).eval()
    x = toy_tasks[0].x["test"][:4].float() / 255
    before = cs(0, x)
    with torch.no_grad():
        cs.alpha[0].copy_(mixing_init(None, 3, 1.0)[:, :, None].expand_as(cs.alpha[0]))
    assert not torch.allclose(before, cs(0, x))


def test_cross_stitch_units_learn_a_hundred_times_faster(toy_tasks):
    cs = METHODS["cross_stitch"](infos(toy_tasks), SPEC, CS_CFG, 0)
    groups = make_optimizer(cs, cfg()).param_groups
    assert [g["lr"] for g in groups] == [0.01, 1.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in cs.alpha}


def test_mixing_initialisation_and_prior():
    uniform = mixing_init(None, 4)
    assert torch.allclose(uniform.diagonal(), torch.full((4,), 0.9))
    assert torch.allclose(uniform[0, 1:], torch.full((3,), 0.1 / 3))
    R = torch.tensor([[1, 0.9, 0.1, 0.0], [0.9, 1, 0.5, 0.5], [0.1, 0.5, 1, 0.5], [0.0, 0.5, 0.5, 1]])
    prior = mixing_init(R, 4)
    assert torch.allclose(prior.sum(1), torch.ones(4))
    assert prior[0, 1] > prior[0, 2] > prior[0, 3] == 0


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_nddr_with_identity_own_block_and_no_unit_norm_equals_single_task(backbone, toy_tasks):
    spec, tasks = case(backbone, toy_tasks)
    single = METHODS["single_task"](infos(tasks), spec, {}, 0)
    nddr = METHODS["nddr_cnn"](infos(tasks), spec, {**CS_CFG, "own_weight": 1.0, "unit_bn": False}, 0)
    nddr.init_from(single.state_dict())
    for p in nddr.unit_parameters():
        p.requires_grad_(False)
    a, b = run(single, tasks, epochs=EPOCHS[backbone]), run(nddr, tasks, epochs=EPOCHS[backbone])
    assert a["test"] == b["test"]
    # The columns' convolutions see every task's rows at once: rounding differs in
    # the last bit, which ResNet's BatchNorm over 8-image batches amplifies after
    # the first epoch (measured: 7e-7 after epoch 1, 3e-2 after epoch 2); VGG-tiny
    # stays within 1e-5 over every epoch.
    epochs = len(a["history"]) if backbone == "vgg_tiny" else 1
    for ha, hb in zip(a["history"][:epochs], b["history"][:epochs]):
        for k in (f"train_loss/{d.name}" for d in tasks):
            assert abs(ha[k] - hb[k]) < 1e-5


def test_nddr_units_see_every_column(toy_tasks):
    nddr = METHODS["nddr_cnn"](infos(toy_tasks), SPEC, CS_CFG, 0)
    w = nddr.reduce[0][1].weight[:, :, 0, 0]
    C = nddr.widths[0]
    assert torch.allclose(w[:, C:2 * C], 0.9 * torch.eye(C)) and torch.allclose(w[:, :C], 0.05 * torch.eye(C))
    x = toy_tasks[1].x["train"][:8].float() / 255
    F.cross_entropy(nddr(1, x), toy_tasks[1].y["train"][:8]).backward()
    assert nddr.reduce[0][1].weight.grad[:, :C].abs().sum() > 0  # column 0 feeds task 1


def test_adapt_channels():
    gray, colour = torch.rand(2, 1, 4, 4), torch.rand(2, 3, 4, 4)
    assert adapt_channels(gray, 3).shape == (2, 3, 4, 4)
    torch.testing.assert_close(adapt_channels(colour, 1), colour.mean(1, keepdim=True))


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_soft_sharing_gamma_zero_equals_single_task(backbone, toy_tasks):
    spec, tasks = case(backbone, toy_tasks)
    a = run(METHODS["single_task"](infos(tasks), spec, {}, 0), tasks, epochs=EPOCHS[backbone])
    b = run(METHODS["soft_sharing"](infos(tasks), spec, {"gamma": 0.0}, 0), tasks, epochs=EPOCHS[backbone])
    assert outcome(a) == outcome(b)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_hard_sharing_of_one_task_is_single_task(backbone, toy_tasks):
    """One task: its stem, the shared trunk and its head are its own network."""
    spec, tasks = case(backbone, toy_tasks)
    a = run(METHODS["single_task"](infos(tasks[:1]), spec, {}, 0), tasks[:1], epochs=EPOCHS[backbone])
    b = run(METHODS["hard_sharing"](infos(tasks[:1]), spec, HS_CFG, 0), tasks[:1], epochs=EPOCHS[backbone])
    assert outcome(a) == outcome(b)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_hard_sharing_keeps_batchnorm_per_task(backbone, toy_tasks):
    """A task's batch moves only its own BatchNorm statistics in the shared trunk."""
    spec, tasks = case(backbone, toy_tasks)
    m = METHODS["hard_sharing"](infos(tasks), spec, HS_CFG, 0).train()
    bn = next(mod for mod in m.trunks[0].modules() if type(mod).__name__ == "PerTask")
    before = [c.running_mean.clone() for c in bn.copies]
    with torch.no_grad():
        m(1, tasks[1].x["train"][:8].float() / 255)
    after = [c.running_mean for c in bn.copies]
    assert not torch.equal(after[1], before[1])
    assert all(torch.equal(after[t], before[t]) for t in range(len(tasks)) if t != 1)


def test_soft_sharing_penalty_pulls_networks_together(toy_tasks):
    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 3, seed=2)]

    def distance(m):
        return sum((p - q).pow(2).sum() for p, q in zip(m.nets[0].parameters(), m.nets[1].parameters())
                   if p.shape == q.shape).item()

    loose = METHODS["soft_sharing"](infos(tasks), SPEC, {"gamma": 0.0}, 0)
    tight = METHODS["soft_sharing"](infos(tasks), SPEC, {"gamma": 0.5}, 0)
    start = distance(loose)
    run(loose, tasks), run(tight, tasks)
    assert distance(tight) < 0.9 * start and distance(tight) < distance(loose)


def test_prior_changes_mtal_thresholds_per_pair(toy_tasks):
    R = torch.tensor([[1.0, 0.8, 0.2], [0.8, 1.0, 0.3], [0.2, 0.3, 1.0]])
    params = {"rho_related": 0.4, "rho_unrelated": 0.55, "relation_threshold": 0.5,
              "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "start": "independent"}
    m = METHODS["mtal_prior"](infos(toy_tasks), SPEC, params, 0, relations=R)
    assert m.thresholds[0, 1] == 0.4 and m.thresholds[0, 2] == 0.55 and m.thresholds[1, 2] == 0.55
    uniform = METHODS["mtal_prior"](infos(toy_tasks), SPEC, params, 0)
    assert (uniform.thresholds == 0.4).all()
    assert torch.equal(pair_thresholds(R, params), m.thresholds)


def test_hard_sharing_prior_builds_one_trunk_per_cluster(toy_tasks):
    R = torch.tensor([[1.0, 0.2, 0.9], [0.2, 1.0, 0.1], [0.9, 0.1, 1.0]])
    assert clusters(R, 3, 0.5) == [0, 1, 0]
    m = METHODS["hard_sharing"](infos(toy_tasks), SPEC, {"relation_threshold": 0.5}, 0, relations=R)
    assert len(m.trunks) == 2 and m.cluster == [0, 1, 0]
    assert len(METHODS["hard_sharing"](infos(toy_tasks), SPEC, {"relation_threshold": 0.5}, 0).trunks) == 1


def test_frozen_blocks_are_bit_identical_after_training(toy_tasks):
    for name in ("single_task", "hard_sharing", "mtal", "cross_stitch"):
        extra = {"mtal": {"rho": 0.0, "alpha": .5, "beta": .5, "warmup": 5, "share_every": 1, "start": "independent"},
                 "cross_stitch": CS_CFG, "hard_sharing": HS_CFG}.get(name, {})
        m = METHODS[name](infos(toy_tasks), SPEC, extra, 0)
        assert m.freeze_blocks(1) > 0
        frozen = {n: p.detach().clone() for n, p in m.named_parameters() if not p.requires_grad}
        assert frozen, name
        moving = {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad}
        run(m, toy_tasks)
        after = dict(m.named_parameters())
        assert all(torch.equal(after[n], v) for n, v in frozen.items()), name
        assert any(not torch.equal(after[n], v) for n, v in moving.items()), name


def test_imagenet_init_loads_weights_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """A weights file made here and put into the cache is used: no network."""
    import torchvision
    from torchvision.models import VGG16_Weights

    from hetmtl.models import base as vgg

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    vgg.imagenet_state.cache_clear()
    fake = torchvision.models.vgg16(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(fake, cache / VGG16_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    try:
        gray = vgg.build_task_net(BACKBONES["vgg16"], 1, 10, seed=0, task_index=0, init="imagenet")
        scratch = vgg.build_task_net(BACKBONES["vgg16"], 1, 10, seed=0, task_index=0)
    finally:
        vgg.imagenet_state.cache_clear()
    sd = gray.state_dict()
    assert torch.equal(sd["stages.0.2.weight"], fake["features.2.weight"])
    assert torch.equal(sd["stem.weight"], fake["features.0.weight"].sum(1, keepdim=True))
    assert torch.equal(sd["head.2.0.weight"], fake["classifier.0.weight"])
    assert torch.equal(sd["head.2.6.weight"], scratch.state_dict()["head.2.6.weight"])  # own output layer
    assert sd["head.2.6.weight"].shape == (10, 4096)


def test_imagenet_init_needs_a_backbone_with_weights():
    import pytest

    from hetmtl.models.base import ImageNetWeightsError, imagenet_state

    with pytest.raises(ImageNetWeightsError, match="no ImageNet weights"):
        imagenet_state(BACKBONES["vgg_small"])


# ------------------------------------------------------------- issue 8 rules

def test_soft_sharing_penalises_backbone_convolutions_only(toy_tasks):
    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 4, seed=2)]
    m = METHODS["soft_sharing"](infos(tasks), SPEC, {"gamma": 1.0}, 0)
    m.zero_grad()
    m.extra_loss().backward()
    convs = {id(p) for t in range(2) for p in m.coupled_parameters(t)}
    assert convs and all(p.grad is not None for p in m.parameters() if id(p) in convs)
    assert all(p.grad.abs().sum() > 0 for t in range(2) for p in m.coupled_parameters(t) if p.dim() == 4)
    others = [n for n, p in m.named_parameters() if id(p) not in convs]
    assert any("head" in n for n in others) and any(".1." in n for n in others)  # heads, BatchNorms
    for n, p in m.named_parameters():
        if id(p) not in convs:
            assert p.grad is None or p.grad.abs().sum() == 0, n
    expected = sum((a - b).pow(2).sum() for a, b in zip(m.coupled_parameters(0), m.coupled_parameters(1)))
    torch.testing.assert_close(m.extra_loss(), expected)


def test_nddr_unit_batchnorm_learns_at_its_own_rate(toy_tasks):
    nddr = METHODS["nddr_cnn"](infos(toy_tasks), SPEC, CS_CFG, 0)
    groups = make_optimizer(nddr, cfg()).param_groups
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert {by_id[id(p)] for p in nddr.reduce.parameters()} == {1.0}
    assert {by_id[id(p)] for p in nddr.norms.parameters()} == {0.01}
    fast = METHODS["nddr_cnn"](infos(toy_tasks), SPEC, {**CS_CFG, "unit_bn_lr_mult": 10}, 0)
    by_id = {id(p): g["lr"] for g in make_optimizer(fast, cfg()).param_groups for p in g["params"]}
    assert {by_id[id(p)] for p in fast.norms.parameters()} == {0.1}


def test_prior_shapes_the_mixing_of_the_units(toy_tasks):
    R = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    for name in ("cross_stitch", "nddr_cnn"):
        with_r = METHODS[name](infos(toy_tasks), SPEC, CS_CFG, 0, relations=R)
        without = METHODS[name](infos(toy_tasks), SPEC, CS_CFG, 0)
        torch.testing.assert_close(with_r.mixing, mixing_init(R, 3, 0.9))
        assert with_r.mixing[0, 1] > with_r.mixing[0, 2]
        torch.testing.assert_close(without.mixing, mixing_init(None, 3, 0.9))
    cs = METHODS["cross_stitch"](infos(toy_tasks), SPEC, CS_CFG, 0, relations=R)
    torch.testing.assert_close(cs.alpha[0][:, :, 0], mixing_init(R, 3, 0.9))


def test_column_methods_pretrain_inside_their_budget(toy_tasks):
    """Cross-stitch with E epochs: P epochs of single-task columns (exactly the
    single_task run's first P epochs), then E - P joint epochs: E epochs in all."""
    from hetmtl.resolve import pretrain_epochs
    from hetmtl.training.job import train_deep

    torch.use_deterministic_algorithms(True)
    c = cfg(epochs=4)
    method_cfg = {**CS_CFG, "init": "scratch"}
    assert pretrain_epochs(method_cfg, 4) == 2 and pretrain_epochs(method_cfg, 2) == 1
    single = fit(METHODS["single_task"](infos(toy_tasks), SPEC, {}, 0), toy_tasks, c, torch.device("cpu"),
                 progress=False)
    seen = []
    cs = METHODS["cross_stitch"](infos(toy_tasks), SPEC, CS_CFG, 0)
    out = train_deep(cs, toy_tasks, c, torch.device("cpu"), None, lambda e, m, s: seen.append((e, s["phase"])),
                     False, infos(toy_tasks), SPEC, method_cfg)
    assert seen == [(1, "pretrain"), (2, "pretrain"), (3, "joint"), (4, "joint")]
    assert [h["epoch"] for h in out["history"]] == [1, 2, 3, 4]
    assert out["steps"] == single["steps"] == 4 * 3  # counted: 3 batches of every task per epoch
    assert out["history"][:2] == single["history"][:2]
    # the joint phase starts from the pre-trained columns: with identity mixing
    # frozen, it continues them as single-task training with a fresh optimiser
    frozen = METHODS["cross_stitch"](infos(toy_tasks), SPEC, {**CS_CFG, "own_weight": 1.0}, 0)
    for a in frozen.alpha:
        a.requires_grad_(False)
    out = train_deep(frozen, toy_tasks, c, torch.device("cpu"), None, lambda *a: None, False,
                     infos(toy_tasks), SPEC, method_cfg)
    reference = METHODS["single_task"](infos(toy_tasks), SPEC, {}, 0)
    fit(reference, toy_tasks, cfg(epochs=2), torch.device("cpu"), progress=False)
    fit(reference, toy_tasks, c, torch.device("cpu"), progress=False, start_epoch=2)
    torch.testing.assert_close(frozen.nets[0].head[-1].weight, reference.nets[0].head[-1].weight)


def test_imagenet_init_offline_fails_fast_naming_where_the_file_goes(tmp_path, monkeypatch):
    import urllib.error

    import pytest
    import torch.hub

    from hetmtl.models import base as vgg

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    vgg.imagenet_state.cache_clear()

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    try:
        with pytest.raises(vgg.ImageNetWeightsError) as err:
            vgg.build_task_net(BACKBONES["vgg16"], 1, 10, seed=0, task_index=0, init="imagenet")
    finally:
        vgg.imagenet_state.cache_clear()
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in str(err.value)


def test_column_pretraining_freezes_what_the_method_freezes(toy_tasks):
    from hetmtl.training.job import train_deep

    cs = METHODS["cross_stitch"](infos(toy_tasks), SPEC, CS_CFG, 0)
    cs.freeze_blocks(1)
    first = cs.nets[0].stem.weight.detach().clone()
    train_deep(cs, toy_tasks, cfg(epochs=2), torch.device("cpu"), None, lambda *a: None, False,
               infos(toy_tasks), SPEC, {**CS_CFG, "init": "scratch"}, freeze_blocks=1)
    assert torch.equal(cs.nets[0].stem.weight, first)


def test_column_methods_resume_in_either_phase(toy_tasks):
    """Interrupted after the last pre-training epoch or in the joint phase, a
    resumed cross-stitch run ends with the uninterrupted run's numbers and steps."""
    from hetmtl.training.job import train_deep

    torch.use_deterministic_algorithms(True)
    c, mcfg = cfg(epochs=4), {**CS_CFG, "init": "scratch"}

    def run_(state=None, stop=None):
        saved = {}

        def on_epoch(epoch, metrics, st):
            if epoch == stop:
                saved.update(torch.utils._pytree.tree_map(
                    lambda v: v.clone() if isinstance(v, torch.Tensor) else v, st))
                raise KeyboardInterrupt

        m = METHODS["cross_stitch"](infos(toy_tasks), SPEC, CS_CFG, 0)
        try:
            return train_deep(m, toy_tasks, c, torch.device("cpu"), state, on_epoch, False, infos(toy_tasks), SPEC,
                              mcfg), None
        except KeyboardInterrupt:
            return None, saved

    full, _ = run_()
    for stop in (2, 3):
        _, saved = run_(stop=stop)
        assert saved["phase"] == ("pretrain" if stop == 2 else "joint")
        resumed, _ = run_(state=saved)
        assert outcome(resumed) == outcome(full), stop


def test_soft_sharing_weighs_each_pair_by_the_prior(toy_tasks):
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(3)]
    R = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.0], [0.1, 0.0, 1.0]])
    m = METHODS["soft_sharing"](infos(tasks), SPEC, {"gamma": 2.0}, 0, relations=R)

    def dist(i, j):
        return sum((a - b).pow(2).sum() for a, b in zip(m.coupled_parameters(i), m.coupled_parameters(j)))

    torch.testing.assert_close(m.extra_loss(), 2.0 * (0.9 * dist(0, 1) + 0.1 * dist(0, 2)))
