"""Checkpoints written atomically after an epoch; resume only from a matching key.

How often: :class:`Cadence`. A checkpoint of the paper suite's models is GBs
(four VGG-16 and their momentum: 4.4 GB), which would take longer to write than
an epoch of the small groups takes to train; a checkpoint is therefore written
after an epoch only when the training time since the last one is at least
``1 / share`` times what the last one took to write (ours: share 0.05, so
checkpoints cost about 5% of a job, judged by the last write; the first epoch
always writes one, whatever it costs). A
crash then loses at most that much training, and a resumed run still continues
exactly (every epoch's state is a valid start; which ones are written does not
change any number).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from hetmtl import files

SHARE = 0.05  # the share of a job's time its checkpoints aim at (ours)


def save(path: Path, state: dict) -> None:
    files.save_torch(path, state)


def load(path: Path, key: dict) -> dict | None:
    """The checkpoint at ``path`` if it was written for ``key``, else None."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("key") != key:
        print(f"[hetmtl] ignoring stale checkpoint {path} (written for other parameters)")
        return None
    return state


class Cadence:
    """Whether an epoch's checkpoint is due (see the module's docstring)."""

    def __init__(self, share: float = SHARE):
        self.share = share
        self.since = time.perf_counter()
        self.write_s = 0.0  # what the last checkpoint took to write (none yet: the first is due)

    def save(self, path: Path, state: dict) -> bool:
        """Write ``state`` to ``path`` if due; whether it was written."""
        started = time.perf_counter()
        if started - self.since < self.write_s / self.share:
            return False
        save(path, state)
        self.since = time.perf_counter()
        self.write_s = self.since - started
        return True
