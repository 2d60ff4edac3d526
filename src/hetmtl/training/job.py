"""The training job: one resolved run (a grid cell's seed or a sweep point) ->
MLflow run + receipt (the relations stage's job is in ``relations.py``).

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
import re
import time
from dataclasses import replace

from hetmtl import files
from hetmtl.data.tasks import load_task, steps_per_epoch
from hetmtl.errors import UserError
from hetmtl.methods import TaskInfo
from hetmtl.methods.build import build_method
from hetmtl.methods.registry import PRETRAIN
from hetmtl.models import BACKBONES
from hetmtl.resolve import ResolvedRun, pretrain_epochs
from hetmtl.runs import TrainConfig
from hetmtl.tracking import receipts
from hetmtl.tracking.mlflow_store import RunLogger, git_commit
from hetmtl.training import checkpoint
from hetmtl.training.device import pick_device, set_determinism
from hetmtl.training.loop import epoch_line, fit, metric_values


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


def run_job(run: ResolvedRun, device_name: str = "auto", threads: int = 1, progress: bool = True) -> dict:
    """Execute one resolved run (:func:`hetmtl.resolve.resolve`): a grid cell's
    seed or a sweep point; it reads nothing but the record and the prepared data.

    One process at a time trains a job (a lock beside its checkpoint: a job that
    outlived a killed Snakemake and its rerun do not write the same files), and a
    job whose receipt and model exist for the current parameters, code and data
    is not trained again (:func:`finished`: the other process finished it)."""
    with files.lock(run.checkpoint.with_suffix(".lock"), f"job {run.run.run_name} of {run.run.parent}"):
        return _train(run, device_name, threads, progress)


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


def _train(run: ResolvedRun, device_name: str, threads: int, progress: bool) -> dict:
    rid, key, cfg = run.run, run.key, run.train
    device = pick_device(device_name, real_data=run.tags.get("data") == "real")
    set_determinism(device, threads)
    data = [load_task(rid.suite, t, device, run.split, rid.seed) for t in run.tasks]
    if {d.name: d.manifest["source_md5"] for d in data} != run.data_md5:
        raise UserError(f"the prepared data of {', '.join(run.tasks)} changed since this run was resolved; "
                        "resolve it again (rerun the command)")
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    method = build_method(run, tasks)
    receipt_path, model_path, ckpt_path = run.receipt, run.model, run.checkpoint
    digest = run.params_digest
    done = finished(receipt_path, model_path, run.job_digest, digest)
    if done is not None:  # another process (a job that outlived a killed Snakemake) finished it
        return done
    ckpt_key = {**key, "sweep": [rid.sweep, rid.value] if rid.sweep else None, "digest": digest}
    state = checkpoint.load(ckpt_path, ckpt_key) if method.deep else None

    if not run.experiment_marker.exists():
        raise FileNotFoundError(f"{run.experiment_marker}: missing; run `hetmtl init-tracking --suite {rid.suite}` "
                                "first")
    root = run.root
    tags = {"git_commit": git_commit(root), "params_digest": digest, "device": device.type, **run.tags}
    # epochs after the checkpoint that the crashed attempt logged already (checkpoints are written when
    # due, checkpoint.Cadence): trained again, not logged twice. Read before the log is appended to.
    logged = last_logged_epoch(run.log) if state else 0
    log = JobLog(run.log, resume=state is not None)
    logger = RunLogger(root, rid, tags, run.run_params, run_id=state["run_id"] if state else None)
    if state and not logger.resumed:  # the store lost the run: the new one gets the epochs done so far
        for entry in state["history"]:
            logger.log_metrics({k: v for k, v in entry.items() if k != "epoch"}, step=entry["epoch"])
    log.line(f"[hetmtl] {logger.run_name} of {key['group']}/{key['setting']} ({key['suite']}): "
             f"{cfg.epochs} epochs on {device.type}, MLflow run {logger.run_id}"
             + (f", resumed after epoch {state['epoch']} ({ckpt_path})" if state else "")
             + (f"; {again_text(state['epoch'] + 1, logged)} trained again, logged once"
                if state and logged > state["epoch"] else ""))
    clock = {"last": time.time()}
    cadence = checkpoint.Cadence()  # a checkpoint when due: about 5% of the job's time (checkpoint.py)

    def on_epoch(epoch: int, metrics: dict, train_state: dict) -> None:
        again = epoch <= logged  # logged by the crashed attempt (into this MLflow run, when it was resumed)
        if not (again and logger.resumed):
            logger.log_metrics(metrics, step=epoch)
        now = time.time()  # the line before the checkpoint: a crash in between loses no epoch's line
        if not again:
            log.line(epoch_line(epoch, cfg.epochs, metrics, now - clock["last"]))
        clock["last"] = now
        cadence.save(ckpt_path, {**train_state, "key": ckpt_key, "run_id": logger.run_id})

    started = time.time()
    try:  # anything that fails before the receipt is written leaves the run FAILED
        if method.deep:
            result = train_deep(method, data, cfg, device, state, on_epoch, progress, tasks,
                                BACKBONES[run.backbone], run.method_params, run.freeze_blocks)
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
            budget = {"budget/steps_per_task": result["steps"], "budget/pretrain_epochs": run.pretrain_epochs,
                      "time/train_step_s": result["train_step_s"]}
        last = {**{k: v for k, v in final.items() if k not in last_epoch}, **budget, "train_seconds": seconds,
                "steps_per_epoch": steps_per_epoch(data, cfg.batch_size)}
        logger.log_metrics(last, step=len(result["history"]))
        step_loss = None
        if method.deep:  # each optimisation step's training loss per task (Fig. 12 and claim C10 read iterations)
            step_loss = receipts.step_loss_record([d.name for d in data], result["step_losses"], result["first_step"])
            logger.log_step_loss(step_loss)
        checkpoint.save(model_path, {"key": ckpt_key, "model": method.state_dict(), "tasks": list(run.tasks)})
        log.line(f"done in {seconds:.1f} s: test_acc {metric_values(result['test'], 'test_acc/')}")
        log.close()
        logger.log_artifact(log.path)
        if run.log_model:
            logger.log_artifact(model_path)
        receipt = {"run_id": logger.run_id, "experiment": logger.experiment["experiment"],
                   "tracking_uri": logger.experiment["tracking_uri"], "key": key, "params_digest": digest,
                   "metrics": final, "train_seconds": round(seconds, 3), **budget,
                   "job_digest": run.job_digest,
                   # what the run logged: the tables and a rebuilt store come from here (tracking/receipts.py)
                   "record": logger.record(result["history"], last, len(result["history"]), step_loss)}
        if rid.sweep is not None:
            receipt["sweep"] = {"name": rid.sweep, "value": rid.value}
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


def again_text(first: int, last: int) -> str:
    return f"epoch {first} is" if first == last else f"epochs {first}-{last} are"


def last_logged_epoch(path) -> int:
    """The last epoch whose line a job's log holds (0 when none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    epochs = [int(m.group(1)) for m in map(EPOCH_LINE.match, lines) if m]
    return max(epochs, default=0)


EPOCH_LINE = re.compile(r"epoch (\d+)/\d+ \| ")


def train_deep(method, data, cfg: TrainConfig, device, state, on_epoch, progress, tasks, spec,
               method_cfg: dict, freeze_blocks: int = 0, test: bool = True) -> dict:
    """Train a deep method within its budget of ``cfg.epochs`` epochs.

    Cross-stitch and NDDR-CNN start from single-task networks (protocol section 5): their
    first ``pretrain_epochs`` epochs train the single-task columns (exactly the
    single_task run's first epochs: same initialisation, same frozen blocks, same
    batches), the rest trains the joined model, so every method of a table gets
    the same number of optimisation steps per task. The steps are counted, not
    computed: the result's ``steps`` sums both phases. A checkpoint records its
    phase and its step count, and a resumed job continues in it.
    """
    from hetmtl.methods.single_task import SingleTask

    P = pretrain_epochs(method_cfg, cfg.epochs) if PRETRAIN in method.phases else 0  # its declared phases
    phase = (state or {}).get("phase", "pretrain" if P else "joint")
    history: list[dict] = []
    pre_steps, pre_losses = 0, []
    if phase == "pretrain":
        single = SingleTask(tasks, spec, {"init": method_cfg["init"]}, cfg.seed)
        if freeze_blocks:
            single.freeze_blocks(freeze_blocks)

        def on_pre(epoch, metrics, train_state):
            on_epoch(epoch, metrics, {**train_state, "phase": "pretrain"})

        pre = fit(single, data, replace(cfg, epochs=P), device, state=state, on_epoch=on_pre,
                  progress=progress, test=False)  # its test accuracy would be thrown away
        history, pre_steps, pre_losses = pre["history"], pre["steps"], pre["step_losses"]
        method.init_from(single.state_dict())
        state = None

    def on_joint(epoch, metrics, train_state):
        on_epoch(epoch, metrics, {**train_state, "phase": "joint", "pre_steps": pre_steps,
                                  "pre_step_losses": pre_losses, "history": history + train_state["history"]})

    if state is not None:  # resuming the joint phase: its history holds the pre-training epochs too
        history, pre_steps = [h for h in state["history"] if h["epoch"] <= P], state.get("pre_steps", 0)
        pre_losses = list(state.get("pre_step_losses", []))
        state = {**state, "history": [h for h in state["history"] if h["epoch"] > P]}
    result = fit(method, data, cfg, device, state=state, on_epoch=on_joint, test=test,
                 progress=progress, start_epoch=P)
    steps = pre_steps + result["steps"]
    losses = (pre_losses if len(pre_losses) == pre_steps and result["first_step"] == 1 else []) + result["step_losses"]
    return {**result, "history": history + result["history"], "steps": steps,
            "step_losses": losses, "first_step": steps - len(losses) + 1}
