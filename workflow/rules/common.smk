# Helpers shared by the rules: where each task's archive and prepared files are,
# and the wall time a training job books (hetmtl/count.py).
from hetmtl import count


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
    return count.booked_minutes(P, SUITE, "tune", wc.group)


def sweep_inputs(wc):
    inputs = {"data": prepared_of_group(wc.group), "marker": str(paths.experiment_marker(SUITE))}
    sw = P["sweeps"][wc.sweep]
    if sw["setting"] == "prior":
        inputs["relations"] = str(paths.relations_csv(SUITE, wc.group))
    return inputs


# The wall time (Slurm's --time, minutes) each training job books: hetmtl/count.py, the one
# count of the suite's work that `hetmtl count` shows beside its GPU-hour estimate.
def train_runtime(wc):
    return count.booked_minutes(P, SUITE, "train", wc.group)


def sweep_runtime(wc):
    return count.booked_minutes(P, SUITE, "sweep", wc.group, wc.sweep, wc.value)


def relations_runtime(wc):
    return count.booked_minutes(P, SUITE, "relations", wc.group)


def report_digest(kind):
    """A table's or figure's rerun trigger: the params sections it reads (report.yaml's
    display names and roles; the claims table also claims.yaml; hetmtl/reporting/catalogue.py)."""
    return lambda wc: P.digest(*catalogue.sections(P, kind, getattr(wc, kind)))
