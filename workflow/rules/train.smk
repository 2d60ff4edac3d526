# Training: the MLflow experiment is created once, R is estimated per group,
# then one job per grid cell.


rule init_tracking:
    params:
        suite=SUITE,
        # rerun trigger: the parent runs it makes (groups, settings, sweeps)
        digest=P.tracking_digest(),
    output:
        str(paths.experiment_marker(SUITE)),
    log:
        f"logs/{SUITE}/init_tracking.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl init-tracking --suite {params.suite} > {log} 2>&1"


rule relations:
    input:
        data=lambda wc: prepared_of_group(wc.group),
        marker=str(paths.experiment_marker(SUITE)),
    params:
        suite=SUITE,
        device=config["device"],
        # rerun trigger: the parameters and code this job reads (snakemake's default "params" trigger)
        digest=lambda wc: P.relations_digest(SUITE, wc.group),
    output:
        csv=str(paths.relations_csv(SUITE, "{group}")),
        png=str(paths.relations_png(SUITE, "{group}")),
        detail=str(paths.relations_detail(SUITE, "{group}")),
    threads: 1
    resources:
        gpu=1 if S["data"] == "real" else 0,
        runtime=relations_runtime,
    log:
        f"logs/{SUITE}/relations/{{group}}.log",
    benchmark:
        f"logs/{SUITE}/benchmarks/relations/{{group}}.tsv"
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl relations --suite {params.suite} --group {wildcards.group} --device {params.device} "
        "--threads {threads} > {log} 2>&1"


# The tuning stage (suite.tune.trials > 0): one job per grid cell, a random search on
# the validation split; the cell's training job then trains with its choice.
rule tune:
    input:
        unpack(tune_inputs),
    params:
        suite=SUITE,
        device=config["device"],
        # rerun trigger: the parameters, search space and code this job reads
        digest=lambda wc: P.tune_digest(SUITE, wc.group, wc.setting, wc.method),
    output:
        str(paths.tune_json(SUITE, "{group}", "{setting}", "{method}")),
    threads: 1
    resources:
        gpu=1 if S["data"] == "real" else 0,
        mem_mb=4000,
        runtime=tune_runtime,
    log:
        f"logs/{SUITE}/tune/{{group}}/{{setting}}/{{method}}.log",
    benchmark:
        f"logs/{SUITE}/benchmarks/tune/{{group}}/{{setting}}/{{method}}.tsv"
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl tune --suite {params.suite} --group {wildcards.group} --setting {wildcards.setting} "
        "--method {wildcards.method} --device {params.device} --threads {threads} > {log} 2>&1"


# One job per (group, setting, method) trains the suite's seeds one after the
# other: the start-up (imports, MLflow store) is paid once per grid cell.
CELL = RunId(SUITE, "{group}", "{setting}", "{method}", 0)  # a wildcard pattern: its paths, one per seed


rule train:
    input:
        unpack(train_inputs),
    params:
        suite=SUITE,
        device=config["device"],
        # rerun trigger: the parameters and code this job reads (snakemake's default "params" trigger)
        digest=lambda wc: P.job_digest(RunId(SUITE, wc.group, wc.setting, wc.method, S["seeds"][0])),
    output:
        receipts=[str(replace(CELL, seed=seed).receipt) for seed in S["seeds"]],
        models=[str(replace(CELL, seed=seed).model) for seed in S["seeds"]],
    threads: 1
    resources:
        gpu=1 if S["data"] == "real" else 0,
        mem_mb=4000,
        runtime=train_runtime,
    log:
        f"logs/{SUITE}/train/{{group}}/{{setting}}/{{method}}.log",
    benchmark:
        f"logs/{SUITE}/benchmarks/train/{{group}}/{{setting}}/{{method}}.tsv"
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl train --suite {params.suite} --group {wildcards.group} --setting {wildcards.setting} "
        "--method {wildcards.method} --device {params.device} "
        "--threads {threads} --no-progress > {log} 2>&1"
