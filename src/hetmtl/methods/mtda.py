r"""MTDA: multi-task discriminant analysis in heterogeneous feature spaces.

After Zhang & Yeung (AAAI 2011), "Multi-task learning in heterogeneous feature
spaces": per task a task-specific linear map into a common space, then one
projection shared by all tasks, learned by alternating steps, classification by
nearest class mean. No public code exists and we do not have the paper's
equations, so everything below is OUR RECONSTRUCTION AND DERIVATION of a method
with that structure, not a port.

Why the tasks must be coupled. If each task's map W_t is free (any full-rank or
any orthonormal map into the common space), W_t P can realise any per-task
projection, so the joint optimum is each task's own LDA whatever P is: such a
model shares nothing. (The previous version of this module, with the
constraint W_t' S_w^t W_t = I, did exactly that: its projections equalled
per-task LDA to 4e-16.) Here the common space has fixed, meaningful
coordinates, the maps are rotations of it, and a penalty keeps each rotation
near the identity; the penalty's weight ``coupling`` (mu) is how far a task may
turn away from the shared coordinates.

Common space. Task t's images are flattened at their own dimension d_t (its
channels and size) and centred by the training mean mu_t. A per-task PCA keeps
k components, k = max(m, min_t min(common_dim, n_t - 1, d_t)) (one k for all
tasks), and WHITENS the regularised total scatter:

    y = G_t^T (x - mu_t),   G_t = V_t diag(lambda_t + r_t)^(-1/2) S_t,
    G_t^T (S_T^t + r_t I) G_t = I_k,

V_t the top-k principal directions, lambda_t their variances (the eigenvalues of
the total scatter S_T^t = X_c^T X_c / n_t), r_t = reg * mean(lambda_t) the ridge
(mean over the k kept eigenvalues), and S_t = diag(+-1) the sign convention: each
coordinate's sign is chosen so that the third moment sum_i y_ij^3 of the task's
training data is positive (a coordinate whose third moment is exactly zero
keeps the sign of the SVD). Coordinate j of the common space is therefore "the
task's j-th principal direction, at unit variance": tasks are aligned by rank of
variance (for images of one size the leading principal components are similar
low-frequency patterns) and by skew. The alignment is an assumption of the
model; where it is wrong, the coupling can only be weakened (smaller mu).

In these coordinates the regularised total scatter is I, so the between-class
scatter S_b^t = sum_c (n_c / n_t) m_c m_c^T (m_c the class means of y) has
eigenvalues in [0, 1) -- the fraction of the variance explained by the classes,
comparable across tasks whatever their dimension -- and the regularised
within-class scatter is I - S_b^t.

Model. Task-specific map: a k x k rotation W_t of the common space
(W_t^T W_t = I, so the total scatter stays I). Shared projection: P (k x m),
P^T P = I_m, m = min_t C_t - 1. Discriminant features of task t:
z = P^T W_t^T y.

Objective (maximised):

    J(W, P) = tr( P^T [ sum_t W_t^T S_b^t W_t ] P ) - mu sum_t ||W_t - I||_F^2.

mu = 0: every task rotates freely and the tasks decouple: the optimum has
each W_t P spanning the task's own top-m eigenvectors of S_b^t, i.e. per-task
LDA (in its total-scatter form; the generalised eigenvectors of (S_b, S_T + rI)
and of (S_b, S_w + rI) are the same), and the W-step below reaches it (in one
step when S_b^t has rank m, as with C_t = m + 1 classes). mu -> infinity: W_t = I and P is the
top-m eigenvectors of the pooled between-class scatter sum_t S_b^t (fully
pooled). For orthogonal W, ||W - I||^2 = 2k - 2 tr(W): the penalty is linear in
W.

Alternating maximisation, starting from W_t = I:

* P-step (W fixed): P = the top-m eigenvectors of A = sum_t W_t^T S_b^t W_t
  (symmetric eigh); the global optimum of the subproblem (Ky Fan). This is
  where the tasks share.
* W-step (P fixed), per task: maximise f(W) = tr(P^T W^T S_b W P) + 2 mu tr(W)
  over orthogonal W. The quadratic term is convex in W (S_b is PSD), so it lies
  above its tangent at the current W0:
  tr(P^T W^T S_b W P) >= 2 tr(W^T S_b W0 P P^T) - tr(P^T W0^T S_b W0 P), with
  equality at W = W0. Maximising the minoriser, tr(W^T M) with
  M = S_b W0 P P^T + mu I, over orthogonal W is an orthogonal Procrustes
  problem: M = U S V^T (SVD) gives W = U V^T. Minorise-maximise: f(W) >= f(W0).

Neither step can lower J, so J never decreases (it is logged per iteration as
``mtda_objective``); iterations stop when its relative change is at most
``tol`` or after ``iterations``. (With mu = 0, M has rank m and the SVD picks
some rotation of the complement of span(P); that leaves J unchanged.)

Classification: z = P^T W_t^T G_t^T (x - mu_t); then the projected regularised
within-class scatter of task t's training set, S_wz = P^T W_t^T (I - S_b^t) W_t P
(= the projection of G_t^T (S_w^t + r_t I) G_t: the ridge is r_t, the PCA ridge,
so no second constant is needed), is whitened, z' = S_wz^(-1/2) z, and x goes to
the nearest training class mean in z'. Both maps are folded into one d_t x m
matrix per task.

One task. For any mu, W = I is a fixed point (M = S_b P P^T + mu I is symmetric
positive semi-definite, its polar factor is I for mu > 0; for mu = 0 W P = P),
P spans the top-m eigenvectors of S_b in total-whitened coordinates, which is the
span of LDA's top-m generalised eigenvectors of (S_b, S_w + rI) in the PCA
space, and the within-class whitening gives LDA's normalisation V^T (S_w + rI) V
= I up to a rotation, which nearest-class-mean distances do not see: MTDA with
one task predicts exactly what plain LDA predicts (a test holds it to that).

The tasks enter the pooled scatter unweighted, as in J. A task with very few
training samples has an inflated S_b (its class means overfit), so it pulls P
more than its share; on generated data (one task with 4 images per class, two
with 50) mu = 1 cost the well-sampled tasks about 0.02 accuracy while the small
task gained about 0.1.

Everything is float64 torch.linalg; the core (:func:`fit_mtda`) works on float
feature matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hetmtl.data.tasks import TaskData, to_input
from hetmtl.methods.base import Method


@dataclass
class MTDAFit:
    """The fitted model: per task the centring mean, the whitening PCA G (d_t x k),
    the rotation W (k x k), the classifier map (d_t x m) and the class means in z';
    the shared P (k x m); the objective after each iteration."""

    mus: list
    G: list
    W: list
    P: torch.Tensor
    projections: list
    means: list
    objectives: list = field(default_factory=list)

    def predict(self, t: int, x: torch.Tensor) -> torch.Tensor:
        z = (x.double() - self.mus[t]) @ self.projections[t]
        return torch.cdist(z, self.means[t]).argmin(1)


def whitened_pca(x: torch.Tensor, k: int, reg: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre ``x`` (n x d), keep k principal components, whiten the regularised total
    scatter, fix each sign by a positive third moment. Returns (mu, G, y = (x - mu) G)."""
    n = x.shape[0]
    mu = x.mean(0)
    xc = x - mu
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    if k > s.shape[0]:
        raise ValueError(f"MTDA: {k} common coordinates but only {s.shape[0]} principal components")
    var = s[:k] ** 2 / n
    r = reg * var.mean()
    if not r > 0:
        raise ValueError("MTDA: a task's training data has no variance")
    G = vh[:k].T / torch.sqrt(var + r)
    y = xc @ G
    sign = torch.where(y.pow(3).sum(0) < 0, -1.0, 1.0).to(x.dtype)
    return mu, G * sign, y * sign


def class_means(z: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C x p class means, C counts); every class must occur."""
    onehot = torch.nn.functional.one_hot(labels, num_classes).to(z.dtype)
    counts = onehot.sum(0)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"MTDA: classes {missing} have no training sample")
    return (onehot.T @ z) / counts[:, None], counts


def between_scatter(y: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """sum_c (n_c / n) (m_c - m)(m_c - m)^T."""
    means, counts = class_means(y, labels, num_classes)
    d = means - y.mean(0)
    return (d.T * (counts / counts.sum())) @ d


def top_eigenvectors(A: torch.Tensor, m: int) -> torch.Tensor:
    """The eigenvectors of the m largest eigenvalues of symmetric A, descending."""
    _, vecs = torch.linalg.eigh((A + A.T) / 2)
    return vecs[:, -m:].flip(1)


def w_step(sb: torch.Tensor, W0: torch.Tensor, P: torch.Tensor, coupling: float) -> torch.Tensor:
    """One minorise-maximise step of max tr(P'W'S_bWP) + 2 mu tr(W) over orthogonal W."""
    M = sb @ W0 @ P @ P.T + coupling * torch.eye(sb.shape[0], dtype=sb.dtype)
    U, _, Vh = torch.linalg.svd(M)
    return U @ Vh


def objective(Sb: list, W: list, P: torch.Tensor, coupling: float) -> float:
    eye = torch.eye(P.shape[0], dtype=P.dtype)
    return float(sum(torch.trace(P.T @ w.T @ sb @ w @ P) - coupling * (w - eye).pow(2).sum()
                     for w, sb in zip(W, Sb)))


def common_size(xs: list, m: int, common_dim: int) -> int:
    k = max(m, min(min(common_dim, x.shape[0] - 1, x.shape[1]) for x in xs))
    return k


def fit_mtda(xs: list, ys: list, num_classes: list, common_dim: int, reg: float, coupling: float,
             iterations: int, tol: float) -> MTDAFit:
    """MTDA on float feature matrices: ``xs[t]`` (n_t x d_t), labels ``ys[t]`` in
    range(num_classes[t])."""
    if coupling < 0:
        raise ValueError(f"MTDA: coupling must be >= 0, got {coupling}")
    xs = [x.double() for x in xs]
    m = min(num_classes) - 1
    k = common_size(xs, m, common_dim)
    mus, G, Y, Sb = [], [], [], []
    for x, y, C in zip(xs, ys, num_classes):
        mu, g, yw = whitened_pca(x, k, reg)
        mus.append(mu)
        G.append(g)
        Y.append(yw)
        Sb.append(between_scatter(yw, y, C))
    eye = torch.eye(k, dtype=torch.float64)
    W = [eye.clone() for _ in xs]
    objectives, previous = [], None
    for _ in range(iterations):
        P = top_eigenvectors(sum(w.T @ sb @ w for w, sb in zip(W, Sb)), m)  # P-step: shared
        W = [w_step(sb, w, P, coupling) for w, sb in zip(W, Sb)]  # W-step: per task
        J = objective(Sb, W, P, coupling)
        objectives.append(J)
        if previous is not None and abs(J - previous) <= tol * abs(previous):
            break
        previous = J
    projections, means = [], []
    for g, w, sb, yw, y, C in zip(G, W, Sb, Y, ys, num_classes):
        WP = w @ P
        swz = torch.eye(m, dtype=torch.float64) - WP.T @ sb @ WP  # projected S_w + r I
        vals, vecs = torch.linalg.eigh((swz + swz.T) / 2)
        whiten = WP @ (vecs / vals.sqrt()) @ vecs.T
        projections.append(g @ whiten)
        means.append(class_means(yw @ whiten, y, C)[0])
    return MTDAFit(mus, G, W, P, projections, means, objectives)


class MTDA(Method):
    name = "mtda"

    def __init__(self, tasks, spec, cfg, seed):
        super().__init__(tasks, spec, cfg, seed)
        self.common_dim = int(cfg["common_dim"])
        self.reg = float(cfg["reg"])
        self.coupling = float(cfg["coupling"])
        self.iterations = int(cfg["iterations"])
        self.tol = float(cfg["tol"])

    @staticmethod
    def _flat(d: TaskData, split: str) -> torch.Tensor:
        return to_input(d.x[split].cpu()).flatten(1).double()

    def fit_closed_form(self, data: list[TaskData], test: bool = True) -> dict:
        T = len(data)
        fit = fit_mtda([self._flat(d, "train") for d in data], [d.y["train"].cpu() for d in data],
                       [d.num_classes for d in data], self.common_dim, self.reg, self.coupling,
                       self.iterations, self.tol)
        self.projections = [(mu, proj) for mu, proj in zip(fit.mus, fit.projections)]
        self.means = fit.means
        history = [{"epoch": it, "mtda_objective": J} for it, J in enumerate(fit.objectives, 1)]
        final = history[-1]
        for t, d in enumerate(data):
            final[f"val_acc/{d.name}"] = self.accuracy(t, d, "val")
        final["val_acc/mean"] = sum(final[f"val_acc/{d.name}"] for d in data) / T
        if not test:  # a tune trial: the test split is not evaluated (nor read)
            return {"history": history, "test": {}}
        test = {f"test_acc/{d.name}": self.accuracy(t, d, "test") for t, d in enumerate(data)}
        test["test_acc/mean"] = sum(test.values()) / T
        return {"history": history, "test": test}

    def get_extra_state(self):
        return {"projections": getattr(self, "projections", None), "means": getattr(self, "means", None)}

    def set_extra_state(self, state) -> None:
        self.projections, self.means = state["projections"], state["means"]

    def project(self, t: int, x: torch.Tensor) -> torch.Tensor:
        """Task t's discriminant features z' (within-class whitened)."""
        mu, proj = self.projections[t]
        return (x - mu) @ proj

    def predict(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.project(t, x), self.means[t]).argmin(1)

    def accuracy(self, t: int, d: TaskData, split: str) -> float:
        return (self.predict(t, self._flat(d, split)) == d.y[split].cpu()).double().mean().item()
