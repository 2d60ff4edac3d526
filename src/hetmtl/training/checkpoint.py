"""Checkpoints written atomically each epoch; resume only from a matching key."""

from __future__ import annotations

from pathlib import Path

import torch

from hetmtl import files


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
