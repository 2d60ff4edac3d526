"""MTAL's `delta` reading and its `random_matched` control (ours; protocol section 6).

Tasks differ throughout (grayscale and colour, 3 and 4 classes, planted updates
of different sizes per task), so a test bites on a mechanism that treats them
alike, not only on one that is deleted.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import toys
from conftest import fake_task
from hetmtl.errors import UserError
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.methods.mtal_delta import MTALDelta, derangement
from hetmtl.methods.mtal_prior_delta import MTALPriorDelta
from hetmtl.methods.mtal_random import MTALRandom, read_targets
from hetmtl.models import BACKBONES
from hetmtl.training.loop import TrainConfig, fit, make_optimizer

SPEC = BACKBONES["vgg_tiny"]
CFG = TrainConfig(epochs=3, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)


def delta_cfg(**kw):
    return {"alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "pairing": "index", "project_w0": True,
            "threshold": "null", "quantile": 0.999, "fraction": 0.1, **kw}


def infos(tasks):
    return [TaskInfo(d.name, d.channels, d.num_classes) for d in tasks]


def hetero():
    """Two grayscale tasks and a colour one, with different class counts."""
    return [fake_task("g1", 1, 3, seed=1), fake_task("c1", 3, 4, seed=2), fake_task("g2", 1, 5, seed=3)]


def plant(m, layer, updates: dict[int, torch.Tensor], scale: dict[int, float], seed=0):
    """Set every task's kernels of ``layer`` to w0 + its own random update (scaled per
    task), then task t's kernels listed in ``updates`` to w0 + updates[t] (K' x fan-in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in range(len(m.tasks)):
            bank, idx = m.task_bank[layer][t], m.index(layer)[t]
            w0 = m.ref_w(bank)[idx]
            m.bank_w[bank][idx] = w0 + scale.get(t, 1.0) * torch.randn(w0.shape, generator=g)
        for t, u in updates.items():
            bank, idx = m.task_bank[layer][t], m.index(layer)[t]
            k = torch.arange(u.shape[0])
            m.bank_w[bank][idx[k]] = m.ref_w(bank)[idx[k]] + u.view(-1, *m.ref_w(bank).shape[1:])


def test_all_copies_start_from_one_w0_and_similarity_is_of_updates():
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(project_w0=False), 0)
    layer = 1  # same shape for every task
    w = [m.kernel(t, layer)[0] for t in range(3)]
    torch.testing.assert_close(w[0], w[1])
    torch.testing.assert_close(w[0], w[2])
    plant(m, layer, {}, {0: 0.5, 1: 2.0, 2: 1.0})
    d0 = m.kernel(0, layer)[0].flatten(1) - w[0].flatten(1)
    d1 = m.kernel(1, layer)[0].flatten(1) - w[1].flatten(1)
    torch.testing.assert_close(m.similarity(layer, 0, 1), F.normalize(d0, dim=1) @ F.normalize(d1, dim=1).T)
    # the weights themselves are dominated by w0: their cosine is not the updates'
    raw = F.normalize(m.kernel(0, layer)[0].flatten(1), dim=1) @ F.normalize(m.kernel(1, layer)[0].flatten(1), dim=1).T
    assert not torch.allclose(raw, m.similarity(layer, 0, 1), atol=1e-3)


def test_w0_direction_is_projected_out_when_asked():
    """Updates that agree only along w0 (the weight decay's pull) look alike without
    the projection and unrelated with it."""
    tasks = hetero()
    on = MTALDelta(infos(tasks), SPEC, delta_cfg(project_w0=True), 0)
    off = MTALDelta(infos(tasks), SPEC, delta_cfg(project_w0=False), 0)
    layer = 1
    g = torch.Generator().manual_seed(5)
    for m in (on, off):
        bank, idx = m.task_bank[layer][0], m.index(layer)
        w0 = m.ref_w(bank)[idx[0]].flatten(1)
        with torch.no_grad():
            for t, (shrink, noise) in enumerate([(-0.3, 0.01), (-0.7, 0.02), (-0.5, 0.05)]):
                u = shrink * w0 + noise * torch.randn(w0.shape, generator=g)
                m.bank_w[bank][idx[t]] = (w0 + u).view_as(m.bank_w[bank][idx[t]])
    assert float(off.similarity(layer, 0, 1).diagonal().mean()) > 0.9
    s_on = on.similarity(layer, 0, 1).diagonal()
    assert float(s_on.abs().mean()) < 0.3
    w0 = on.ref_w(on.task_bank[layer][0])[on.index(layer)[0]].flatten(1)
    d = on.updates(layer, 1)
    torch.testing.assert_close((d * F.normalize(w0, dim=1)).sum(1), torch.zeros(len(d)), atol=1e-5, rtol=0)


def test_null_threshold_is_the_layers_off_diagonal_quantile():
    """Per layer and pair: the quantile of the off-diagonal cosines of THAT layer (the
    layers differ in fan-in and planted updates, so their nulls differ)."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(quantile=0.9), 0)
    for layer in range(m.num_layers):
        plant(m, layer, {}, {0: 1.0, 1: 0.2 + layer, 2: 3.0}, seed=layer)
    seen = []
    for layer in range(m.num_layers):
        pairs = [(0, 2)] + ([(0, 1)] if m.comparable(layer, 0, 1) else [])  # task 1 is colour: its own stem
        sims = {q: m.similarity(layer, *q) for q in pairs}
        thr = m.layer_thresholds(layer, sims)
        for (i, j), s in sims.items():
            K = s.shape[0]
            want = torch.quantile(s[~torch.eye(K, dtype=torch.bool)], 0.9)
            assert float(thr[i, j]) == pytest.approx(float(want), abs=1e-6)
            assert float(thr[j, i]) == float(thr[i, j])
        seen.append(float(thr[0, 2]))
    assert len(seen) == m.num_layers == 2 and len(set(seen)) == len(seen)  # a layer's own null, not another's


def test_index_pairing_shares_the_planted_kernels_and_nothing_by_chance():
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(), 0)
    layer = 1
    K = m.index(layer).shape[1]
    fan = m.ref_w(m.task_bank[layer][0])[0].numel()
    g = torch.Generator().manual_seed(3)
    common = torch.randn(3, fan, generator=g)
    # tasks 0 and 1 learn the same update (different sizes) on kernels 0..2; task 2 its own
    plant(m, layer, {0: 0.3 * common, 1: 2.0 * common}, {0: 0.3, 1: 2.0, 2: 1.0}, seed=4)
    for other in range(m.num_layers):
        if other != layer:
            plant(m, other, {}, {0: 0.5, 1: 1.5, 2: 1.0}, seed=10 + other)
    m.share()
    idx = m.index(layer)
    assert all(int(idx[0, k]) == int(idx[1, k]) for k in range(3))
    assert int(m.pair_counts(layer)[0, 1]) == 3
    assert int(m.pair_counts(layer)[0, 2]) == 0 and int(m.pair_counts(layer)[1, 2]) == 0
    assert K > 3


def test_fraction_threshold_lets_that_fraction_pass():
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(threshold="fraction", fraction=0.25), 0)
    layer = 1
    plant(m, layer, {}, {0: 1.0, 1: 0.3, 2: 2.0})
    s = m.similarity(layer, 0, 1)
    thr = m.layer_thresholds(layer, {(0, 1): s})
    assert int((s.diagonal() > thr[0, 1]).sum()) == round(0.25 * s.shape[0]) - 1 or \
        int((s.diagonal() > thr[0, 1]).sum()) == round(0.25 * s.shape[0])


def test_merge_is_in_update_space():
    """alpha + beta != 1 separates w0 + alpha d_a + beta d_b from alpha w_a + beta w_b."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(alpha=0.7, beta=0.6), 0)
    layer = 1
    fan = m.ref_w(m.task_bank[layer][0])[0].numel()
    u = torch.randn(1, fan, generator=torch.Generator().manual_seed(1))
    plant(m, layer, {0: 0.5 * u, 2: 1.5 * u + 0.01}, {0: 0.5, 1: 1.0, 2: 1.5})
    bank = m.task_bank[layer][0]
    s0, s2 = int(m.index(layer)[0, 0]), int(m.index(layer)[2, 0])
    w0 = m.ref_w(bank)[s0].clone()
    wa, wb = m.bank_w[bank][s0].detach().clone(), m.bank_w[bank][s2].detach().clone()
    m.share()
    slot = int(m.index(layer)[0, 0])
    assert slot == int(m.index(layer)[2, 0])
    torch.testing.assert_close(m.bank_w[bank][slot], w0 + 0.7 * (wa - w0) + 0.6 * (wb - w0))
    torch.testing.assert_close(m.ref_w(bank)[slot], w0)


def test_matched_merge_reference_is_weighted_by_kernel_counts():
    """With matched pairing two different w0 meet: the slot's reference is their
    kernel-count weighted mean, and the value w0' + the weighted updates."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(pairing="matched", alpha=0.7, beta=0.6), 0)
    layer = 1
    bank = m.task_bank[layer][0]
    fan = m.ref_w(bank)[0].numel()
    u = torch.randn(fan, generator=torch.Generator().manual_seed(2))
    plant(m, layer, {}, {0: 0.5, 1: 1.0, 2: 1.5})
    sa, sb = int(m.index(layer)[0, 1]), int(m.index(layer)[2, 4])  # kernel 1 of task 0, kernel 4 of task 2
    with torch.no_grad():
        m.bank_w[bank][sa] = m.ref_w(bank)[sa] + (0.4 * u).view_as(m.ref_w(bank)[sa])
        m.bank_w[bank][sb] = m.ref_w(bank)[sb] + (1.3 * u).view_as(m.ref_w(bank)[sb])
    ra, rb = m.ref_w(bank)[sa].clone(), m.ref_w(bank)[sb].clone()
    wa, wb = m.bank_w[bank][sa].detach().clone(), m.bank_w[bank][sb].detach().clone()
    m.share()
    slot = int(m.index(layer)[0, 1])
    assert slot == int(m.index(layer)[2, 4])
    ref = (ra + rb) / 2
    torch.testing.assert_close(m.ref_w(bank)[slot], ref)
    torch.testing.assert_close(m.bank_w[bank][slot], ref + 0.7 * (wa - ra) + 0.6 * (wb - rb))


def test_prior_levels_come_from_R():
    tasks = hetero()
    R = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    cfg = {**delta_cfg(), "quantile_related": 0.9, "quantile_unrelated": 0.99, "fraction_related": 0.3,
           "fraction_unrelated": 0.1, "relation_threshold": 0.5}
    m = MTALPriorDelta(infos(tasks), SPEC, cfg, 0, relations=R)
    assert float(m.levels[0, 1]) == pytest.approx(0.9) and float(m.levels[0, 2]) == pytest.approx(0.99)
    assert float(m.levels[1, 2]) == pytest.approx(0.99)
    layer = 1
    plant(m, layer, {}, {0: 1.0, 1: 0.4, 2: 2.0})
    sims = {(0, 1): m.similarity(layer, 0, 1), (0, 2): m.similarity(layer, 0, 2)}
    thr = m.layer_thresholds(layer, sims)
    off = ~torch.eye(sims[(0, 2)].shape[0], dtype=torch.bool)
    assert float(thr[0, 2]) == pytest.approx(float(torch.quantile(sims[(0, 2)][off], 0.99)), abs=1e-6)


def test_null_sharing_is_logged_per_layer():
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(quantile=0.5), 0)
    for layer in range(m.num_layers):
        plant(m, layer, {}, {0: 1.0, 1: 2.0, 2: 0.5}, seed=layer)
    m.after_epoch(1, make_optimizer(m, CFG))
    out = m.sharing_metrics()
    for name in m.layer_names:
        assert 0.0 < out[f"sharing/null/{name}"] < 1.0
    assert 0.0 < out["sharing/null/total"] < 1.0


def test_delta_trains_and_checkpoints(toy_tasks):
    m = MTALDelta(infos(toy_tasks), SPEC, delta_cfg(quantile=0.9), 0)
    torch.use_deterministic_algorithms(True)
    out = fit(m, toy_tasks, CFG, torch.device("cpu"), progress=False)
    assert out["history"][-1]["within_task_duplicates"] == 0
    fresh = MTALDelta(infos(toy_tasks), SPEC, delta_cfg(quantile=0.9), 0)
    fresh.load_state_dict(m.state_dict())
    assert fresh.sharing_metrics() == m.sharing_metrics()


# ------------------------------------------------------------------ random_matched

def random_cfg(**kw):
    return {"alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "pairing": "index", "project_w0": True,
            "follows": "mtal_delta", **kw}


def test_random_matched_shares_each_layers_own_count():
    """Targets differ per layer and pair; each layer gets its own count, at random kernels."""
    tasks = [fake_task("g1", 1, 3, seed=1), fake_task("g2", 1, 4, seed=2), fake_task("g3", 1, 5, seed=3)]
    m = MTALRandom(infos(tasks), SPEC, random_cfg(), 0)
    names = m.layer_names
    K = [m.index(layer).shape[1] for layer in range(m.num_layers)]
    assert len(names) == 2
    target = {names[0]: {(0, 1): 1, (0, 2): 0, (1, 2): 2},
              names[1]: {(0, 1): 4, (0, 2): 1, (1, 2): 0}}
    m.targets = {1: target}
    m.after_epoch(1, make_optimizer(m, CFG))
    for layer, name in enumerate(names):
        counts = m.pair_counts(layer)
        for (i, j), n in target[name].items():
            assert n <= int(counts[i, j]) <= n + 1, (name, i, j)  # + 1: a group joined through a third task
    assert all(k > 3 for k in K)


def test_random_matched_follows_the_delta_runs_counts_through_its_receipt(tmp_path, toy_tasks):
    delta = MTALDelta(infos(toy_tasks), SPEC, delta_cfg(quantile=0.5), 0)
    torch.use_deterministic_algorithms(True)
    out = fit(delta, toy_tasks, CFG, torch.device("cpu"), progress=False)
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps({"record": {"history": out["history"]}}))
    targets = read_targets(receipt)
    assert set(targets) == {h["epoch"] for h in out["history"]}
    rnd = MTALRandom(infos(toy_tasks), SPEC, random_cfg(), 0, targets=targets)
    fit(rnd, toy_tasks, CFG, torch.device("cpu"), progress=False)
    for layer, name in enumerate(rnd.layer_names):
        want = delta.pair_counts(layer)
        got = rnd.pair_counts(layer)
        for i in range(3):
            for j in range(i + 1, 3):
                assert int(got[i, j]) >= int(want[i, j]) - 1, (name, i, j)
    assert "sharing/null/total" not in rnd.sharing_metrics()


def test_methods_are_registered():
    assert METHODS["mtal_delta"] is MTALDelta and METHODS["mtal_random"] is MTALRandom
    assert METHODS["mtal_prior_delta"] is MTALPriorDelta


def test_the_null_never_pairs_a_kernel_with_itself():
    """Kernels already shared have cosine 1 with their own partner: a null permutation with a
    fixed point would count them; the null's permutations have none and are permutations."""
    for K in (2, 3, 16, 64):
        for seed in range(20):
            p = derangement(K, torch.Generator().manual_seed(seed))
            assert sorted(p.tolist()) == list(range(K)) and not bool((p == torch.arange(K)).any()), (K, seed)
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(quantile=0.999), 0)
    layer = 1
    fan = m.ref_w(m.task_bank[layer][0])[0].numel()
    K = m.index(layer).shape[1]
    u = torch.randn(K, fan, generator=torch.Generator().manual_seed(9))
    plant(m, layer, {0: u, 1: 3.0 * u}, {0: 1.0, 1: 3.0, 2: 1.0})  # every kernel's update alike: all shared
    m.layer_thresholds(layer, {(0, 1): m.similarity(layer, 0, 1)})
    assert int(getattr(m, f"null_{layer}").sum()) <= 2  # only chance passes of distinct kernels


# ------------------------------------------------------------------ written against mutmut's survivors (issue 29)

def _momentum(m, seed=4):
    """An optimiser whose every parameter has a random momentum buffer (as after a few steps)."""
    opt = make_optimizer(m, CFG)
    g = torch.Generator().manual_seed(seed)
    for p in m.parameters():
        opt.state[p]["momentum_buffer"] = torch.randn(p.shape, generator=g)
    return opt


@pytest.mark.parametrize("backbone", ["vgg_plain", pytest.param("resnet18", marks=pytest.mark.slow)])  # ResNet-18: 3 s
def test_delta_merge_moves_bias_and_reference_in_update_space_on_the_banks_device(backbone):
    """Two groups in one merge of layer 1's bank: a fresh pair (task 0's kernel 2 with task 2's, alpha 0.7 for
    the lower task, beta 0.6) and a slot that stands for two task kernels (tasks 0 and 1 share kernel 5 already)
    joined by task 2's kernel 5 (weights 2/3 and 1/3). References differ per slot (another start, an earlier
    merge), so each group's new reference is the kernel-count weighted mean of its slots' references and its
    value that reference + the weighted updates, for the bias (plain VGG, the paper's VGG-16) as for the
    weights; ResNet-18's convolutions have no bias and no reference bias. The merge runs with the default device
    ``meta`` and dtype float64: a tensor it builds without naming the bank's device and dtype breaks it (as a CPU
    tensor beside CUDA banks does). Momentum is merged with the same coefficients, not shifted."""
    data = toys.tasks(count=3)
    spec = toys.PLAIN if backbone == "vgg_plain" else BACKBONES["resnet18"]
    m = MTALDelta(toys.infos(data), spec, delta_cfg(alpha=0.7, beta=0.6), 0)
    layer = 1
    (bank, members), = [bm for bm in m.banks[layer] if bm[1] == [0, 1, 2]]
    b = m.bias_bank(bank)
    assert (b is None) == (backbone == "resnet18") and (m.ref_b(bank) is None) == (b is None)
    opt = _momentum(m)
    idx = m.index(layer)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p, ref in [(m.bank_w[bank], m.ref_w(bank))] + ([] if b is None else [(b, m.ref_b(bank))]):
            ref.copy_(torch.randn(ref.shape, generator=g))  # every slot its own reference
            p.copy_(ref + torch.randn(ref.shape, generator=g))
        dead = int(idx[1, 5])
        idx[1, 5] = idx[0, 5]  # tasks 0 and 1 share kernel 5: one slot for two task kernels
    s02, s22, s05, s25 = (int(idx[t, k]) for t, k in ((0, 2), (2, 2), (0, 5), (2, 5)))
    tensors = [m.bank_w[bank]] + ([] if b is None else [b])
    refs = [m.ref_w(bank)] + ([] if b is None else [m.ref_b(bank)])
    before = [(p.detach().clone(), r.clone(), opt.state[p]["momentum_buffer"].clone()) for p, r in zip(tensors, refs)]
    roots = torch.arange(m.bank_w[bank].shape[0])
    roots[max(s02, s22)], roots[max(s05, s25)] = min(s02, s22), min(s05, s25)
    torch.set_default_device("meta")
    torch.set_default_dtype(torch.float64)
    try:
        merged = m._merge(layer, bank, members, roots.numpy(), opt)
    finally:
        torch.set_default_device(None)
        torch.set_default_dtype(torch.float32)
    assert merged == 2
    for p, r, (w, ref, mom) in zip(tensors, refs, before):
        fresh, three = min(s02, s22), min(s05, s25)
        want_ref = (ref[s02] + ref[s22]) / 2
        torch.testing.assert_close(r[fresh], want_ref)
        torch.testing.assert_close(p[fresh], want_ref + 0.7 * (w[s02] - ref[s02]) + 0.6 * (w[s22] - ref[s22]))
        want_ref = (2 * ref[s05] + ref[s25]) / 3
        torch.testing.assert_close(r[three], want_ref)
        torch.testing.assert_close(p[three], want_ref + 2 / 3 * (w[s05] - ref[s05]) + 1 / 3 * (w[s25] - ref[s25]))
        buf = opt.state[p]["momentum_buffer"]
        torch.testing.assert_close(buf[fresh], 0.7 * mom[s02] + 0.6 * mom[s22])
        torch.testing.assert_close(buf[three], 2 / 3 * mom[s05] + 1 / 3 * mom[s25])
        assert float(buf[max(s02, s22)].abs().sum()) == 0 and float(buf[dead].abs().sum()) == 0
    assert int(idx[2, 2]) == int(idx[0, 2]) and int(idx[2, 5]) == int(idx[1, 5]) == int(idx[0, 5])


def test_delta_after_epoch_merges_momentum_and_never_shares_after_the_last_epoch():
    """The epoch hook hands the optimiser to the round (the merged slot's momentum is alpha m_a + beta m_b) and
    does not match after the last epoch (``final``: a merge is always followed by training)."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(alpha=0.7, beta=0.6), 0)
    layer = 1
    fan = m.ref_w(m.task_bank[layer][0])[0].numel()
    common = torch.randn(3, fan, generator=torch.Generator().manual_seed(3))
    plant(m, layer, {0: 0.3 * common, 1: 2.0 * common}, {0: 0.3, 1: 2.0, 2: 1.0}, seed=4)
    for other in range(m.num_layers):
        if other != layer:
            plant(m, other, {}, {0: 0.5, 1: 1.5, 2: 1.0}, seed=10 + other)
    opt = _momentum(m)
    bank = m.task_bank[layer][0]
    mom = opt.state[m.bank_w[bank]]["momentum_buffer"].clone()
    sa, sb = int(m.index(layer)[0, 0]), int(m.index(layer)[1, 0])
    m.after_epoch(1, opt, final=True)
    assert int(m.pair_counts(layer)[0, 1]) == 0 and not m.needs_bn_recalibration
    m.after_epoch(1, opt)
    assert int(m.pair_counts(layer)[0, 1]) == 3
    slot = int(m.index(layer)[0, 0])
    torch.testing.assert_close(opt.state[m.bank_w[bank]]["momentum_buffer"][slot], 0.7 * mom[sa] + 0.6 * mom[sb])


def test_delta_null_total_pools_every_layers_kernels():
    """``sharing/null/total``: the null's hits of every layer over all their kernels (layers of 8 and 16
    kernels per task: not the mean of the layers' fractions, nor the last layer's)."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(quantile=0.5), 0)
    for layer in range(m.num_layers):
        plant(m, layer, {}, {0: 1.0, 1: 2.0, 2: 0.5}, seed=layer)
    m.after_epoch(1, make_optimizer(m, CFG))
    nulls = [getattr(m, f"null_{layer}") for layer in range(m.num_layers)]
    assert all(int(n.sum()) > 0 for n in nulls) and len({n.numel() for n in nulls}) == len(nulls)
    out = m.sharing_metrics()
    assert out["sharing/null/total"] == sum(int(n.sum()) for n in nulls) / sum(n.numel() for n in nulls)


def test_delta_ties_at_the_threshold_do_not_pass_in_the_candidates_or_the_null():
    """A kernel pair passes when its cosine is strictly above the threshold, as in MTAL's rule: a candidate
    whose cosine equals it is not offered, and a null partner at it is not counted (every off-diagonal cosine
    equal: the null's quantile is that value, and no permuted partner passes)."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(), 0)
    layer = 1
    K = m.index(layer).shape[1]
    sim = torch.full((K, K), 0.25)
    sim.diagonal().copy_(torch.linspace(0.1, 0.9, K))
    thr = m.layer_thresholds(layer, {(0, 1): sim})
    assert float(thr[0, 1]) == pytest.approx(0.25)
    assert int(getattr(m, f"null_{layer}").sum()) == 0
    thr[0, 1] = thr[1, 0] = float(sim[5, 5])
    edges = m.candidates(layer, {(0, 1): sim}, thr)
    assert sorted(e[2] for e in edges) == list(range(6, K))


def test_delta_null_marks_both_tasks_kernels_and_accumulates_over_pairs_and_matchings():
    """The null's hits mark task i's kernel k and task j's partner pi(k) (as many of each), and accumulate:
    over the pairs of a layer (task 0 in two pairs) and over matchings (another epoch draws another
    permutation); its draws come from a generator of its own, so training's random stream is untouched."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(quantile=0.5), 0)
    layer = 1
    plant(m, layer, {}, {0: 1.0, 1: 2.0, 2: 0.5}, seed=2)
    s01, s02 = m.similarity(layer, 0, 1), m.similarity(layer, 0, 2)
    alone = MTALDelta(infos(tasks), SPEC, delta_cfg(quantile=0.5), 0)
    alone.layer_thresholds(layer, {(0, 1): s01})
    one = getattr(alone, f"null_{layer}")
    assert int(one[0].sum()) == int(one[1].sum()) > 0 and int(one[2].sum()) == 0
    rng = torch.get_rng_state()
    m.layer_thresholds(layer, {(0, 1): s01, (0, 2): s02})
    assert torch.equal(torch.get_rng_state(), rng)
    both = getattr(m, f"null_{layer}").clone()
    assert bool((both[0] >= one[0]).all()) and bool((both[1] == one[1]).all()) and int(both[2].sum()) > 0
    assert int(both[0].sum()) > int(one[0].sum())  # pair (0, 2) adds kernels of task 0 pair (0, 1) did not
    m.epoch = 3
    m.layer_thresholds(layer, {(0, 1): s01, (0, 2): s02})
    later = getattr(m, f"null_{layer}")
    assert bool((later >= both).all()) and int(later.sum()) > int(both.sum())


def test_delta_fraction_threshold_with_matched_pairing_ranks_each_rows_best():
    """``fraction`` with ``matched`` pairing: the candidates are each row's best (the greedy matching's), so the
    level is the quantile of the row maxima (not of the diagonal, index pairing's candidates)."""
    tasks = hetero()
    m = MTALDelta(infos(tasks), SPEC, delta_cfg(pairing="matched", threshold="fraction", fraction=0.25), 0)
    layer = 1
    plant(m, layer, {}, {0: 1.0, 1: 0.3, 2: 2.0})
    s = m.similarity(layer, 0, 1)
    thr = m.layer_thresholds(layer, {(0, 1): s})
    best = s.max(dim=1).values
    assert float(thr[0, 1]) == pytest.approx(float(torch.quantile(best, 0.75)), abs=1e-6)
    assert float(thr[0, 1]) != pytest.approx(float(torch.quantile(s.diagonal(), 0.75)), abs=1e-3)
    K = len(best)
    assert int((best > thr[0, 1]).sum()) == K - int(torch.ceil(torch.tensor(0.75 * (K - 1))))


def test_random_control_errors_name_the_receipt_and_the_epoch(tmp_path):
    """A receipt without a history, and a matching epoch the followed run logged no counts for, are user errors
    that say which file or epoch and that the followed run must be rerun."""
    bad = tmp_path / "receipt.json"
    bad.write_text(json.dumps({"record": {}}))
    with pytest.raises(UserError, match=r"receipt\.json: no per-epoch history .*rerun the followed run"):
        read_targets(bad)
    m = MTALRandom(toys.infos(toys.tasks(count=3)), SPEC, random_cfg(), 0, targets={1: {}})
    m.epoch = 2
    with pytest.raises(UserError, match=r"no sharing counts for epoch 2; rerun it \(it must have the same warmup"):
        m.share()


def _shared_pairs(m, layer, i, j):
    """(kernel of task i, kernel of task j) of every slot tasks i and j share in ``layer``."""
    idx = m.index(layer)
    if m.task_bank[layer][i] != m.task_bank[layer][j]:
        return []
    where = {int(s): k for k, s in enumerate(idx[j].tolist())}
    return [(k, where[int(s)]) for k, s in enumerate(idx[i].tolist()) if int(s) in where]


@pytest.mark.parametrize("pairing", ["index", "matched"])
def test_random_control_meets_each_pairs_count_per_bank_and_matching_from_its_own_generator(pairing):
    """Colour task first: layer 0 has two banks, the colour task alone in the first (no pair: no edges) and the
    grayscale pair in the second, which must still get its count. Per layer and pair the control shares the
    followed run's count (a pair or layer the targets do not name: nothing; a pair at 0 before one that needs
    kernels: the latter still gets them), at the next matching only what the new count adds, kernel k with
    kernel k (``index``) or a random one-to-one pairing (``matched``); share returns the slots merged away; its
    draws come from its own generator (training's random stream untouched)."""
    m = MTALRandom(toys.infos(toys.tasks(count=3)), SPEC, random_cfg(pairing=pairing), 0)
    l0, l1 = m.layer_names
    assert [members for _, members in m.banks[0]] == [[0], [1, 2]]
    m.targets = {1: {l0: {(1, 2): 2}, l1: {(0, 1): 0, (0, 2): 3, (1, 2): 1}},
                 2: {l0: {(1, 2): 2}, l1: {(0, 1): 0, (0, 2): 5, (1, 2): 1}}}

    def used():
        return sum(len(torch.unique(m.index(layer)[members])) for layer in range(m.num_layers)
                   for _, members in m.banks[layer])

    for epoch in (1, 2):
        m.epoch = epoch
        before, rng = used(), torch.get_rng_state()
        merged = m.share()
        assert torch.equal(torch.get_rng_state(), rng)
        assert merged == before - used() > 0
        want = m.targets[epoch]
        for (i, j), n in want[l1].items():
            assert n <= int(m.pair_counts(1)[i, j]) <= n + 1, (epoch, i, j)  # + 1: a group joined through a third task
        assert int(m.pair_counts(0)[1, 2]) == 2
    pairs = _shared_pairs(m, 1, 0, 2) + _shared_pairs(m, 0, 1, 2)
    same = [a == b for a, b in pairs]
    assert all(same) if pairing == "index" else not all(same)


def test_random_control_merges_momentum_and_shares_nothing_where_the_targets_name_no_count():
    """The round hands the optimiser to the merge: a fresh pair's momentum is alpha m_a + beta m_b. Targets that
    name one pair of one layer: every other pair and layer shares nothing."""
    m = MTALRandom(toys.infos(toys.tasks(count=3)), SPEC, random_cfg(alpha=0.7, beta=0.6), 0)
    l1 = m.layer_names[1]
    m.targets = {1: {l1: {(0, 2): 2}}}
    m.epoch = 1
    opt = _momentum(m)
    bank = m.task_bank[1][0]
    before, mom = m.index(1).clone(), opt.state[m.bank_w[bank]]["momentum_buffer"].clone()
    assert m.share(opt) == 2
    buf = opt.state[m.bank_w[bank]]["momentum_buffer"]
    for a, b in _shared_pairs(m, 1, 0, 2):
        slot = int(m.index(1)[0, a])
        torch.testing.assert_close(buf[slot], 0.7 * mom[int(before[0, a])] + 0.6 * mom[int(before[2, b])])
    assert len(_shared_pairs(m, 1, 0, 2)) == 2
    counts = [m.pair_counts(layer) for layer in range(m.num_layers)]
    assert int(counts[0].triu(1).sum()) == 0 and int(counts[1][0, 1]) == int(counts[1][1, 2]) == 0


def test_prior_delta_levels_follow_the_threshold_mode_and_count_a_relation_at_the_threshold_as_related():
    """``fraction`` reads the fraction levels and ``null`` the quantile levels, each pair's by R; R_ij exactly at
    relation_threshold is related (R[0, 2] = 0.5); built without R every pair is related (a T x T matrix)."""
    tasks = hetero()
    R = torch.tensor([[1.0, 0.9, 0.5], [0.9, 1.0, 0.2], [0.5, 0.2, 1.0]])
    levels = {"quantile_related": 0.9, "quantile_unrelated": 0.99, "fraction_related": 0.3,
              "fraction_unrelated": 0.1, "relation_threshold": 0.5}
    for mode, key in (("fraction", "fraction"), ("null", "quantile")):
        cfg = {**delta_cfg(threshold=mode), **levels}
        m = MTALPriorDelta(infos(tasks), SPEC, cfg, 0, relations=R)
        rel, unrel = levels[f"{key}_related"], levels[f"{key}_unrelated"]
        want = torch.tensor([[rel, rel, rel], [rel, rel, unrel], [rel, unrel, rel]])
        torch.testing.assert_close(m.levels, want)
        alone = MTALPriorDelta(infos(tasks), SPEC, cfg, 0)
        torch.testing.assert_close(alone.levels, torch.full((3, 3), rel))
