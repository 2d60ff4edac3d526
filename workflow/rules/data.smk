# Data: one fetch job per source archive, one prepare job per task.


rule fetch:
    output:
        archive=f"{S['raw_dir']}/{{archive}}",
        md5=f"{S['raw_dir']}/{{archive}}.md5",
    params:
        suite=SUITE,
        source=lambda wc: SOURCE_OF_ARCHIVE[wc.archive],
        # rerun trigger: the source's entry and the suite's data keys (a stand-in's size)
        digest=lambda wc: P.fetch_digest(SUITE, SOURCE_OF_ARCHIVE[wc.archive]),
    log:
        f"logs/{SUITE}/fetch/{{archive}}.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl fetch --suite {params.suite} --source {params.source} > {log} 2>&1"


rule prepare:
    input:
        archive=lambda wc: archive_of_source(P["tasks"][wc.task]["source"]),
    params:
        suite=SUITE,
        # rerun trigger: the parameters this job reads (snakemake's default "params" trigger)
        digest=lambda wc: P.prepare_digest(SUITE, wc.task),
    output:
        images=str(paths.prepared_images(SUITE, "{task}")),
        manifest=str(paths.prepared_manifest(SUITE, "{task}")),
    log:
        f"logs/{SUITE}/prepare/{{task}}.log",
    conda:
        "../envs/hetmtl.yaml"
    shell:
        "hetmtl prepare --suite {params.suite} --task {wildcards.task} > {log} 2>&1"
