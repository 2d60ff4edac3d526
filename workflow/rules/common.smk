# Helpers shared by the rules: where each task's archive and prepared files are,
# and the wall time a training job books.


def one_of(names):
    """A wildcard constraint: exactly one of these names."""
    return "|".join(map(re.escape, names)) or "(?!)"


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
    if (wc.group, wc.setting, wc.method) in TUNE_CELLS:  # the values its tune stage chose
        inputs["tune"] = str(paths.tune_json(SUITE, wc.group, wc.setting, wc.method))
    follows = P.follows(wc.method)
    if follows is not None:  # random_matched: the receipts of the delta runs it follows
        inputs["followed"] = [str(RunId(SUITE, wc.group, wc.setting, follows, s).receipt) for s in S["seeds"]]
    return inputs


def tune_inputs(wc):
    inputs = {"data": prepared_of_group(wc.group), "marker": str(paths.experiment_marker(SUITE))}
    if wc.setting == "prior":
        inputs["relations"] = str(paths.relations_csv(SUITE, wc.group))
    return inputs


def tune_runtime(wc):
    scale = S["tune"]
    return runtime_minutes(len(P.tasks_of(wc.group)) * scale["epochs"] * scale["trials"])


def sweep_inputs(wc):
    inputs = {"data": prepared_of_group(wc.group), "marker": str(paths.experiment_marker(SUITE))}
    sw = P["sweeps"][wc.sweep]
    if sw["setting"] == "prior":
        inputs["relations"] = str(paths.relations_csv(SUITE, wc.group))
    return inputs


# Minutes per epoch of one task (ours, an estimate, not a measurement: 240 minutes
# for 50 epochs of a 4-task VGG-16 run on a GPU, 30 on stand-ins): the wall time
# (Slurm's --time) of a job that trains `task_epochs` task-epochs, with a margin.
MINUTES_PER_TASK_EPOCH = 1.2 if S["data"] == "real" else 0.15


def runtime_minutes(task_epochs):
    return max(10, math.ceil(MINUTES_PER_TASK_EPOCH * task_epochs))


def sweep_runtime(wc):
    scale = S["sweeps"][wc.sweep]
    T = len(P.tasks_of(wc.group))
    factor = 1.0
    if P["sweeps"][wc.sweep]["parameter"] == "weighting" and WEIGHTINGS[wc.value][0] == "gradient":
        # ours, an estimate: a gradient aggregator's Jacobian takes one backward pass per
        # task (a backward ~ two forwards): (1 + 2T) / 3 times a plain step
        factor = (1 + 2 * T) / 3
    return runtime_minutes(T * scale["epochs"] * len(scale["seeds"]) * factor)


def relations_runtime(wc):
    # every pair of the group's tasks, alone and together (2 + 2 task-epochs), per seed
    n = len(P.tasks_of(wc.group))
    return runtime_minutes(n * (n - 1) // 2 * 4 * S["relations"]["epochs"] * len(S["relations"]["seeds"]))


def report_digest(kind):
    """A table's or figure's rerun trigger: the params sections it reads (report.yaml's
    display names and roles; the claims table also claims.yaml; hetmtl/reporting/catalogue.py)."""
    return lambda wc: P.digest(*catalogue.sections(P, kind, getattr(wc, kind)))
