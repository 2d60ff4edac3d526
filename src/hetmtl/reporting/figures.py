"""The paper's figures (SPEC section 7), drawn from logged runs with matplotlib.

* Fig. 8  overall comparison: average test accuracy per method, one panel per table.
* Fig. 9  threshold sweep: MTAL's average test accuracy against rho, per group.
* Fig. 10 / 11 activation maps of shared kernels in the first / second conv layer.
* Fig. 12 MTAL's per-task training-loss curves, per group.

Figures 8, 9 and 12 are pure functions of run records; 10 and 11 load a
finished MTAL model and run test images of the tasks that share a kernel.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hetmtl import files  # noqa: E402
from hetmtl.reporting.tables import AVERAGE, DISPLAY  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    if fig._suptitle is not None:  # keep the (two-line) suptitle clear of the panel titles
        fig.tight_layout(rect=(0, 0, 1, 0.86))
    try:
        return files.atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:], dpi=130,
                                                                bbox_inches="tight"))
    finally:
        plt.close(fig)


def overall_comparison(tables: dict[str, pd.DataFrame], titles: dict[str, str], path: Path, note: str) -> Path:
    """Fig. 8: one bar per method (average over tasks, mean over seeds, 95% CI bars)."""
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.8), sharey=True, squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        means = 100 * table[(AVERAGE, "mean")]
        stds = 100 * table[(AVERAGE, "ci")].fillna(0)
        labels = [DISPLAY.get(m, m) for m in table.index]
        colours = ["tab:red" if m.startswith("mtal") else "tab:blue" for m in table.index]
        ax.bar(range(len(means)), means, yerr=stds, color=colours, capsize=3)
        ax.set_xticks(range(len(means)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(titles[name], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("average test accuracy (%), 95% CI")
    fig.suptitle("Fig. 8: overall comparison" + (f"\n{note}" if note else ""), fontsize=9)
    return _save(fig, path)


def threshold_sweep(records: pd.DataFrame, path: Path, parameter: str, note: str) -> Path:
    """Fig. 9: mean ± std over seeds of the average test accuracy against the swept value."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    sel = records[records.metric == "test_acc/mean"]
    for group, g in sel.groupby("group"):
        stats = g.groupby("sweep_value")["value"].agg(["mean", "std", "count"]).sort_index()
        std = stats["std"].fillna(0)
        ax.errorbar(stats.index, 100 * stats["mean"], yerr=100 * std, marker="o", capsize=3, label=group)
    ax.set_xlabel(f"{parameter} (similarity threshold)")
    ax.set_ylabel("average test accuracy (%)")
    ax.legend(title="task group", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Fig. 9: threshold selection" + (f"\n{note}" if note else ""), fontsize=9)
    return _save(fig, path)


def loss_curves(histories: dict[str, pd.DataFrame], path: Path, note: str) -> Path:
    """Fig. 12: MTAL's per-task training loss per epoch (mean over seeds), one panel per group."""
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.4), squeeze=False)
    for ax, (group, h) in zip(axes[0], histories.items()):
        for task, g in h.groupby("task"):
            curve = g.groupby("epoch")["value"].mean()
            ax.plot(curve.index, curve.values, marker=".", label=task)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(f"({chr(97 + list(histories).index(group))}) {group} tasks", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Fig. 12: MTAL training-loss curves" + (f"\n{note}" if note else ""), fontsize=9)
    return _save(fig, path)


def activation_maps(method, images: list, layer: int, layer_name: str, path: Path, title: str,
                    max_kernels: int = 4) -> Path:
    """Fig. 10 / 11: for kernels shared by several tasks, each task's activation map.

    ``images[t]`` is one float test image batch (1 x C x H x W) of task t. Rows:
    shared kernels (the most widely shared first); columns: per task, its input
    and the shared kernel's response.
    """
    import torch

    T = len(method.tasks)
    shared = method.shared_kernels(layer)
    shared = shared[:max_kernels]
    with torch.no_grad():
        acts = [method.activations(t, images[t], layer)[0] for t in range(T)]
    rows = max(1, len(shared))
    fig, axes = plt.subplots(rows, 2 * T, figsize=(1.5 * 2 * T, 1.6 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not shared:
        axes[0][0].text(0, 0.5, f"no kernel of {layer_name} is shared between tasks in this run",
                        fontsize=9, transform=axes[0][0].transAxes)
    for r, group in enumerate(shared):
        by_task = dict(group)
        for t in range(T):
            if t not in by_task:
                continue
            img = images[t][0].float()
            img = img.mean(0) if img.shape[0] > 1 else img[0]
            axes[r][2 * t].imshow(img.numpy(), cmap="gray")
            axes[r][2 * t + 1].imshow(acts[t][by_task[t]].numpy(), cmap="magma")
            if r == 0:
                axes[r][2 * t].set_title(method.tasks[t].name, fontsize=8)
                axes[r][2 * t + 1].set_title("activation", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def empty_figure(path: Path, title: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, wrap=True)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


__all__ = ["overall_comparison", "threshold_sweep", "loss_curves", "activation_maps", "empty_figure"]
