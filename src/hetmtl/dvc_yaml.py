"""dvc.yaml, written from params/ for one suite (``hetmtl dvc-yaml``).

DVC's templating cannot say what a job reads exactly: a ``matrix`` over methods
cannot map ``mtal_prior`` to the modules it imports, and a suite file cannot be
chosen by a variable. So the stages are written out, one per job, from the same
functions that make the Snakefile's rerun triggers: every training stage lists
as params exactly the keys of :meth:`Params.job_inputs` (its method's entry, the
training section, the suite's training keys, its group's tasks and their data
keys, the split) and as deps exactly :func:`code_paths` (its method's module,
the method modules it imports, the shared code) and its group's prepared data;
when the suite tunes (``suite.tune.trials`` > 0) a tune stage per grid cell
(the same, plus ``suite.tune``, ``tuning`` and the sampling code) whose JSON
its training stage depends on.
An edit then makes stale in DVC the jobs Snakemake reruns, no more, no fewer
(tests/test_pipeline.py edits five kinds of thing and compares).

The stages are spread over several files (ours): the data, relations and
aggregation stages in ``dvc.yaml``, the training stages of each group and setting
in ``workflow/dvc/<group>/<setting>/dvc.yaml`` (sweeps: ``.../sweep-<name>/``),
each running in the project root (``wdir``). ``dvc repro`` and ``dvc status``
take them all; what the split buys is speed: DVC rewrites a stage's whole
``dvc.lock`` after each stage (a pure-Python round-trip YAML parse and dump), so
one lock for all stages costs time quadratic in their number. `dvc repro` of
the tiny suite from a clean copy (44 stages, 2 cores): one file 133 s, 81 s of
CPU in DVC; split 111 s, 50 s.

The committed files are this module's output for the suite named in
``params/dvc_suite.yaml`` (a test checks they agree); ``hetmtl dvc-yaml --suite tiny``
writes them for another suite (and records the choice there).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hetmtl import files, paths
from hetmtl.methods.registry import RELATIONS_ALONE, RELATIONS_TOGETHER
from hetmtl.params import DATA_CODE, TUNE_CODE, Params, code_paths
from hetmtl.reporting import catalogue

CHOICE = Path("params/dvc_suite.yaml")
ROOT_FILE = Path("dvc.yaml")
TRAIN_DIR = Path("workflow/dvc")  # one dvc.yaml per group and setting below it


def chosen_suite(p: Params) -> str:
    return p["dvc"]["suite"]


def _suite_file(suite: str) -> str:
    return f"params/suites/{suite}.yaml"


def _params(inputs: dict[str, list[str]]) -> list[dict]:
    return [{f: sorted(set(keys))} for f, keys in inputs.items() if keys]


def _job_params(p: Params, suite: str, key: dict, sweep: tuple[str, str] | None = None,
                weighting: str | None = None) -> list[dict]:
    """The DVC spelling of :meth:`Params.job_inputs` (``weighting``: the run's, when not training.weighting)."""
    tasks = p.tasks_of(key["group"])
    if sweep is None:
        name = key["method"]  # a variant: its own keys and the ones it inherits, where they are written
        method = [f"methods.{name}"] if p.base_method(name) == name else p.method_keys(name)
        scale = [f"suite.{k}" for k in p.TRAINING_SUITE_KEYS] + ["suite.seeds"]
        grid = [f"groups.{key['group']}.tasks"]
    else:  # every parameter of the method but the swept one; epochs and seeds from the sweep
        name, swept = sweep
        method = [k for k in p.method_keys(key["method"]) if k.rpartition(".")[2] != swept]
        scale = [f"suite.{k}" for k in p.TRAINING_SUITE_KEYS if k != "epochs"] + [
            f"suite.sweeps.{name}.epochs", f"suite.sweeps.{name}.seeds"]
        grid = [f"groups.{key['group']}.tasks", f"sweeps.{name}"]
    return _params({
        "params/methods.yaml": method,
        "params/training.yaml": ["training"],
        "params/weightings.yaml": [f"weightings.{weighting or p['training']['weighting']}"],
        _suite_file(suite): scale,
        "params/grid.yaml": grid,
        "params/datasets.yaml": [f"tasks.{t}" for t in tasks] + ["split", "selection_seed"],
    })


def _tune_params(p: Params, suite: str, key: dict) -> list[dict]:
    """The DVC spelling of :meth:`Params.tune_inputs`: the cell's training params,
    the suite's ``tune`` and the learning rate's range (a deep method)."""
    out = _job_params(p, suite, key)
    extra = {_suite_file(suite): ["suite.tune"]}
    if "lr" in p.search_space(key["method"]):
        extra["params/training.yaml"] = ["tuning"]
    for item in out:
        [(f, keys)] = item.items()
        item[f] = sorted(set(keys) | set(extra.pop(f, [])))
    return out + _params(extra)


def _prepared(suite: str, tasks: list[str]) -> list[str]:
    return [paths.prepared_dir(suite, t).as_posix() for t in tasks]


def stages(p: Params, suite: str) -> dict:
    s = p.suite(suite)
    marker = paths.experiment_marker(suite).as_posix()
    used_tasks = sorted({t for g in p["groups"] for t in p.tasks_of(g)}, key=list(p["tasks"]).index)
    used_sources = sorted({p["tasks"][t]["source"] for t in used_tasks})
    out: dict[str, dict] = {}
    # the suite keys the data steps read (images_per_class: the stand-ins' size; a real suite has none)
    data_keys = [f"suite.{k}" for k in ("data", "raw_dir", "images_per_class") if k in s]
    # One stage for the suite's archives (the folder prepare reads needs a producer,
    # or `dvc repro --dry` fails on a fresh clone). persist: an archive placed by hand
    # or fetched before is kept and verified, never deleted and downloaded again.
    out["fetch"] = {
        "cmd": f"hetmtl fetch --suite {suite}",
        # a class-folder source's own archive or folder (DVC hashes a folder's content)
        "deps": [*DATA_CODE["fetch"], *sorted(p["sources"][x]["path"] for x in used_sources
                                              if "path" in p["sources"][x])],
        "params": _params({"params/datasets.yaml": [f"sources.{x}" for x in used_sources],
                                      _suite_file(suite): data_keys}),
        "outs": [{s["raw_dir"]: {"persist": True}}],
    }
    for task in used_tasks:
        out[f"prepare-{task}"] = {
            "cmd": f"hetmtl prepare --suite {suite} --task {task}",
            "deps": [s["raw_dir"], *DATA_CODE["prepare"]],
            "params": _params({
                "params/datasets.yaml": [f"tasks.{task}", f"sources.{p['tasks'][task]['source']}", "selection_seed"],
                _suite_file(suite): [*data_keys, "suite.image_size"]}),
            "outs": [paths.prepared_dir(suite, task).as_posix()],
        }
    out["init_tracking"] = {
        "cmd": f"hetmtl init-tracking --suite {suite}",
        # the parent runs follow the group, setting and sweep names; reruns reuse them
        "params": _params({"params/grid.yaml": ["groups", "settings", "sweeps"]}),
        "outs": [{marker: {"cache": False}}],
    }
    relations_code = sorted({c for m in (RELATIONS_ALONE, RELATIONS_TOGETHER) for c in code_paths(p.root, m)})
    for group in p["groups"]:
        tasks = p.tasks_of(group)
        out[f"relations-{group}"] = {
            "cmd": f"hetmtl relations --suite {suite} --group {group}",
            "deps": [*_prepared(suite, tasks), marker, *relations_code],
            "params": _params({
                "params/methods.yaml": [f"methods.{RELATIONS_TOGETHER}"],
                "params/training.yaml": ["training"],
                _suite_file(suite): [f"suite.{k}" for k in p.TRAINING_SUITE_KEYS if k != "epochs"]
                + ["suite.relations"],
                "params/grid.yaml": ["relations", f"groups.{group}.tasks"],
                "params/datasets.yaml": [f"tasks.{t}" for t in tasks] + ["split", "selection_seed"]}),
            "outs": [{f: {"cache": False}} for f in (paths.relations_csv(suite, group).as_posix(),
                                                     paths.relations_png(suite, group).as_posix(),
                                                     paths.relations_detail(suite, group).as_posix())],
        }
    cells = dict.fromkeys((k["group"], k["setting"], k["method"]) for k in p.runs(suite))  # grid order
    tuned = set(p.tune_cells(suite))
    for group, setting, method in cells:
        if (group, setting, method) not in tuned:
            continue
        deps = [*_prepared(suite, p.tasks_of(group)), marker]
        if setting == "prior":
            deps.append(paths.relations_csv(suite, group).as_posix())
        out[f"tune-{group}-{setting}-{method}"] = {
            "group": group, "setting": setting,
            "cmd": f"hetmtl tune --suite {suite} --group {group} --setting {setting} --method {method}",
            # the search space is the method's declaration (the registry, among its code paths)
            "deps": deps + code_paths(p.root, p.base_method(method)) + list(TUNE_CODE),
            "params": _tune_params(p, suite, dict(group=group, setting=setting, method=method)),
            "outs": [{paths.tune_json(suite, group, setting, method).as_posix(): {"cache": False}}],
        }
    for group, setting, method in cells:
        key = dict(group=group, setting=setting, method=method)
        deps = [*_prepared(suite, p.tasks_of(group)), marker]
        if setting == "prior":
            deps.append(paths.relations_csv(suite, group).as_posix())
        if (group, setting, method) in tuned:  # the values its tune stage chose
            deps.append(paths.tune_json(suite, group, setting, method).as_posix())
        if p.follows(method) is not None:  # random_matched: the delta runs it follows (their receipts)
            deps.append(paths.run_dir(suite, group, setting, p.follows(method), 0).parent.as_posix())
        out[f"train-{group}-{setting}-{method}"] = {
            "group": group, "setting": setting,
            "cmd": f"hetmtl train --suite {suite} --group {group} --setting {setting} --method {method} --no-progress",
            "deps": deps + code_paths(p.root, p.base_method(method)),
            "params": _job_params(p, suite, key),
            # every seed of the suite, trained one after the other by the one command
            "outs": [paths.run_dir(suite, group, setting, method, 0).parent.as_posix()],
        }
    for name, sw in p["sweeps"].items():
        for group in p.sweep_groups(suite, name):
            for value in s["sweeps"][name]["values"]:
                key = dict(group=group, setting=sw["setting"], method=sw["method"])
                deps = [*_prepared(suite, p.tasks_of(group)), marker]
                if sw["setting"] == "prior":
                    deps.append(paths.relations_csv(suite, group).as_posix())
                text = paths.value_text(value)
                out[f"sweep-{name}-{group}-{text}"] = {
                    "group": group, "setting": f"sweep-{name}",
                    "cmd": f"hetmtl sweep --suite {suite} --sweep {name} --group {group} --value {text} "
                           "--no-progress",
                    "deps": deps + code_paths(p.root, p.base_method(sw["method"])),
                    "params": _job_params(p, suite, key, sweep=(name, sw["parameter"]),
                                          weighting=value if sw["parameter"] == "weighting" else None),
                    "outs": [paths.sweep_dir(suite, name, group, value, 0).parent.as_posix()],
                }
    # The report stage: every item of the catalogue (hetmtl/reporting/catalogue.py), one command.
    runs = sorted({run.receipt.parent.parent.as_posix() for run in p.runs(suite)})
    sweeps = sorted({run.receipt.parent.parent.as_posix() for run in p.sweep_runs(suite)})
    out["aggregate"] = {
        "cmd": f"hetmtl aggregate --suite {suite}",
        "deps": [*runs, *sweeps, *catalogue.relations_files(p, suite), "src/hetmtl/reporting"],
        "params": _params({"params/grid.yaml": ["tables", "shared_methods", "settings", "readings"],
                           "params/report.yaml": ["report"]}) + _item_sections(p),
        "outs": [{folder: {"cache": False}} for folder in report_folders(p, suite)],
        "metrics": [{paths.metrics_dir(suite).as_posix(): {"cache": False}}],
    }
    return out


HEADER = """\
# Written by `hetmtl dvc-yaml` (src/hetmtl/dvc_yaml.py) from params/ for the suite
# named in params/dvc_suite.yaml: do not edit; edit params/ and run `hetmtl dvc-yaml`
# (`hetmtl dvc-yaml --suite tiny` for another suite). One stage per job of the
# workflow/Snakefile, each with exactly the params, code and data its job reads; the
# training stages in workflow/dvc/<group>/<setting>/dvc.yaml (a lock file each).
"""


def _file_of(stage: dict) -> Path:
    """Where a stage is written: training stages by group and setting (sweeps by name)."""
    if "group" not in stage:
        return ROOT_FILE
    return TRAIN_DIR / stage["group"] / stage["setting"] / "dvc.yaml"


def _item_sections(p: Params) -> list[dict]:
    """The params sections some report item reads besides report.yaml's (the claims table: claims.yaml)."""
    return _params({p.files[s]: [s] for s in catalogue.all_sections() if s != "report"})


def report_folders(p: Params, suite: str) -> list[str]:
    """The folders the report stage writes: those of every catalogue item's files, and the plot data."""
    found = [paths.plots_dir(suite).as_posix()]
    for kind in catalogue.KINDS:
        for name in catalogue.names(p, kind):
            found += [f.parent.as_posix() for f in catalogue.files(p, suite, kind, name)]
    return sorted(set(found))


def render(p: Params, suite: str) -> dict[Path, str]:
    """Every file's text, by path relative to the project root."""
    docs: dict[Path, dict] = {ROOT_FILE: {"stages": {}}}
    for name, stage in stages(p, suite).items():
        target = _file_of(stage)
        stage = {k: v for k, v in stage.items() if k not in ("group", "setting")}
        if target != ROOT_FILE:  # paths stay those of the project root
            stage = {"wdir": "/".join([".."] * (len(target.parts) - 1)), **stage}
        docs.setdefault(target, {"stages": {}})["stages"][name] = stage
    # `dvc plots show` / `dvc plots diff`: every figure as the pipeline draws it
    # (curves coloured by group, task and method), as images: the page renders
    # offline (DVC's vega plots load their chart library from a CDN). The plot
    # data behind them stay in reports/<suite>/plots/ as CSV. The PNGs by name:
    # the PDFs beside them (an output of the aggregate stage's folder) are no
    # format DVC plots can show.
    docs[ROOT_FILE]["plots"] = [catalogue.figure_file(suite, f, "png").as_posix()
                                for f in catalogue.names(p, "figure")]
    return {path: HEADER + yaml.safe_dump(doc, sort_keys=False, width=120) for path, doc in docs.items()}


def stale(root: Path, rendered: dict[Path, str]) -> list[Path]:
    """Files that differ from ``rendered``, and pipeline files below TRAIN_DIR that
    it does not hold (DVC would run their stages)."""
    extra = [f.relative_to(root) for f in (root / TRAIN_DIR).rglob("dvc.yaml")] if (root / TRAIN_DIR).exists() else []
    return sorted({f for f in extra if f not in rendered}
                  | {f for f, text in rendered.items()
                     if not (root / f).exists() or (root / f).read_text() != text})


def write(p: Params, suite: str | None = None) -> list[Path]:
    """Write the files for ``suite`` (default: the recorded choice), remove
    pipeline files below TRAIN_DIR that params/ no longer give; the files written."""
    suite = suite or chosen_suite(p)
    p.suite(suite)  # a clear error for an unknown suite
    choice = p.root / CHOICE
    lines = [line for line in choice.read_text().splitlines() if not line.strip().startswith("suite:")]
    files.write_text(choice, "\n".join(lines + [f"  suite: {suite}"]) + "\n")
    rendered = render(p, suite)
    for rel in stale(p.root, rendered):
        if rel not in rendered:
            (p.root / rel).unlink()
            (p.root / rel).with_name("dvc.lock").unlink(missing_ok=True)
            for folder in (p.root / rel).parents:  # empty folders up to TRAIN_DIR
                if folder == p.root / TRAIN_DIR or any(folder.iterdir()):
                    break
                folder.rmdir()
    for rel, text in rendered.items():
        files.write_text(p.root / rel, text)
    return [p.root / rel for rel in rendered]


__all__ = ["CHOICE", "ROOT_FILE", "TRAIN_DIR", "chosen_suite", "render", "stages", "stale", "write"]
