"""The task-relationship matrix R for the ``prior`` setting (SPEC section 4).

The paper obtains R "through cross-validation experiments". Ours: for every
pair (i, j) of a group's tasks, train hard sharing on the pair and each task
alone for ``relations.epochs`` epochs, and compare VALIDATION accuracy (the
test split is never touched): gain_ij = mean of the two tasks' accuracy gains
from training together, R_ij = R_ji = sigmoid(gain_ij / temperature), R_ii = 1.
R_ij >= 0.5 means joint training did not hurt. A matrix given in
``params/grid.yaml`` (``relations.given.<group>``) replaces the estimate.
"""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path

import torch

from hetmtl.methods import METHODS, TaskInfo
from hetmtl.training.data import TaskData
from hetmtl.training.loop import TrainConfig, fit


def _val(method_name, data: list[TaskData], spec, cfg: TrainConfig, method_cfg: dict) -> list[float]:
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    method = METHODS[method_name](tasks, spec, method_cfg, cfg.seed)
    history = fit(method, data, cfg, data[0].y["train"].device, progress=False)["history"]
    return [history[-1][f"val_acc/{d.name}"] for d in data]


def estimate(data: list[TaskData], spec, cfg: TrainConfig, temperature: float,
             method_cfg: dict) -> tuple[torch.Tensor, dict]:
    """R (T x T) and the validation accuracies behind it."""
    T = len(data)
    alone = [_val("single_task", [d], spec, cfg, method_cfg)[0] for d in data]
    R = torch.eye(T, dtype=torch.float64)
    detail = {"alone": dict(zip([d.name for d in data], alone)), "pairs": {}}
    for i, j in itertools.combinations(range(T), 2):
        acc_i, acc_j = _val("hard_sharing", [data[i], data[j]], spec, cfg, method_cfg)
        gain = ((acc_i - alone[i]) + (acc_j - alone[j])) / 2
        R[i, j] = R[j, i] = torch.sigmoid(torch.tensor(gain / temperature, dtype=torch.float64))
        detail["pairs"][f"{data[i].name}+{data[j].name}"] = {"gain": gain, "acc": [acc_i, acc_j]}
    return R, detail


def write_csv(path: Path, tasks: list[str], R: torch.Tensor, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"# source: {source}"])
        w.writerow(["task", *tasks])
        for name, row in zip(tasks, R.tolist()):
            w.writerow([name, *(f"{v:.6f}" for v in row)])
    os.replace(tmp, path)


def read_csv(path: Path, tasks: list[str]) -> torch.Tensor:
    with open(path) as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if rows[0][1:] != tasks:
        raise ValueError(f"{path}: tasks {rows[0][1:]} differ from the group's {tasks}")
    return torch.tensor([[float(v) for v in r[1:]] for r in rows[1:]], dtype=torch.float32)


def heatmap(path: Path, tasks: list[str], R: torch.Tensor, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(R.numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{float(R[i, j]):.2f}", ha="center", va="center",
                    color="white" if R[i, j] < 0.6 else "black", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="R")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".part.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
