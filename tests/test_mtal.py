"""MTAL's mechanism (SPEC section 6) and the sanity properties it is held to."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from conftest import fake_task
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.methods.mtal import MTAL, greedy_match
from hetmtl.models import BACKBONES
from hetmtl.training.loop import TrainConfig, fit, make_optimizer

SPEC = BACKBONES["vgg_tiny"]
CFG = TrainConfig(epochs=3, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)


def mtal_cfg(rho, **kw):
    return {"rho": rho, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, **kw}


def infos(tasks):
    return [TaskInfo(d.name, d.channels, d.num_classes) for d in tasks]


def train(method, tasks):
    torch.use_deterministic_algorithms(True)
    return fit(method, tasks, CFG, torch.device("cpu"), progress=False)


def test_rho_above_one_trains_exactly_like_single_task(toy_tasks):
    single = train(METHODS["single_task"](infos(toy_tasks), SPEC, {}, 0), toy_tasks)
    mtal = train(MTAL(infos(toy_tasks), SPEC, mtal_cfg(1.01), 0), toy_tasks)
    for a, b in zip(single["history"], mtal["history"]):
        for k, v in a.items():
            assert b[k] == v, k  # bit-identical, not approximately equal
    assert single["test"] == mtal["test"]
    assert mtal["history"][-1]["sharing/total"] == 0.0


def test_rho_below_minus_one_shares_every_matched_kernel():
    tasks = [fake_task(f"t{i}", 1, 3, seed=i) for i in range(3)]  # one kernel shape per layer
    m = MTAL(infos(tasks), SPEC, mtal_cfg(-1.01), 0)
    m.share()
    metrics = m.sharing_metrics()
    assert metrics["sharing/conv1_1"] == 1.0 and metrics["sharing/conv2_1"] == 1.0
    assert metrics["compression"] <= 1 / 3 + 1e-9


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
    for step in range(4):
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
