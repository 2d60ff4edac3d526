"""One count of a suite's work (ours): its runs, its Snakemake jobs, their GPU-hours, the disk they
write and the wall time the Slurm profile books for them, from one model (``hetmtl count``).

The pieces, each computed once, here or where this module reads it:

- runs: :meth:`Params.runs` (the grid: every cell and seed) and :meth:`Params.sweep_runs`;
- jobs: the Snakefile's granularity: one ``train`` job per grid cell (its seeds one after
  another), one ``sweep`` job per sweep point (its seeds), one ``tune`` job per tuned cell, one
  ``relations`` job per group whose R some run reads; plus the jobs that train nothing (fetch,
  prepare, init_tracking, one per table and figure, aggregate);
- GPU-hours: ``hetmtl bench``'s FLOP model (:mod:`hetmtl.bench.estimate`) at the assumed MFUs;
- disk: the models and prepared data the suite writes (:func:`output_bytes`, which ``hetmtl doctor`` reads);
- the Slurm booking: :func:`booked_minutes` per training job, which workflow/rules/common.smk calls
  for each job's ``runtime`` (so the profile and this count cannot disagree).

The booking is not a measurement: :data:`MINUTES_PER_TASK_EPOCH` (ours) minutes per epoch of
one task, times the task-epochs a job trains, at least :data:`MIN_MINUTES`. It is deliberately
generous (Slurm kills a job at its limit; a killed job resumes from its checkpoint but loses
its queue place): on real data it books ~12x the FLOP estimate at 40% MFU of an H100, i.e. it
still suffices at ~3% MFU (a slower GPU, a busy file system, small batches). ``hetmtl count``
prints the booked hours beside the estimate so the margin is visible; tighten the constant
for your cluster from ``logs/<suite>/benchmarks/`` (Snakemake's measured job times).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GiB = 1 << 30

# Minutes per epoch of one task (ours, an estimate, not a measurement: 240 minutes for 50 epochs of
# a 4-task VGG-16 run on a GPU, 30 on stand-ins), and the least a job books.
MINUTES_PER_TASK_EPOCH = {"real": 1.2, "standin": 0.15}
MIN_MINUTES = 10

TRAINING_RULES = ("train", "sweep", "tune", "relations")


def runtime_minutes(params, suite: str, task_epochs: float) -> int:
    """The wall time (Slurm's --time, minutes) of a job that trains ``task_epochs`` task-epochs."""
    per = MINUTES_PER_TASK_EPOCH[params.suite(suite)["data"]]
    return max(MIN_MINUTES, math.ceil(per * task_epochs))


def gradient_factor(params, weighting: str, tasks: int) -> float:
    """A gradient aggregator's step over a plain one (ours, an estimate): one backward pass per task,
    a backward ~ two forwards: (1 + 2T) / 3."""
    from hetmtl.weightings import WEIGHTINGS

    return (1 + 2 * tasks) / 3 if WEIGHTINGS[weighting][0] == "gradient" else 1.0


def booked_minutes(params, suite: str, rule: str, group: str, sweep: str | None = None, value=None) -> int:
    """The minutes a training job books on Slurm (workflow/rules/common.smk's ``runtime``): ``rule`` one
    of :data:`TRAINING_RULES`; ``sweep`` and ``value`` (its wildcard text or value) for a sweep point."""
    s = params.suite(suite)
    T = len(params.tasks_of(group))
    if rule == "train":
        return runtime_minutes(params, suite, T * s["epochs"] * len(s["seeds"]))
    if rule == "tune":
        return runtime_minutes(params, suite, T * s["tune"]["epochs"] * s["tune"]["trials"])
    if rule == "relations":  # every pair of the group's tasks, alone and together (2 + 2 task-epochs), per seed
        return runtime_minutes(params, suite, T * (T - 1) // 2 * 4 * s["relations"]["epochs"]
                               * len(s["relations"]["seeds"]))
    if rule == "sweep":
        scale = s["sweeps"][sweep]
        factor = 1.0
        if params["sweeps"][sweep]["parameter"] == "weighting":
            factor = gradient_factor(params, str(value), T)
        return runtime_minutes(params, suite, T * scale["epochs"] * len(scale["seeds"]) * factor)
    raise ValueError(f"no booking for rule {rule!r} (known: {', '.join(TRAINING_RULES)})")


@dataclass(frozen=True)
class Job:
    """One Snakemake job that trains: its rule, wildcards, the runs it holds and its booking."""

    rule: str
    group: str
    name: str  # its wildcards as text (setting/method, sweep=value, ...)
    runs: tuple  # RunIds it trains (empty: tune and relations, whose runs are not grid runs)
    booked_minutes: int


def training_jobs(params, suite: str) -> list[Job]:
    """Every job of the suite's DAG that trains, at the Snakefile's granularity."""
    runs, sweep_runs = params.runs(suite), params.sweep_runs(suite)
    out = []
    cells: dict[tuple, list] = {}
    for r in runs:
        cells.setdefault((r.group, r.setting, r.method), []).append(r)
    for (g, st, m), rs in cells.items():
        out.append(Job("train", g, f"{st}/{m}", tuple(rs), booked_minutes(params, suite, "train", g)))
    points: dict[tuple, list] = {}
    for r in sweep_runs:
        points.setdefault((r.sweep, r.group, r.value), []).append(r)
    for (sw, g, v), rs in points.items():
        out.append(Job("sweep", g, f"{sw}={v}", tuple(rs), booked_minutes(params, suite, "sweep", g, sw, v)))
    for g, st, m in sorted(params.tune_cells(suite)):
        out.append(Job("tune", g, f"{st}/{m}", (), booked_minutes(params, suite, "tune", g)))
    prior = {r.group for r in runs + sweep_runs if r.setting == "prior"}
    for g in params["groups"]:  # as the Snakefile: a group with a given R still has its (quick) job
        if g in prior:
            out.append(Job("relations", g, "R", (), booked_minutes(params, suite, "relations", g)))
    return out


def other_jobs(params, suite: str) -> dict[str, int]:
    """The DAG's jobs that train nothing, by rule."""
    from hetmtl.reporting import catalogue

    tasks = sorted({t for g in params["groups"] for t in params.tasks_of(g)})
    return {"fetch": len({params["tasks"][t]["source"] for t in tasks}), "prepare": len(tasks), "init_tracking": 1,
            "all": 1,
            "table": len(catalogue.names(params, "table")), "figure": len(catalogue.names(params, "figure")),
            "aggregate": 1}


def count(params, suite: str, gpu: str = "H100 SXM", mfu: tuple[float, ...] = (0.4, 0.6),
          disk: bool = True) -> dict:
    """The suite's whole count (the module's docstring): one dict every command that shows a count reads."""
    from hetmtl.bench.estimate import job_costs
    from hetmtl.bench.run import estimate_gpu

    runs, sweep_runs = params.runs(suite), params.sweep_runs(suite)
    jobs = training_jobs(params, suite)
    by_rule: dict[str, dict] = {}
    for j in jobs:
        r = by_rule.setdefault(j.rule, {"jobs": 0, "runs": 0, "booked_hours": 0.0})
        r["jobs"] += 1
        r["runs"] += len(j.runs)
        r["booked_hours"] += j.booked_minutes / 60
    costs = job_costs(params, suite)
    est = estimate_gpu(costs, sorted({c.method for c in costs}), gpu, mfu)
    other = other_jobs(params, suite)
    out = {
        "suite": suite,
        "runs": {"grid": len(runs), "sweeps": len(sweep_runs), "total": len(runs) + len(sweep_runs),
                 "deep": len(costs)},
        "jobs": {"training": by_rule, "other": other,
                 "total": len(jobs) + sum(other.values())},
        "gpu": gpu,
        "flops": next(iter(est["at_mfu"].values()))["flops"],
        "gpu_hours": {m: e["hours"] for m, e in est["at_mfu"].items()},
        "gpu_hours_per_part": {m: {p: v["seconds"] / 3600 for p, v in e["per_part"].items()}
                               for m, e in est["at_mfu"].items()},
        "booked_hours": sum(j.booked_minutes for j in jobs) / 60,
        "data": params.suite(suite)["data"],
    }
    if disk:
        out["disk_bytes"] = output_bytes(params, suite)
    return out


def output_bytes(params, suite: str) -> dict[str, int]:
    """What the suite writes, in bytes: ``prepared`` (every task's uint8
    tensor) and ``models`` (one ``model.pt`` per deep training job and sweep point)."""
    from hetmtl.data.sources import LAYOUTS

    s = params.suite(suite)
    prepared = 0
    for task in dict.fromkeys(t for g in params["groups"] for t in params.tasks_of(g)):
        spec = params["tasks"][task]
        source = params["sources"][spec["source"]]
        layout = LAYOUTS[source["layout"]]
        counts = layout.standin_counts(s["images_per_class"]) if s["data"] == "standin" and not layout.local \
            else source.get("expected")
        if counts is None:
            continue
        draw = spec["classes"]["draw"]
        pool = spec["classes"]["pool"]
        if draw != "all":
            classes = draw
        elif pool == "source":
            classes = counts["classes"]
        else:
            classes = len(pool) if isinstance(pool, list) else pool["range"][2] - pool["range"][1] + 1
        images = counts["images"] * classes // counts["classes"]
        prepared += images * source["channels"] * s["image_size"] ** 2
    return {"prepared": prepared, "models": sum(model_bytes(params, suite).values())}


def model_bytes(params, suite: str) -> dict:
    """The bytes of each deep training job's and sweep point's ``model.pt`` (its
    method's state dict, fp32 as saved), by run: counted on the meta device with
    `hetmtl bench`'s :func:`~hetmtl.bench.flops.build_meta`, once per cell."""
    from dataclasses import replace

    from hetmtl.bench.flops import build_meta
    from hetmtl.bench.shapes import task_shape
    from hetmtl.methods import METHODS
    from hetmtl.resolve import resolve

    sizes: dict = {}
    out = {}
    for run in params.runs(suite) + params.sweep_runs(suite):
        like = replace(run, seed=0, value=None)
        if like not in sizes:
            resolved = resolve(params, run, tune=False, inputs=False)
            if not METHODS[resolved.method_class].deep:
                sizes[like] = 0
            else:
                net = build_meta(resolved, [task_shape(params, suite, t) for t in resolved.tasks])
                sizes[like] = sum(v.numel() * v.element_size() for v in net.state_dict().values())
        if sizes[like]:
            out[run] = sizes[like]
    return out


def size_text(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / (1 << 20):.1f} MiB"


def _hours(h: float) -> str:
    return f"{h:.3g}" if h < 100 else f"{h:,.0f}"


def text(c: dict) -> str:
    """``hetmtl count``'s screen."""
    r, j = c["runs"], c["jobs"]
    lines = [f"hetmtl count --suite {c['suite']}",
             f"runs: {r['total']} ({r['grid']} grid runs of Tables 2-6, {r['sweeps']} sweep runs; "
             f"{r['deep']} of them deep, the rest closed-form)",
             f"jobs: {j['total']} in the Snakemake DAG; those that train, each booking its Slurm wall time:"]
    low = min(c["gpu_hours"], key=float)
    parts = c["gpu_hours_per_part"][low]
    estimated_by_rule = {"train": parts.get("grid", 0.0),
                         "sweep": sum(v for p, v in parts.items() if p.startswith("sweep"))}
    for rule, v in j["training"].items():
        est = estimated_by_rule.get(rule)
        lines.append(f"  {rule:<10} {v['jobs']:>4} jobs" + (f", {v['runs']} runs" if v["runs"] else "")
                     + f", {_hours(v['booked_hours'])} h booked"
                     + (f" against {_hours(est)} GPU-h estimated at MFU {low} ({v['booked_hours'] / est:.0f}x)"
                        if est and c["data"] == "real" else ""))
    lines.append("  other      " + ", ".join(f"{n} {k}" for k, n in j["other"].items()))
    est = ", ".join(f"{_hours(h)} h at MFU {m}" for m, h in c["gpu_hours"].items())
    lines.append(f"GPU-hours (FLOP estimate of the grid and sweeps, hetmtl bench's model): {est} on one {c['gpu']}")
    low = (low, c["gpu_hours"][low])
    estimated = sum(v["booked_hours"] for k, v in j["training"].items() if k in ("train", "sweep"))
    ratio = estimated / low[1] if low[1] else float("nan")
    per = MINUTES_PER_TASK_EPOCH[c["data"]]
    if c["data"] != "real":  # stand-in jobs ask for no GPU: the GPU estimate says nothing of their wall time
        lines.append(f"Slurm booking: {_hours(c['booked_hours'])} h of wall time over the training jobs "
                     f"({MINUTES_PER_TASK_EPOCH[c['data']]:g} min per task-epoch, at least {MIN_MINUTES} min a job; "
                     "hetmtl/count.py); on stand-in data the jobs run on the CPU partition, where the GPU estimate "
                     "does not apply")
    else:
        lines.append(f"Slurm booking: {_hours(c['booked_hours'])} h of wall time over the training jobs "
                     f"({per:g} min per task-epoch, at least {MIN_MINUTES} min a job; hetmtl/count.py), "
                     f"the train and sweep jobs' {_hours(estimated)} h are {ratio:.1f}x the estimate at MFU {low[0]}: "
                     f"a limit, not a forecast (enough down to ~{float(low[0]) / ratio:.1%} MFU; tune and relations "
                     "jobs are booked but not estimated)")
    if "disk_bytes" in c:
        d = c["disk_bytes"]
        lines.append(f"disk: {size_text(sum(d.values()))} (models {size_text(d['models'])}, prepared data "
                     f"{size_text(d['prepared'])}; plus the archives)")
    return "\n".join(lines) + "\n"
