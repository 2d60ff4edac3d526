"""Data augmentation on the device, on the uint8 batches (protocol section 3, 8.6 of issue 8).

A random crop of the zero-padded image (``crop_pad`` pixels each side, the
image size kept) and a horizontal flip where it is meaningful for the task (not
for characters and digits: a mirrored letter is another glyph or none). Both
are drawn for a whole epoch at once from a generator seeded by (run seed, task,
epoch), like the batch order, so every method sees the same augmented batches
and a resumed run continues exactly. No Python loop over images: one gather per
batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class EpochAugment:
    offsets: torch.Tensor  # (steps, batch, 2) crop offsets in [0, 2 * pad]
    flips: torch.Tensor  # (steps, batch) bool
    pad: int
    # per step: does any image of the batch flip? Held on the host, so that a step on
    # CUDA does not wait for the device to answer it
    any_flip: tuple[bool, ...] = field(default=())

    def to(self, device) -> EpochAugment:
        """The epoch's draws on ``device`` (moved once per epoch, not per step)."""
        return replace(self, offsets=self.offsets.to(device), flips=self.flips.to(device))

    def apply(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Augment batch ``step`` (uint8 N x C x H x W) on its device."""
        if self.pad:
            N, C, H, W = x.shape
            padded = F.pad(x, (self.pad,) * 4)
            oy, ox = self.offsets[step, :N, 0].to(x.device), self.offsets[step, :N, 1].to(x.device)
            rows = (oy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(W, device=x.device))[:, None, None, :]
            n = torch.arange(N, device=x.device)[:, None, None, None]
            c = torch.arange(C, device=x.device)[None, :, None, None]
            x = padded[n, c, rows, cols]
        flips = self.flips[step, :x.shape[0]].to(x.device)
        if self.any_flip[step] if self.any_flip else bool(flips.any()):
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        return x


def epoch_augment(crop_pad: int, flip: bool, steps: int, batch_size: int, seed: int, task_index: int,
                  epoch: int) -> EpochAugment | None:
    """The epoch's augmentation of one task, or None when the suite has none."""
    if not crop_pad and not flip:
        return None
    g = torch.Generator().manual_seed(((seed * 7919 + task_index) * 104729 + epoch) % (2**63) + 1)
    offsets = torch.randint(0, 2 * crop_pad + 1, (steps, batch_size, 2), generator=g)
    flips = (torch.rand(steps, batch_size, generator=g) < 0.5) & flip
    return EpochAugment(offsets, flips, crop_pad, tuple(flips.any(1).tolist()))
