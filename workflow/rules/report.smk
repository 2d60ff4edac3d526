# Sweeps (paper Fig. 9) and the aggregation: receipts -> their MLflow runs ->
# tables, figures, DVC metrics and plot data, and the `snakemake --report` items.

SWEEP_RUNS = P.sweep_runs(SUITE)
SWEEP_DIR = f"results/{SUITE}/sweeps/{{sweep}}/{{group}}/{{value}}"
SWEEP_SEEDS = S["sweeps"][next(iter(P["sweeps"]))]["seeds"] if P["sweeps"] else []
if any(S["sweeps"][n]["seeds"] != SWEEP_SEEDS for n in P["sweeps"]):
    raise ValueError(f"params/suites/{SUITE}.yaml: suite.sweeps: every sweep must use the same seeds "
                     "(one sweep job trains them all)")
STANDIN = " The data are GENERATED STAND-INS, not the paper's data sets." if S["data"] == "standin" else ""
TABLES = list(P["tables"]) + ["table6"]
FIGURES = list(items.FIGURES)  # fig08_overall ... fig12_mtal_loss: the names sort in the paper's order


rule sweep:
    input:
        unpack(sweep_inputs),
    params:
        suite=SUITE,
        device=config["device"],
        # rerun trigger: the parameters and code this job reads (snakemake's default "params" trigger)
        digest=lambda wc: P.job_digest(RunId(SUITE, wc.group, P["sweeps"][wc.sweep]["setting"],
                                             P["sweeps"][wc.sweep]["method"], SWEEP_SEEDS[0], wc.sweep,
                                             float(wc.value))),
    output:  # the sweep's seeds, one after the other in one job
        receipts=[f"{SWEEP_DIR}/seed{seed}/receipt.json" for seed in SWEEP_SEEDS],
        models=[f"{SWEEP_DIR}/seed{seed}/model.pt" for seed in SWEEP_SEEDS],
    wildcard_constraints:
        value=r"[0-9.e+-]+",
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


FIGURE_CAPTIONS = {
    "fig08_overall": "Reproduces the paper's Fig. 8: average test accuracy of every method in every table "
                     "(MTAL red, MTAL with the task prior orange, baselines blue).",
    "fig09_threshold_sweep": "Reproduces the paper's Fig. 9: MTAL's accuracy against the threshold rho.",
    "fig10_activations_conv1": "Reproduces the paper's Fig. 10: activation maps of shared kernels, first conv layer "
                               "(when none is shared: the best-matching pairs, marked NOT shared).",
    "fig11_activations_conv2": "Reproduces the paper's Fig. 11: activation maps of shared kernels, second conv layer "
                               "(when none is shared: the best-matching pairs, marked NOT shared).",
    "fig12_mtal_loss": "Reproduces the paper's Fig. 12: MTAL's per-task training-loss curves (one colour per task).",
}
RECORDS = dict(  # what every table and figure reads: the receipts (Figs. 10-11: MTAL's models too)
    receipts=[str(run.receipt) for run in RUNS],
    models=[str(run.model) for run in RUNS if run.method == "mtal"],
    sweeps=[str(run.receipt) for run in SWEEP_RUNS],
)


# One job per table and per figure: each report item gets its own caption (the
# caption template reads the job's params.caption).
rule table:
    input:
        **RECORDS,
    output:
        **{ext: str(paths.table_file(SUITE, "{table}", ext)) for ext in items.TABLE_FORMATS if ext != "html"},
        html=report(str(paths.table_file(SUITE, "{table}", "html")), category="Tables",
                    caption="../report/table.rst", labels={"table": "{table}", "suite": SUITE}),
    params:
        suite=SUITE,
        caption=lambda wc: table_caption(wc.table),
    wildcard_constraints:
        table="|".join(TABLES),
    log:
        f"logs/{SUITE}/table/{{table}}.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl table --suite {params.suite} --table {wildcards.table} > {log} 2>&1"


rule figure:
    input:
        **RECORDS,
    output:
        png=report(str(items.figure_file(SUITE, "{figure}", "png")), category="Figures",
                   caption="../report/figure.rst", labels={"figure": "{figure}", "suite": SUITE}),
        pdf=str(items.figure_file(SUITE, "{figure}", "pdf")),
    params:
        suite=SUITE,
        caption=lambda wc: FIGURE_CAPTIONS[wc.figure] + STANDIN,
    wildcard_constraints:
        figure="|".join(FIGURES),
    log:
        f"logs/{SUITE}/figure/{{figure}}.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl figure --suite {params.suite} --figure {wildcards.figure} > {log} 2>&1"


rule aggregate:
    input:
        **RECORDS,
        tables=expand(str(paths.table_file(SUITE, "{table}", "{ext}")), table=TABLES, ext=items.TABLE_FORMATS),
        figures=expand(str(items.figure_file(SUITE, "{figure}", "{ext}")), figure=FIGURES,
                       ext=items.FIGURE_FORMATS),
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
