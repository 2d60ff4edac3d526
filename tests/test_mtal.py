"""MTAL's mechanism (protocol section 6) and the sanity properties it is held to."""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from contract_cases import BACKBONE_NAMES, case

from conftest import fake_task
from hetmtl.data.tasks import to_input
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.methods.mtal import MTAL, greedy_match
from hetmtl.models import BACKBONES
from hetmtl.training.loop import TrainConfig, fit, make_optimizer

SPEC = BACKBONES["vgg_tiny"]
CFG = TrainConfig(epochs=3, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)


def mtal_cfg(rho, **kw):
    return {"rho": rho, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "start": "independent", **kw}


def infos(tasks):
    return [TaskInfo(d.name, d.channels, d.num_classes) for d in tasks]


def train(method, tasks):
    torch.use_deterministic_algorithms(True)
    return fit(method, tasks, CFG, torch.device("cpu"), progress=False)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_rho_above_one_trains_exactly_like_single_task(backbone, toy_tasks):
    spec, tasks = case(backbone, toy_tasks)
    single = train(METHODS["single_task"](infos(tasks), spec, {}, 0), tasks)
    method = MTAL(infos(tasks), spec, mtal_cfg(1.01), 0)
    mtal = train(method, tasks)
    for a, b in zip(single["history"], mtal["history"]):
        for k, v in a.items():
            assert b[k] == v, k  # bit-identical, not approximately equal
    assert single["test"] == mtal["test"]
    assert mtal["history"][-1]["sharing/total"] == 0.0
    reference = METHODS["single_task"](infos(tasks), spec, {}, 0).task_weights(0)
    assert [w.shape for w in method.task_weights(0)] == [w.shape for w in reference]


def test_resnet18_shared_convolutions_keep_their_stride_and_padding():
    """On ResNet-18 every conv is shared at rho below -1, among them the stride-2
    convs and the 1x1 downsample convs (no bias, padding 0): each task's forward
    through the banks equals its plain network holding the gathered kernels."""
    from hetmtl.models import build_task_net

    spec = BACKBONES["resnet18"]
    tasks = [fake_task("a", 1, 3, n=8, seed=1), fake_task("b", 1, 3, n=8, seed=2)]
    m = MTAL(infos(tasks), spec, mtal_cfg(-1.01, start="common"), 0)
    with torch.no_grad():  # independent kernels in one stride-2 conv and one downsample conv
        for name in ("layer2.0.conv1", "layer3.0.downsample.0"):
            layer = m.layer_names.index(name)
            m.bank_w[m.task_bank[layer][1]].add_(0.01 * torch.randn_like(m.bank_w[m.task_bank[layer][1]]))
    m.share()
    metrics = m.sharing_metrics()
    for name in ("layer2.0.conv1", "layer3.0.downsample.0", "conv1"):
        assert metrics[f"sharing/{name}"] > 0, name
    assert m.bias_bank(m.task_bank[m.layer_names.index("layer3.0.downsample.0")][0]) is None
    m.eval()
    x = tasks[0].x["test"][:3].float() / 255
    for t in range(2):
        plain = build_task_net(spec, 1, 3, seed=0, task_index=t).eval()
        state = {k: v for k, v in m.nets[t].state_dict().items()}
        for layer, conv in enumerate(plain.shareable_convs().values()):
            w, b = m.kernel(t, layer)
            assert b is None
            with torch.no_grad():
                conv.weight.copy_(w)
        plain.load_state_dict(state, strict=False)
        with torch.no_grad():
            torch.testing.assert_close(m(t, x), plain(x), rtol=0, atol=0)
            layer = m.layer_names.index("layer2.0.conv1")
            assert m.activations(t, x, layer).shape == (3, 128, 2, 2)  # 16 -> 8 -> 4 (max-pool) -> 2


def test_rho_below_minus_one_shares_every_matched_kernel():
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(3)]  # one kernel shape per layer
    m = MTAL(infos(tasks), SPEC, mtal_cfg(-1.01), 0)
    m.share()
    metrics = m.sharing_metrics()
    assert metrics["sharing/conv1_1"] == 1.0 and metrics["sharing/conv2_1"] == 1.0
    assert metrics["within_task_duplicates"] == 0
    # every group holds one kernel of each of 2 or 3 tasks: between 1/3 and 1/2 of the slots remain
    assert 1 / 3 - 1e-9 <= metrics["compression"] <= 1 / 2 + 1e-9


def test_kernels_of_different_shapes_are_never_compared(toy_tasks):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(-1.01), 0)  # g1, g2 grayscale; c1 colour
    m.share()
    idx = m.index(0)
    bank_g = m.task_bank[0][0]
    assert m.task_bank[0][2] == bank_g and m.task_bank[0][1] != bank_g
    assert set(idx[0].tolist()) & set(idx[2].tolist())  # grayscale pair shares
    # the colour task's first layer has its own bank and shares with nobody
    counts = torch.bincount(idx[1], minlength=m.bank_w[m.task_bank[0][1]].shape[0])
    assert (counts[idx[1]] == 1).all()


def test_unique_slots_never_grow(toy_tasks):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(0.0), 0)
    opt = make_optimizer(m, CFG)
    previous = m.sharing_metrics()["compression"]
    for _ in range(4):
        with torch.no_grad():  # move the kernels so new pairs become similar
            for p in m.bank_w:
                p.add_(0.05 * torch.randn_like(p))
        m.share(opt)
        now = m.sharing_metrics()["compression"]
        assert now <= previous + 1e-12
        previous = now
    assert previous < 1.0


def test_shared_slot_receives_the_sum_of_both_tasks_gradients():
    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 3, seed=2)]
    m = MTAL(infos(tasks), SPEC, mtal_cfg(-1.01), 0)
    m.share()
    layer, bank = 1, m.task_bank[1][0]
    slot = int(m.index(layer)[0, 0])
    j = int((m.index(layer)[1] == slot).nonzero()[0])  # task b's kernel in the same slot

    def grad_of(task_ids):
        m.zero_grad()
        loss = sum(F.cross_entropy(m(t, tasks[t].x["train"][:8].float() / 255), tasks[t].y["train"][:8])
                   for t in task_ids)
        loss.backward()
        return m.bank_w[bank].grad[slot].clone()

    g_a, g_b, g_both = grad_of([0]), grad_of([1]), grad_of([0, 1])
    assert g_a.abs().sum() > 0 and g_b.abs().sum() > 0
    torch.testing.assert_close(g_both, g_a + g_b)
    del j


def test_similarity_is_cosine_of_vectorised_kernels(toy_tasks):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(0.4), 0)
    s = m.similarity(1, 0, 1)
    wa, wb = m.kernel(0, 1)[0], m.kernel(1, 1)[0]
    for a, b in [(0, 0), (3, 5), (15, 2)]:
        expected = F.cosine_similarity(wa[a].flatten(), wb[b].flatten(), dim=0)
        torch.testing.assert_close(s[a, b], expected)


def naive_greedy(sim, threshold):
    pairs = sorted(((float(sim[i, j]), i, j) for i in range(sim.shape[0]) for j in range(sim.shape[1])
                    if sim[i, j] > threshold), reverse=True)
    used_r, used_c, out = set(), set(), set()
    for _, i, j in pairs:
        if i not in used_r and j not in used_c:
            used_r.add(i), used_c.add(j), out.add((i, j))
    return out


@pytest.mark.parametrize("seed,threshold", list(itertools.product(range(5), [-2.0, 0.0, 0.3])))
def test_vectorised_matching_equals_the_greedy_algorithm(seed, threshold):
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(12, 9, generator=g) * 2 - 1
    rows, cols = greedy_match(sim, threshold)
    assert set(zip(rows.tolist(), cols.tolist())) == naive_greedy(sim, threshold)


def test_aggregation_is_weighted_and_momentum_merged():
    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 3, seed=2)]
    m = MTAL(infos(tasks), SPEC, mtal_cfg(-1.01, alpha=0.7, beta=0.3), 0)
    opt = make_optimizer(m, CFG)
    for p in m.parameters():
        opt.state[p]["momentum_buffer"] = torch.randn_like(p)
    layer = 1
    rows, cols = greedy_match(m.similarity(layer, 0, 1), -1.01)
    a, b = int(rows[0]), int(cols[0])
    bank = m.task_bank[layer][0]
    sa, sb = int(m.index(layer)[0, a]), int(m.index(layer)[1, b])
    w_a, w_b = m.bank_w[bank][sa].detach().clone(), m.bank_w[bank][sb].detach().clone()
    mom = opt.state[m.bank_w[bank]]["momentum_buffer"]
    mo_a, mo_b = mom[sa].clone(), mom[sb].clone()
    m.share(opt)
    slot = int(m.index(layer)[0, a])
    assert slot == int(m.index(layer)[1, b]) == min(sa, sb)
    torch.testing.assert_close(m.bank_w[bank][slot], 0.7 * w_a + 0.3 * w_b)
    torch.testing.assert_close(mom[slot], 0.7 * mo_a + 0.3 * mo_b)
    assert mom[max(sa, sb)].abs().sum() == 0  # the dead slot's momentum is cleared


def test_schedule_warmup_and_share_every(toy_tasks):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(-1.01, warmup=2, share_every=2), 0)
    opt = make_optimizer(m, CFG)
    assert m.after_epoch(1, opt)["sharing/total"] == 0.0
    assert m.after_epoch(2, opt)["sharing/total"] > 0.0


def test_mtal_state_survives_a_checkpoint(toy_tasks):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(-1.01), 0)
    m.share()
    fresh = MTAL(infos(toy_tasks), SPEC, mtal_cfg(-1.01), 0)
    fresh.load_state_dict(m.state_dict())
    assert fresh.sharing_metrics() == m.sharing_metrics()
    x = toy_tasks[0].x["test"][:4].float()
    torch.testing.assert_close(fresh(0, x), m(0, x))


# ---------------------------------------------------------------- issue 8 rules

def _planted(m, layer, tasks, vectors, noise=0.0, seed=0):
    """Give kernel 0 of each listed task the given vector (plus noise); every other
    kernel of the layer an independent random direction, far from it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in range(len(m.tasks)):
            bank, idx = m.task_bank[layer][t], m.index(layer)[t]
            w = m.bank_w[bank]
            w[idx] = torch.randn(w[idx].shape, generator=g)
        for t, v in zip(tasks, vectors):
            bank, slot = m.task_bank[layer][t], int(m.index(layer)[t, 0])
            m.bank_w[bank][slot] = v + noise * torch.randn(v.shape, generator=g)


def test_a_group_never_holds_two_kernels_of_one_task():
    """Repeated rounds at rho below -1 over 4 tasks: chains i.a - j.b - k.c - i.a'
    are offered by the pairwise matchings, and the within-task rule refuses them."""
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(4)]
    m = MTAL(infos(tasks), SPEC, mtal_cfg(-1.01), 0)
    for round_ in range(4):
        with torch.no_grad():
            for p in m.bank_w:
                p.add_(0.3 * torch.randn_like(p))
        m.share()
        assert m.sharing_metrics()["within_task_duplicates"] == 0, round_
        for layer in range(m.num_layers):
            idx = m.index(layer)
            for t in range(4):
                assert idx[t].unique().numel() == idx.shape[1], (round_, layer, t)


def test_group_slot_holds_the_mean_weighted_by_kernels():
    """A slot already used by two tasks merges with a third task's kernel 2/3 : 1/3
    (Eq. 6 over task kernels, not over slots); a fresh triple gives the plain mean."""
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(3)]
    m = MTAL(infos(tasks), SPEC, mtal_cfg(0.95, alpha=0.7, beta=0.3), 0)
    layer = 1
    v = torch.randn(m.kernel(0, layer)[0][0].shape, generator=torch.Generator().manual_seed(7))
    # A fresh triple: one group, the plain mean (no alpha/beta: those are for a pair).
    _planted(m, layer, [0, 1, 2], [v, v, v], noise=0.05)
    bank = m.task_bank[layer][0]
    w0 = [m.bank_w[bank][int(m.index(layer)[t, 0])].clone() for t in range(3)]
    m.share()
    slot = int(m.index(layer)[0, 0])
    assert int(m.index(layer)[1, 0]) == int(m.index(layer)[2, 0]) == slot
    torch.testing.assert_close(m.bank_w[bank][slot], (w0[0] + w0[1] + w0[2]) / 3)

    # A slot shared by tasks 0 and 1 meets task 2's kernel: weights 2/3 and 1/3.
    m = MTAL(infos(tasks), SPEC, mtal_cfg(0.95, alpha=0.7, beta=0.3), 0)
    _planted(m, layer, [0, 1, 2], [v, v, v], noise=0.05)
    with torch.no_grad():
        idx = m.index(layer)
        idx[1, 0] = idx[0, 0]  # tasks 0 and 1 already share task 0's slot
    shared_w = m.bank_w[bank][int(m.index(layer)[0, 0])].clone()
    w2 = m.bank_w[bank][int(m.index(layer)[2, 0])].clone()
    m.share()
    slot = int(m.index(layer)[2, 0])
    assert slot == int(m.index(layer)[0, 0])
    torch.testing.assert_close(m.bank_w[bank][slot], 2 / 3 * shared_w + 1 / 3 * w2)


def test_no_matching_after_the_last_epoch(toy_tasks):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(-1.01), 0)
    opt = make_optimizer(m, CFG)
    assert m.after_epoch(1, opt, final=True)["sharing/total"] == 0.0
    assert m.after_epoch(1, opt, final=False)["sharing/total"] > 0.0


def test_matching_epochs_follow_warmup_and_share_every(toy_tasks, monkeypatch):
    m = MTAL(infos(toy_tasks), SPEC, mtal_cfg(0.4, warmup=2, share_every=2), 0)
    calls = []
    monkeypatch.setattr(m, "share", lambda optimizer=None: calls.append(epoch))
    opt = make_optimizer(m, CFG)
    for epoch in range(1, 8):
        m.after_epoch(epoch, opt, final=epoch == 7)
    assert calls == [2, 4, 6]


def test_params_refuse_a_schedule_that_ends_on_a_matching(project):
    import yaml

    from hetmtl.params import ParamsError, load_params

    path = project / "params" / "methods.yaml"
    text = path.read_text().replace("warmup: 1         #", "warmup: 6         #", 1)
    path.write_text(text)
    assert yaml.safe_load(text)["methods"]["mtal"]["warmup"] == 6
    with pytest.raises(ParamsError, match="warmup = 6"):
        load_params(project)


def test_batchnorm_statistics_are_those_of_the_merged_weights(monkeypatch):
    """After a merge every BatchNorm, including those after layers that did not
    merge, holds the statistics of the merged weights on the training split, before
    validation and before the next epoch; epochs without a merge leave them alone."""
    from hetmtl.training import loop

    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 3, seed=2)]
    torch.use_deterministic_algorithms(True)
    calls = []
    real = loop.recalibrate_batchnorm
    monkeypatch.setattr(loop, "recalibrate_batchnorm", lambda *a, **k: (calls.append(1), real(*a, **k)))
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=0, nan_check_every=1, seed=0)
    m = MTAL(infos(tasks), SPEC, mtal_cfg(0.5, warmup=1, share_every=1), 0)
    fit(m, tasks, cfg, torch.device("cpu"), progress=False)
    assert calls == []  # the last epoch never matches, so nothing to re-estimate
    K = m.index(0).shape[1]
    with torch.no_grad():  # only the first layer can merge: the tasks' conv1 kernels made identical
        m.bank_w[0][K:] = m.bank_w[0][:K]
    fit(m, tasks, replace(cfg, epochs=2), torch.device("cpu"), progress=False, start_epoch=1)
    assert calls == []  # epoch 2 is the last
    fresh = MTAL(infos(tasks), SPEC, mtal_cfg(0.5, warmup=1, share_every=1), 0)
    with torch.no_grad():
        fresh.bank_w[0][K:] = fresh.bank_w[0][:K]
    fit(fresh, tasks, replace(cfg, epochs=2), torch.device("cpu"), progress=False)
    assert calls == [1] and fresh.sharing_metrics()["sharing/conv1_1"] > 0  # merged after epoch 1, re-estimated
    m.after_epoch(1, make_optimizer(m, CFG))  # a merge in conv1 only
    assert m.needs_bn_recalibration and m.sharing_metrics()["sharing/conv2_1"] == 0.0
    loop.recalibrate_batchnorm(m, tasks, 8)
    assert not m.needs_bn_recalibration
    # the statistics of the second BatchNorm (after the unmerged conv2_1) are the mean over
    # the training batches of task a's conv2_1 response computed with the merged conv1
    probe = copy.deepcopy(m)
    acts = []
    probe.norms[1][0].register_forward_hook(lambda mod, inp, out: acts.append(inp[0].mean((0, 2, 3))))
    probe.train()
    with torch.no_grad():
        for s in range(0, tasks[0].size(), 8):
            probe(0, to_input(tasks[0].x["train"][s:s + 8]))
    torch.testing.assert_close(m.norms[1][0].running_mean, torch.stack(acts).mean(0))
    assert all(bn.momentum == 0.1 for norms in m.norms for bn in norms)


def test_common_start_copies_one_backbone(toy_tasks):
    common = MTAL(infos(toy_tasks), SPEC, mtal_cfg(1.5, start="common"), 0)
    indep = MTAL(infos(toy_tasks), SPEC, mtal_cfg(1.5), 0)
    w_g1, w_c1, w_g2 = (common.kernel(t, 0)[0] for t in range(3))
    torch.testing.assert_close(w_g1, w_g2)
    torch.testing.assert_close(w_g1, w_c1.sum(1, keepdim=True))  # grayscale = colour summed over RGB
    for layer in range(1, common.num_layers):
        torch.testing.assert_close(common.kernel(0, layer)[0], common.kernel(1, layer)[0])
        assert not torch.allclose(indep.kernel(0, layer)[0], indep.kernel(1, layer)[0])
    assert common.sharing_metrics()["sharing/total"] == 0.0
    common.thresholds.fill_(0.4)
    common.share()
    assert common.sharing_metrics()["sharing/conv2_1"] == 1.0


def test_parameter_compression_counts_the_parameters_saved():
    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 3, seed=2)]
    m = MTAL(infos(tasks), SPEC, mtal_cfg(-1.01), 0)
    total = m.unshared_params
    single = METHODS["single_task"](infos(tasks), SPEC, {}, 0)
    assert total == sum(p.numel() for p in single.parameters())
    m.share()  # two tasks, one kernel shape per layer: every kernel pair merged
    saved = sum(m.index(layer).shape[1] * (m.kernel(0, layer)[0][0].numel() + 1) for layer in range(m.num_layers))
    metrics = m.sharing_metrics()
    assert metrics["compression"] == 0.5
    assert metrics["compression_params"] == pytest.approx(1 - saved / total)


def test_prior_thresholds_decide_which_pairs_share(toy_tasks):
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(3)]
    R = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.1], [0.1, 0.1, 1.0]])
    cfg = {"rho_related": -1.01, "rho_unrelated": 1.5, "relation_threshold": 0.5, "alpha": 0.5, "beta": 0.5,
           "warmup": 1, "share_every": 1, "start": "independent"}
    m = METHODS["mtal_prior"](infos(tasks), SPEC, cfg, 0, relations=R)
    m.share()
    for layer in range(m.num_layers):
        idx = m.index(layer)
        assert set(idx[0].tolist()) == set(idx[1].tolist())  # the related pair shares every kernel
        assert not set(idx[2].tolist()) & set(idx[0].tolist())  # the unrelated task shares nothing


def test_within_task_duplicates_are_counted():
    tasks = [fake_task("a", 1, 3, seed=1), fake_task("b", 1, 3, seed=2)]
    m = MTAL(infos(tasks), SPEC, mtal_cfg(0.4), 0)
    assert m.sharing_metrics()["within_task_duplicates"] == 0
    with torch.no_grad():
        m.index(1)[0, 1] = m.index(1)[0, 0]
        m.index(1)[0, 2] = m.index(1)[0, 0]
    assert m.sharing_metrics()["within_task_duplicates"] == 2


def test_unrelated_tasks_never_share_through_a_related_third():
    """R chains 0 - 1 - 2: pairs (0, 1) and (1, 2) share at rho 0.4, pair (0, 2)
    needs more than 1 (never). Kernel 0 of all three is nearly the same vector:
    0 and 1 share it, 1 and 2 would, but then 0 and 2 would share it too."""
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(3)]
    R = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.9], [0.1, 0.9, 1.0]])
    cfg = {"rho_related": 0.4, "rho_unrelated": 1.5, "relation_threshold": 0.5, "alpha": 0.5, "beta": 0.5,
           "warmup": 1, "share_every": 1, "start": "independent"}
    m = METHODS["mtal_prior"](infos(tasks), SPEC, cfg, 0, relations=R)
    layer = 1
    v = torch.randn(m.kernel(0, layer)[0][0].shape, generator=torch.Generator().manual_seed(3))
    _planted(m, layer, [0, 1, 2], [v, v, v], noise=0.05)
    m.share()
    idx = m.index(layer)
    assert not set(idx[0].tolist()) & set(idx[2].tolist())  # 0 and 2 never in one slot
    assert set(idx[1].tolist()) & (set(idx[0].tolist()) | set(idx[2].tolist()))  # 1 shares with one of them
