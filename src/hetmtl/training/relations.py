"""The task-relationship matrix R for the ``prior`` setting (protocol section 4).

The paper obtains R "through cross-validation experiments". Ours: for every
pair (i, j) of a group's tasks and every seed of ``relations.seeds``, train
hard sharing on the pair, and the two tasks' single-task networks on the same
schedule (the same number of steps per task), for ``relations.epochs`` epochs,
and compare VALIDATION accuracy (the test split is never touched): gain_ij =
mean over seeds of the two tasks' mean accuracy gain from training together,
R_ij = R_ji = sigmoid(gain_ij / temperature), R_ii = 1.
R_ij >= 0.5 means joint training did not hurt. A matrix given in
``params/grid.yaml`` (``relations.given.<group>``) replaces the estimate.
:func:`relations_job` is the stage's job: it executes a resolved stage
(:func:`hetmtl.resolve.resolve_relations`).
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from hetmtl import files
from hetmtl.data.tasks import TaskData, load_task
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.methods.registry import RELATIONS_ALONE, RELATIONS_TOGETHER
from hetmtl.models import BACKBONES
from hetmtl.resolve import ResolvedRelations
from hetmtl.runs import TrainConfig
from hetmtl.tracking.mlflow_store import RunLogger, git_commit
from hetmtl.training.device import pick_device, set_determinism
from hetmtl.training.loop import epoch_line, fit


def _val(method_name, data: list[TaskData], spec, cfg: TrainConfig, method_cfg: dict,
         freeze_blocks: int = 0) -> list[float]:
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    method = METHODS[method_name](tasks, spec, method_cfg, cfg.seed)
    if freeze_blocks:  # as the training jobs freeze them (training.freeze_blocks)
        method.freeze_blocks(freeze_blocks)
    what = f"[relations] {method_name} {'+'.join(d.name for d in data)} seed {cfg.seed}"
    clock = {"last": time.time()}

    def on_epoch(epoch: int, metrics: dict, state: dict) -> None:  # one line per epoch, in the job's log
        now = time.time()
        print(f"{what}: {epoch_line(epoch, cfg.epochs, metrics, now - clock['last'])}", flush=True)
        clock["last"] = now

    history = fit(method, data, cfg, data[0].y["train"].device, on_epoch=on_epoch, progress=False)["history"]
    return [history[-1][f"val_acc/{d.name}"] for d in data]


def estimate(data: Callable[[int], list[TaskData]], spec, cfg: TrainConfig, temperature: float,
             method_cfg: dict, seeds: list[int], freeze_blocks: int = 0) -> tuple[torch.Tensor, dict]:
    """R (T x T) and the validation accuracies behind it.

    For every pair (i, j) and seed: hard sharing on the pair against the two
    tasks' single-task networks trained side by side on the SAME joint schedule
    (one batch of each task per step, an epoch the larger task's batch count),
    so alone and together get the same number of optimisation steps per task
    and R measures sharing, not extra training. gain_ij is the mean over seeds
    of the two tasks' mean validation-accuracy gain; its standard deviation over
    seeds is reported beside R. ``data(seed)`` gives the tasks cut into that
    seed's split, so the spread covers the split as well as the initialisation.
    """
    T = len(data(seeds[0]))
    R = torch.eye(T, dtype=torch.float64)
    spread = torch.zeros(T, T, dtype=torch.float64)
    detail = {"seeds": list(seeds), "pairs": {}}
    for i, j in itertools.combinations(range(T), 2):
        gains, runs = [], []
        for seed in seeds:
            d = data(seed)
            c = replace(cfg, seed=seed, flip=tuple(cfg.flip[k] for k in (i, j)) if cfg.flip else ())
            alone = _val(RELATIONS_ALONE, [d[i], d[j]], spec, c, method_cfg, freeze_blocks)
            together = _val(RELATIONS_TOGETHER, [d[i], d[j]], spec, c, method_cfg, freeze_blocks)
            gains.append(((together[0] - alone[0]) + (together[1] - alone[1])) / 2)
            runs.append({"seed": seed, "alone": alone, "together": together})
        g = torch.tensor(gains, dtype=torch.float64)
        R[i, j] = R[j, i] = torch.sigmoid(g.mean() / temperature)
        spread[i, j] = spread[j, i] = g.std() if len(gains) > 1 else 0.0
        detail["pairs"][f"{d[i].name}+{d[j].name}"] = {
            "gain_mean": float(g.mean()), "gain_std": float(spread[i, j]), "runs": runs}
    detail["gain_std"] = spread.tolist()
    return R, detail


def write_csv(path: Path, tasks: list[str], R: torch.Tensor, source: str,
              spread: torch.Tensor | None = None) -> None:
    """R, then (as comment lines, which :func:`hetmtl.resolve.read_relations` skips) the standard
    deviation over seeds of each pair's accuracy gain."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([f"# source: {source}"])
            w.writerow(["task", *tasks])
            for name, row in zip(tasks, R.tolist()):
                w.writerow([name, *(f"{v:.6f}" for v in row)])
            if spread is not None:
                w.writerow(["# gain std over seeds (accuracy), same order"])
                for name, row in zip(tasks, spread.tolist()):
                    w.writerow([f"# {name}", *(f"{v:.6f}" for v in row)])

    files.atomic_write(path, write)


def heatmap(path: Path, tasks: list[str], R: torch.Tensor, title: str, spread: torch.Tensor | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(R.numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            label = f"{float(R[i, j]):.2f}"
            if spread is not None and i != j:
                label += f"\n±{100 * float(spread[i, j]):.1f}pp"
            ax.text(j, i, label, ha="center", va="center",
                    color="white" if R[i, j] < 0.6 else "black", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="R")
    fig.tight_layout()
    try:
        files.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)


def relations_job(rel: ResolvedRelations, device_name: str = "auto", threads: int = 1) -> torch.Tensor:
    """Take R from params or estimate it (:func:`hetmtl.resolve.resolve_relations`);
    write CSV + heatmap; log to MLflow."""
    device = pick_device(device_name)
    set_determinism(device, threads)
    tasks = list(rel.tasks)
    spread = None
    if rel.given is not None:
        R, detail, source = torch.tensor(rel.given, dtype=torch.float64), {}, "given in params/grid.yaml"
    else:
        def data(seed):
            return [load_task(rel.suite, t, device, rel.split, seed) for t in tasks]
        R, detail = estimate(data, BACKBONES[rel.backbone], rel.train, rel.temperature,
                                       rel.method_params, list(rel.seeds), rel.freeze_blocks)
        source = (f"estimated on the validation split ({rel.epochs} epochs per pair, "
                  f"alone and together at the same steps per task, seeds {list(rel.seeds)})")
        spread = torch.tensor(detail["gain_std"], dtype=torch.float64)
    rel.png.parent.mkdir(parents=True, exist_ok=True)
    heatmap(rel.png, tasks, R, f"R, {rel.group} tasks ({rel.suite}); ± std of the gain over seeds", spread)
    root = rel.root
    logger = RunLogger(root, rel.run, {"git_commit": git_commit(root), "relations_source": source}, rel.run_params)
    r_metrics = {f"R/{a}/{b}": float(R[i, j]) for i, a in enumerate(tasks) for j, b in enumerate(tasks) if i < j}
    logger.log_metrics(r_metrics, step=0)
    detail_path = rel.detail
    files.write_text(detail_path, json.dumps({"source": source, **detail, "run_id": logger.run_id,
                                              "record": logger.record([], r_metrics, 0)}, indent=2))
    for p in (rel.png, detail_path):
        logger.log_artifact(p)
    logger.finish()
    write_csv(rel.csv, tasks, R, source, spread)  # last: the DAG output
    return R
