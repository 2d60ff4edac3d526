r"""MTDA: multi-task discriminant analysis in heterogeneous feature spaces.

After Zhang & Yeung (AAAI 2011), "Multi-task learning in heterogeneous feature
spaces"; no public code exists, so this is OUR DERIVATION of a method with the
published structure (per-task maps into a common space, one shared projection,
alternating generalised eigenvalue steps, nearest class mean), not a port.

Model. Task t's images are flattened at their own dimension d_t (its channels
and size) and centred; a per-task PCA keeps p_t = min(pca_dim, n_t - 1, d_t)
components, y = V_t^T (x - mu_t). A task-specific map W_t (p_t x k) takes y into
a k-dimensional common space and a projection P (k x m) shared by all tasks
gives the discriminant features z = P^T W_t^T y, m = min_t (C_t - 1).

Objective. With S_b^t, S_w^t the between- and within-class scatter of task t in
its PCA space (S_w regularised by ``reg`` times its mean eigenvalue),

    max_{W, P}  sum_t tr( P^T W_t^T S_b^t W_t P )
    s.t.        W_t^T S_w^t W_t = I_k  (each task whitened into the common space),
                P^T P = I_m.

Alternating steps, each a generalised eigenvalue problem:

* W-step (P fixed). The feasible W_t are W_t = G_t R_t, where G_t holds the top k
  generalised eigenvectors of (S_b^t, S_w^t) (G^T S_w G = I, eigenvalues Λ_t)
  and R_t is any orthogonal k x k matrix. tr(P^T R^T Λ_t R P) is largest when
  R_t turns the shared subspace span(P) onto the task's m leading discriminant
  directions, in order: R_t = argmin_R ||R P - E_m|| over orthogonal R
  (orthogonal Procrustes: E_m P^T = A Σ B^T gives R_t = A B^T), E_m the first m
  unit vectors.
* P-step (W fixed). max tr(P^T A P) / tr(P^T B P) with the pooled scatters
  A = sum_t W_t^T S_b^t W_t and B = sum_t W_t^T S_w^t W_t (= T I under the
  constraint): P = the top m generalised eigenvectors of (A, B), orthonormalised.
  This is where the tasks share: the common space is organised by all of them.

Iterations stop when the objective changes by less than ``tol`` (relative)
or after ``iterations``; its value per iteration is logged. Classification: nearest
class mean of the training set in z space.

With one task, z = E_m^T G^T y after the first W-step: exactly the projection
of plain LDA (top m generalised eigenvectors of (S_b, S_w)), so MTDA agrees with
LDA computed directly (a test holds it to that).
"""

from __future__ import annotations

import torch

from hetmtl.methods.base import Method
from hetmtl.training.data import TaskData, to_input


def generalized_eigh(A: torch.Tensor, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of A v = λ B v (B positive definite), descending, V^T B V = I."""
    L = torch.linalg.cholesky(B)
    Linv = torch.linalg.inv(L)
    vals, vecs = torch.linalg.eigh(Linv @ A @ Linv.T)
    vecs = Linv.T @ vecs
    order = torch.argsort(vals, descending=True)
    return vals[order], vecs[:, order]


def scatters(y: torch.Tensor, labels: torch.Tensor, reg: float) -> tuple[torch.Tensor, torch.Tensor]:
    n, p = y.shape
    mean = y.mean(0)
    sb = torch.zeros(p, p, dtype=y.dtype)
    sw = torch.zeros(p, p, dtype=y.dtype)
    for c in labels.unique():
        yc = y[labels == c]
        mc = yc.mean(0)
        sb += len(yc) * torch.outer(mc - mean, mc - mean)
        d = yc - mc
        sw += d.T @ d
    sb, sw = sb / n, sw / n
    sw += reg * (torch.trace(sw) / p) * torch.eye(p, dtype=y.dtype)
    return sb, sw


def procrustes(P: torch.Tensor, m: int) -> torch.Tensor:
    """Orthogonal R (k x k) minimising ||R P - E_m||."""
    k = P.shape[0]
    E = torch.eye(k, m, dtype=P.dtype)
    U, _, Vh = torch.linalg.svd(E @ P.T)
    return U @ Vh


class MTDA(Method):
    name = "mtda"
    deep = False

    def __init__(self, tasks, spec, cfg, seed):
        super().__init__(tasks, spec, cfg, seed)
        self.pca_dim = int(cfg.get("pca_dim", 100))
        self.common_dim = int(cfg.get("common_dim", 20))
        self.reg = float(cfg.get("reg", 1e-3))
        self.iterations = int(cfg.get("iterations", 20))
        self.tol = float(cfg.get("tol", 1e-8))

    @staticmethod
    def _flat(d: TaskData, split: str) -> torch.Tensor:
        return to_input(d.x[split].cpu()).flatten(1).double()

    def fit_closed_form(self, data: list[TaskData]) -> dict:
        T = len(data)
        m = min(d.num_classes for d in data) - 1
        pcas, G, Lam, Sb, Sw = [], [], [], [], []
        for d in data:
            x, y = self._flat(d, "train"), d.y["train"].cpu()
            mu = x.mean(0)
            _, _, Vh = torch.linalg.svd(x - mu, full_matrices=False)
            p = min(self.pca_dim, x.shape[0] - 1, x.shape[1])
            V = Vh[:p].T
            sb, sw = scatters((x - mu) @ V, y, self.reg)
            pcas.append((mu, V))
            Sb.append(sb)
            Sw.append(sw)
        k = max(m, min(self.common_dim, *(V.shape[1] for _, V in pcas)))
        for sb, sw in zip(Sb, Sw):
            vals, vecs = generalized_eigh(sb, sw)
            G.append(vecs[:, :k])
            Lam.append(vals[:k])
        P = torch.eye(k, m, dtype=torch.float64)
        history, previous = [], None
        for it in range(1, self.iterations + 1):
            W = [g @ procrustes(P, m) for g in G]  # W-step
            A = sum(w.T @ sb @ w for w, sb in zip(W, Sb))
            B = sum(w.T @ sw @ w for w, sw in zip(W, Sw))
            _, vecs = generalized_eigh(A, B)  # P-step
            P, _ = torch.linalg.qr(vecs[:, :m])
            W = [g @ procrustes(P, m) for g in G]
            objective = float(sum(torch.trace(P.T @ w.T @ sb @ w @ P) for w, sb in zip(W, Sb)))
            history.append({"epoch": it, "mtda_objective": objective})
            if previous is not None and abs(objective - previous) <= self.tol * abs(previous):
                break
            previous = objective
        self.projections = [(mu, V @ w @ P) for (mu, V), w in zip(pcas, W)]
        self.means = []
        for t, d in enumerate(data):
            z, y = self.project(t, self._flat(d, "train")), d.y["train"].cpu()
            self.means.append(torch.stack([z[y == c].mean(0) for c in range(d.num_classes)]))
        final = history[-1]
        for t, d in enumerate(data):
            final[f"val_acc/{d.name}"] = self.accuracy(t, d, "val")
        final["val_acc/mean"] = sum(final[f"val_acc/{d.name}"] for d in data) / T
        test = {f"test_acc/{d.name}": self.accuracy(t, d, "test") for t, d in enumerate(data)}
        test["test_acc/mean"] = sum(test.values()) / T
        return {"history": history, "test": test}

    def get_extra_state(self):
        return {"projections": getattr(self, "projections", None), "means": getattr(self, "means", None)}

    def set_extra_state(self, state) -> None:
        self.projections, self.means = state["projections"], state["means"]

    def project(self, t: int, x: torch.Tensor) -> torch.Tensor:
        mu, proj = self.projections[t]
        return (x - mu) @ proj

    def predict(self, t: int, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.project(t, x), self.means[t]).argmin(1)

    def accuracy(self, t: int, d: TaskData, split: str) -> float:
        return (self.predict(t, self._flat(d, split)) == d.y[split].cpu()).double().mean().item()
