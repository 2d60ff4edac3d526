"""The ``hetmtl bench`` command: one row per deep method of a suite, then the
suite grid's estimated cost; printed as a table and written as JSON and
Markdown (:func:`hetmtl.paths.bench_file`).

Per method (its first grid cell on the chosen group, the suite's first seed):
FLOPs per step (counted, :mod:`hetmtl.bench.flops`); then, unless
``count_only``, ms per step of the loop's step, images per second (every task's
batch), achieved TFLOP/s, MFU on CUDA (against :mod:`hetmtl.bench.peaks`), peak
memory, the bare loop's ms per step and two ratios: the step's to the bare
step's, and the harness's job (``fit`` with validation, checkpoints and the
test evaluation) to the bare job (the same protocol written plainly,
:mod:`hetmtl.bench.measure`), with the protocol's evaluation share.

The estimate (:mod:`hetmtl.bench.estimate`): every job's FLOPs at each
method's measured rate (this device's wall time), and at ``mfu`` x the peak of
``gpu`` (GPU-hours on that GPU, an estimate from FLOPs, not a measurement).
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace

import torch

from hetmtl import files, paths
from hetmtl.bench import measure
from hetmtl.bench.estimate import estimate, job_costs
from hetmtl.bench.flops import build_meta, step_flops
from hetmtl.bench.peaks import KNOWN, peak_tflops
from hetmtl.bench.shapes import task_shape
from hetmtl.data.tasks import to_input
from hetmtl.errors import UserError
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.methods.build import build_method
from hetmtl.resolve import resolve
from hetmtl.training.device import pick_device, set_determinism
from hetmtl.training.step import autocast
from hetmtl.weightings.registry import WEIGHTINGS


def bench_runs(params, suite: str, methods: list[str] | None, group: str | None) -> list:
    """One resolved run per deep method: its first grid cell on ``group`` (the
    suite's first group when None), with the suite's first seed."""
    groups = list(params["groups"])
    group = group or groups[0]
    if group not in groups:
        raise UserError(f"params/grid.yaml: groups: no group {group!r} (known: {', '.join(groups)})")
    seed = params.suite(suite)["seeds"][0]
    chosen = {}
    for run in params.runs(suite):
        if run.group == group and run.seed == seed and run.method not in chosen:
            if methods is None or run.method in methods:
                chosen[run.method] = run
    unknown = sorted(set(methods or []) - set(chosen))
    if unknown:
        raise UserError(f"--method {' '.join(unknown)}: not in the grid of suite {suite} "
                        f"(params/grid.yaml; known: {', '.join(sorted({r.method for r in params.runs(suite)}))})")
    out = []
    for run in chosen.values():
        resolved = resolve(params, run, tune=False, inputs=False)
        if METHODS[resolved.method_class].deep:
            out.append(resolved)
        elif methods is not None:
            raise UserError(f"--method {run.method}: a closed-form method (no training step to time, no GPU time)")
    return out


def _peak_memory(device: torch.device) -> float:
    """MiB: the device's peak allocation since the last reset (CUDA), or the
    process's peak resident set (CPU: a high-water mark over the whole command)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def bench_method(params, resolved, device: torch.device, warmup: int, steps: int, epochs: int,
                 count_only: bool, compile_forward: bool, peak: float | None, repeats: int = 2) -> dict:
    suite = resolved.run.suite
    shapes = [task_shape(params, suite, t) for t in resolved.tasks]
    cfg = resolved.train
    flops = step_flops(build_meta(resolved, shapes), shapes, cfg.batch_size, cfg.l2_lambda)
    gradient = METHODS[resolved.method_class].joint and WEIGHTINGS[cfg.weighting][0] == "gradient"
    step = flops.step_with(len(shapes), gradient)  # an aggregator's step: one backward per task
    row = {"method": resolved.run.method, "group": resolved.run.group, "setting": resolved.run.setting,
           "weighting": cfg.weighting if METHODS[resolved.method_class].joint else "equal",
           "relations": "estimated" if resolved.relations is not None else
           ("uniform (R not estimated yet)" if resolved.run.setting == "prior" else "none"),
           "tasks": len(shapes), "batch_size": cfg.batch_size, "image_size": shapes[0].image_size,
           "gflop_per_step": step / 1e9, "forward_gflop": flops.forward / 1e9,
           "backward_gflop": flops.backward / 1e9}
    if count_only:
        return row
    data, source = measure.bench_data(resolved, shapes, device)
    built = timing_model(resolved, data)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s = measure.time_step(measure.fresh(built), data, cfg, device, warmup, steps)
    memory = _peak_memory(device)
    bare_s = measure.time_bare(measure.fresh(built), data, cfg, device, warmup, steps)
    # each job timing twice on fresh copies, the faster kept (the first pays allocations and caches)
    # a job's file system (results/: ignored by git), not /tmp
    scratch = params.root / paths.bench_file(suite, "scratch", "d", tracked=False).parent
    harness = min((measure.time_harness(measure.fresh(built), data, cfg, device, epochs, cfg.epochs, scratch)
                   for _ in range(repeats)), key=lambda h: h["per_step_s"])
    bare_job = min((measure.time_bare_job(measure.fresh(built), data, cfg, device, epochs, cfg.epochs)
                    for _ in range(repeats)), key=lambda h: h["per_step_s"])
    with torch.no_grad(), autocast(device):
        probe = measure.prepare(measure.fresh(built), cfg, device)(0, to_input(data[0].x["val"][:2], cfg.input_norm))
    tflops = step / step_s / 1e12
    row.update({
        "data": source, "steps_per_epoch": harness["steps"] // epochs, "ms_per_step": step_s * 1e3,
        "images_per_s": len(data) * cfg.batch_size / step_s, "tflop_per_s": tflops,
        "mfu": tflops / peak if peak else None, "peak_memory_mib": memory, "forward_dtype": str(probe.dtype),
        "bare_ms_per_step": bare_s * 1e3, "step_vs_bare": step_s / bare_s,
        "harness_ms_per_step": harness["per_step_s"] * 1e3, "bare_job_ms_per_step": bare_job["per_step_s"] * 1e3,
        "harness_vs_bare": harness["per_step_s"] / bare_job["per_step_s"],
        "evaluation_share": bare_job["evaluation_share"], "harness": harness, "bare_job": bare_job})
    if compile_forward:
        started = time.perf_counter()
        compiled_s = measure.time_step(measure.fresh(built), data, cfg, device, warmup, steps, compile_forward=True)
        row.update({"compiled_ms_per_step": compiled_s * 1e3, "compiled_vs_eager": compiled_s / step_s,
                    "compile_and_run_s": time.perf_counter() - started})
    return row


AGGREGATOR = "upgrad"  # the aggregator timed for the grid's aggregator jobs (Table 7's sweeps)


def timing_model(resolved, data):
    """The run's method for timing: from scratch where it would load ImageNet weights (speed does not read them)."""
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    return build_method(resolved, tasks, overrides={"init": "scratch"} if resolved.init == "imagenet" else None)


def bench_aggregator(params, suite: str, rows: list[dict], device: torch.device, warmup: int, steps: int) -> dict:
    """The step of a gradient aggregator (:data:`AGGREGATOR`) on hard sharing
    (every trunk coordinate shared: the whole Jacobian), when the grid trains
    some jobs with one: their rate in the measured estimate."""
    name = "hard_sharing" if any(r["method"] == "hard_sharing" for r in rows) else rows[0]["method"]
    resolved = bench_runs(params, suite, [name], rows[0]["group"])[0]
    cfg = replace(resolved.train, weighting=AGGREGATOR,
                  weighting_params=tuple(sorted(params["weightings"][AGGREGATOR].items())))
    shapes = [task_shape(params, suite, t) for t in resolved.tasks]
    row = next(r for r in rows if r["method"] == name)  # its forward and backward, counted already
    data, _ = measure.bench_data(resolved, shapes, device)
    step_s = measure.time_step(timing_model(resolved, data), data, cfg, device, warmup, steps)
    step = (row["forward_gflop"] + len(shapes) * row["backward_gflop"]) * 1e9  # one backward per task
    return {"method": name, "weighting": AGGREGATOR, "ms_per_step": step_s * 1e3, "gflop_per_step": step / 1e9,
            "tflop_per_s": step / step_s / 1e12}


def estimate_gpu(costs: list, methods: list[str], gpu: str = "H100 SXM", mfu: tuple[float, ...] = (0.4, 0.6),
                 gpu_peak: float | None = None) -> dict:
    """The grid's time on ``gpu`` at each model-FLOPs utilisation of ``mfu`` (its
    bf16 peak from :mod:`hetmtl.bench.peaks`, or ``gpu_peak`` TFLOP/s): the
    estimate `hetmtl bench` prints, and `hetmtl doctor` shows before a run."""
    peak = peak_tflops(gpu, gpu_peak)
    if peak is None:
        raise UserError(f"--gpu {gpu}: no known bf16 peak (known: {KNOWN}; hetmtl/bench/peaks.py); "
                        "give it with --gpu-peak-tflops")
    return {"gpu": gpu, "peak_tflops": peak,
            "at_mfu": {str(m): estimate(costs, {name: peak * 1e12 * m for name in methods}) for m in mfu}}


def bench(params, suite: str, methods: list[str] | None = None, group: str | None = None,
          device_name: str = "auto", threads: int = 1, warmup: int = 3, steps: int = 20, epochs: int = 1,
          count_only: bool = False, compile_forward: bool = False, peak: float | None = None,
          gpu: str = "H100 SXM", mfu: tuple[float, ...] = (0.4, 0.6), gpu_peak: float | None = None,
          progress=print) -> dict:
    device = pick_device(device_name)
    set_determinism(device, threads)
    device_label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({threads} threads)"
    peak = peak_tflops(device_label, peak) if device.type == "cuda" else None
    rows = []
    for resolved in bench_runs(params, suite, methods, group):
        started = time.perf_counter()
        rows.append(bench_method(params, resolved, device, warmup, steps, epochs, count_only, compile_forward, peak))
        progress(f"[bench] {resolved.run.method}: {time.perf_counter() - started:.1f} s")
    costs = job_costs(params, suite, [r["method"] for r in rows])
    aggregator = None
    if not count_only and any(c.gradient for c in costs):
        aggregator = bench_aggregator(params, suite, rows, device, warmup, steps)
        progress(f"[bench] {aggregator['method']} with {aggregator['weighting']}: {aggregator['ms_per_step']:.1f} ms")
    record = {
        "suite": suite, "device": device_label, "device_type": device.type, "peak_tflops": peak,
        "count_only": count_only, "warmup": warmup, "steps": steps, "harness_epochs": epochs, "rows": rows,
        "aggregator": aggregator,
        "grid": {"jobs": len(costs), "exact_shapes": all(task_shape(params, suite, t).exact
                                                         for g in params["groups"] for t in params.tasks_of(g))},
        "estimate_gpu": estimate_gpu(costs, [r["method"] for r in rows], gpu, mfu, gpu_peak),
    }
    if not count_only:
        record["estimate_measured"] = estimate(costs, {r["method"]: r["tflop_per_s"] * 1e12 for r in rows},
                                               aggregator["tflop_per_s"] * 1e12 if aggregator else None)
    return record


def _f(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(record: dict) -> str:
    """The record as the command prints it: the methods' table and the estimate."""
    rows, measured = record["rows"], not record["count_only"]
    compiled = measured and any("compiled_ms_per_step" in r for r in rows)
    head = ["method", "GFLOP/step"]
    if measured:
        head += ["ms/step", "images/s", "TFLOP/s", "MFU", "peak MiB", "bare ms/step", "step/bare", "harness/bare",
                 "evaluation"]
    if compiled:
        head += ["compiled ms/step", "compiled/eager"]
    lines = [(f"hetmtl bench: suite {record['suite']} on {record['device']}, {record['steps']} timed steps after "
              f"{record['warmup']}, harness {record['harness_epochs']} epoch(s)") if measured else
             f"hetmtl bench --count-only: suite {record['suite']}, FLOPs counted on the meta device, nothing timed", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], _f(r["gflop_per_step"], ".2f")]
        if measured:
            cells += [_f(r["ms_per_step"], ".1f"), _f(r["images_per_s"], ".0f"), _f(r["tflop_per_s"], ".3f"),
                      _f(r["mfu"], ".1%"), _f(r["peak_memory_mib"], ".0f"), _f(r["bare_ms_per_step"], ".1f"),
                      _f(r["step_vs_bare"], ".3f"), _f(r["harness_vs_bare"], ".3f"), _f(r["evaluation_share"], ".1%")]
        if compiled:
            cells += [_f(r.get("compiled_ms_per_step"), ".1f"), _f(r.get("compiled_vs_eager"), ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    r0 = rows[0] if rows else {}
    lines += ["", f"Group {r0.get('group', '–')}, {r0.get('tasks', '–')} tasks x batch {r0.get('batch_size', '–')} "
              f"at {r0.get('image_size', '–')} px; FLOPs: matrix multiplications and convolutions, forward and "
              "backward, counted by torch's FLOP counter."]
    if measured:
        lines.append(f"Data: {', '.join(sorted({r['data'] for r in rows}))}; forward dtype "
                     f"{', '.join(sorted({r['forward_dtype'] for r in rows}))}.")
        lines.append("step/bare: the loop's step over a plain PyTorch step on the same batches. harness/bare: a job "
                     "as `fit` runs it (validation every epoch, divergence checks, checkpoints as a job writes them, "
                     "the test split once, spread over the suite's epochs) over the same protocol written as a plain "
                     "loop; "
                     "evaluation: the protocol's validation and test share of that plain job. peak MiB: "
                     + ("the device's peak allocation." if record["device_type"] == "cuda"
                        else "the process's peak resident memory so far (a CPU has no per-run figure)."))
        if compiled:
            lines.append("compiled: the same step with the forward under torch.compile (its compilation in the "
                         "warm-up steps, not timed).")
    if record.get("aggregator"):
        a = record["aggregator"]
        lines.append(f"Gradient aggregator ({a['weighting']} on {a['method']}, the rate of the grid's aggregator "
                     f"jobs): {a['ms_per_step']:.1f} ms/step, {a['gflop_per_step']:.2f} GFLOP/step (one backward "
                     f"per task), {a['tflop_per_s']:.3f} TFLOP/s.")
    grid = record["grid"]
    lines += ["", f"Suite grid: {grid['jobs']} training jobs and sweep points of these methods"
              + ("" if grid["exact_shapes"] else " (task sizes estimated from params: not all tasks prepared)") + "."]
    if measured:
        e = record["estimate_measured"]
        lines.append(f"- at the measured rates on {record['device']}: {e['flops'] / 1e15:.3g} PFLOP, "
                     f"{e['hours']:.3g} job-hours (one job at a time)")
    g = record["estimate_gpu"]
    for m, e in g["at_mfu"].items():
        lines.append(f"- on one {g['gpu']} (bf16 peak {g['peak_tflops']:g} TFLOP/s) at an assumed MFU of "
                     f"{float(m):.0%}: {e['flops'] / 1e18:.3g} EFLOP, {e['hours']:.3g} GPU-hours (an estimate "
                     "from FLOPs, not a measurement)")
    mfus = list(g["at_mfu"])
    head = ["part", "jobs", "PFLOP"] + (["job-hours (measured rates)"] if measured else []) \
        + [f"{g['gpu']}-hours at MFU {float(m):.0%}" for m in mfus]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = g["at_mfu"][mfus[0]]["per_part"]
    for part, e in first.items():
        cells = [part, str(e["jobs"]), f"{e['flops'] / 1e15:.4g}"]
        if measured:
            cells.append(f"{record['estimate_measured']['per_part'][part]['seconds'] / 3600:.3g}")
        cells += [f"{g['at_mfu'][m]['per_part'][part]['seconds'] / 3600:.3g}" for m in mfus]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "A job: its training steps (a gradient aggregator's step with one backward per task) and its "
              "evaluation (validation every epoch, test once); the relations stage, tune trials, MTAL's matching "
              "and checkpoints are not counted (hetmtl/bench/estimate.py)."]
    return "\n".join(lines) + "\n"


def write(record: dict, root, report: bool | None = None) -> list:
    """The record's JSON and Markdown: under reports/<suite>/bench/ (tracked, the committed
    measurements) when ``report``, else under results/<suite>/bench/ (ignored by git). Default: a
    timing goes to reports/, an estimate (``count_only``) to results/, so estimating never
    rewrites a committed file unless asked (``hetmtl bench --report``)."""
    out = []
    report = not record["count_only"] if report is None else report
    for ext, text in (("json", json.dumps(record, indent=2) + "\n"), ("md", markdown(record))):
        name = "estimate" if record["count_only"] else record["device_type"]
        path = root / paths.bench_file(record["suite"], name, ext, tracked=report)
        files.write_text(path, text)
        out.append(path)
    return out
