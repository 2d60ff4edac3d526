# Helpers shared by the rules: where each task's archive and prepared files are.


def archive_of_source(source):
    return str(paths.raw_archive(S, P["sources"][source]))


def prepared_of_task(task):
    return [str(paths.prepared_images(SUITE, task))] + [
        str(paths.prepared_manifest(SUITE, task))
    ]


def prepared_of_group(group):
    return [f for t in P.tasks_of(group) for f in prepared_of_task(t)]
