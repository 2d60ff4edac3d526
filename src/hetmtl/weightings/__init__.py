"""The weighting axis (LibMTL's design): how the tasks' losses become one update,
orthogonal to the architecture (the method).

A weighting is either a **loss weighting** (a TorchJD scalarizer: the weighted
sum of the task losses is back-propagated as usual) or a **gradient
aggregator** (a TorchJD aggregator: the per-task gradients of the parameters
that more than one task uses, :meth:`hetmtl.methods.base.Method.shared_parameters`,
are aggregated into one; every task-specific parameter keeps its own task's
gradient). ``training.weighting`` names the suite's weighting; a sweep of
``weighting`` (params/grid.yaml) runs several side by side (Table 7); each
weighting's parameters live in ``params/weightings.yaml``.

Both kinds come from TorchJD (pinned in requirements.lock); this package only
maps names to them (:data:`WEIGHTINGS`) and applies them to the shared
parameters (:mod:`hetmtl.weightings.apply`).
"""

from __future__ import annotations

from hetmtl.weightings.registry import KINDS, WEIGHTINGS, build

__all__ = ["KINDS", "WEIGHTINGS", "build"]
