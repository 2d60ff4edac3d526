"""The paper's figures (protocol section 7), drawn from logged runs with matplotlib.

* Fig. 8  overall comparison: average test accuracy per method, one panel per table.
* Fig. 9  threshold sweep: MTAL's average test accuracy against rho, per group.
* Fig. 10 / 11 activation maps of shared kernels in the first / second conv layer.
* Fig. 12 MTAL's per-task training-loss curves, per group.
* Fig. 13 (ours) each task pair's shared fraction against its R, per MTAL reading.

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
from hetmtl.reporting.catalogue import FIGURE_FORMATS as FORMATS  # noqa: E402
from hetmtl.reporting.tables import AVERAGE, display_name  # noqa: E402

BASELINE = "tab:blue"


def _save(fig, path: Path) -> Path:
    """Write the figure as PNG (``path``) and as PDF beside it; the PNG's path."""
    path = Path(path).with_suffix(".png")
    try:
        for ext in FORMATS:
            files.atomic_write(path.with_suffix(f".{ext}"),
                               lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight"))
        return path
    finally:
        plt.close(fig)


def overall_figure(tables: dict[str, pd.DataFrame], titles: dict[str, str], note: str,
                   highlight: dict[str, str]):
    """Fig. 8; ``highlight``: method -> colour of the methods drawn in their own colour
    (params/report.yaml), the legend naming each by its display name; the rest: baselines."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MultipleLocator

    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 4.4), sharey=True, squeeze=False, layout="constrained")
    present, names, top, starred, tested = set(), {}, 100.0, False, False
    for ax, (name, table) in zip(axes[0], tables.items()):
        means = 100 * table[(AVERAGE, "mean")]
        ci = 100 * table[(AVERAGE, "ci")].fillna(0)
        top = max(top, float((means + ci).max()) + (STAR_ROOM if _any_star(table) else 0) if len(means) else top)
        labels = [display_name(table, m) for m in table.index]
        colours = [highlight.get(m, BASELINE) for m in table.index]
        present |= set(table.index)
        names.update((m, display_name(table, m)) for m in table.index)
        ax.bar(range(len(means)), means, yerr=ci, color=colours, capsize=3)
        for x, m in enumerate(table.index):  # the tables' p column: * where it is significant
            if significant(table, m):
                ax.text(x, float(means.iloc[x] + ci.iloc[x]) + 1, STAR, ha="center", va="bottom", fontsize=10)
        starred |= any(significant(table, m) for m in table.index)
        tested |= "holm" in table.attrs
        ax.set_xticks(range(len(means)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(titles[name], fontsize=9)
        ax.yaxis.set_major_locator(MultipleLocator(20))
        ax.yaxis.set_minor_locator(MultipleLocator(10))
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylim(0, top + 2 if top > 100 else 100)  # an interval (or a star) past 100%: drawn whole
    axes[0][0].set_ylabel("average test accuracy (%), 95% CI")
    legend = [(c, names[m]) for m, c in highlight.items() if m in present]
    legend += [(BASELINE, "baselines")] if present - set(highlight) else []
    handles = [Patch(color=c, label=text) for c, text in legend]
    if tested:  # the mark's meaning, wherever the tables test (even when nothing is significant)
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="none", marker="$*$", color="black", markersize=8,
                              label=SIGNIFICANCE_LEGEND + ("" if starred else " (none here)")))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.suptitle("Fig. 8: overall comparison" + (f" ({note})" if note else ""), fontsize=9)
    return fig


STAR = "*"
STAR_ROOM = 6.0  # % of the axis above a bar's interval that its star needs
SIGNIFICANCE_LEGEND = "differs from the table's reference (MTAL): paired t-test, Holm-adjusted p < 0.05"


def significant(table: pd.DataFrame, method: str, alpha: float = 0.05) -> bool:
    """Whether the table's p column (Holm-adjusted p against its reference, tables.add_significance)
    marks ``method`` with *: the same test and the same level as the tables."""
    p = table.attrs.get("holm", {}).get(method, float("nan"))
    return method != table.attrs.get("reference") and not pd.isna(p) and p < alpha


def _any_star(table: pd.DataFrame) -> bool:
    return any(significant(table, m) for m in table.index)


def overall_comparison(tables: dict[str, pd.DataFrame], titles: dict[str, str], path: Path, note: str,
                       highlight: dict[str, str]) -> Path:
    """Fig. 8: one bar per method (average over tasks, mean over seeds, 95% CI bars); * above a bar
    where the table's p column marks it (:func:`significant`), the legend saying what * means."""
    return _save(overall_figure(tables, titles, note, highlight), path)


def threshold_sweep(curves: dict[str, tuple[pd.DataFrame, str, str]], path: Path, note: str) -> Path:
    """Fig. 9: one panel per sweep (name -> its records, parameter, method): mean ± std over seeds of the
    average test accuracy against the swept value, one curve per task group; the axes hold every bar."""
    n = max(1, len(curves))
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False, layout="constrained")
    for ax, (name, (records, parameter, method)) in zip(axes[0], curves.items()):
        sel = records[records.metric == "test_acc/mean"]
        low, high = [], []
        for group, g in sel.groupby("group"):
            stats = g.groupby("sweep_value")["value"].agg(["mean", "std", "count"]).sort_index()
            std = stats["std"].fillna(0)
            ax.errorbar(stats.index, 100 * stats["mean"], yerr=100 * std, marker="o", capsize=3, label=group)
            low.append(float((100 * (stats["mean"] - std)).min()))
            high.append(float((100 * (stats["mean"] + std)).max()))
        if low:
            pad = 0.05 * max(1.0, max(high) - min(low))
            ax.set_ylim(min(low) - pad, max(high) + pad)
        label = "similarity threshold" if parameter in ("rho", "rho_related", "rho_unrelated") else "swept value"
        ax.set_xlabel(f"{parameter} of {method} ({label})")
        ax.set_ylabel("average test accuracy (%)")
        ax.legend(title="task group", fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(f"sweep {name}", fontsize=9)
    fig.suptitle("Fig. 9: threshold selection" + (f" ({note})" if note else ""), fontsize=9)
    return _save(fig, path)


def task_colours(tasks) -> dict[str, tuple]:
    """One colour per task, the same in every panel (sorted names; tab10, then tab20)."""
    names = sorted(set(tasks))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {t: cmap(i % cmap.N) for i, t in enumerate(names)}


def loss_figure(histories: dict[str, pd.DataFrame], note: str, who: str = "", order: dict | None = None,
                window: int = 1):
    """Fig. 12: per panel (group) each task's training loss per optimisation step (``histories``:
    columns task, step, value, seed), the mean over seeds smoothed over ``window`` steps (the aggregate
    passes claim C10's ``window``, params/claims.yaml: the figure shows what the claim reads)."""
    from matplotlib.ticker import MaxNLocator

    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.6), squeeze=False, layout="constrained")
    colours = task_colours(t for h in histories.values() for t in h["task"])
    for i, (ax, (group, h)) in enumerate(zip(axes[0], histories.items())):
        tasks = [t for t in (order or {}).get(group, []) if t in set(h["task"])]
        tasks += sorted(set(h["task"]) - set(tasks))  # the tables' column order; any other task after it
        for task in tasks:
            g = h[h["task"] == task]
            curve = g.groupby("step")["value"].mean().sort_index().rolling(window, min_periods=1).mean()
            ax.plot(curve.index, curve.values, linewidth=1.2, label=task, color=colours[task])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimisation step (one batch of every task)")
        ax.set_ylabel(f"training loss (mean over seeds, {window}-step moving average)" if window > 1 else
                      "training loss (mean over seeds)")
        ax.set_title(f"({chr(97 + i)}) {group} tasks", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    title = f"Fig. 12: {who + ' ' if who else ''}training-loss curves"
    fig.suptitle(title + (f" ({note})" if note else ""), fontsize=9)
    return fig


def loss_curves(histories: dict[str, pd.DataFrame], path: Path, note: str, who: str = "",
                order: dict | None = None, window: int = 1) -> Path:
    """Fig. 12: per-task training loss per optimisation step (mean over seeds, ``window``-step
    moving average) of the runs of ``who``
    (params/report.yaml ``showcase``, the paper: MTAL), one panel per group, the legend in ``order``
    (group -> its tasks as the tables list them)."""
    return _save(loss_figure(histories, note, who, order, window), path)


def best_pairs(method, layer: int, n: int) -> list[tuple[float, list[tuple[int, int]]]]:
    """The ``n`` most similar kernel pairs of two tasks in conv layer ``layer``
    (cosine of the vectorised kernels, MTAL's Eq. 3), shared or not, each kernel
    in one pair at most: [(cosine, [(task, kernel), (task, kernel)])], best first.
    Only tasks whose kernels have one shape are compared (as MTAL does)."""
    import itertools

    T = len(method.tasks)
    found = []
    for i, j in itertools.combinations(range(T), 2):
        if not method.comparable(layer, i, j):
            continue  # kernels of different shapes (input channels): never compared
        sim = method.similarity(layer, i, j)
        values, flat = sim.flatten().sort(descending=True)
        for v, f in zip(values.tolist(), flat.tolist()):
            found.append((v, [(i, f // sim.shape[1]), (j, f % sim.shape[1])]))
    out, used = [], set()
    for v, pair in sorted(found, key=lambda x: -x[0]):
        if used.isdisjoint(pair):
            out.append((v, pair))
            used.update(pair)
            if len(out) == n:
                break
    return out


def activation_figure(method, images: list, layer: int, layer_name: str, title: str, rho: float | None = None,
                      max_kernels: int = 4):
    """Fig. 10 / 11's figure: one row per shared kernel slot (or, when none is shared, per best-matching
    pair, marked NOT shared), each row only the panels of the tasks in it (input and activation side by
    side): no blank panel. A layer where no two tasks have kernels of one shape: one panel saying so.
    ``title``: the figure's prefix (its number and context); the figure says what the rows are."""
    import torch

    T = len(method.tasks)
    rows = [(None, g) for g in method.shared_kernels(layer)[:max_kernels]]
    shared = bool(rows)
    if not shared:  # nothing shared: the best-matching pairs, marked as not shared
        rows = [(cos, pair) for cos, pair in best_pairs(method, layer, max_kernels)]
    if not rows:  # nothing to show: one panel that says so, not a grid of blank ones
        fig, ax = plt.subplots(figsize=(6, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no two tasks have kernels of one shape in {layer_name}: nothing to compare",
                ha="center", va="center", fontsize=9, wrap=True)
        fig.suptitle(f"{title}: no activation maps of {layer_name}", fontsize=9)
        return fig
    with torch.no_grad():
        acts = [method.activations(t, images[t], layer)[0] for t in range(T)]
    width = max(len(group) for _, group in rows)
    n = len(rows)
    fig, axes = plt.subplots(n, 2 * width, figsize=(1.6 * 2 * width + 1.6, 1.7 * n + 1.0), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for r, (cos, group) in enumerate(rows):
        by_task = dict(group)
        maps = {t: acts[t][k].numpy() for t, k in by_task.items()}
        lo, hi = min(m.min() for m in maps.values()), max(m.max() for m in maps.values())
        im = None
        for c, (t, k) in enumerate(by_task.items()):
            img = images[t][0].float()
            img = img.mean(0) if img.shape[0] > 1 else img[0]
            axes[r][2 * c].imshow(img.numpy(), cmap="gray")
            axes[r][2 * c].set_title(f"{method.tasks[t].name}: input", fontsize=7)
            im = axes[r][2 * c + 1].imshow(maps[t], cmap="magma", vmin=lo, vmax=hi)
            axes[r][2 * c + 1].set_title(f"{method.tasks[t].name}: kernel {k}", fontsize=7)
        for c in range(len(by_task), width):  # a row of fewer tasks: its spare panels left out
            axes[r][2 * c].remove()
            axes[r][2 * c + 1].remove()
        what = " + ".join(f"{method.tasks[t].name} #{k}" for t, k in group)
        label = (f"slot {r + 1}\n{what}" if cos is None else
                 f"NOT shared\n{what}\ncos {cos:.2f}" + (f", rho {rho:g}" if rho is not None else ""))
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
        fig.colorbar(im, ax=axes[r][:2 * len(by_task)].tolist(), fraction=0.025, pad=0.01).set_label(
            "activation", fontsize=7)
    if shared:
        title += f": activation maps of kernels shared in {layer_name}"
    else:
        title += (f": no kernel of {layer_name} is shared in this run;\nactivation maps of the best-matching "
                  "kernel pairs, NOT shared" + (f" (threshold rho = {rho:g})" if rho is not None else ""))
    fig.suptitle(title, fontsize=9)
    return fig


def activation_maps(method, images: list, layer: int, layer_name: str, path: Path, title: str,
                    rho: float | None = None, max_kernels: int = 4) -> Path:
    """Fig. 10 / 11: for kernels shared by several tasks, each task's activation map.

    ``images[t]`` is one float test image batch (1 x C x H x W) of task t. Rows:
    shared kernels (the most widely shared first), labelled with their tasks and
    kernel numbers; columns: per task, its input and the kernel's response, on one
    colour scale per row (its colour bar). When no kernel of the layer is shared,
    the rows are the best-matching kernel pairs (:func:`best_pairs`), marked NOT
    shared with their cosine similarity and the threshold ``rho``.
    """
    return _save(activation_figure(method, images, layer, layer_name, title, rho, max_kernels), path)


def empty_figure(path: Path, title: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, wrap=True)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


__all__ = ["overall_comparison", "threshold_sweep", "loss_curves", "activation_maps", "empty_figure", "best_pairs",
           "task_colours"]


def pair_sharing(table: pd.DataFrame, path: Path, note: str, display: dict) -> Path:
    """Fig. 13 (ours): per group, each task pair's shared fraction beyond the first conv
    layer (mean over seeds, bars: std) against its R, one marker series per reading."""
    labels = [c for c in table.columns if c not in ("group", "pair", "R")]
    groups = list(dict.fromkeys(table.group))
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.5 * max(1, len(groups)), 4), squeeze=False)
    markers = "osD^vP*X"
    for ax, g in zip(axes[0], groups):
        sel = table[table.group == g]
        for k, label in enumerate(labels):
            mean = [100 * v[0] for v in sel[label]]
            std = [100 * v[1] for v in sel[label]]
            ax.errorbar(sel.R, mean, yerr=std, fmt=markers[k % len(markers)], capsize=2,
                        label=display.get(label, label))
        for _, r in sel.iterrows():
            ax.annotate(r.pair, (r.R, 0), fontsize=6, rotation=90, va="bottom", alpha=0.6)
        ax.set_title(f"{g} tasks ({len(sel)} pairs)")
        ax.set_xlabel("R (relations stage)")
        ax.set_ylabel("shared fraction beyond conv layer 1 (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Fig. 13 (ours): per-pair kernel sharing against R" + (f" ({note})" if note else ""))
    return _save(fig, path)
