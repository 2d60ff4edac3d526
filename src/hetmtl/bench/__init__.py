"""``hetmtl bench``: what a suite costs, measured and counted (issue 15).

- :mod:`~hetmtl.bench.shapes`: each task's channels, classes and image counts
  (from its prepared manifest, or estimated from params before it is prepared);
- :mod:`~hetmtl.bench.flops`: FLOPs of one training step and of one evaluated
  image, counted by torch's FLOP counter on the meta device (no compute);
- :mod:`~hetmtl.bench.measure`: the real step (:class:`hetmtl.training.step.TrainStep`)
  timed, a bare PyTorch loop on the same step, and the harness (``fit``) around it;
- :mod:`~hetmtl.bench.estimate`: every job of the suite's grid costed from the
  counted FLOPs and a rate (measured, or a GPU's peak times an assumed MFU);
- :mod:`~hetmtl.bench.peaks`: bf16 dense peaks of known GPUs (overridable);
- :mod:`~hetmtl.bench.run`: the command, its table and its JSON.
"""
