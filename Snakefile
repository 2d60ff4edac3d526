# hetmtl: the whole benchmark as one DAG (SPEC sections 2-7).
#
#   snakemake --profile workflow/profiles/default --config suite=demo
#
# fetch (or generate) archives -> prepare tasks -> init MLflow experiment ->
# train every (group, setting, method, seed) -> aggregate tables.
# The grid comes from params/ (validated against the one schema in
# src/hetmtl/params/params.schema.yaml); rules only call the hetmtl CLI.

import math
import re
import sys
import time

from snakemake.utils import min_version, validate

min_version("9.0")

configfile: "workflow/config.yaml"
validate(config, "workflow/schemas/config.schema.yaml")

from hetmtl import paths, preflight
from hetmtl.errors import UserError
from hetmtl.params import load_params
from hetmtl.reporting import catalogue

STARTED = time.time()
try:
    P = load_params(workflow.basedir)
    SUITE = config["suite"]
    S = P.suite(SUITE)
except UserError as exc:  # one line naming the file and key (hetmtl/errors.py)
    sys.exit(f"error: {exc}")
RUNS = P.runs(SUITE)
GROUP_TASKS = sorted({t for g in P["groups"] for t in P.tasks_of(g)})
SOURCES = sorted({P["tasks"][t]["source"] for t in GROUP_TASKS})
# the groups whose R some job reads (a prior-setting run or sweep)
PRIOR_GROUPS = {k["group"] for k in RUNS if k["setting"] == "prior"} | {
    w["group"] for w in P.sweep_runs(SUITE) if P["sweeps"][w["sweep"]]["setting"] == "prior"}

# Before anything is planned (the main process only: not the jobs it submits):
# writable folders, archives still as fetched, the locks of a killed run
# (hetmtl/preflight.py).
if workflow.is_main_process:
    problems = preflight.writable(workflow.basedir, ["results", "logs", "data", "reports", ".snakemake"])
    problems += preflight.verify_archives(P, SUITE, SOURCES)[0]
    if problems:
        sys.exit("\n".join(f"error: {p}" for p in problems))
    missing = preflight.missing_archives(P, SUITE, SOURCES)
    if missing:
        print(f"[hetmtl] {len(missing)} archive(s) to fetch; offline, place them by hand: "
              + "; ".join(missing), file=sys.stderr)
    released = preflight.release_stale_locks(workflow.basedir)
    if released:
        print(f"[hetmtl] {released}", file=sys.stderr)


onerror:
    # the reason of every failed job, also without the profile's --show-failed-logs
    for line in preflight.job_errors(workflow.basedir, SUITE, STARTED):
        print(f"[hetmtl] failed: {line}", file=sys.stderr)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


# Every file of the DAG is a target, not only the tables: Snakemake does not
# remake a missing file whose consumers are up to date, so a deleted receipt,
# model, relations matrix or prepared tensor would otherwise stay missing.
rule all:
    input:
        REPORT_FILES,
        [str(paths.metrics_file(SUITE, t)) for t in P["tables"]],
        [str(f) for k in RUNS for f in (paths.receipt(**k), paths.model_file(**k))],
        [str(f) for w in SWEEP_RUNS for f in (paths.sweep_receipt(**w), paths.sweep_receipt(**w).with_name("model.pt"))],
        [f for t in GROUP_TASKS for f in prepared_of_task(t)],
        [str(paths.relations_csv(SUITE, g)) for g in P["groups"] if g in PRIOR_GROUPS],
