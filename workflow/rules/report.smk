# Sweeps (paper Fig. 9) and the aggregation: receipts -> their MLflow runs ->
# tables, figures, DVC metrics and plot data, and the `snakemake --report` items.

SWEEP_POINT = RunId(SUITE, "{group}", "{setting}", "{method}", 0, "{sweep}", "{value}")  # a wildcard pattern
SWEEP_SEEDS = S["sweeps"][next(iter(P["sweeps"]))]["seeds"] if P["sweeps"] else []
if any(S["sweeps"][n]["seeds"] != SWEEP_SEEDS for n in P["sweeps"]):
    raise ValueError(f"params/suites/{SUITE}.yaml: suite.sweeps: every sweep must use the same seeds "
                     "(one sweep job trains them all)")
STANDIN = " The data are GENERATED STAND-INS, not the paper's data sets." if S["data"] == "standin" else ""
REPORT_FILES = [str(f) for kind in catalogue.KINDS for name in catalogue.names(P, kind)
                for f in catalogue.files(P, SUITE, kind, name)]

rule sweep:
    input:
        unpack(sweep_inputs),
    params:
        suite=SUITE,
        device=config["device"],
        # rerun trigger: the parameters and code this job reads (snakemake's default "params" trigger)
        digest=lambda wc: P.job_digest(RunId(SUITE, wc.group, P["sweeps"][wc.sweep]["setting"],
                                             P["sweeps"][wc.sweep]["method"], SWEEP_SEEDS[0], wc.sweep,
                                             P.sweep_value(SUITE, wc.sweep, wc.value))),
    output:  # the sweep's seeds, one after the other in one job
        receipts=[str(replace(SWEEP_POINT, seed=seed).receipt) for seed in SWEEP_SEEDS],
        models=[str(replace(SWEEP_POINT, seed=seed).model) for seed in SWEEP_SEEDS],
    threads: 1
    resources:
        gpu=1 if S["data"] == "real" else 0,
        runtime=sweep_runtime,
    log:
        f"logs/{SUITE}/sweep/{{sweep}}/{{group}}/{{value}}.log",
    benchmark:
        f"logs/{SUITE}/benchmarks/sweep/{{sweep}}/{{group}}/{{value}}.tsv"
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl sweep --suite {params.suite} --sweep {wildcards.sweep} --group {wildcards.group} "
        "--value {wildcards.value} --device {params.device} "
        "--threads {threads} --no-progress > {log} 2>&1"


# One job per table and per figure: each report item gets its own caption (the
# caption template reads the job's params.caption) and reads what its catalogue
# entry says (the receipts; Figs. 10-11 also the models).
rule table:
    input:
        unpack(lambda wc: catalogue.inputs(P, SUITE, "table", wc.table)),
    output:
        **{ext: str(paths.table_file(SUITE, "{table}", ext)) for ext in catalogue.TABLE_FORMATS if ext != "html"},
        html=report(str(paths.table_file(SUITE, "{table}", "html")), category="Tables",
                    caption="../report/table.rst", labels={"table": "{table}", "suite": SUITE}),
    params:
        suite=SUITE,
        caption=lambda wc: f"{catalogue.caption(P, 'table', wc.table)} Suite {SUITE}.{STANDIN}",
        report=report_digest("table"),
    log:
        f"logs/{SUITE}/table/{{table}}.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl table --suite {params.suite} --table {wildcards.table} > {log} 2>&1"


rule figure:
    input:
        unpack(lambda wc: catalogue.inputs(P, SUITE, "figure", wc.figure)),
    output:
        png=report(str(catalogue.figure_file(SUITE, "{figure}", "png")), category="Figures",
                   caption="../report/figure.rst", labels={"figure": "{figure}", "suite": SUITE}),
        pdf=str(catalogue.figure_file(SUITE, "{figure}", "pdf")),
    params:
        suite=SUITE,
        caption=lambda wc: f"{catalogue.caption(P, 'figure', wc.figure)}{STANDIN}",
        report=report_digest("figure"),
    log:
        f"logs/{SUITE}/figure/{{figure}}.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl figure --suite {params.suite} --figure {wildcards.figure} > {log} 2>&1"


rule aggregate:
    input:
        receipts=[str(run.receipt) for run in RUNS],
        sweeps=[str(run.receipt) for run in SWEEP_RUNS],
        report_items=REPORT_FILES,
    output:
        metrics=[str(paths.metrics_file(SUITE, t)) for t in P["tables"]],
        plots=[str(paths.plots_dir(SUITE) / f"sweep_{n}.csv") for n in P["sweeps"]]
        + [str(paths.plots_dir(SUITE) / "mtal_train_loss.csv")],
    params:
        suite=SUITE,
    log:
        f"logs/{SUITE}/aggregate.log",
    benchmark:
        f"logs/{SUITE}/benchmarks/aggregate.tsv"
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl aggregate --suite {params.suite} --no-items > {log} 2>&1"
