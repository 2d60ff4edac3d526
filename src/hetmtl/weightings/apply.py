"""A weighting applied to one training step: the backward pass it makes.

Loss weightings (TorchJD scalarizers) back-propagate ``scalarizer(losses) +
regulariser``. Gradient aggregators (TorchJD aggregators) take the Jacobian of
the task losses with respect to the SHARED coordinates only (the parameters,
or rows of a parameter, that more than one task uses:
:meth:`hetmtl.methods.base.Method.shared_parameters`), aggregate it into one
vector, and write it as those coordinates' gradient; every other coordinate
gets the plain sum of the task losses' gradients, which there is its one
task's own gradient. Ours (as LibMTL): the regularisers (the L2 penalty, soft
sharing's coupling) are added to every coordinate outside the aggregation.

Randomised weightings (rlw, random, PCGrad's order) draw from a generator
seeded by (seed, epoch, step), so a run and its resumption draw the same.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from torch import nn
from torchjd.autojac import jac

Shared = list[tuple[torch.Tensor, torch.Tensor | None]]  # (parameter, rows shared or None: all of it)


class Weighting(nn.Module):
    """One weighting: ``name``, ``kind`` ("loss" or "gradient") and its TorchJD object."""

    def __init__(self, name: str, kind: str, impl: nn.Module, randomised: bool = False):
        super().__init__()
        self.name, self.kind, self.impl, self.randomised = name, kind, impl, randomised

    # -------------------------------------------------------------- one step

    def backward(self, task_losses: torch.Tensor, regulariser: torch.Tensor | None, shared: Shared,
                 params: list[torch.Tensor], rng_key: int = 0) -> None:
        """Accumulate this step's gradient into ``.grad`` of ``params`` (every
        trainable parameter of the method)."""
        with _seeded(rng_key, task_losses.device) if self.randomised else contextlib.nullcontext():
            if self.kind == "loss":
                total = self.impl(task_losses)
                if regulariser is not None:
                    total = total + regulariser
                total.backward()
            else:
                self._aggregate(task_losses, regulariser, shared, params)

    def _aggregate(self, task_losses, regulariser, shared: Shared, params) -> None:
        shared = [(p, rows) for p, rows in shared if p.requires_grad and (rows is None or bool(rows.any()))]
        if not shared:  # nothing shared: every coordinate keeps its own task's gradient
            total = task_losses.sum() if regulariser is None else task_losses.sum() + regulariser
            total.backward()
            return
        ids = {id(p) for p, _ in shared}
        jacobians = jac(task_losses, [p for p, _ in shared], retain_graph=True)  # each [T, *p.shape]
        T = task_losses.shape[0]
        matrix = torch.cat([(J if rows is None else J[:, rows]).reshape(T, -1)
                            for (p, rows), J in zip(shared, jacobians)], dim=1)
        with warnings.catch_warnings():  # cvxpy on Nash-MTL's problem, every step: "not DPP"
            warnings.filterwarnings("ignore", message=".*not DPP.*")
            aggregated = self.impl(matrix.float()).to(matrix.dtype)
        offset = 0
        for (p, rows), J in zip(shared, jacobians):
            grad = J.sum(0)  # where a row of p is not shared: its one task's gradient
            if rows is None:
                n = grad.numel()
                grad = aggregated[offset:offset + n].view_as(grad)
            else:
                n = grad[rows].numel()
                grad[rows] = aggregated[offset:offset + n].view_as(grad[rows])
            offset += n
            grad = torch.empty_like(p).copy_(grad)  # in p's memory format (channels_last)
            p.grad = grad if p.grad is None else p.grad + grad
        others = [p for p in params if p.requires_grad and id(p) not in ids]
        if others:
            torch.autograd.backward(task_losses.sum(), inputs=others, retain_graph=regulariser is not None)
        if regulariser is not None:
            regulariser.backward()

    # ------------------------------------------------------------ per epoch

    def end_epoch(self) -> None:
        """Roll an epoch-level history (DWA's average losses)."""
        step = getattr(self.impl, "step", None)
        if callable(step):
            step()

    def weights(self) -> dict[str, float]:
        """The learned weights, to log (uncertainty's exp(-s_t) / 2: TorchJD's UW)."""
        log_var = getattr(self.impl, "log_var", None)
        if log_var is None:
            return {}
        return {str(t): w for t, w in enumerate((0.5 * torch.exp(-log_var.detach())).tolist())}

    # ------------------------------------------------------------ resumption

    def snapshot(self) -> dict:
        """The state a resumed run needs beyond ``state_dict()``: the plain
        attributes of the TorchJD objects (DWA's average losses, GradVac's EMA,
        Nash-MTL's last weights); a solver's problem is rebuilt from them."""
        out = {}
        for path, module in self.impl.named_modules():
            buffers = set(module._buffers)  # in state_dict() when set (GradVac's EMA)
            values = {k: v for k, v in vars(module).items()
                      if isinstance(v, (torch.Tensor, np.ndarray, float, int, list, tuple)) and k != "training"}
            values.update({f"buffer:{k}": v for k, v in module._buffers.items() if k in buffers})
            out[path] = values
        return out

    def restore(self, snapshot: dict, device: torch.device | None = None) -> None:
        """Set what :meth:`snapshot` saved (a checkpoint is loaded on the CPU: the
        attributes' tensors go to ``device``, buffers stay where TorchJD keeps
        them); a solver's problem (Nash-MTL's cvxpy problem) is rebuilt."""
        modules = dict(self.impl.named_modules())
        for path, values in snapshot.items():
            module = modules[path]
            for k, v in values.items():
                if not k.startswith("buffer:") and device is not None:
                    v = _to(v, device)
                setattr(module, k.removeprefix("buffer:"), v)
            rebuild = getattr(module, "_init_optim_problem", None)  # TorchJD builds it at step 0 only
            if callable(rebuild) and getattr(module, "step", 0):
                rebuild()

    def shared_count(self, shared: Shared) -> int:
        """How many coordinates the aggregator acts on (0: it is the plain sum)."""
        return sum(p.numel() if rows is None else int(p[rows].numel()) for p, rows in shared if p.requires_grad)


def _to(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    return value


@contextlib.contextmanager
def _seeded(key: int, device: torch.device):
    """Draws inside come from a generator seeded by ``key`` (restored after)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(key)
        yield
