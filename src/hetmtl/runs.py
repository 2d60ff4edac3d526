"""The identity of a run and the configuration its training loop reads.

:class:`RunId` names a run: a grid cell (suite, group, setting, method, seed)
or one point of a sweep (the same, plus the sweep's name and value). It is the
one identity that paths, MLflow tags, receipts and collection use; the
parameters expand the grid into them (:meth:`hetmtl.params.Params.runs`) and
:func:`hetmtl.resolve.resolve` resolves one into everything its job reads.

No torch here: the Snakefile and the CLI use it before any job imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hetmtl import paths


@dataclass(frozen=True)
class TrainConfig:
    """What the training loop reads (:func:`hetmtl.training.loop.fit`)."""
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    l2_lambda: float
    nan_check_every: int
    seed: int
    divergence_factor: float = 100.0  # check_epoch: the bound on an epoch's train loss, in units of ln(classes)
    input_norm: str = "symmetric"  # hetmtl.data to_input: symmetric (scratch) or imagenet
    crop_pad: int = 0  # augmentation: random crop of the image padded by this much (0: none)
    flip: tuple[bool, ...] = ()  # augmentation: horizontal flip, per task (where meaningful)
    weighting: str = "equal"  # hetmtl.weightings: how the task losses become one update (joint methods)
    weighting_params: tuple[tuple[str, object], ...] = ()  # its parameters (params/weightings.yaml)


@dataclass(frozen=True, order=True)
class RunId:
    """One run of a suite: a grid cell, or a sweep point (``sweep`` and ``value`` set).

    ``run[field]`` reads a field (as the dicts this replaced did)."""
    suite: str
    group: str
    setting: str
    method: str
    seed: int
    sweep: str | None = None
    value: float | str | None = None  # a number, or a name (a sweep of the weighting)

    def __getitem__(self, name: str):
        return getattr(self, name)

    @property
    def key(self) -> dict:
        """The grid cell: what a receipt records as ``key`` and MLflow as tags."""
        return dict(suite=self.suite, group=self.group, setting=self.setting, method=self.method, seed=self.seed)

    @property
    def _sweep_where(self) -> dict:
        return dict(suite=self.suite, sweep=self.sweep, group=self.group, value=self.value, seed=self.seed)

    @property
    def receipt(self) -> Path:
        return paths.sweep_receipt(**self._sweep_where) if self.sweep else paths.receipt(**self.key)

    @property
    def model(self) -> Path:
        return self.receipt.with_name("model.pt")

    @property
    def checkpoint(self) -> Path:
        return paths.sweep_checkpoint(**self._sweep_where) if self.sweep else paths.checkpoint(**self.key)

    @property
    def parent(self) -> str:
        """The MLflow parent run: the (group, setting), or the group's sweep."""
        return f"{self.group}/sweep_{self.sweep}" if self.sweep else f"{self.group}/{self.setting}"

    @property
    def run_name(self) -> str:
        if self.sweep:
            return f"{self.method}/{self.sweep}={paths.value_text(self.value)}/seed{self.seed}"
        return f"{self.method}/seed{self.seed}"

    @property
    def tags(self) -> dict[str, str]:
        """The tags that say which run this is: what collection checks a receipt's run against."""
        out = {k: str(v) for k, v in self.key.items()}
        if self.sweep:
            out.update({"sweep": self.sweep, "sweep_value": paths.value_text(self.value)})
        return out

    @property
    def command(self) -> str:
        """The command that trains this run alone."""
        if self.sweep:
            return (f"hetmtl sweep --suite {self.suite} --sweep {self.sweep} --group {self.group} "
                    f"--value {paths.value_text(self.value)} --seed {self.seed}")
        return (f"hetmtl train --suite {self.suite} --group {self.group} --setting {self.setting} "
                f"--method {self.method} --seed {self.seed}")
