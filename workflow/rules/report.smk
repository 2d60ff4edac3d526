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
FIGURES = ["fig8_overall", "fig9_threshold_sweep", "fig10_activations_conv1",
           "fig11_activations_conv2", "fig12_mtal_loss"]


rule sweep:
    input:
        unpack(sweep_inputs),
    params:
        suite=SUITE,
        device=config["device"],
        # rerun trigger: the parameters and code this job reads (snakemake's default "params" trigger)
        digest=lambda wc: P.job_digest(SUITE, dict(group=wc.group, setting=P["sweeps"][wc.sweep]["setting"],
                                                   method=P["sweeps"][wc.sweep]["method"]),
                                       sweep=(wc.sweep, float(wc.value))),
    output:  # the sweep's seeds, one after the other in one job
        receipts=[f"{SWEEP_DIR}/seed{seed}/receipt.json" for seed in SWEEP_SEEDS],
        models=[f"{SWEEP_DIR}/seed{seed}/model.pt" for seed in SWEEP_SEEDS],
    wildcard_constraints:
        value=r"[0-9.e+-]+",
    threads: 1
    resources:
        gpu=1 if S["data"] == "real" else 0,
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
    "fig8_overall": "Reproduces the paper's Fig. 8: average test accuracy of every method in every table.",
    "fig9_threshold_sweep": "Reproduces the paper's Fig. 9: MTAL's accuracy against the threshold rho.",
    "fig10_activations_conv1": "Reproduces the paper's Fig. 10: activation maps of shared kernels, first conv layer.",
    "fig11_activations_conv2": "Reproduces the paper's Fig. 11: activation maps of shared kernels, second conv layer.",
    "fig12_mtal_loss": "Reproduces the paper's Fig. 12: MTAL's per-task training-loss curves.",
}


rule aggregate:
    input:
        receipts=[str(paths.receipt(**k)) for k in RUNS],
        models=[str(paths.model_file(**k)) for k in RUNS if k["method"] == "mtal"],
        sweeps=[str(paths.sweep_receipt(**w)) for w in SWEEP_RUNS],
    output:
        tables=[
            report(str(paths.table_file(SUITE, t, "md")), category="Tables", caption="../report/table.rst",
                   labels={"table": t, "suite": SUITE})
            for t in TABLES
        ],
        other=expand(str(paths.table_file(SUITE, "{table}", "{ext}")), table=TABLES, ext=["csv", "tex"]),
        figures=[
            report(str(paths.figure(SUITE, f)), category="Figures", caption="../report/figure.rst",
                   labels={"figure": f, "suite": SUITE})
            for f in FIGURES
        ],
        metrics=[str(paths.metrics_file(SUITE, t)) for t in P["tables"]],
        plots=[str(paths.plots_dir(SUITE) / f"sweep_{n}.csv") for n in P["sweeps"]]
        + [str(paths.plots_dir(SUITE) / "mtal_train_loss.csv")],
    params:
        suite=SUITE,
        captions={**{t: table_caption(t) for t in TABLES},
                  **{f: FIGURE_CAPTIONS[f] + STANDIN for f in FIGURES}},
    log:
        f"logs/{SUITE}/aggregate.log",
    benchmark:
        f"logs/{SUITE}/benchmarks/aggregate.tsv"
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl aggregate --suite {params.suite} > {log} 2>&1"
