# Helpers shared by the rules: where each task's archive and prepared files are.


def archive_of_source(source):
    return str(paths.raw_archive(S, P["sources"][source]))


def prepared_of_task(task):
    return [str(paths.prepared_images(SUITE, task))] + [
        str(paths.prepared_manifest(SUITE, task))
    ]


def prepared_of_group(group):
    return [f for t in P.tasks_of(group) for f in prepared_of_task(t)]


def train_inputs(wc):
    inputs = {"data": prepared_of_group(wc.group), "marker": str(paths.experiment_marker(SUITE))}
    if wc.setting == "prior":
        inputs["relations"] = str(paths.relations_csv(SUITE, wc.group))
    return inputs


def sweep_inputs(wc):
    inputs = {"data": prepared_of_group(wc.group), "marker": str(paths.experiment_marker(SUITE))}
    sw = P["sweeps"][wc.sweep]
    if sw["setting"] == "prior":
        inputs["relations"] = str(paths.relations_csv(SUITE, wc.group))
    return inputs


def table_caption(table):
    spec = P["tables"].get(table)
    what = f"{spec['paper']}: {spec['group']} tasks, setting {spec['setting']}" if spec else \
        "Table 6: MTAL's kernel sharing ratio per conv layer"
    return f"Reproduces the paper's {what} (suite {SUITE}).{STANDIN}"
