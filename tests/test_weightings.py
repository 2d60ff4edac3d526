"""The weighting axis: each weighting's defining property, the split between
shared and task-specific parameters, and a weighting's state across a resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hetmtl.methods import METHODS, TaskInfo
from hetmtl.models import BACKBONES
from hetmtl.params import load_params
from hetmtl.training.loop import TrainConfig, fit, make_weighting
from hetmtl.weightings import WEIGHTINGS, build

SPEC = BACKBONES["vgg_tiny"]
P = load_params()
CFGS = {
    "hard_sharing": {"relation_threshold": 0.5},
    "cross_stitch": {"pretrain_fraction": 0.5, "own_weight": 0.9, "unit_lr_mult": 100},
    "nddr_cnn": {"pretrain_fraction": 0.5, "own_weight": 0.9, "unit_lr_mult": 100, "unit_bn": True,
                 "unit_bn_lr_mult": 1},
    "soft_sharing": {"gamma": 0.01},
    # a common start and rho below -1: every matched kernel pair is shared after share()
    "mtal": {"rho": -2.0, "alpha": 0.5, "beta": 0.5, "warmup": 1, "share_every": 1, "start": "common"},
}


def weighting(name: str, tasks: int = 3):
    return build(name, P["weightings"][name], tasks)


def infos(tasks):
    return [TaskInfo(d.name, d.channels, d.num_classes) for d in tasks]


def model(name, tasks):
    m = METHODS[name](infos(tasks), SPEC, {**CFGS[name], "init": "scratch"}, 0)
    if name == "mtal":
        m.share()
    return m


def losses_of(m, tasks, n=6):
    m.train()
    logits = m.forward_all([d.x["train"][:n].float() / 255 for d in tasks])
    return torch.stack([F.cross_entropy(lg, d.y["train"][:n]) for lg, d in zip(logits, tasks)])


def per_task_grads(m, tasks) -> list[dict[int, torch.Tensor]]:
    """Each task loss's gradient alone, by parameter id (zeros where it does not reach)."""
    out = []
    for t in range(len(tasks)):
        m.zero_grad(set_to_none=True)
        losses_of(m, tasks)[t].backward()
        out.append({id(p): (torch.zeros_like(p) if p.grad is None else p.grad.clone()) for p in m.parameters()})
    m.zero_grad(set_to_none=True)
    return out


def shared_mask(m) -> dict[int, torch.Tensor]:
    """id -> boolean mask of the coordinates shared_parameters() declares shared."""
    masks = {id(p): torch.zeros_like(p, dtype=torch.bool) for p in m.parameters()}
    for p, rows in m.shared_parameters():
        if rows is None:
            masks[id(p)][...] = True
        else:
            masks[id(p)][rows] = True
    return masks


def test_the_registry_names_every_weighting_of_the_issue_and_params_gives_each():
    assert set(WEIGHTINGS) == set(P["weightings"]) >= {
        "equal", "uncertainty", "dwa", "rlw", "upgrad", "mgda", "pcgrad", "cagrad", "imtl_g", "nash_mtl",
        "aligned_mtl", "gradvac", "fairgrad", "random"}


# ----------------------------------------------------------- shared vs task-specific

@pytest.mark.parametrize("method", sorted(CFGS))
def test_shared_parameters_are_exactly_those_two_tasks_use(method, toy_tasks):
    """Outside what a method declares shared, no coordinate receives a gradient
    from two tasks; every declared parameter (or row) receives one from two."""
    m = model(method, toy_tasks)
    grads, masks = per_task_grads(m, toy_tasks), shared_mask(m)
    for p in m.parameters():
        reached = torch.stack([g[id(p)] != 0 for g in grads]).sum(0)
        assert not (reached[~masks[id(p)]] >= 2).any(), (method, p.shape)
    for p, rows in m.shared_parameters():
        reached = torch.stack([g[id(p)] != 0 for g in grads])
        if rows is None:  # the parameter as a whole serves two tasks or more
            assert int(reached.flatten(1).any(1).sum()) >= 2, (method, p.shape)
        else:  # every shared row (MTAL's slot) does
            part = reached[:, rows]
            by_row = part.reshape(part.shape[0], part.shape[1], -1).any(2).sum(0)
            assert bool((by_row >= 2).all()), (method, p.shape, by_row.tolist())
    if method == "soft_sharing":
        assert m.shared_parameters() == []  # a penalty couples the tasks, no parameter does
    else:
        assert m.shared_parameters()


@pytest.mark.parametrize("name", ["upgrad", "mgda", "pcgrad", "imtl_g"])
@pytest.mark.parametrize("method", ["hard_sharing", "mtal", "cross_stitch"])
def test_an_aggregator_acts_on_shared_coordinates_and_leaves_every_task_its_own(method, name, toy_tasks):
    m = model(method, toy_tasks)
    grads, masks = per_task_grads(m, toy_tasks), shared_mask(m)
    w = weighting(name)
    params = [p for p in m.parameters() if p.requires_grad]
    w.backward(losses_of(m, toy_tasks), None, m.shared_parameters(), params, rng_key=7)
    # the aggregation of the shared coordinates' Jacobian, computed here from the per-task gradients
    shared = m.shared_parameters()
    J = torch.cat([torch.stack([(g[id(p)] if rows is None else g[id(p)][rows]).flatten() for g in grads])
                   for p, rows in shared], dim=1)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        expected = w.impl(J)
    got = torch.cat([(p.grad if rows is None else p.grad[rows]).flatten() for p, rows in shared])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    if name != "pcgrad":  # PCGrad is the sum where no two task gradients conflict
        assert not torch.allclose(expected, J.sum(0), rtol=1e-3), "the aggregation is not the plain sum here"
    for p in params:
        own = sum(g[id(p)] for g in grads)  # outside the shared coordinates: one task's gradient
        keep = ~masks[id(p)]
        torch.testing.assert_close(p.grad[keep], own[keep], rtol=1e-5, atol=1e-7)
    heads = m.heads if method == "hard_sharing" else [net.head for net in m.nets]
    for t, head in enumerate(heads):  # whatever the declaration: a head has its own task's gradient
        for p in head.parameters():
            torch.testing.assert_close(p.grad, grads[t][id(p)], rtol=1e-5, atol=1e-7)


def test_a_task_specific_parameter_never_receives_another_tasks_gradient(toy_tasks):
    """Changing task 2's labels changes no gradient of task 0's own parameters (head, stem)."""
    m = model("hard_sharing", toy_tasks)
    w = weighting("upgrad")
    params = [p for p in m.parameters() if p.requires_grad]
    w.backward(losses_of(m, toy_tasks), None, m.shared_parameters(), params)
    before = {id(p): p.grad.clone() for p in m.parameters()}
    m.zero_grad(set_to_none=True)
    toy_tasks[2].y["train"][:6] = (toy_tasks[2].y["train"][:6] + 1) % 3
    w.backward(losses_of(m, toy_tasks), None, m.shared_parameters(), params)
    own = list(m.stems[0].parameters()) + list(m.heads[0].parameters())
    for p in own:
        torch.testing.assert_close(p.grad, before[id(p)], rtol=0, atol=0)
    assert any(not torch.equal(p.grad, before[id(p)]) for p, _ in m.shared_parameters())


# ----------------------------------------------------------- defining properties

def test_equal_weighting_reproduces_the_plain_sum_bit_for_bit(toy_tasks):
    m = model("hard_sharing", toy_tasks)
    params = [p for p in m.parameters() if p.requires_grad]

    def regulariser():
        return 5e-4 * sum(w.pow(2).sum() for t in range(3) for w in m.task_weights(t))

    (losses_of(m, toy_tasks).sum() + regulariser()).backward()
    plain = [p.grad.clone() for p in params]
    m.zero_grad(set_to_none=True)
    weighting("equal").backward(losses_of(m, toy_tasks), regulariser(), [], params)
    for a, p in zip(plain, params):
        assert torch.equal(a, p.grad)


def test_an_aggregator_adds_the_regulariser_to_every_coordinate():
    w, own = torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([3.0], requires_grad=True)
    losses = torch.stack([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([0.0, 1.0]) + own[0]])
    regulariser = 0.1 * (w.pow(2).sum() + own.pow(2).sum())
    upgrad = weighting("upgrad", 2)
    upgrad.backward(losses, regulariser, [(w, None)], [w, own])
    torch.testing.assert_close(w.grad, upgrad.impl(torch.eye(2)) + 0.2 * w.detach())  # UPGrad: the mean here
    torch.testing.assert_close(own.grad, torch.tensor([1.0]) + 0.2 * own.detach())


def test_every_weighting_changes_training_and_equal_is_the_plain_loop(toy_tasks):
    """Through the loop (3 epochs: DWA's weights move from the third): no weighting
    is a silent no-op, each gives other numbers than equal weighting."""
    torch.use_deterministic_algorithms(True)
    results = {}
    for name in P["weightings"]:
        cfg = TrainConfig(epochs=3, batch_size=8, lr=0.02, momentum=0.9, l2_lambda=5e-4, nan_check_every=1,
                          seed=0, weighting=name, weighting_params=tuple(sorted(P["weightings"][name].items())))
        out = fit(model("hard_sharing", toy_tasks), toy_tasks, cfg, torch.device("cpu"), progress=False)
        results[name] = [h[f"train_loss/{d.name}"] for h in out["history"] for d in toy_tasks]
        assert out["weighting"] == name and out["train_step_s"] > 0
    same = [n for n in results if n != "equal" and results[n] == results["equal"]]
    assert same == []


def test_every_weighting_trains_mtal_through_a_merge(toy_tasks):
    """MTAL with each weighting (Table 7's second method; the tiny DAG sweeps three of
    them), shared from the start: training runs past MTAL's merges, where the weighting's
    shared coordinates change, and no weighting is a silent no-op there either."""
    torch.use_deterministic_algorithms(True)
    results = {}
    for name in P["weightings"]:
        cfg = TrainConfig(epochs=3, batch_size=8, lr=0.02, momentum=0.9, l2_lambda=5e-4, nan_check_every=1,
                          seed=0, weighting=name, weighting_params=tuple(sorted(P["weightings"][name].items())))
        out = fit(model("mtal", toy_tasks), toy_tasks, cfg, torch.device("cpu"), progress=False)  # DWA: from epoch 3
        assert out["weighting"] == name and len(out["history"]) == 3
        assert out["history"][0]["sharing/total"] > 0, name  # merged after epoch 1: epoch 2 trains shared slots
        results[name] = [h[f"train_loss/{d.name}"] for h in out["history"][1:] for d in toy_tasks]
    same = [n for n in results if n != "equal" and results[n] == results["equal"]]
    assert same == []


def test_pcgrad_leaves_orthogonal_task_gradients_unchanged():
    w = torch.zeros(3, requires_grad=True)
    losses = torch.stack([3 * w[0], 5 * w[1], -2 * w[2]])  # orthogonal gradients: e0, e1, e2 scaled
    weighting("pcgrad").backward(losses, None, [(w, None)], [w])
    torch.testing.assert_close(w.grad, torch.tensor([3.0, 5.0, -2.0]))
    conflicting = torch.zeros(2, requires_grad=True)
    losses = torch.stack([conflicting[0], -conflicting[0] + conflicting[1]])  # g1 . g2 < 0: projected
    weighting("pcgrad", 2).backward(losses, None, [(conflicting, None)], [conflicting])
    assert not torch.allclose(conflicting.grad, torch.tensor([0.0, 1.0]))


def test_mgda_returns_the_minimal_norm_point_of_the_convex_hull():
    w = torch.zeros(2, requires_grad=True)
    g1, g2 = torch.tensor([4.0, 1.0]), torch.tensor([-1.0, 2.0])
    losses = torch.stack([g1 @ w, g2 @ w])
    weighting("mgda", 2).backward(losses, None, [(w, None)], [w])
    hull = torch.stack([a * g1 + (1 - a) * g2 for a in torch.linspace(0, 1, 2001)])
    best = hull[hull.norm(dim=1).argmin()]
    torch.testing.assert_close(w.grad, best, atol=2e-3, rtol=0)
    assert w.grad.norm() < min(g1.norm(), g2.norm())


def aggregate(name: str, J: torch.Tensor, key: int = 0) -> torch.Tensor:
    """The gradient ``name`` writes for one shared vector whose task gradients are J's rows."""
    w = torch.zeros(J.shape[1], requires_grad=True)
    weighting(name, J.shape[0]).backward(J @ w, None, [(w, None)], [w], rng_key=key)
    return w.grad


CONFLICTING = torch.tensor([[4.0, 1.0, 0.0], [-2.0, 3.0, 1.0], [0.5, -1.0, 2.0]])
ORTHOGONAL = torch.tensor([[2.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.5]])  # norms 2, 5, 0.5


def test_upgrad_never_conflicts_with_a_task():
    J = torch.tensor([[2.0, 0.5, 0.0], [-3.0, 2.0, 1.0], [0.0, -1.0, 2.0]])  # the sum goes against task 0
    d = aggregate("upgrad", J)
    assert (J @ d >= -1e-5).all() and (J @ J.sum(0) < 0).any()


def test_imtl_g_projects_equally_on_every_task_gradient():
    d = aggregate("imtl_g", CONFLICTING)
    projections = (CONFLICTING / CONFLICTING.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(projections, projections[0].expand(3), rtol=1e-4, atol=1e-5)


def test_cagrad_with_c_zero_is_the_mean_and_its_c_reaches_it():
    w = build("cagrad", {"c": 0.0}, 3)
    x = torch.zeros(3, requires_grad=True)
    w.backward(CONFLICTING @ x, None, [(x, None)], [x])
    torch.testing.assert_close(x.grad, CONFLICTING.mean(0), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(aggregate("cagrad", CONFLICTING), CONFLICTING.mean(0), atol=1e-3)


@pytest.mark.parametrize("name", ["nash_mtl", "fairgrad", "aligned_mtl"])
def test_balancing_aggregators_equalise_orthogonal_tasks(name):
    """Nash-MTL and FairGrad (alpha 1) solve (G G^T) w = 1/w, Aligned-MTL equalises the
    singular values: with orthogonal task gradients of norms 2, 5 and 0.5 each task
    moves equally, the direction of the sum of the unit gradients (the plain sum's is not)."""
    d = aggregate(name, ORTHOGONAL)
    balanced = torch.ones(3) / 3 ** 0.5
    torch.testing.assert_close(d / d.norm(), balanced, atol=2e-3, rtol=0)
    plain = ORTHOGONAL.sum(0)
    assert not torch.allclose(plain / plain.norm(), balanced, atol=0.1)


def test_gradvac_keeps_orthogonal_gradients_at_first_and_raises_conflicting_ones():
    torch.testing.assert_close(aggregate("gradvac", ORTHOGONAL), ORTHOGONAL.sum(0))  # cosines 0 >= the targets 0
    d = aggregate("gradvac", CONFLICTING)
    assert not torch.allclose(d, CONFLICTING.sum(0), atol=1e-3)


def test_pcgrad_draws_its_order_from_the_steps_seed():
    from hetmtl.training.loop import step_key

    draws = {key: aggregate("pcgrad", CONFLICTING, key) for key in range(8)}
    assert torch.equal(aggregate("pcgrad", CONFLICTING, 3), draws[3])
    assert len({tuple(v.tolist()) for v in draws.values()}) > 1  # the order matters for these three
    assert len({step_key(s, e, k) for s in range(3) for e in range(1, 4) for k in range(50)}) == 3 * 3 * 50


def test_uncertainty_weights_learn_and_follow_their_formula(toy_tasks):
    m = model("hard_sharing", toy_tasks)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0,
                      weighting="uncertainty")
    out = fit(m, toy_tasks, cfg, torch.device("cpu"), progress=False)
    weights = [out["history"][-1][f"task_weight/{d.name}"] for d in toy_tasks]
    assert len(set(weights)) == 3 and all(w != 0.5 for w in weights)  # exp(0) / 2 at the start
    w = weighting("uncertainty")
    with torch.no_grad():
        w.impl.log_var.copy_(torch.tensor([0.3, -0.2, 0.1]))
    losses = torch.tensor([1.0, 2.0, 3.0])
    w.backward(losses, None, [], [])
    s = w.impl.log_var.detach()
    torch.testing.assert_close(w.impl.log_var.grad, -0.5 * torch.exp(-s) * losses + 0.5)


def test_single_task_networks_are_never_weighted(toy_tasks):
    single = METHODS["single_task"](infos(toy_tasks), SPEC, {"init": "scratch"}, 0)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=0, nan_check_every=1, seed=0,
                      weighting="uncertainty")
    assert make_weighting(single, cfg, 3).name == "equal"
    assert make_weighting(model("hard_sharing", toy_tasks), cfg, 3).name == "uncertainty"


def test_dwa_weights_by_the_ratio_of_the_last_two_epoch_losses():
    w = weighting("dwa", 2)
    for epoch_losses in ([4.0, 2.0], [2.0, 2.0]):  # task 0 halved, task 1 flat
        w.backward(torch.tensor(epoch_losses, requires_grad=True), None, [], [])
        w.end_epoch()
    losses = torch.tensor([1.0, 1.0], requires_grad=True)
    w.backward(losses, None, [], [])
    rates = torch.tensor([0.5, 1.0]) / 2.0  # temperature 2
    torch.testing.assert_close(losses.grad, 2 * torch.softmax(rates, 0))


@pytest.mark.parametrize("name", ["rlw", "random"])
def test_random_weightings_draw_per_step_and_repeat_with_the_seed(name):
    draws = []
    for key in (1, 2, 1):
        w = torch.zeros(2, requires_grad=True)
        weighting(name, 2).backward(torch.stack([w[0], w[1]]), None, [(w, None)], [w], rng_key=key)
        draws.append(w.grad.clone())
    assert torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[1])
    torch.testing.assert_close(draws[0].sum(), torch.tensor(1.0))  # a convex combination


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_a_resumed_run_continues_the_weightings_state(name, toy_tasks):
    """Two epochs straight = one epoch, a checkpoint, then the second (DWA's
    average losses, GradVac's EMA, the learned log-variances are carried)."""
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=5e-4, nan_check_every=1, seed=0,
                      weighting=name, weighting_params=tuple(sorted(P["weightings"][name].items())))
    torch.use_deterministic_algorithms(True)
    straight = fit(model("hard_sharing", toy_tasks), toy_tasks, cfg, torch.device("cpu"), progress=False)
    saved = {}

    def keep(epoch, metrics, state):
        if epoch == 2:
            saved.update(torch.load(_roundtrip(state), weights_only=False))

    fit(model("hard_sharing", toy_tasks), toy_tasks, cfg, torch.device("cpu"), progress=False, on_epoch=keep)
    resumed = fit(model("hard_sharing", toy_tasks), toy_tasks, cfg, torch.device("cpu"), progress=False,
                  state=saved)
    assert resumed["test"] == straight["test"]
    assert resumed["history"][-1]["train_loss/g1"] == straight["history"][-1]["train_loss/g1"]


def _roundtrip(state):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_table7_reports_accuracy_and_the_step_time_relative_to_equal():
    import pandas as pd

    from hetmtl.reporting.tables import weighting_cells, weighting_table

    rows = []
    # seconds per step by (weighting, group): per seed, the first and the second
    times = {("equal", "g"): [0.010, 0.030], ("pcgrad", "g"): [0.025, 0.035],
             ("equal", "h"): [0.010, 0.010], ("pcgrad", "h"): [0.040, 0.040]}
    for w, acc in (("equal", [0.5, 0.7]), ("pcgrad", [0.6, 0.8])):
        for group in ("g", "h"):
            for seed, a in enumerate(acc):
                rows += [{"group": group, "sweep": "s", "sweep_value": w, "seed": seed,
                          "metric": "test_acc/mean", "value": a},
                         {"group": group, "sweep": "s", "sweep_value": w, "seed": seed,
                          "metric": "time/train_step_s", "value": times[(w, group)][seed]}]
    table = weighting_table(pd.DataFrame(rows), [("s", "g", "g: HS"), ("s", "h", "h: HS")], ["equal", "pcgrad"])
    assert table.loc["pcgrad", ("g: HS", "mean")] == pytest.approx(0.7)
    # per group the ratio of the seed means (0.030 / 0.020 = 1.5, 0.040 / 0.010 = 4), averaged over groups
    assert table.loc["pcgrad", ("s step time", "ratio")] == pytest.approx((1.5 + 4.0) / 2)
    assert table.loc["equal", ("s step time", "ratio")] == pytest.approx(1.0)
    assert table.loc["equal", ("g: HS", "ci")] == pytest.approx(12.706 * 0.1, rel=1e-3)  # t(1) x std / sqrt(2)
    text, bold = weighting_cells(table, {})
    assert text.iloc[1, 1] == "70.0 ± 127.1" and bool(bold.iloc[1, 1]) and not bool(bold.iloc[0, 1])
    assert text.iloc[1, 3] == "2.75×"
    with pytest.raises(ValueError, match="equal"):
        weighting_table(pd.DataFrame(rows)[lambda r: r.sweep_value != "equal"], [("s", "g", "g: HS")], ["pcgrad"])
