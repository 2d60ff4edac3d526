"""Every weighting by name: its kind and the TorchJD class that computes it.

No torch here (the params loader reads the names); :func:`build` imports
TorchJD when a job builds one. A weighting's parameters are the keyword
arguments of its TorchJD class given in ``params/weightings.yaml`` (every
registered weighting has an entry there; a keyword it leaves out takes TorchJD's
default; the number of tasks is filled in here).
"""

from __future__ import annotations

# name -> (kind, "module:Class"). "loss": a torchjd.scalarization scalarizer;
# "gradient": a torchjd.aggregation aggregator over the shared parameters.
WEIGHTINGS: dict[str, tuple[str, str]] = {
    "equal": ("loss", "torchjd.scalarization:Sum"),  # the plain sum (the paper's objective)
    "uncertainty": ("loss", "torchjd.scalarization:UW"),  # Kendall, Gal & Cipolla 2018
    "dwa": ("loss", "torchjd.scalarization:DWA"),  # Liu, Johns & Davison 2019
    "rlw": ("loss", "torchjd.scalarization:Random"),  # random loss weighting, Lin et al. 2022
    "upgrad": ("gradient", "torchjd.aggregation:UPGrad"),  # Quinton & Rey 2024
    "mgda": ("gradient", "torchjd.aggregation:MGDA"),  # Sener & Koltun 2018
    "pcgrad": ("gradient", "torchjd.aggregation:PCGrad"),  # Yu et al. 2020
    "cagrad": ("gradient", "torchjd.aggregation:CAGrad"),  # Liu et al. 2021
    "imtl_g": ("gradient", "torchjd.aggregation:IMTLG"),  # Liu et al. 2021
    "nash_mtl": ("gradient", "torchjd.aggregation:NashMTL"),  # Navon et al. 2022
    "aligned_mtl": ("gradient", "torchjd.aggregation:AlignedMTL"),  # Senushkin et al. 2023
    "gradvac": ("gradient", "torchjd.aggregation:GradVac"),  # Wang et al. 2021
    "fairgrad": ("gradient", "torchjd.aggregation:FairGrad"),  # Ban & Ji 2024
    "random": ("gradient", "torchjd.aggregation:Random"),  # random gradient weighting, Lin et al. 2022
}

KINDS = ("loss", "gradient")

# Those that draw random numbers (PCGrad and GradVac: their order of projections): each
# step's draws come from a generator seeded by (seed, epoch, step).
RANDOMISED = frozenset({"rlw", "random", "pcgrad", "gradvac"})

# The keyword a TorchJD class takes for the number of tasks (filled in by build, not by params).
_TASK_COUNT = {"uncertainty": "shape", "nash_mtl": "n_tasks"}


def build(name: str, params: dict, num_tasks: int):
    """The weighting ``name`` with its parameters, for ``num_tasks`` tasks."""
    import importlib

    from hetmtl.weightings.apply import Weighting

    kind, target = WEIGHTINGS[name]
    module, cls = target.split(":")
    kwargs = dict(params)
    if name in _TASK_COUNT:
        kwargs[_TASK_COUNT[name]] = num_tasks
    return Weighting(name, kind, getattr(importlib.import_module(module), cls)(**kwargs), name in RANDOMISED)
