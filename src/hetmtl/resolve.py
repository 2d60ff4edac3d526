"""A run, resolved once: everything its job reads (DomainBed's resolved sweep job).

:func:`resolve` turns a :class:`~hetmtl.runs.RunId` and the parameters into a
frozen :class:`ResolvedRun`: the method's parameters (a variant's own entry,
which params/methods.yaml gives its base's keys; a sweep's value put in), the training configuration, the backbone,
R, the init source, the output paths, the tags, the MLflow parent and the
digests. A job then only executes it (:func:`hetmtl.training.job.run_job`);
nothing downstream reads ``params/`` again. :func:`resolve_relations` does the
same for a group's relations stage, :func:`resolve_tune` for a grid cell's tune
stage; when a suite tunes, :func:`resolve` reads the values that stage chose
(its JSON, as R from the relations CSV) into the method's parameters and rate.

No torch here: the CLI resolves before a job imports it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from hetmtl import files, paths
from hetmtl.errors import UserError
from hetmtl.methods.registry import METHOD_SPECS, PRETRAIN, RELATIONS_TOGETHER
from hetmtl.params import ParamsError
from hetmtl.runs import RunId, TrainConfig


@dataclass(frozen=True)
class ResolvedRun:
    """Everything one training job reads, resolved from params and its :class:`RunId`.

    Paths are absolute (under the checkout's root). ``method_params`` holds
    the method's parameters as the method receives them (its ``cfg``), with
    ``init`` and ``weighting``; ``relations`` is R (rows in the group's
    task order) for a prior-setting run, None otherwise."""
    run: RunId
    root: Path  # the checkout: the MLflow store and the prepared data are found from here
    method_class: str  # the registered method (hetmtl.methods.METHODS) this run builds
    method_params: dict
    train: TrainConfig
    backbone: str  # hetmtl.models.BACKBONES
    tasks: tuple[str, ...]
    split: dict  # params/datasets.yaml split: each seed draws its own
    relations: tuple[tuple[float, ...], ...] | None
    relations_file: Path | None
    init: str  # scratch or imagenet
    freeze_blocks: int
    pretrain_epochs: int  # single-task epochs inside the budget (cross-stitch, NDDR-CNN)
    data_md5: dict  # task -> MD5 of the archive its prepared data came from
    receipt: Path
    model: Path
    checkpoint: Path
    experiment_marker: Path
    tags: dict  # static tags of the MLflow run beside the run's identity (the job adds the commit and the device)
    run_params: dict  # the MLflow params
    params_digest: str  # parameters, data and R: a checkpoint of another digest is not resumed
    job_digest: str  # parameters and code: Snakemake's rerun trigger, checked by collection
    log_model: bool
    tuned: dict | None = None  # the values its tune stage chose (lr included), None without tuning
    tune_file: Path | None = None
    followed: Path | None = None  # the receipt of the run it follows (methods.<m>.follows), None otherwise

    @property
    def key(self) -> dict:
        return self.run.key

    @property
    def log(self) -> Path:
        return self.receipt.with_name("train.log")


@dataclass(frozen=True)
class ResolvedRelations:
    """The relations stage of one group: R given in params, or how to estimate it."""
    suite: str
    group: str
    root: Path
    tasks: tuple[str, ...]
    split: dict
    given: tuple[tuple[float, ...], ...] | None
    epochs: int
    seeds: tuple[int, ...]
    temperature: float
    train: TrainConfig  # of the estimate's runs (its first seed; each run sets its own)
    method_params: dict  # hard sharing's, with init
    freeze_blocks: int  # training.freeze_blocks, as the training jobs
    backbone: str
    csv: Path
    png: Path
    detail: Path
    experiment_marker: Path
    run: RunId  # its MLflow identity
    run_params: dict


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_config(params, suite_name: str, seed: int, tasks: list[str], epochs: int | None = None,
                 weighting: str | None = None) -> TrainConfig:
    """The training configuration of a suite for a group's tasks (the learning
    rate of its init: ``finetune_lr`` from ImageNet weights; the weighting:
    ``training.weighting`` unless given, with its params/weightings.yaml entry)."""
    weighting = weighting or params["training"]["weighting"]
    suite, tr = params.suite(suite_name), params["training"]
    imagenet = suite["init"] == "imagenet"
    return TrainConfig(epochs=epochs or suite["epochs"], batch_size=suite["batch_size"], seed=seed,
                       lr=tr["finetune_lr"] if imagenet else tr["lr"],
                       momentum=tr["momentum"], l2_lambda=tr["l2_lambda"], nan_check_every=tr["nan_check_every"],
                       divergence_factor=tr["divergence_factor"],
                       input_norm="imagenet" if imagenet else "symmetric", crop_pad=suite["augment"]["crop_pad"],
                       flip=tuple(suite["augment"]["flip"] and params["tasks"][t]["flip"] for t in tasks),
                       weighting=weighting, weighting_params=tuple(sorted(params["weightings"][weighting].items())))


def method_params(params, name: str) -> dict:
    """A method's parameters from params/methods.yaml (a variant's without ``variant_of``)."""
    return {k: v for k, v in params.method(name).items() if k != "variant_of"}


def pretrain_epochs(method_cfg: dict, epochs: int) -> int:
    """Epochs of single-task pre-training inside a method's budget (cross-stitch, NDDR)."""
    if "pretrain_fraction" not in method_cfg:
        return 0
    return min(epochs - 1, max(1, round(method_cfg["pretrain_fraction"] * epochs)))


def read_relations(path: Path, tasks: list[str]) -> tuple[tuple[float, ...], ...]:
    """R from the relations stage's CSV (rows and columns in the group's task order)."""
    with open(path) as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if not rows or rows[0][1:] != list(tasks):
        raise UserError(f"{path}: tasks {rows[0][1:] if rows else []} differ from the group's {list(tasks)}; "
                        "rerun its relations stage")
    return tuple(tuple(float(v) for v in r[1:]) for r in rows[1:])


def _data_md5(params, suite: str, tasks: list[str]) -> dict:
    out = {}
    for t in tasks:
        manifest = files.require(params.root / paths.prepared_manifest(suite, t),
                                 f"hetmtl prepare --suite {suite} --task {t}")
        out[t] = json.loads(manifest.read_text())["source_md5"]
    return out


def read_tune(params, run: RunId) -> tuple[Path, dict]:
    """The values the tune stage of ``run``'s cell chose (its JSON), refused when
    the JSON was written for other inputs (search space, trials, parameters, code)."""
    path = files.require(params.root / paths.tune_json(run.suite, run.group, run.setting, run.method),
                         tune_command(run.suite, run.group, run.setting, run.method))
    record = json.loads(path.read_text())
    if record.get("digest") != params.tune_digest(run.suite, run.group, run.setting, run.method):
        raise UserError(f"{path}: written for other parameters or code than the current ones; rerun "
                        f"`{tune_command(run.suite, run.group, run.setting, run.method)}`")
    return path, dict(record["chosen"])


def tune_command(suite: str, group: str, setting: str, method: str) -> str:
    return f"hetmtl tune --suite {suite} --group {group} --setting {setting} --method {method}"


def resolve(params, run: RunId, tune: bool = True, inputs: bool = True) -> ResolvedRun:
    """The one resolver of a training run: params and ``run`` -> a frozen record.

    Refuses a run that is not in the suite's grid or sweeps (one line naming
    the file to edit). Reads the prepared data's manifests (their MD5s enter
    ``params_digest``), for the prior setting R from the relations stage and,
    when the suite tunes, the values its tune stage chose (``tune=False``: the
    defaults, what the tune stage's trials start from). ``inputs=False`` (``hetmtl
    bench``: the shape of a run, before its inputs exist): missing prepared data
    leave ``data_md5`` without them and a missing R leaves ``relations`` None
    (a uniform R, the cost of the same networks); such a record is never trained."""
    if run not in (params.sweep_runs(run.suite) if run.sweep else params.runs(run.suite)):
        where = "sweeps" if run.sweep else "grid"
        raise ParamsError(f"{json.dumps(run.__dict__)} is not in the {where} of params/grid.yaml and "
                          f"params/suites/{run.suite}.yaml")
    root, suite = params.root, params.suite(run.suite)
    tasks = params.tasks_of(run.group)
    # ``weighting``: the run's (a sweep of it puts its value here), read into its TrainConfig
    mcfg = {**method_params(params, run.method), "init": suite["init"], "weighting": params["training"]["weighting"]}
    epochs = None
    if run.sweep:
        mcfg[params["sweeps"][run.sweep]["parameter"]] = run.value
        epochs = suite["sweeps"][run.sweep]["epochs"]
    cfg = train_config(params, run.suite, run.seed, tasks, epochs=epochs, weighting=mcfg["weighting"])
    relations, relations_file = None, None
    if run.setting == "prior" and (inputs or (root / paths.relations_csv(run.suite, run.group)).exists()):
        relations_file = files.require(root / paths.relations_csv(run.suite, run.group),
                                       f"hetmtl relations --suite {run.suite} --group {run.group}")
        relations = read_relations(relations_file, tasks)
    data_md5 = _data_md5(params, run.suite, tasks if inputs else
                         [t for t in tasks if (root / paths.prepared_manifest(run.suite, t)).exists()])
    followed, followed_digest = None, None
    if params.followed(run) is not None and (inputs or (root / params.followed(run).receipt).exists()):
        other = params.followed(run)  # random_matched reads its delta run's sharing counts
        followed = files.require(root / other.receipt, other.command)
        followed_digest = hashlib.sha256(followed.read_bytes()).hexdigest()[:16]
    tuned, tune_file = None, None
    if tune and run.sweep is None and params.tunes(run.suite):  # the tune stage's choice, read once here
        tune_file, tuned = read_tune(params, params.followed(run) or run)  # a follower: its run's choice
        mcfg.update({k: v for k, v in tuned.items() if k != "lr"})
        if "lr" in tuned:
            cfg = replace(cfg, lr=tuned["lr"])
    run_params = {"method": dict(mcfg), "training": params["training"],
                  "suite": {k: v for k, v in suite.items() if k != "tune"}, "tasks": tasks,
                  "weighting": {mcfg["weighting"]: params["weightings"][mcfg["weighting"]]},
                  "epochs": cfg.epochs, "flip": list(cfg.flip)}
    if tuned is not None:  # enters the params digest: another choice retrains
        run_params["tuned"] = dict(tuned)
    if followed_digest is not None:  # the followed run's receipt: another one retrains
        run_params["followed_receipt"] = followed_digest
    tags = {"paper_group": str(params["groups"][run.group]["paper_group"]), "data": suite["data"],
            "shared_between_settings": str(run.setting == "shared"),
            **{f"data_md5/{t}": m for t, m in data_md5.items()}}
    run_class = params.base_method(run.method)
    return ResolvedRun(
        run=run, root=root, method_class=run_class, method_params=mcfg, train=cfg,
        backbone=suite["backbone"], tasks=tuple(tasks), split=params["split"], relations=relations,
        relations_file=relations_file,
        init=suite["init"], freeze_blocks=params["training"]["freeze_blocks"],
        pretrain_epochs=pretrain_epochs(mcfg, cfg.epochs) if PRETRAIN in METHOD_SPECS[run_class].phases else 0,
        data_md5=data_md5,
        receipt=root / run.receipt, model=root / run.model, checkpoint=root / run.checkpoint,
        experiment_marker=root / paths.experiment_marker(run.suite), tags=tags, run_params=run_params,
        params_digest=_digest(run_params, data_md5, None if relations is None else [list(r) for r in relations]),
        job_digest=params.job_digest(run), log_model=params["tracking"]["log_model"], tuned=tuned,
        tune_file=tune_file, followed=followed)


def resolve_relations(params, suite_name: str, group: str) -> ResolvedRelations:
    """The one resolver of a group's relations stage."""
    if group not in params["groups"]:
        raise ParamsError(f"{params.files['groups']}: groups: no group {group!r}")
    root, suite = params.root, params.suite(suite_name)
    tasks = params.tasks_of(group)
    given = params["relations"]["given"].get(group)
    scale = suite["relations"]
    return ResolvedRelations(
        suite=suite_name, group=group, root=root, tasks=tuple(tasks), split=params["split"],
        given=None if given is None else tuple(tuple(float(v) for v in row) for row in given),
        epochs=scale["epochs"], seeds=tuple(scale["seeds"]), temperature=params["relations"]["temperature"],
        # ours: R compares plain joint training with training alone, whatever the runs' weighting
        train=train_config(params, suite_name, scale["seeds"][0], tasks, epochs=scale["epochs"], weighting="equal"),
        method_params={**method_params(params, RELATIONS_TOGETHER), "init": suite["init"]},
        freeze_blocks=params["training"]["freeze_blocks"],
        backbone=suite["backbone"], csv=root / paths.relations_csv(suite_name, group),
        png=root / paths.relations_png(suite_name, group), detail=root / paths.relations_detail(suite_name, group),
        experiment_marker=root / paths.experiment_marker(suite_name),
        run=RunId(suite_name, group, "prior", "relations", 0),
        run_params={"relations": params["relations"], "tasks": tasks})


@dataclass(frozen=True)
class ResolvedTune:
    """The tune stage of one (group, setting, method): its trials' values and the
    run (the suite's first seed, at the defaults) each trial overrides."""
    base: ResolvedRun
    trials: tuple[dict, ...]
    epochs: int
    digest: str
    json: Path
    run_params: dict
    beat_defaults_alpha: float = 1.0  # params/training.yaml tuning.beat_defaults_alpha (1: the plain argmax)

    @property
    def cell(self) -> tuple[str, str, str]:
        return self.base.run.group, self.base.run.setting, self.base.run.method


def resolve_tune(params, suite_name: str, group: str, setting: str, method: str) -> ResolvedTune:
    """The one resolver of a tune cell; refuses a cell the suite does not tune."""
    if (group, setting, method) not in params.tune_cells(suite_name):
        raise ParamsError(f"params/suites/{suite_name}.yaml: suite.tune: ({group}, {setting}, {method}) is not a "
                          "tune cell (a cell of the grid, with tune.trials > 0)")
    run = RunId(suite_name, group, setting, method, params.suite(suite_name)["seeds"][0])
    base = resolve(params, run, tune=False)
    scale = params.suite(suite_name)["tune"]
    return ResolvedTune(base=base, trials=tuple(params.tune_trials(suite_name, group, setting, method)),
                        epochs=scale["epochs"], digest=params.tune_digest(suite_name, group, setting, method),
                        json=params.root / paths.tune_json(suite_name, group, setting, method),
                        run_params={"tune": scale, "search": params.search_space(method),
                                    "beat_defaults_alpha": params["tuning"]["beat_defaults_alpha"]},
                        beat_defaults_alpha=float(params["tuning"]["beat_defaults_alpha"]))
