"""The device a job runs on, and its threads and determinism."""

from __future__ import annotations

import torch

from hetmtl.errors import UserError


def pick_device(name: str, real_data: bool = False) -> torch.device:
    """``auto``: CUDA when there is one. A job of a suite on the real archives (VGG-16 at 224 px) does not
    fall back to the CPU silently: without a GPU it stops, unless asked for the CPU by name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if real_data:
            raise UserError("no GPU (torch.cuda.is_available() is False) for a job on the real archives, which "
                            "would train at full scale on the CPU for days: run it on a GPU machine, or ask for the "
                            "CPU by name (--device cpu; Snakemake: --config device=cpu)")
        return torch.device("cpu")
    return torch.device(name)


def set_determinism(device: torch.device, threads: int) -> None:
    """Threads, and deterministic algorithms on the CPU. The C switch directly:
    ``torch.use_deterministic_algorithms`` also imports torch._inductor to set
    its config (2.6 s of every job's start), and nothing here compiles."""
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch._C._set_deterministic_algorithms(True, warn_only=False)


LOG_NAME = "train.log"
