"""MTDA (methods/mtda.py): each test fails when its part of the mechanism is removed.

The coupling tests use generated tasks with different dimensions whose classes
differ only along shared latent coordinates: x_t = A_t z + noise, A_t a random
d_t x q embedding with orthonormal columns, z skewed (centred exponential) with
clearly distinct spreads per coordinate, the class means (a regular
tetrahedron, rotated per task) only on latent coordinates 2, 3, 4 -- not the
top-variance ones.
"""

from __future__ import annotations

import pytest
import torch

from conftest import fake_task
from hetmtl.methods import TaskInfo
from hetmtl.methods.mtda import MTDA, fit_mtda
from hetmtl.models import BACKBONES

SPEC = BACKBONES["vgg_tiny"]
REG = 1e-3
TETRA = torch.tensor([[1., 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
SPREAD = torch.tensor([10., 7., 2., 2., 2., 0.8, 0.5], dtype=torch.float64)  # within-class sd per latent coordinate
DISC = [2, 3, 4]


def latent_tasks(seed, per_class, dims=(40, 60, 50), test_per_class=250, sep=2.0, noise=0.3):
    """Per task (x_train, y_train, x_test, y_test); 4 classes each."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for d, n in zip(dims, per_class):
        A, _ = torch.linalg.qr(torch.randn(d, len(SPREAD), generator=g, dtype=torch.float64))
        R, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        class_means = sep * TETRA @ R

        def sample(npc, A=A, d=d, class_means=class_means):  # this task's, bound now
            y = torch.arange(4).repeat_interleave(npc)
            z = (torch.empty(len(y), len(SPREAD), dtype=torch.float64).exponential_(1.0, generator=g) - 1) * SPREAD
            z[:, DISC] += class_means[y]
            return z @ A.T + noise * torch.randn(len(y), d, generator=g, dtype=torch.float64), y

        out.append((*sample(n), *sample(test_per_class)))
    return out


def fit(tasks, coupling, common_dim=12, iterations=40, tol=0.0):
    return fit_mtda([t[0] for t in tasks], [t[1] for t in tasks], [4] * len(tasks), common_dim, REG, coupling,
                    iterations, tol)


def common_k(tasks, common_dim=12):
    return min(min(common_dim, t[0].shape[0] - 1, t[0].shape[1]) for t in tasks)


def plain_lda(x, y, C, k, reg):
    """Independent LDA: PCA to k, top C-1 generalised eigenvectors of (S_b, S_w + r I),
    r = reg * mean eigenvalue of the PCA-space total scatter, V^T (S_w + r I) V = I;
    returns (mean, d x (C-1) map, class means)."""
    n = x.shape[0]
    mu = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mu, full_matrices=False)
    V = vh[:k].T
    p = (x - mu) @ V
    r = reg * torch.trace(p.T @ p / n) / k
    sb, sw = torch.zeros(k, k, dtype=x.dtype), r * torch.eye(k, dtype=x.dtype)
    for c in range(C):
        pc = p[y == c]
        mc = pc.mean(0)
        sb += len(pc) / n * torch.outer(mc, mc)
        sw += (pc - mc).T @ (pc - mc) / n
    Li = torch.linalg.inv(torch.linalg.cholesky(sw))
    _, vecs = torch.linalg.eigh(Li @ sb @ Li.T)
    proj = V @ Li.T @ vecs[:, -(C - 1):]
    z = (x - mu) @ proj
    return mu, proj, torch.stack([z[y == c].mean(0) for c in range(C)])


def lda_predict(model, x):
    mu, proj, means = model
    return torch.cdist((x - mu) @ proj, means).argmin(1)


def subspace_sin(x, a, b):
    """sin of the largest principal angle between the feature subspaces x a and x b
    (angles in the metric of the data's scatter)."""
    xc = x - x.mean(0)
    qa, _ = torch.linalg.qr(xc @ a)
    qb, _ = torch.linalg.qr(xc @ b)
    return torch.linalg.matrix_norm(qa @ qa.T - qb @ qb.T, ord=2).item()


def accuracy(f, t, task):
    return (f.predict(t, task[2]) == task[3]).double().mean().item()


@pytest.mark.parametrize("coupling", [0.0, 100.0])
def test_one_task_predicts_exactly_what_plain_lda_predicts(coupling):
    task = latent_tasks(7, per_class=[30], dims=[30], sep=1.5)[0]
    x, y, x_test, y_test = task
    f = fit([task], coupling, common_dim=15)
    lda = plain_lda(x, y, 4, 15, REG)
    expected = lda_predict(lda, x_test)
    assert 0.5 < (expected == y_test).double().mean() < 0.95  # a task with errors: the scaling matters
    assert torch.equal(f.predict(0, x_test), expected)
    assert torch.equal(f.predict(0, x), lda_predict(lda, x))


def test_coupling_turns_projections_away_from_per_task_lda_and_zero_coupling_is_per_task_lda():
    tasks = latent_tasks(1, per_class=[10, 30, 30])
    k = common_k(tasks)
    ldas = [plain_lda(t[0], t[1], 4, k, REG) for t in tasks]
    free, coupled = fit(tasks, 0.0), fit(tasks, 1.0)
    free_sin = [subspace_sin(t[0], free.projections[i], ldas[i][1]) for i, t in enumerate(tasks)]
    coupled_sin = [subspace_sin(t[0], coupled.projections[i], ldas[i][1]) for i, t in enumerate(tasks)]
    assert max(free_sin) < 1e-8, free_sin
    assert min(coupled_sin) > 0.1, coupled_sin


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_task_with_few_samples_gains_from_the_others(seed):
    tasks = latent_tasks(seed, per_class=[4, 50, 50])  # task 0: 4 training images per class
    alone, coupled = accuracy(fit(tasks, 0.0), 0, tasks[0]), accuracy(fit(tasks, 1.0), 0, tasks[0])
    assert coupled > alone + 0.05, (alone, coupled)


@pytest.mark.parametrize("coupling", [0.1, 1.0])
def test_objective_never_decreases_rotations_stay_orthogonal_and_p_is_the_pooled_optimum(coupling):
    """Minorise-maximise: J is monotone; the W stay rotations; at convergence P is the
    P-step's optimum for the pooled scatter; the logged value is J itself."""
    tasks = latent_tasks(3, per_class=[4, 50, 50])
    f = fit(tasks, coupling, iterations=60)
    J = torch.tensor(f.objectives, dtype=torch.float64)
    assert len(J) > 5 and J[-1] > J[0]
    assert (J[1:] - J[:-1] >= -1e-12 * J.abs().max()).all(), J
    eye = torch.eye(f.P.shape[0], dtype=torch.float64)
    for W in f.W:
        assert (W.T @ W - eye).abs().max() < 1e-12
    assert (f.P.T @ f.P - torch.eye(f.P.shape[1], dtype=torch.float64)).abs().max() < 1e-12
    # P-step: P spans the top eigenvectors of the POOLED between-class scatter of the rotated tasks.
    A = torch.zeros_like(eye)
    for t, (x, y, _, _) in enumerate(tasks):
        z = (x - f.mus[t]) @ f.G[t] @ f.W[t]
        means = torch.stack([z[y == c].mean(0) for c in range(4)])
        A += sum((y == c).double().mean() * torch.outer(means[c], means[c]) for c in range(4))
    top = torch.linalg.eigh(A)[1][:, -3:]
    assert torch.linalg.matrix_norm(top @ top.T - f.P @ f.P.T, ord=2) < 1e-4
    # The logged objective is J(W, P) = tr(P' A P) - mu sum_t ||W_t - I||^2 at the final W, P.
    J_final = torch.trace(f.P.T @ A @ f.P) - coupling * sum((W - eye).pow(2).sum() for W in f.W)
    assert abs(J[-1] - J_final) < 1e-10


def test_common_coordinates_have_positive_third_moment_and_ignore_the_features_sign():
    tasks = latent_tasks(4, per_class=[20, 20, 20])
    f = fit(tasks, 1.0)
    for t, (x, *_) in enumerate(tasks):
        y = (x - f.mus[t]) @ f.G[t]
        assert (y.pow(3).sum(0) > 0).all()
    flipped = fit([(-x, *rest) for x, *rest in tasks], 1.0)
    for t, (x, *_) in enumerate(tasks):
        torch.testing.assert_close((x - f.mus[t]) @ f.G[t], (-x - flipped.mus[t]) @ flipped.G[t])


def test_heterogeneous_image_tasks_end_to_end(toy_tasks):
    infos = [TaskInfo(d.name, d.channels, d.num_classes) for d in toy_tasks]
    cfg = {"common_dim": 6, "reg": 1e-3, "coupling": 1.0, "iterations": 10, "tol": 1e-10}
    m = MTDA(infos, SPEC, cfg, 0)
    out = m.fit_closed_form(toy_tasks)
    history = out["history"]
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert all("mtda_objective" in h for h in history)
    assert {"val_acc/g1", "val_acc/c1", "val_acc/g2", "val_acc/mean"} <= set(history[-1])
    assert out["test"]["test_acc/mean"] > 0.6  # chance: 1/3, 1/4, 1/3
    assert m.projections[0][1].shape == (16 * 16, 2) and m.projections[1][1].shape == (3 * 16 * 16, 2)
    restored = MTDA(infos, SPEC, cfg, 0)
    restored.set_extra_state(m.get_extra_state())
    x = MTDA._flat(toy_tasks[1], "test")
    assert torch.equal(restored.predict(1, x), m.predict(1, x))
    with pytest.raises(KeyError):
        MTDA(infos, SPEC, {k: v for k, v in cfg.items() if k != "coupling"}, 0)


def test_single_fake_image_task_agrees_with_plain_lda():
    task = fake_task("a", 1, 4, n=40, seed=3)
    cfg = {"common_dim": 12, "reg": 1e-3, "coupling": 1.0, "iterations": 5, "tol": 0.0}
    m = MTDA([TaskInfo("a", 1, 4)], SPEC, cfg, 0)
    m.fit_closed_form([task])
    x, x_test = MTDA._flat(task, "train"), MTDA._flat(task, "test")
    lda = plain_lda(x, task.y["train"], 4, 12, 1e-3)
    assert torch.equal(m.predict(0, x_test), lda_predict(lda, x_test))
