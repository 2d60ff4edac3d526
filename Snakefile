# hetmtl: the whole benchmark as one DAG (SPEC sections 2-7).
#
#   snakemake --profile workflow/profiles/default --config suite=demo
#
# fetch (or generate) archives -> prepare tasks -> init MLflow experiment ->
# train every (group, setting, method, seed) -> aggregate tables.
# The grid comes from params/ (validated against the one schema in
# src/hetmtl/params/params.schema.yaml); rules only call the hetmtl CLI.

import re

from snakemake.utils import min_version, validate

min_version("9.0")

configfile: "workflow/config.yaml"
validate(config, "workflow/schemas/config.schema.yaml")

from hetmtl import paths
from hetmtl.params import load_params

P = load_params(workflow.basedir)
SUITE = config["suite"]
S = P.suite(SUITE)
RUNS = P.runs(SUITE)
GROUP_TASKS = sorted({t for g in P["groups"] for t in P.tasks_of(g)})
SOURCES = sorted({P["tasks"][t]["source"] for t in GROUP_TASKS})


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        expand(str(paths.table_file(SUITE, "{table}", "{ext}")), table=TABLES, ext=["md", "csv", "tex"]),
        [str(paths.figure(SUITE, f)) for f in FIGURES],
        [str(paths.metrics_file(SUITE, t)) for t in P["tables"]],
