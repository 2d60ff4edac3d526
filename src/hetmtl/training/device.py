"""The device a job runs on, and its threads and determinism."""

from __future__ import annotations

import torch


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_determinism(device: torch.device, threads: int) -> None:
    """Threads, and deterministic algorithms on the CPU. The C switch directly:
    ``torch.use_deterministic_algorithms`` also imports torch._inductor to set
    its config (2.6 s of every job's start), and nothing here compiles."""
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch._C._set_deterministic_algorithms(True, warn_only=False)


LOG_NAME = "train.log"
