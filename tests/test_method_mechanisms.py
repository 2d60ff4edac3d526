"""Mechanisms of the methods that alike toy tasks cannot tell from their distortions.

Each test is named after what it protects and runs on the unequal toys of
tests/toys.py (task orders, channel counts, relation values, backbones with and
without BatchNorm). Written against mutants made independently of the tests
(issue 29) and mutmut's (tests/mutation/).
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

import toys
from hetmtl.methods import METHODS
from hetmtl.methods.columns import adapt_channels, mixing_init
from hetmtl.methods.hard_sharing import HardSharing, clusters
from hetmtl.methods.mtal import MTAL
from hetmtl.methods.mtal_prior import MTALPrior, pair_thresholds
from hetmtl.training import loop
from hetmtl.training.loop import TrainConfig, fit, recalibrate_batchnorm

CS_CFG = {"pretrain_fraction": 0.5, "own_weight": 0.9, "unit_lr_mult": 100, "unit_bn": True, "unit_bn_lr_mult": 1}
PRIOR_CFG = {"rho_related": 0.4, "rho_unrelated": 0.55, "relation_threshold": 0.5, "alpha": 0.5, "beta": 0.5,
             "warmup": 1, "share_every": 1, "start": "independent"}
# a relation matrix whose rows normalise differently: the mixing it gives is not symmetric
R3 = torch.tensor([[1.0, 0.9, 0.3], [0.9, 1.0, 0.6], [0.3, 0.6, 1.0]])
# 0.9 own, the rest of row i in proportion to R_ij (row 0: 0.9 and 0.3 of 1.2; row 1: 0.9 and 0.6 of 1.5; ...)
MIX3 = torch.tensor([[0.9, 0.1 * 0.75, 0.1 * 0.25], [0.1 * 0.6, 0.9, 0.1 * 0.4], [0.1 / 3, 0.2 / 3, 0.9]])


def mtal_cfg(rho, **kw):
    return {"rho": rho, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "start": "independent", **kw}


def layer1_bank(m: MTAL) -> tuple[int, int]:
    """(bank id, kernels per task) of conv layer 1, which every task's kernels share in shape."""
    bank = m.task_bank[1][0]
    assert all(b == bank for b in m.task_bank[1])
    return bank, m.index(1).shape[1]


def place(m: MTAL, vectors: dict[tuple[int, int], torch.Tensor]) -> None:
    """Write layer 1's kernels: the given (task, kernel) vectors; every other kernel its own
    direction, orthogonal to all (cosine 0: never a candidate)."""
    bank, K = layer1_bank(m)
    w = m.bank_w[bank]
    dim = w[0].numel()
    T = len(m.tasks)
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(0)))[0].T
    used = max(v.numel() for v in vectors.values())
    free = iter(range(used, dim))
    with torch.no_grad():
        for t in range(T):
            for k in range(K):
                v = vectors.get((t, k))
                w[m.index(1)[t, k]] = (basis[next(free)] if v is None else v @ basis[:v.numel()]).view_as(w[0])


def gram_vectors(gram: torch.Tensor) -> torch.Tensor:
    """Unit vectors (rows, in the first n basis directions) whose cosines are ``gram``."""
    return torch.linalg.cholesky(gram.double()).float()


@pytest.mark.parametrize("spec", toys.SPECS.values(), ids=list(toys.SPECS))
def test_mtal_group_rule_reads_a_cross_pair_whose_tasks_come_in_the_other_order(spec):
    """Edges (0.c, 2.b) 0.9, then (0.c, 1.a) 0.8: joining 1.a to the group {0.c, 2.b} checks
    the cross pair (2.b, 1.a), whose tasks come in the other order: its similarity is
    sim(1.a, 2.b), not that of kernel b of task 1 and kernel a of task 2."""
    data = toys.tasks(count=3)
    c, a, b = 3, 1, 2

    def grouped(cross: float) -> bool:
        m = MTAL(toys.infos(data), spec, mtal_cfg(0.65), 0)
        v = gram_vectors(torch.tensor([[1.0, 0.8, 0.9], [0.8, 1.0, cross], [0.9, cross, 1.0]]))
        place(m, {(0, c): v[0], (1, a): v[1], (2, b): v[2]})
        assert torch.allclose(m.similarity(1, 1, 2)[a, b], torch.tensor(cross), atol=1e-5)
        assert m.similarity(1, 1, 2)[b, a].abs() < 1e-5  # the transposed entry: unrelated kernels
        m.share()
        idx = m.index(1)
        assert idx[0, c] == idx[2, b]  # the strongest edge always joins
        return bool(idx[1, a] == idx[0, c])

    assert grouped(0.7)  # every cross pair above rho 0.65: one group of three tasks
    assert not grouped(0.6)  # sim(1.a, 2.b) below rho: 1.a stays out though (0.c, 1.a) passes


@pytest.mark.parametrize("spec", toys.SPECS.values(), ids=list(toys.SPECS))
def test_mtal_merges_a_slots_bias_with_its_weights(spec):
    """A fresh pair's slot holds alpha x the lower task's kernel + beta x the other's, for the
    bias as for the weights: on plain VGG (the paper's VGG-16) the biases are learnt and carry
    into every activation."""
    data = toys.tasks(count=2)  # colour then grayscale: layer 0 in two banks, layer 1 in one
    m = MTAL(toys.infos(data), spec, mtal_cfg(0.95, alpha=0.3, beta=0.7), 0)
    c, a = 5, 2
    v = gram_vectors(torch.ones(1, 1))[0]
    place(m, {(0, c): v, (1, a): v})
    bank, _ = layer1_bank(m)
    slot_c, slot_a = int(m.index(1)[0, c]), int(m.index(1)[1, a])
    with torch.no_grad():
        m.bank_w[bank][slot_a] *= 2.0  # same direction, another length
        m.bank_b[str(bank)][slot_c] = 1.0
        m.bank_b[str(bank)][slot_a] = 3.0
    w_c, w_a = m.bank_w[bank][slot_c].clone(), m.bank_w[bank][slot_a].clone()
    assert m.share() == 1  # one pair: one slot merged away (the count the epoch hook reads)
    for t, k in ((0, c), (1, a)):
        w, bias = m.kernel(t, 1)
        assert torch.allclose(w[k], 0.3 * w_c + 0.7 * w_a)
        assert bias[k].item() == pytest.approx(0.3 * 1.0 + 0.7 * 3.0)


def test_a_relation_exactly_at_the_threshold_counts_as_related():
    """R_ij >= relation_threshold is related (protocol section 4), for hard sharing's clusters and for
    MTAL's pair thresholds; R4[0, 2] is exactly 0.5."""
    R = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.2], [0.2, 0.2, 1.0]])
    assert clusters(R, 3, 0.5) == [0, 0, 1]
    assert clusters(R.double(), 3, 0.5) == [0, 0, 1]  # the relations stage's R is float64
    data = toys.tasks(count=3)
    hs = HardSharing(toys.infos(data), toys.BN, {"relation_threshold": 0.5}, 0, relations=R)
    assert hs.cluster == [0, 0, 1] and len(hs.trunks) == 2
    thr = pair_thresholds(toys.R4, PRIOR_CFG)
    assert thr[0, 2] == thr[2, 0] == pytest.approx(0.4)  # at the threshold: related
    assert thr[1, 2] == pytest.approx(0.55) and thr[0, 1] == pytest.approx(0.4)
    prior = MTALPrior(toys.infos(toys.tasks()), toys.BN, PRIOR_CFG, 0, relations=toys.R4)
    assert torch.equal(prior.thresholds, thr.float())


def test_mtal_prior_without_relations_treats_every_pair_as_related():
    """Built without R, every task pair counts as related: each pair's threshold is rho_related, in a T x T
    matrix as R's would give (four tasks: a T-vector would broadcast the wrong way or fail)."""
    data = toys.tasks()
    T = len(data)
    m = MTALPrior(toys.infos(data), toys.BN, {**PRIOR_CFG, "rho_related": 0.3}, 0)
    assert torch.equal(m.thresholds, pair_thresholds(torch.ones(T, T), {**PRIOR_CFG, "rho_related": 0.3}).float())
    assert m.thresholds.shape == (T, T) and bool((m.thresholds == torch.tensor(0.3)).all())


def test_cross_stitch_unit_mixes_column_j_into_column_i_by_alpha_ij_per_channel():
    """out_i[c] = sum_j alpha_ij[c] x_j[c], with a mixing that is not symmetric and differs per channel."""
    data = toys.tasks(count=3)
    m = METHODS["cross_stitch"](toys.infos(data), toys.BN, CS_CFG, 0)
    g = torch.Generator().manual_seed(1)
    for b, width in enumerate(m.widths):
        with torch.no_grad():
            m.alpha[b].copy_(torch.rand(3, 3, width, generator=g))
        feats = [torch.randn(5, width, 4, 4, generator=g) for _ in range(3)]
        out = m.unit(b, [(0, 2), (2, 3)], feats)
        for i in range(3):
            want = sum(m.alpha[b][i, j][None, :, None, None] * feats[j] for j in range(3))
            assert torch.allclose(out[i], want, atol=1e-6)


def test_cross_stitch_starts_from_r_row_by_row():
    """alpha_ij starts at 0.9 on the diagonal and 0.1 x R_ij / sum_k!=i R_ik off it: row i is
    column i's mixing (the prior setting), on every stage and channel."""
    data = toys.tasks(count=3)
    m = METHODS["cross_stitch"](toys.infos(data), toys.BN, CS_CFG, 0, relations=R3)
    for alpha in m.alpha:
        assert torch.allclose(alpha, MIX3[:, :, None].expand_as(alpha), atol=1e-6)


def test_nddr_unit_starts_from_r_block_by_block():
    """Column i's 1x1 reduction starts at MIX3[i, j] x identity on column j's block."""
    data = toys.tasks(count=3)
    m = METHODS["nddr_cnn"](toys.infos(data), toys.BN, CS_CFG, 0, relations=R3)
    for b, width in enumerate(m.widths):
        for i in range(3):
            w = m.reduce[b][i].weight[:, :, 0, 0]
            for j in range(3):
                assert torch.allclose(w[:, j * width:(j + 1) * width], MIX3[i, j] * torch.eye(width), atol=1e-6)


def test_nddr_unit_normalises_each_column_with_its_own_batchnorm_per_task():
    """norms[b][i][t]: column i's BatchNorm for task t's rows (eval mode: distinct statistics)."""
    data = toys.tasks(count=3)
    m = METHODS["nddr_cnn"](toys.infos(data), toys.BN, CS_CFG, 0).eval()
    g = torch.Generator().manual_seed(2)
    segs = [(0, 2), (2, 3)]
    for b, width in enumerate(m.widths):
        with torch.no_grad():
            for i in range(3):
                m.reduce[b][i].weight.copy_(torch.randn_like(m.reduce[b][i].weight))
                for t in range(3):
                    bn = m.norms[b][i][t]
                    bn.running_mean.copy_(torch.randn(width, generator=g))
                    bn.running_var.copy_(torch.rand(width, generator=g) + 0.5)
                    bn.weight.copy_(torch.randn(width, generator=g))
                    bn.bias.copy_(torch.randn(width, generator=g))
        feats = [torch.randn(5, width, 3, 3, generator=g) for _ in range(3)]
        out = m.unit(b, segs, feats)
        cat = torch.cat(feats, dim=1)
        for i in range(3):
            y = m.reduce[b][i](cat)
            parts, start = [], 0
            for t, n in segs:
                bn = m.norms[b][i][t]
                parts.append(F.batch_norm(y[start:start + n], bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                          False, 0.0, bn.eps))
                start += n
            assert torch.allclose(out[i], torch.relu(torch.cat(parts)), atol=1e-5)


def test_batchnorm_reestimation_covers_every_task_after_a_merge(monkeypatch):
    """After a merge every task's BatchNorms hold the statistics of its own training split
    through the merged weights (one pass; here one batch per task, so the batch's mean and
    unbiased variance), and the loop asks for it with every task's data."""
    data = toys.tasks(count=3)
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0), 0)
    assert m.share() > 0
    with torch.no_grad():
        for norms in m.norms:
            for bn in norms:
                bn.running_mean.fill_(5.0)
                bn.running_var.fill_(9.0)
    recalibrate_batchnorm(m, data, batch_size=64)
    for t, d in enumerate(data):
        net = copy.deepcopy(m.nets[t]).train()
        seen = []
        for bn in (mod for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d)):
            bn.register_forward_hook(lambda mod, inp, out, seen=seen: seen.append(inp[0].detach()))
        with torch.no_grad():
            net(loop.to_input(d.x["train"]))
        mine = [mod for mod in m.nets[t].modules() if isinstance(mod, torch.nn.BatchNorm2d)]
        assert len(mine) == len(seen) > 0
        for bn, x in zip(mine, seen):
            assert torch.allclose(bn.running_mean, x.mean((0, 2, 3)), atol=1e-4), (d.name, t)
            assert torch.allclose(bn.running_var, x.var((0, 2, 3), unbiased=True), rtol=1e-3, atol=1e-4)

    calls = []
    real = loop.recalibrate_batchnorm
    monkeypatch.setattr(loop, "recalibrate_batchnorm",
                        lambda method, d, *a, **k: (calls.append([x.name for x in d]), real(method, d, *a, **k)))
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0)
    fit(MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0), 0), data, cfg, torch.device("cpu"), progress=False)
    assert calls == [[d.name for d in data]]  # after epoch 1's merge (none after the last epoch)


def test_mtal_common_start_is_drawn_per_seed():
    """``start: common``: one reference backbone per seed, the same for every task of the run
    (a grayscale stem its colour kernels summed), another for another seed."""
    data = toys.tasks(count=2)  # colour, grayscale

    def backbone(seed, t):
        m = MTAL(toys.infos(data), toys.BN, mtal_cfg(1.1, start="common"), seed)
        return m.kernel(t, 1)[0].detach(), m.kernel(t, 0)[0].detach()

    deep0, stem0 = backbone(0, 0)
    deep0_g, stem0_g = backbone(0, 1)
    deep1, _ = backbone(1, 0)
    assert torch.equal(deep0, deep0_g)  # one reference for every task of the run
    assert torch.allclose(stem0_g, stem0.sum(dim=1, keepdim=True))
    assert not torch.allclose(deep0, deep1)  # each seed draws its own reference


@pytest.mark.parametrize("spec", toys.SPECS.values(), ids=list(toys.SPECS))
@pytest.mark.parametrize("name", [n for n, cls in METHODS.items() if cls.deep])
def test_each_tasks_logits_are_its_own_whatever_batches_the_other_tasks_bring(name, spec, params):
    """Four unequal tasks (colour and grayscale, 2 to 5 classes), batches of unequal sizes,
    a relation matrix with a value per pair, on VGG with and without BatchNorm: task t's
    logits from the joint forward equal those of its batch alone, in train and eval mode
    (nothing of one task leaks into another's through routing, per-task BatchNorm or order)."""
    data = toys.tasks()
    cls = METHODS[name]
    extra = {"relations": toys.R4} if cls.uses_prior else {}
    m = cls(toys.infos(data), spec, params["methods"][name], 0, **extra)
    xs = [loop.to_input(d.x["train"][:n]) for d, n in zip(data, (5, 3, 7, 2))]
    for mode in (m.train, m.eval):
        mode()
        torch.manual_seed(0)
        with torch.no_grad():
            joint = m.forward_all(xs)
            alone = [m(t, x) for t, x in enumerate(xs)]
        for t, (d, x) in enumerate(zip(data, xs)):
            assert joint[t].shape == (len(x), d.num_classes)
            assert torch.allclose(joint[t], alone[t], atol=1e-5), (name, t)


def test_a_column_converts_only_between_grayscale_and_colour():
    x = torch.zeros(2, 2, 5, 5)
    with pytest.raises(ValueError, match="cannot convert 2 channels to 3"):
        adapt_channels(x, 3)
    with pytest.raises(ValueError, match="cannot convert 4 channels to 3"):
        adapt_channels(torch.zeros(2, 4, 5, 5), 3)
    assert adapt_channels(torch.ones(2, 1, 5, 5), 3).shape == (2, 3, 5, 5)


def test_a_task_related_to_none_spreads_its_mixing_evenly():
    """A row of R that is zero off the diagonal has no proportion to follow: its off-diagonal
    share is (1 - own) / (T - 1), as without a prior (two and three tasks)."""
    R = torch.tensor([[1.0, 0.4, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mix = mixing_init(R, 3, 0.9)
    assert torch.allclose(mix[2], torch.tensor([0.05, 0.05, 0.9]))
    assert torch.allclose(mix[0], torch.tensor([0.9, 0.1, 0.0]))
    assert torch.allclose(mixing_init(torch.eye(2), 2, 0.8), torch.tensor([[0.8, 0.2], [0.2, 0.8]]))
    assert torch.allclose(mixing_init(None, 4, 0.7).sum(1), torch.ones(4))


@pytest.mark.parametrize("name", ["cross_stitch", "nddr_cnn"])
def test_freezing_a_block_freezes_every_per_task_batchnorm_copy_of_it(name, params):
    """Each column's BatchNorms become one copy per task; the copies keep their block, so
    training.freeze_blocks freezes all of them, as it freezes the single-task network's."""
    data = toys.tasks(count=3)
    m = METHODS[name](toys.infos(data), toys.BN, params["methods"][name], 0)
    m.freeze_blocks(1)
    for net in m.nets:
        block0 = list(net.stem.parameters()) + list(net.stages[0].parameters())
        assert len(block0) > 2 and not any(p.requires_grad for p in block0)
        assert all(p.requires_grad for p in net.stages[1].parameters())


def test_a_trunk_of_exactly_two_tasks_is_declared_shared():
    """Hard sharing with the prior: clusters {0, 1} and {2}; the two-task trunk is shared (for a
    gradient weighting), the one-task trunk is not."""
    from hetmtl.models.base import outside_per_task

    R = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.1], [0.1, 0.1, 1.0]])
    hs = HardSharing(toys.infos(toys.tasks(count=3)), toys.BN, {"relation_threshold": 0.5}, 0, relations=R)
    assert hs.cluster == [0, 0, 1]
    shared = {id(p) for p, rows in hs.shared_parameters()}
    assert shared == {id(p) for p in outside_per_task(hs.trunks[0])} and shared
    assert not shared & {id(p) for p in hs.trunks[1].parameters()}


@pytest.mark.parametrize(("warmup", "share_every", "epochs"), [(1, 3, [1, 4, 7]), (2, 3, [2, 5])])
def test_mtal_matches_after_warmup_then_every_share_every_epochs_for_an_odd_period(warmup, share_every, epochs,
                                                                                   monkeypatch):
    """Matching after epoch ``warmup`` and every ``share_every`` epochs after it (never after the last,
    8): a period that does not divide twice the warm-up tells ``epoch - warmup`` from ``epoch + warmup``."""
    data = toys.tasks(count=2)
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0, warmup=warmup, share_every=share_every), 0)
    calls = []
    monkeypatch.setattr(m, "share", lambda optimizer=None: calls.append(epoch) or 0)
    for epoch in range(1, 9):
        m.after_epoch(epoch, None, final=epoch == 8)
    assert calls == epochs


def test_mtal_epoch_matching_merges_the_optimizers_momentum_with_the_kernels():
    """The loop's hook (after_epoch) hands the optimiser to the merge: a merged slot's momentum is the
    merge of its kernels' (and a slot nobody uses any more has none), not the momentum of one kernel."""
    data = toys.tasks(count=3)
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0), 0)
    opt = loop.make_optimizer(m, TrainConfig(epochs=3, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=0.0,
                                             nan_check_every=1, seed=0))
    g = torch.Generator().manual_seed(3)
    for p in m.parameters():
        opt.state[p]["momentum_buffer"] = torch.randn(p.shape, generator=g)
    bank, _ = layer1_bank(m)
    mom = opt.state[m.bank_w[bank]]["momentum_buffer"]
    before = mom.clone()
    m.after_epoch(1, opt)  # warmup 1: a matching round
    alive = torch.zeros(mom.shape[0], dtype=torch.bool)
    alive[m.index(1).flatten()] = True
    assert not alive.all()  # rho -2: kernels merged
    assert (mom[~alive] == 0).all()
    assert not torch.equal(mom[alive], before[alive])


def test_mtal_shared_parameters_hold_every_bank_of_a_layer_when_its_first_bank_shares_nothing():
    """The first layer of a colour task and two grayscale tasks: two banks, the colour one (first) with
    one task and nothing shared, the grayscale one shared after a round; the weighting's shared
    coordinates include the grayscale bank's shared rows."""
    data = toys.tasks(count=3)  # c40 (colour), g12, g24 (grayscale)
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0), 0)
    assert m.share() > 0
    (colour, _), (gray, members) = m.banks[0]
    assert members == [1, 2]
    shared = {id(p): rows for p, rows in m.shared_parameters()}
    assert id(m.bank_w[colour]) not in shared
    rows = shared[id(m.bank_w[gray])]
    counts = torch.bincount(m.index(0)[members].flatten(), minlength=m.bank_w[gray].shape[0])
    assert torch.equal(rows, counts >= 2) and rows.any()


def test_mtal_group_rule_refuses_a_cross_pair_exactly_at_its_pairs_threshold():
    """A group's cross pair must EXCEED its own pair's threshold, as a candidate must (Eq. 4, ``>``):
    joining 1.a to {0.c, 2.b} is refused when sim(1.a, 2.b) equals rho_12 to the last bit."""
    data = toys.tasks(count=3)
    c, a, b = 3, 1, 2
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(0.65), 0)
    v = gram_vectors(torch.tensor([[1.0, 0.8, 0.9], [0.8, 1.0, 0.7], [0.9, 0.7, 1.0]]))
    place(m, {(0, c): v[0], (1, a): v[1], (2, b): v[2]})
    cross = m.similarity(1, 1, 2)[a, b]
    with torch.no_grad():
        m.thresholds[1, 2] = m.thresholds[2, 1] = cross  # exactly the cross pair's similarity
    m.share()
    idx = m.index(1)
    assert idx[0, c] == idx[2, b]  # the strongest edge joins
    assert idx[1, a] != idx[0, c]  # at the threshold is not above it


def test_mtal_merge_makes_its_tensors_on_the_banks_device_and_dtype_whatever_the_defaults():
    """A merge on a GPU must make every tensor it builds on the bank's device and in its dtype: with the
    default device set to ``meta`` and the default dtype to float64, a tensor the merge builds without
    naming them breaks it (as a CPU tensor next to CUDA banks does); the merge is then that of the plain
    defaults (plain VGG: biases; fresh pairs: alpha and beta)."""
    data = toys.tasks(count=3)
    cfg = mtal_cfg(0.2, alpha=0.3, beta=0.7)
    plain, m = MTAL(toys.infos(data), toys.PLAIN, cfg, 0), MTAL(toys.infos(data), toys.PLAIN, cfg, 0)
    opts = []
    for net in (plain, m):  # one momentum buffer per parameter, the same for both
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(4)
        for p in net.parameters():
            opt.state[p]["momentum_buffer"] = torch.randn(p.shape, generator=g)
        opts.append(opt)
    merged = plain.share(opts[0])
    torch.set_default_device("meta")
    torch.set_default_dtype(torch.float64)
    try:
        assert m.share(opts[1]) == merged > 0
    finally:
        torch.set_default_device(None)
        torch.set_default_dtype(torch.float32)
    for layer in range(m.num_layers):
        assert torch.equal(m.index(layer), plain.index(layer))
    for a, b in zip(m.parameters(), plain.parameters()):
        assert torch.equal(a, b)
        assert torch.equal(opts[1].state[a]["momentum_buffer"], opts[0].state[b]["momentum_buffer"])


def test_mtal_groups_accept_at_most_a_pairs_quota_and_none_for_a_pair_without_one():
    """The random control's quota ((i, j) -> n): at most n edges of pair (i, j) are accepted, none of a
    pair the quota does not name (its followed run shared nothing there)."""
    data = toys.tasks(count=3)
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0), 0)
    bank, K = layer1_bank(m)
    edges = [(1.0 - 0.01 * k, 0, k, 1, k) for k in range(4)] + [(0.5, 0, 5, 2, 5)]
    sims = {(i, j): torch.zeros(K, K) for i, j in ((0, 1), (0, 2), (1, 2))}
    anything = torch.full((3, 3), float("-inf"))
    roots = m._groups(1, bank, [0, 1, 2], edges, sims, anything, quota={(0, 1): 2})
    idx = m.index(1)
    joined = [k for k in range(4) if roots[int(idx[0, k])] == roots[int(idx[1, k])]]
    assert joined == [0, 1]  # the first two of pair (0, 1), in the given order
    assert roots[int(idx[0, 5])] != roots[int(idx[2, 5])]  # pair (0, 2): no quota, no edge


def test_mtal_an_edge_refused_by_the_group_rule_does_not_end_the_layers_matching():
    """(0.c, 1.a) is refused (its cross pair with 2.b is below rho); the weaker edge (1.d, 2.e) after it
    in the layer's order is still accepted."""
    data = toys.tasks(count=3)
    c, a, b, d, e = 3, 1, 2, 4, 6
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(0.65), 0)
    v = gram_vectors(torch.tensor([[1.0, 0.8, 0.9], [0.8, 1.0, 0.6], [0.9, 0.6, 1.0]]))
    w = gram_vectors(torch.tensor([[1.0, 0.7], [0.7, 1.0]]))
    place(m, {(0, c): v[0], (1, a): v[1], (2, b): v[2],
              (1, d): torch.cat([torch.zeros(3), w[0]]), (2, e): torch.cat([torch.zeros(3), w[1]])})
    m.share()
    idx = m.index(1)
    assert idx[0, c] == idx[2, b] and idx[1, a] != idx[0, c]  # the group rule refused (0.c, 1.a)
    assert idx[1, d] == idx[2, e]  # and the matching went on


def test_mtal_sharing_metrics_count_every_bank_of_a_layer_and_every_layers_duplicates():
    """Two colour and two grayscale tasks: the first layer has two banks, each fully shared at rho -2;
    the layer's sharing ratio and the compression count both banks' kernels and slots. A within-task
    duplicate in a layer before the last counts in the total."""
    data = toys.tasks()  # c40, g12, g24, c20
    m = MTAL(toys.infos(data), toys.BN, mtal_cfg(-2.0), 0)
    assert [members for _, members in m.banks[0]] == [[0, 3], [1, 2]]
    m.share()
    metrics = m.sharing_metrics()
    assert metrics[f"sharing/{m.layer_names[0]}"] == 1.0
    slots = sum(len({(m.task_bank[layer][t], int(s)) for t in range(4) for s in m.index(layer)[t]})
                for layer in range(m.num_layers))
    kernels = sum(m.index(layer).numel() for layer in range(m.num_layers))
    assert metrics["compression"] == pytest.approx(slots / kernels)
    users = [Counter((m.task_bank[layer][t], int(s)) for t in range(4) for s in m.index(layer)[t])
             for layer in range(m.num_layers)]
    shared = sum(n for layer_users in users for n in layer_users.values() if n >= 2)
    assert 0 < shared < kernels and metrics["sharing/total"] == pytest.approx(shared / kernels)
    assert metrics["within_task_duplicates"] == 0
    with torch.no_grad():
        m.index(0)[1, 1] = m.index(0)[1, 0]  # layer 0 of a grayscale task; none in the last layer
    assert m.sharing_metrics()["within_task_duplicates"] == 1
