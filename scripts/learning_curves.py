"""Single-task validation-accuracy curves of a suite, and the epoch where they flatten.

    python scripts/learning_curves.py --suite demo --epochs 24 --seeds 0 1 \\
        --work /tmp/curves --out reports/demo/stability/learning_curves

Runs, in a scratch clone of this checkout (``--work``; its ``.venv`` linked to
this one's), the suite's single-task cells of every group at ``--epochs``
epochs and ``--seeds`` (the suite's scale otherwise: images per class, image
size, backbone, batch), then reads each run's per-epoch validation accuracy
(the receipts' history) and writes ``<out>.md`` and ``<out>.csv``: the curve of
every task (mean over seeds) and of each group's average, and the flattening
epoch of each.

The criterion (ours, issue 30): a curve has flattened at epoch E when the last
20% of its epochs gain under ``--gain`` points (default 1), that is
c(E) - c(round(0.8 E)) < gain, with c the curve smoothed by a moving mean over
``--smooth`` epochs (default 3; a validation split of a few dozen images moves
by 1.7 points per image), and it stays so for every later epoch measured. The
suite's epochs are then at least the flattening epoch of each group's average;
a task whose own curve has not flattened there is budget-limited, and the
tables' captions say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_probe(suite: str, epochs: int, seeds: list[int], work: Path) -> str:
    """Train the single-task cells of ``suite`` at ``epochs`` in a clone at ``work``; the probe suite's name."""
    if not work.exists():
        subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
        (work / ".venv").symlink_to((ROOT / ".venv").resolve())
    name = f"curves_{suite}"
    spec = yaml.safe_load((ROOT / "params" / "suites" / f"{suite}.yaml").read_text())
    s = spec["suite"]
    # the defaults (no tune stage): the curves that choose the epochs come before any tuning
    s.update(name=name, raw_dir=f"data/standin/{name}", epochs=epochs, seeds=seeds, readings=False,
             tune={**s["tune"], "trials": 0})
    s.pop("budget_note", None)
    (work / "params" / "suites" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = dict(os.environ, PATH=f"{work / '.venv' / 'bin'}:{os.environ['PATH']}", PYTHONPATH=str(work / "src"))
    params = yaml.safe_load((work / "params" / "grid.yaml").read_text())
    tasks = sorted({t for g in params["groups"].values() for t in g["tasks"]})

    def hetmtl(*args: str) -> None:
        subprocess.run(["hetmtl", *args, "--suite", name], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL)

    hetmtl("fetch")
    hetmtl("prepare", "--task", *tasks)
    hetmtl("init-tracking")
    for group in params["groups"]:
        subprocess.run(["hetmtl", "train", "--suite", name, "--group", group, "--setting", "shared",
                        "--method", "single_task", "--seed", *map(str, seeds), "--threads", "1", "--no-progress"],
                       cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    return name


def curves(results: Path) -> dict[tuple[str, str], np.ndarray]:
    """(group, task or 'Average') -> mean validation accuracy (%) per epoch over seeds."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for receipt in sorted(results.glob("runs/*/shared/single_task/seed*/receipt.json")):
        group = receipt.parts[-5]
        history = json.loads(receipt.read_text())["record"]["history"]
        tasks = [k.removeprefix("val_acc/") for k in history[0] if k.startswith("val_acc/") and k != "val_acc/mean"]
        for task in tasks:
            out.setdefault((group, task), []).append(np.array([100 * h[f"val_acc/{task}"] for h in history]))
        out.setdefault((group, "Average"), []).append(np.array([100 * h["val_acc/mean"] for h in history]))
    return {k: np.mean(v, axis=0) for k, v in out.items()}


def smoothed(c: np.ndarray, window: int) -> np.ndarray:
    """Moving mean over the last ``window`` epochs (fewer at the start)."""
    return np.array([c[max(0, i + 1 - window): i + 1].mean() for i in range(len(c))])


def last_gain(c: np.ndarray, epoch: int) -> float:
    """c(E) - c(round(0.8 E)), epochs counted from 1."""
    return float(c[epoch - 1] - c[max(1, round(0.8 * epoch)) - 1])


def flat_epoch(c: np.ndarray, gain: float) -> int | None:
    """The first epoch from which on every measured epoch's last-20% gain is under ``gain``."""
    ok = [last_gain(c, e) < gain for e in range(1, len(c) + 1)]
    for e in range(2, len(c) + 1):
        if all(ok[e - 1:]):
            return e
    return None


def report(cs: dict, gain: float, window: int, command: str, meta: dict) -> tuple[str, list[dict]]:
    epochs = len(next(iter(cs.values())))
    rows, lines = [], []
    cols = [e for e in range(1, epochs + 1) if e in (1, 2) or e % 2 == 0 or e == epochs]
    lines.append(f"Single-task validation accuracy (%) per epoch, mean over seeds {meta['seeds']}, suite "
                 f"{meta['suite']} at {epochs} epochs ({meta['steps']} steps per epoch); smoothed over {window} "
                 f"epochs; flat: the first epoch E from which on c(E) - c(0.8 E) < {gain:g} point (ours). "
                 f"Made by: `{command}`.")
    lines.append("")
    lines.append("| group | task | " + " | ".join(f"e{e}" for e in cols) + " | flat at | gain of last 20% at e"
                 f"{meta['chosen']} |")
    lines.append("|---|---|" + "---|" * len(cols) + "---|---|")
    for (group, task), c in sorted(cs.items(), key=lambda kv: (kv[0][0], kv[0][1] == "Average", kv[0][1])):
        s = smoothed(c, window)
        flat = flat_epoch(s, gain)
        g = last_gain(s, meta["chosen"]) if meta["chosen"] <= epochs else float("nan")
        rows.append({"group": group, "task": task, "flat_epoch": flat, f"gain_last20_at_{meta['chosen']}": g,
                     **{f"e{e}": round(float(c[e - 1]), 2) for e in range(1, epochs + 1)}})
        name = f"**{task}**" if task == "Average" else task
        lines.append(f"| {group} | {name} | " + " | ".join(f"{c[e - 1]:.0f}" for e in cols)
                     + f" | {flat if flat else f'> {epochs}'} | {g:+.1f} |")
    return "\n".join(lines) + "\n", rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="demo")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--chosen", type=int, help="the suite's epochs, to show each curve's last-20% gain there "
                                              "(default: the suite's own)")
    ap.add_argument("--gain", type=float, default=1.0)
    ap.add_argument("--smooth", type=int, default=3)
    ap.add_argument("--work", type=Path, required=True, help="scratch clone to train in (made if missing)")
    ap.add_argument("--out", type=Path, required=True, help="output path without suffix (.md and .csv written)")
    ap.add_argument("--no-train", action="store_true", help="only read the runs the work clone holds")
    args = ap.parse_args()
    name = f"curves_{args.suite}" if args.no_train else run_probe(args.suite, args.epochs, args.seeds, args.work)
    cs = curves(args.work / "results" / name)
    if not cs:
        print(f"no single-task receipts under {args.work / 'results' / name}", file=sys.stderr)
        return 1
    steps = ", ".join(sorted({f"{r.parts[-5]} {json.loads(r.read_text())['record']['final']['steps_per_epoch']}"
                              for r in (args.work / "results" / name).glob(
                                  "runs/*/shared/single_task/seed*/receipt.json")}))
    chosen = args.chosen or yaml.safe_load((ROOT / "params" / "suites" / f"{args.suite}.yaml").read_text())[
        "suite"]["epochs"]
    command = ("python scripts/learning_curves.py " + f"--suite {args.suite} --epochs {args.epochs} --seeds "
               + " ".join(map(str, args.seeds)) + f" --work {args.work} --out {args.out}")
    md, rows = report(cs, args.gain, args.smooth, command,
                      {"suite": args.suite, "seeds": args.seeds, "steps": steps, "chosen": chosen})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(md)
    import pandas as pd

    pd.DataFrame(rows).to_csv(args.out.with_suffix(".csv"), index=False)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
