"""Jobs: one training run (suite, group, setting, method, seed) -> MLflow run + receipt,
and the relations estimate of a group.

A training job resumes from its checkpoint when one exists for the same
parameters and data (continuing the same MLflow run); marks the run FAILED and
keeps the checkpoint when it crashes; writes ``model.pt`` and then the receipt
only when complete. Every job prints one line per epoch (per-task train loss,
validation accuracy, seconds) to its output and to ``train.log`` beside its
receipt, which its MLflow run holds as an artifact (with ``model.pt`` when
``tracking.log_model`` is true).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import replace

import torch

from hetmtl import files, paths
from hetmtl.methods import TaskInfo
from hetmtl.methods.build import backbone, build_method, input_norm, method_config, method_params, relations_for
from hetmtl.tracking import receipts
from hetmtl.tracking.mlflow_store import RunLogger, git_commit
from hetmtl.training import checkpoint, relations
from hetmtl.training.data import load_task, steps_per_epoch
from hetmtl.training.loop import TrainConfig, epoch_line, fit, metric_values


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_determinism(device: torch.device, threads: int) -> None:
    """Threads, and deterministic algorithms on the CPU. The C switch directly:
    ``torch.use_deterministic_algorithms`` also imports torch._inductor to set
    its config (2.6 s of every job's start), and nothing here compiles."""
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch._C._set_deterministic_algorithms(True, warn_only=False)


def train_config(params, suite_name: str, seed: int, tasks: list[str], epochs: int | None = None) -> TrainConfig:
    suite, tr = params.suite(suite_name), params["training"]
    imagenet = suite["init"] == "imagenet"
    return TrainConfig(epochs=epochs or suite["epochs"], batch_size=suite["batch_size"], seed=seed,
                       lr=tr["finetune_lr"] if imagenet else tr["lr"],
                       momentum=tr["momentum"], l2_lambda=tr["l2_lambda"], nan_check_every=tr["nan_check_every"],
                       divergence_factor=tr["divergence_factor"],
                       input_norm=input_norm(params, suite_name), crop_pad=suite["augment"]["crop_pad"],
                       flip=tuple(suite["augment"]["flip"] and params["tasks"][t]["flip"] for t in tasks))


def pretrain_epochs(method_cfg: dict, epochs: int) -> int:
    """Epochs of single-task pre-training inside a method's budget (cross-stitch, NDDR)."""
    if "pretrain_fraction" not in method_cfg:
        return 0
    return min(epochs - 1, max(1, round(method_cfg["pretrain_fraction"] * epochs)))


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def job_files(params, key: dict, sweep: tuple[str, float] | None = None) -> tuple:
    """(receipt, model, checkpoint) of a job or of one sweep point."""
    root = params.root
    if sweep is None:
        return root / paths.receipt(**key), root / paths.model_file(**key), root / paths.checkpoint(**key)
    where = dict(suite=key["suite"], sweep=sweep[0], group=key["group"], value=sweep[1], seed=key["seed"])
    receipt = root / paths.sweep_receipt(**where)
    return receipt, receipt.with_name("model.pt"), root / paths.sweep_checkpoint(**where)


LOG_NAME = "train.log"


class JobLog:
    """A job's log lines: printed (Snakemake's log of the job) and written, each
    flushed, to ``train.log`` beside the receipt: the file the MLflow run gets
    as an artifact. A resumed job appends to the log of its earlier epochs."""

    def __init__(self, path, resume: bool):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a" if resume else "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise files.WriteError(files.explain(path, exc)) from exc

    def line(self, text: str, echo: bool = True) -> None:
        if echo:
            print(text, flush=True)
        try:
            self.file.write(text + "\n")
            self.file.flush()
        except OSError as exc:
            raise files.WriteError(files.explain(self.path, exc)) from exc

    def close(self) -> None:
        self.file.close()


def run_job(params, key: dict, device_name: str = "auto", threads: int = 1, progress: bool = True,
            sweep: tuple[str, float] | None = None) -> dict:
    """Train one grid cell; with ``sweep=(name, value)`` one point of a sweep instead
    (the swept parameter overridden, the suite's sweep epochs, the sweep's paths).

    One process at a time trains a job (a lock beside its checkpoint: a job that
    outlived a killed Snakemake and its rerun do not write the same files), and a
    job whose receipt and model exist for the current parameters, code and data
    is not trained again (:func:`finished`: the other process finished it)."""
    ckpt_path = job_files(params, key, sweep)[2]
    with files.lock(ckpt_path.with_suffix(".lock"), f"job {json.dumps(key)}"):
        return _train(params, key, device_name, threads, progress, sweep)


def finished(receipt_path, model_path, job_digest: str, params_digest: str) -> dict | None:
    """The receipt of this very job if it is complete: same parameters and code
    (``job_digest``) and same data and R (``params_digest``)."""
    if not (receipt_path.exists() and model_path.exists()):
        return None
    done = receipts.read(receipt_path)
    if done.get("job_digest") != job_digest or done.get("params_digest") != params_digest:
        return None
    print(f"[hetmtl] {receipt_path}: already trained under the current parameters, code and data")
    return done


def _train(params, key: dict, device_name: str, threads: int, progress: bool,
           sweep: tuple[str, float] | None) -> dict:
    root = params.root
    device = pick_device(device_name)
    set_determinism(device, threads)
    suite = params.suite(key["suite"])
    task_names = params.tasks_of(key["group"])
    data = [load_task(key["suite"], t, device, params["split"], key["seed"]) for t in task_names]
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    overrides, epochs, parent = {}, None, None
    receipt_path, model_path, ckpt_path = job_files(params, key, sweep)
    if sweep is not None:
        name, value = sweep
        overrides, epochs = {params["sweeps"][name]["parameter"]: value}, suite["sweeps"][name]["epochs"]
        parent = f"{key['group']}/sweep_{name}"
    method = build_method(params, key, tasks, overrides)
    mcfg = method_config(params, key["method"], key["suite"])
    cfg = train_config(params, key["suite"], key["seed"], task_names, epochs=epochs)
    data_md5 = {d.name: d.manifest["source_md5"] for d in data}
    R = relations_for(params, key)
    run_params = {"method": {**mcfg, **overrides}, "training": params["training"],
                  "suite": suite, "tasks": task_names, "epochs": cfg.epochs, "flip": list(cfg.flip)}
    digest = _digest(run_params, data_md5, None if R is None else R.tolist())
    done = finished(receipt_path, model_path, params.job_digest(key["suite"], key, sweep), digest)
    if done is not None:  # another process (a job that outlived a killed Snakemake) finished it
        return done
    ckpt_key = {**key, "sweep": list(sweep) if sweep else None, "digest": digest}
    state = checkpoint.load(ckpt_path, ckpt_key) if method.deep else None

    marker_path = root / paths.experiment_marker(key["suite"])
    if not marker_path.exists():
        raise FileNotFoundError(f"{marker_path}: missing; run `hetmtl init-tracking --suite {key['suite']}` first")
    tags = {"git_commit": git_commit(root), "params_digest": digest, "device": device.type,
            "paper_group": str(params["groups"][key["group"]]["paper_group"]),
            "data": suite["data"], "shared_between_settings": str(key["setting"] == "shared"),
            **{f"data_md5/{t}": m for t, m in data_md5.items()}}
    if sweep is not None:
        tags.update({"sweep": sweep[0], "sweep_value": f"{sweep[1]:g}"})
    log = JobLog(receipt_path.parent / LOG_NAME, resume=state is not None)
    logger = RunLogger(root, key["suite"], key, tags, run_params, run_id=state["run_id"] if state else None,
                       parent=parent,
                       run_name=f"{key['method']}/{sweep[0]}={sweep[1]:g}/seed{key['seed']}" if sweep else None)
    if state and not logger.resumed:  # the store lost the run: the new one gets the epochs done so far
        for entry in state["history"]:
            logger.log_metrics({k: v for k, v in entry.items() if k != "epoch"}, step=entry["epoch"])
    log.line(f"[hetmtl] {logger.run_name} of {key['group']}/{key['setting']} ({key['suite']}): "
             f"{cfg.epochs} epochs on {device.type}, MLflow run {logger.run_id}"
             + (f", resumed after epoch {state['epoch']} ({ckpt_path})" if state else ""))
    clock = {"last": time.time()}

    def on_epoch(epoch: int, metrics: dict, train_state: dict) -> None:
        logger.log_metrics(metrics, step=epoch)
        now = time.time()  # the line before the checkpoint: a crash in between loses no epoch's line
        log.line(epoch_line(epoch, cfg.epochs, metrics, now - clock["last"]))
        clock["last"] = now
        checkpoint.save(ckpt_path, {**train_state, "key": ckpt_key, "run_id": logger.run_id})

    started = time.time()
    try:  # anything that fails before the receipt is written leaves the run FAILED
        if method.deep:
            result = train_deep(method, data, cfg, device, state, on_epoch, progress, tasks,
                                backbone(params, key["suite"]), mcfg, params["training"]["freeze_blocks"])
        else:
            result = method.fit_closed_form(data)
            for entry in result["history"]:
                metrics = {k: v for k, v in entry.items() if k != "epoch"}
                logger.log_metrics(metrics, step=entry["epoch"])
                log.line(epoch_line(entry["epoch"], len(result["history"]), metrics, 0.0))
        seconds = time.time() - started
        final = dict(result["test"])
        # MTAL's sharing of the last epoch: logged with that epoch, at the same step as
        # the final metrics, so not logged again with them (one value per step)
        last_epoch = {k: v for k, v in result["history"][-1].items()
                      if k.startswith(("sharing/", "compression", "within_task"))}
        final.update(last_epoch)
        budget = {}
        if method.deep:  # the budget: optimisation steps per task, single-task pre-training included
            budget = {"budget/steps_per_task": result["steps"],
                      "budget/pretrain_epochs": pretrain_epochs(mcfg, cfg.epochs)}
        last = {**{k: v for k, v in final.items() if k not in last_epoch}, **budget, "train_seconds": seconds,
                "steps_per_epoch": steps_per_epoch(data, cfg.batch_size)}
        logger.log_metrics(last, step=len(result["history"]))
        checkpoint.save(model_path, {"key": ckpt_key, "model": method.state_dict(), "tasks": task_names})
        log.line(f"done in {seconds:.1f} s: test_acc {metric_values(result['test'], 'test_acc/')}")
        log.close()
        logger.log_artifact(log.path)
        if params["tracking"]["log_model"]:
            logger.log_artifact(model_path)
        receipt = {"run_id": logger.run_id, "experiment": logger.experiment["experiment"],
                   "tracking_uri": logger.experiment["tracking_uri"], "key": key, "params_digest": digest,
                   "metrics": final, "train_seconds": round(seconds, 3), **budget,
                   "job_digest": params.job_digest(key["suite"], key, sweep),
                   # what the run logged: the tables and a rebuilt store come from here (tracking/receipts.py)
                   "record": logger.record(result["history"], last, len(result["history"]))}
        if sweep is not None:
            receipt["sweep"] = {"name": sweep[0], "value": sweep[1]}
        receipts.write(receipt_path, receipt)
        logger.finish("FINISHED")  # after the receipt: a FINISHED run always has one
    except BaseException as exc:
        if not log.file.closed:  # the failed run keeps its log: the error is its last line
            # not echoed: the command prints the error itself, once; a log that cannot be
            # written (a full disk) must neither hide that error nor leave the run RUNNING
            with contextlib.suppress(OSError, files.WriteError):
                log.line(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                         echo=False)
            with contextlib.suppress(OSError):
                log.close()
            with contextlib.suppress(Exception):  # the job's own error is the one to see
                logger.log_artifact(log.path)
        logger.finish("FAILED")
        raise
    ckpt_path.unlink(missing_ok=True)
    return receipt


def train_deep(method, data, cfg: TrainConfig, device, state, on_epoch, progress, tasks, spec,
               method_cfg: dict, freeze_blocks: int = 0) -> dict:
    """Train a deep method within its budget of ``cfg.epochs`` epochs.

    Cross-stitch and NDDR-CNN start from single-task networks (SPEC 5): their
    first ``pretrain_epochs`` epochs train the single-task columns (exactly the
    single_task run's first epochs: same initialisation, same frozen blocks, same
    batches), the rest trains the joined model, so every method of a table gets
    the same number of optimisation steps per task. The steps are counted, not
    computed: the result's ``steps`` sums both phases. A checkpoint records its
    phase and its step count, and a resumed job continues in it.
    """
    from hetmtl.methods.single_task import SingleTask

    P = pretrain_epochs(method_cfg, cfg.epochs)
    phase = (state or {}).get("phase", "pretrain" if P else "joint")
    history: list[dict] = []
    pre_steps = 0
    if phase == "pretrain":
        single = SingleTask(tasks, spec, {k: v for k, v in method_cfg.items() if k == "init"}, cfg.seed)
        if freeze_blocks:
            single.freeze_blocks(freeze_blocks)

        def on_pre(epoch, metrics, train_state):
            on_epoch(epoch, metrics, {**train_state, "phase": "pretrain"})

        pre = fit(single, data, replace(cfg, epochs=P), device, state=state, on_epoch=on_pre,
                  progress=progress)
        history, pre_steps = pre["history"], pre["steps"]
        method.init_from(single.state_dict())
        state = None

    def on_joint(epoch, metrics, train_state):
        on_epoch(epoch, metrics, {**train_state, "phase": "joint", "pre_steps": pre_steps,
                                  "history": history + train_state["history"]})

    if state is not None:  # resuming the joint phase: its history holds the pre-training epochs too
        history, pre_steps = [h for h in state["history"] if h["epoch"] <= P], state.get("pre_steps", 0)
        state = {**state, "history": [h for h in state["history"] if h["epoch"] > P]}
    result = fit(method, data, cfg, device, state=state, on_epoch=on_joint, progress=progress, start_epoch=P)
    return {"history": history + result["history"], "test": result["test"], "steps": pre_steps + result["steps"]}


def relations_job(params, suite_name: str, group: str, device_name: str = "auto", threads: int = 1) -> torch.Tensor:
    """Estimate (or take from params) R for ``group``; write CSV + heatmap; log to MLflow."""
    root = params.root
    device = pick_device(device_name)
    set_determinism(device, threads)
    tasks = params.tasks_of(group)
    given = params["relations"]["given"].get(group)
    if given is not None:
        R, detail, source = torch.tensor(given, dtype=torch.float64), {}, "given in params/grid.yaml"
        spread = None
    else:
        scale = params.suite(suite_name)["relations"]
        seeds = scale["seeds"]

        def data(seed):
            return [load_task(suite_name, t, device, params["split"], seed) for t in tasks]
        cfg = train_config(params, suite_name, seeds[0], tasks, epochs=scale["epochs"])
        method_cfg = {**method_params(params, "hard_sharing"), "init": params.suite(suite_name)["init"]}
        R, detail = relations.estimate(data, backbone(params, suite_name), cfg,
                                       params["relations"]["temperature"], method_cfg, seeds)
        source = (f"estimated on the validation split ({scale['epochs']} epochs per pair, "
                  f"alone and together at the same steps per task, seeds {seeds})")
    csv_path, png_path = root / paths.relations_csv(suite_name, group), root / paths.relations_png(suite_name, group)
    if given is None:
        spread = torch.tensor(detail["gain_std"], dtype=torch.float64)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    relations.heatmap(png_path, tasks, R, f"R, {group} tasks ({suite_name}); ± std of the gain over seeds", spread)
    key = dict(suite=suite_name, group=group, setting="prior", method="relations", seed=0)
    logger = RunLogger(root, suite_name, key, {"git_commit": git_commit(root), "relations_source": source},
                       {"relations": params["relations"], "tasks": tasks})
    r_metrics = {f"R/{a}/{b}": float(R[i, j]) for i, a in enumerate(tasks) for j, b in enumerate(tasks) if i < j}
    logger.log_metrics(r_metrics, step=0)
    detail_path = csv_path.with_suffix(".json")
    files.write_text(detail_path, json.dumps({"source": source, **detail, "run_id": logger.run_id,
                                              "record": logger.record([], r_metrics, 0)}, indent=2))
    for p in (png_path, detail_path):
        logger.log_artifact(p)
    logger.finish()
    relations.write_csv(csv_path, tasks, R, source, spread)  # last: the DAG output
    return R
