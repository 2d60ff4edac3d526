# Aggregation: receipts -> their MLflow runs -> tables and the DVC metrics file.


rule aggregate:
    input:
        receipts=[str(paths.receipt(**k)) for k in RUNS],
    output:
        tables=expand(str(paths.table_file(SUITE, "{table}", "{ext}")), table=list(P["tables"]), ext=["md", "csv", "tex"]),
        metrics=str(paths.metrics_file(SUITE)),
    log:
        f"logs/{SUITE}/aggregate.log",
    shell:
        "hetmtl aggregate --suite {SUITE} > {log} 2>&1"
