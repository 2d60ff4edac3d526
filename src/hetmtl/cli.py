"""The ``hetmtl`` command line: every pipeline step is one subcommand.

Snakemake rules and DVC stages are thin wrappers around these commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hetmtl import files, paths
from hetmtl.errors import UserError
from hetmtl.params import ParamsError, find_root, load_params


def _params(args):
    """Load params/ and work from the project root (all paths are relative to it); the names the
    command was given are checked against params before anything is read from disk."""
    root = find_root(Path(args.root) if args.root else None)
    os.chdir(root)
    p = load_params(root)
    check_names(p, args)
    return p


def unknown(flag: str, value, known, where: str) -> ParamsError:
    """One line: the wrong value, the closest known one, and every known one."""
    import difflib
    import re

    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.5)
    if not close:  # a short form: fig8 for fig08_overall, Typo for Typographic
        def norm(text: str) -> str:
            return re.sub(r"(?<=\D)0+(?=\d)", "", text.lower()).replace("_", "").replace("-", "")

        close = [k for k in known if norm(str(value)) and norm(k).startswith(norm(str(value)))][:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ParamsError(f"{flag} {value!r}: not {where}{hint} (known: {', '.join(known)})")


def _listed(value) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def check_names(p, args) -> None:
    """Every name a command takes (suite, group, setting, method, seed, task, source, sweep, table,
    figure), checked against params/ and the catalogue: a wrong one is one line, not a traceback."""
    from hetmtl.reporting import catalogue

    suite = getattr(args, "suite", None)
    if suite is not None and suite not in p["suites"]:
        raise unknown("--suite", suite, p["suites"], "a suite of params/suites/")
    for flag, attr, known, where in (
            ("--pilot", "pilot", p["suites"], "a suite of params/suites/"),
            ("--group", "group", p["groups"], "a task group of params/grid.yaml"),
            ("--task", "task", p["tasks"], "a task of params/datasets.yaml"),
            ("--source", "source", p["sources"], "a source of params/datasets.yaml"),
            ("--sweep", "sweep", p["sweeps"], "a sweep of params/grid.yaml"),
            ("--table", "table", catalogue.names(p, "table"), "a table of the catalogue"),
            ("--figure", "figure", catalogue.names(p, "figure"), "a figure of the catalogue")):
        for value in _listed(getattr(args, attr, None)):
            if value not in known:
                raise unknown(flag, value, known, where)
    if args.command in ("train", "tune"):
        cells = {(r.setting, r.method) for r in p.runs(args.suite) if r.group == args.group}
        settings = sorted({s for s, _ in cells})
        if args.setting not in settings:
            raise unknown("--setting", args.setting, settings, f"a setting of group {args.group}")
        methods = sorted({m for s, m in cells if s == args.setting})
        if args.method not in methods:
            other = sorted(s for s, m in cells if m == args.method)
            if other:
                raise ParamsError(f"--method {args.method!r} runs in setting {' or '.join(other)}, not "
                                  f"{args.setting!r} (params/grid.yaml; `shared`: a method with no use for R)")
            raise unknown("--method", args.method, methods, f"a method of setting {args.setting} in params/grid.yaml")
    seeds = None
    if args.command == "train":
        seeds = p.suite(args.suite)["seeds"]
    elif args.command == "sweep":
        seeds = p.suite(args.suite)["sweeps"][args.sweep]["seeds"]
    for seed in _listed(getattr(args, "seed", None)) if seeds is not None else []:
        if seed not in seeds:
            raise unknown("--seed", seed, seeds, f"a seed of suite {args.suite} (params/suites/{args.suite}.yaml)")


def cmd_check_params(args) -> int:
    from hetmtl.count import other_jobs, training_jobs

    p = _params(args)
    jobs = training_jobs(p, args.suite)
    runs = len(p.runs(args.suite)) + len(p.sweep_runs(args.suite))
    print(f"params OK: {len(p['tasks'])} tasks, {len(p['groups'])} groups, {len(p['suites'])} suites; "
          f"{args.suite}: {runs} runs ({len(p.runs(args.suite))} grid, {len(p.sweep_runs(args.suite))} sweep) in "
          f"{len(jobs) + sum(other_jobs(p, args.suite).values())} Snakemake jobs, {len(jobs)} of them training "
          f"(`hetmtl count --suite {args.suite}`: GPU-hours, disk, Slurm booking)")
    return 0


def cmd_count(args) -> int:
    from hetmtl import count

    p = _params(args)
    p.suite(args.suite)
    c = count.count(p, args.suite, args.gpu, tuple(args.mfu))
    print(json.dumps(c, indent=2, sort_keys=True) if args.json else count.text(c), end="\n" if args.json else "")
    return 0


def cmd_fetch(args) -> int:
    from hetmtl.data.fetch import fetch

    p = _params(args)
    suite = p.suite(args.suite)
    names = args.source or sorted({p["tasks"][t]["source"] for g in p["groups"] for t in p.tasks_of(g)})
    failures = []
    for name in names:
        if name not in p["sources"]:
            raise ParamsError(f"{p.files['sources']}: sources: no source {name!r}")
        try:
            path = fetch(suite, name, p["sources"][name])
            print(f"ok {path}")
        except Exception as exc:  # noqa: BLE001 - report every missing archive, then fail
            failures.append(str(exc))
    if failures:
        print("\n".join(f"error: {f}" for f in failures), file=sys.stderr)
        return 1
    return 0


def cmd_verify(args) -> int:
    from hetmtl import preflight

    p = _params(args)
    sources = sorted({p["tasks"][t]["source"] for g in p["groups"] for t in p.tasks_of(g)})
    problems, seconds, size = preflight.verify_archives(p, args.suite, sources)
    missing = preflight.missing_archives(p, args.suite, sources)
    if problems:
        print("\n".join(f"error: {line}" for line in problems), file=sys.stderr)
        return 1
    print(f"archives of suite {args.suite} as recorded: {size / 2**20:.1f} MiB hashed in {seconds:.2f} s"
          + (f"; still to fetch: {'; '.join(missing)}" if missing else ""))
    return 0


def cmd_prepare(args) -> int:
    from hetmtl.data.prepare import prepare_task

    p = _params(args)
    for task in args.task:
        if task not in p["tasks"]:
            raise ParamsError(f"{p.files['tasks']}: tasks: no task {task!r}")
        m = prepare_task(p, args.suite, task)
        print(f"prepared {task}: {m['num_classes']} classes, {m['images']} images (split per run seed)")
    return 0


def cmd_init_tracking(args) -> int:
    from hetmtl.tracking.mlflow_store import init_experiment

    p = _params(args)
    p.suite(args.suite)
    ids = init_experiment(p.root, args.suite, p.tracking_parents())
    print(f"MLflow experiment {ids['experiment']} ({ids['experiment_id']}) at {ids['tracking_uri']}")
    return 0


def cmd_tracking(args) -> int:
    from hetmtl.tracking import rebuild

    p = _params(args)
    p.suite(args.suite)
    if args.action == "rebuild":
        out = rebuild.rebuild(p, args.suite, p.root)
        print(f"{out['logged']} of {out['runs_on_disk']} runs on disk logged again into {out['experiment']} "
              f"({out['experiment_id']}) at {out['tracking_uri']}; the others were there")
    n = rebuild.check(p, args.suite, p.root)
    print(f"the MLflow store holds all {n} runs on disk of suite {args.suite}, FINISHED, with their receipts' metrics")
    return 0


def cmd_train(args) -> int:
    from hetmtl.runs import RunId

    p = _params(args)
    seeds = args.seed if args.seed else p.suite(args.suite)["seeds"]
    return _run(p, [RunId(args.suite, args.group, args.setting, args.method, s) for s in seeds], args)


def _run(p, runs: list, args) -> int:
    """Resolve every seed's run first (a run outside the grid, missing data or R
    fail before any training), then train them one after the other in this
    process: the start-up (imports, MLflow store) is paid once per cell."""
    from hetmtl.resolve import resolve

    resolved = [resolve(p, run) for run in runs]
    from hetmtl.training.job import run_job

    for run in resolved:
        receipt = run_job(run, device_name=args.device, threads=args.threads, progress=not args.no_progress)
        print(f"seed {run.run.seed}: " + json.dumps(receipt["metrics"], indent=2))
    return 0


def cmd_sweep(args) -> int:
    from hetmtl.runs import RunId

    p = _params(args)
    if args.sweep not in p["sweeps"]:
        raise ParamsError(f"{p.files['sweeps']}: sweeps: no sweep {args.sweep!r}")
    sw = p["sweeps"][args.sweep]
    seeds = args.seed if args.seed else p.suite(args.suite)["sweeps"][args.sweep]["seeds"]
    value = p.sweep_value(args.suite, args.sweep, args.value)
    return _run(p, [RunId(args.suite, args.group, sw["setting"], sw["method"], s, args.sweep, value)
                    for s in seeds], args)


def cmd_tune(args) -> int:
    from hetmtl.resolve import resolve_tune

    p = _params(args)
    tune = resolve_tune(p, args.suite, args.group, args.setting, args.method)
    from hetmtl.training.tune import tune_job

    record = tune_job(tune, device_name=args.device, threads=args.threads)
    print(f"chosen (trial {record['best']} of {len(record['trials'])}): {json.dumps(record['chosen'])}")
    return 0


def cmd_relations(args) -> int:
    from hetmtl.resolve import resolve_relations

    p = _params(args)
    rel = resolve_relations(p, args.suite, args.group)
    from hetmtl.training.relations import relations_job

    print(relations_job(rel, device_name=args.device, threads=args.threads))
    return 0


def cmd_runs(args) -> int:
    """Every run of a suite, one JSON line each: its identity, the command that
    trains it and its state on disk; ``--resolve`` prints each run's resolved
    record instead (what its job will execute)."""
    import dataclasses

    from hetmtl.tracking import receipts

    p = _params(args)
    runs = p.runs(args.suite) + p.sweep_runs(args.suite)
    if args.group:
        runs = [r for r in runs if r.group in args.group]
    for run in runs:
        if args.resolve:
            from hetmtl.resolve import resolve

            print(json.dumps(dataclasses.asdict(resolve(p, run)), default=str, sort_keys=True))
            continue
        path = p.root / run.receipt
        state = "missing"
        if path.exists() and (p.root / run.model).exists():
            state = "done" if receipts.read(path).get("job_digest") == p.job_digest(run) else "stale"
        print(json.dumps({**{k: v for k, v in dataclasses.asdict(run).items() if v is not None},
                          "state": state, "receipt": run.receipt.as_posix(), "command": run.command}))
    return 0


def cmd_aggregate(args) -> int:
    from hetmtl.reporting.aggregate import aggregate

    p = _params(args)
    aggregate(p, args.suite, p.root, with_items=not args.no_items)
    for name in p["tables"]:
        print(paths.table_file(args.suite, name, "md"))
    return 0


def _report_item(args, make, name: str) -> int:
    """One table or figure (``make``: aggregate's writer of it) from the current receipts."""
    from hetmtl.reporting.aggregate import check_current, collect

    p = _params(args)
    check_current(p, args.suite, p.root)
    for path in make(p, args.suite, p.root, name, collect(p, args.suite, p.root)):
        print(path.relative_to(p.root))
    return 0


def cmd_table(args) -> int:
    from hetmtl.reporting.aggregate import write_table

    return _report_item(args, write_table, args.table)


def cmd_figure(args) -> int:
    from hetmtl.reporting.aggregate import draw_figure

    return _report_item(args, draw_figure, args.figure)


def cmd_bench(args) -> int:
    from hetmtl.bench.run import bench, markdown, write

    p = _params(args)
    p.suite(args.suite)
    record = bench(p, args.suite, methods=args.method, group=args.group, device_name=args.device,
                   threads=args.threads, warmup=args.warmup, steps=args.steps, epochs=args.epochs,
                   count_only=args.count_only, compile_forward=args.compile, peak=args.peak_tflops, gpu=args.gpu,
                   mfu=tuple(args.mfu), gpu_peak=args.gpu_peak_tflops)
    print(markdown(record), end="")
    for path in write(record, p.root, report=True if args.report else None):
        print(path)
    return 0


def cmd_plan(args) -> int:
    from hetmtl.reporting.plan import plan

    p = _params(args)
    p.suite(args.suite)
    if args.pilot:
        p.suite(args.pilot)
    for path in plan(p, args.suite, p.root, pilot=args.pilot):
        print(path.relative_to(p.root))
    return 0


def cmd_explain(args) -> int:
    from hetmtl.reporting.collect import check_current
    from hetmtl.reporting.explain import explain

    p = _params(args)
    check_current(p, args.suite, p.root)
    print(explain(p, args.suite, p.root, args.table, args.method, args.column), end="")
    return 0


def cmd_doctor(args) -> int:
    from hetmtl.doctor import report, run_checks

    p = _params(args)
    text, rc = report(run_checks(p, args.suite, args.profile, cost=not args.no_cost), args.suite)
    print(text, end="")
    return rc


def cmd_dvc_yaml(args) -> int:
    from hetmtl import dvc_yaml

    p = _params(args)
    if args.check:
        suite = args.suite or dvc_yaml.chosen_suite(p)
        stale = dvc_yaml.stale(p.root, dvc_yaml.render(p, suite))
        if stale:
            print(f"error: {', '.join(map(str, stale))}: not what params/ give for suite {suite!r}: "
                  "run `hetmtl dvc-yaml`", file=sys.stderr)
            return 1
        return 0
    for path in dvc_yaml.write(p, args.suite):
        print(path)
    return 0


def _device(text: str) -> str:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: auto, cpu, cuda or cuda:N")
    return text


def device_flags(sp, progress: bool) -> None:
    """The flags of every command that trains: device, CPU threads, progress bars."""
    sp.add_argument("--device", default="auto", type=_device, help="auto, cpu, cuda or cuda:N")
    sp.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    if progress:
        sp.add_argument("--no-progress", action="store_true", help="no progress bars (jobs of a workflow)")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.errno in files.WRITE_ERRNOS:
        return files.explain(Path(exc.filename), exc, "use")  # a read-only or full folder: the path and what to do
    return str(exc)


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are one line too (the usage is one `--help` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the flags)\n")


def build_parser() -> argparse.ArgumentParser:
    from hetmtl import __version__

    parser = _Parser(prog="hetmtl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hetmtl {__version__}")
    parser.add_argument("--root", help="project root (default: found above the current folder)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one step of the pipeline (`hetmtl COMMAND --help`)")

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--suite", required=True, help="suite of params/suites/ (tiny, demo, paper, ...)")
        sp.set_defaults(fn=fn)
        return sp

    add("check-params", cmd_check_params, "validate params/ and show the grid size")
    sp = add("count", cmd_count, "the suite's work from one model: runs, Snakemake jobs, GPU-hours (FLOP estimate), "
                                 "disk and the wall time the Slurm profile books (hetmtl/count.py); writes nothing")
    sp.add_argument("--gpu", default="H100 SXM", help="the GPU of the GPU-hours estimate (hetmtl/bench/peaks.py)")
    sp.add_argument("--mfu", type=float, nargs="+", default=[0.4, 0.6], help="the MFUs assumed for the estimate")
    sp.add_argument("--json", action="store_true", help="the count as JSON")
    sp = add("fetch", cmd_fetch, "get (or generate) and verify source archives")
    sp.add_argument("--source", action="extend", nargs="+",
                    help="source names (default: every source the grid uses)")
    add("verify", cmd_verify, "check every archive present against the MD5 recorded when it was fetched "
                              "(snakemake does it on every run)")
    sp = add("prepare", cmd_prepare, "decode, select classes, split, save uint8 tensors")
    sp.add_argument("--task", action="extend", nargs="+", required=True,
                    help="tasks of params/datasets.yaml (several after one flag, or the flag repeated)")
    add("init-tracking", cmd_init_tracking, "create the suite's MLflow experiment and parent runs")
    sp = add("train", cmd_train, "train one (group, setting, method): its seeds, one after the other")
    sp.add_argument("--group", required=True, help="task group of params/grid.yaml (related, unrelated, ...)")
    sp.add_argument("--setting", required=True,
                    help="no_prior, prior (with the task relationship R) or shared (single_task, mtda)")
    sp.add_argument("--method", required=True, help="method of params/methods.yaml (mtal, cross_stitch, ...)")
    sp.add_argument("--seed", type=int, nargs="+", help="only these seeds (default: the suite's seeds)")
    device_flags(sp, progress=True)
    sp = add("sweep", cmd_sweep, "train one point of a parameter sweep (paper Fig. 9)")
    sp.add_argument("--sweep", required=True, help="sweep of params/grid.yaml (e.g. rho)")
    sp.add_argument("--group", required=True, help="task group of params/grid.yaml")
    sp.add_argument("--value", required=True, help="the swept parameter's value (a number, or a weighting's name)")
    sp.add_argument("--seed", type=int, nargs="+", help="only these seeds (default: the sweep's seeds)")
    device_flags(sp, progress=True)
    sp = add("tune", cmd_tune, "random search of one (group, setting, method) on the validation split "
                               "(suite.tune): the values its training jobs then use")
    sp.add_argument("--group", required=True, help="task group of params/grid.yaml")
    sp.add_argument("--setting", required=True, help="shared, no_prior or prior")
    sp.add_argument("--method", required=True, help="method of params/methods.yaml")
    device_flags(sp, progress=False)
    sp = add("relations", cmd_relations, "estimate the task-relationship matrix R of a group")
    sp.add_argument("--group", required=True, help="task group of params/grid.yaml")
    device_flags(sp, progress=False)
    sp = add("runs", cmd_runs, "list the suite's runs (grid and sweeps): state on disk and the command of each")
    sp.add_argument("--group", action="extend", nargs="+", help="only these groups' runs")
    sp.add_argument("--resolve", action="store_true",
                    help="print each run's resolved record (method parameters, training configuration, R, paths, "
                         "tags, digests): what its job executes; needs the prepared data")
    sp = add("aggregate", cmd_aggregate, "tables, figures and DVC metrics from the receipts")
    sp.add_argument("--no-items", action="store_true",
                    help="the tables and figures are made already (`hetmtl table`, `hetmtl figure`): only the "
                         "metrics, plot data, provenance and the MLflow run")
    from hetmtl.reporting import catalogue

    sp = add("table", cmd_table, "one table (Markdown, LaTeX, CSV, HTML) from the receipts")
    sp.add_argument("--table", required=True,
                    help=f"{catalogue.described('table')} (hetmtl/reporting/catalogue.py)")
    sp = add("figure", cmd_figure, "one figure (PNG and PDF) from the receipts")
    sp.add_argument("--figure", required=True,
                    help=f"{catalogue.described('figure')} (hetmtl/reporting/catalogue.py)")
    sp = add("tracking", cmd_tracking, "check the MLflow store against the receipts, or rebuild it from them")
    sp.add_argument("action", choices=["check", "rebuild"],
                    help="check: the store holds every run on disk; rebuild: log again the runs it lacks, then check")
    sp = add("bench", cmd_bench, "time every deep method's training step, count its FLOPs, and estimate the "
                                 "suite grid's cost (table, and JSON under reports/<suite>/bench/)")
    sp.add_argument("--method", nargs="+", help="only these methods (default: every deep method of the grid)")
    sp.add_argument("--group", help="the task group whose cells are timed (default: the first of params/grid.yaml)")
    sp.add_argument("--warmup", type=int, default=3, help="untimed steps before each timing")
    sp.add_argument("--steps", type=int, default=20, help="timed steps per timing")
    sp.add_argument("--epochs", type=int, default=2, help="epochs of `fit` timed for the harness ratio")
    sp.add_argument("--count-only", action="store_true",
                    help="count FLOPs and estimate GPU-hours only (no timing, no data needed); written under "
                         "results/<suite>/bench/ (ignored by git) unless --report")
    sp.add_argument("--report", action="store_true",
                    help="write under reports/<suite>/bench/ (tracked: the committed numbers), also with --count-only")
    sp.add_argument("--compile", action="store_true", help="also time the step with the forward under torch.compile")
    sp.add_argument("--peak-tflops", type=float, help="this GPU's bf16 peak for MFU (default: hetmtl/bench/peaks.py)")
    sp.add_argument("--gpu", default="H100 SXM", help="the GPU of the GPU-hours estimate (hetmtl/bench/peaks.py)")
    sp.add_argument("--gpu-peak-tflops", type=float, help="that GPU's bf16 peak, when the table has none")
    sp.add_argument("--mfu", type=float, nargs="+", default=[0.4, 0.6],
                    help="the MFUs assumed for the GPU-hours estimate")
    device_flags(sp, progress=False)
    sp = add("plan", cmd_plan, "the seeds each claim needs to be decided (80%% power after Holm) and their cost in "
                               "GPU-hours, from a pilot suite's runs (reports/<suite>/tables/plan.*)")
    sp.add_argument("--pilot", help="the suite whose runs give effects and spreads (default: --suite itself)")
    sp = add("explain", cmd_explain, "where a table cell comes from: each seed's value, receipt and MLflow run id")
    sp.add_argument("--table", required=True, help="a comparison table of params/grid.yaml (table2 .. table5)")
    sp.add_argument("--method", required=True, help="the row: a method of that table")
    sp.add_argument("--column", default="Average", help="a task of the table's group, or Average (default)")
    sp = add("doctor", cmd_doctor, "before a long run: is this machine ready for the suite? one line per check "
                                   "(archives, ImageNet weights, GPU, disk, MLflow, Slurm, cost), each ok / missing "
                                   "/ blocked with what to do; exit status 1 when something blocks")
    sp.add_argument("--profile", choices=["default", "slurm"], default="default",
                    help="the Snakemake profile the run will use (slurm: also check sinfo and the partitions)")
    sp.add_argument("--no-cost", action="store_true", help="skip the cost estimate (it counts every job's FLOPs)")
    what = "write dvc.yaml from params/ for a suite (default: params/dvc_suite.yaml's)"
    sp = sub.add_parser("dvc-yaml", help=what, description=what)
    sp.add_argument("--suite", help="write it for this suite and record the choice in params/dvc_suite.yaml")
    sp.add_argument("--check", action="store_true", help="only say whether dvc.yaml is what params/ give")
    sp.set_defaults(fn=cmd_dvc_yaml)
    return parser


def main(argv: list[str] | None = None, in_server: bool = False) -> int:
    args = build_parser().parse_args(argv)
    from hetmtl import forkserver

    # Run as a command (not called from Python): the heavy imports are paid once
    # per session, by a fork server (hetmtl/forkserver.py).
    if argv is None and not in_server and forkserver.enabled(args.command):
        rc = forkserver.run(sys.argv[1:], entry=f"{__name__}:main")
        if rc is not None:
            return rc
    from hetmtl.tracking import mlflow_store

    # the Source of the runs this command logs (the MLflow UI's column)
    mlflow_store.set_source(" ".join(["hetmtl", args.command, *([args.action] if args.command == "tracking" else [])]))
    try:
        return args.fn(args)
    except BrokenPipeError:  # `hetmtl runs | head`: the reader left; say nothing more, like other commands
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (UserError, OSError) as exc:  # one line naming what failed and what to do (hetmtl/errors.py)
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, ParamsError) else 1


if __name__ == "__main__":
    sys.exit(main())
