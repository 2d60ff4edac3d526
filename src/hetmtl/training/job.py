"""One training job: (suite, group, setting, method, seed) -> MLflow run + receipt.

Resumes from its checkpoint when one exists for the same parameters and data
(continuing the same MLflow run); marks the run FAILED and keeps the checkpoint
when it crashes; writes ``model.pt`` and then the receipt only when complete.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from hetmtl import paths
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.models import BACKBONES
from hetmtl.params import ParamsError
from hetmtl.tracking import receipts
from hetmtl.tracking.mlflow_store import RunLogger, git_commit
from hetmtl.training import checkpoint
from hetmtl.training.data import load_task, steps_per_epoch
from hetmtl.training.loop import TrainConfig, fit


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_determinism(device: torch.device, threads: int) -> None:
    torch.set_num_threads(threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)


def build_method(params, key: dict, tasks: list[TaskInfo]):
    name = key["method"]
    if name not in METHODS:
        raise ParamsError(f"{params.files['settings']}: settings.{key['setting']}.methods: "
                          f"unknown method {name!r} (known: {', '.join(METHODS)})")
    suite = params.suite(key["suite"])
    if suite["backbone"] not in BACKBONES:
        raise ParamsError(f"{params.files['suites.' + key['suite']]}: suite.backbone: unknown backbone "
                          f"{suite['backbone']!r} (known: {', '.join(BACKBONES)})")
    return METHODS[name](tasks, BACKBONES[suite["backbone"]], params.method(name), key["seed"])


def run_job(params, key: dict, device_name: str = "auto", threads: int = 1, progress: bool = True) -> dict:
    root = params.root
    device = pick_device(device_name)
    set_determinism(device, threads)
    suite = params.suite(key["suite"])
    task_names = params.tasks_of(key["group"])
    data = [load_task(key["suite"], t, device) for t in task_names]
    tasks = [TaskInfo(d.name, d.channels, d.num_classes) for d in data]
    method = build_method(params, key, tasks)
    cfg = TrainConfig(epochs=suite["epochs"], batch_size=suite["batch_size"], seed=key["seed"],
                      **{k: params["training"][k] for k in ("lr", "momentum", "l2_lambda", "nan_check_every")})
    data_md5 = {d.name: d.manifest["source_md5"] for d in data}
    run_params = {"method": params.method(key["method"]), "training": params["training"],
                  "suite": suite, "tasks": task_names}
    digest = hashlib.sha256(json.dumps([run_params, data_md5], sort_keys=True).encode()).hexdigest()[:16]
    ckpt_key = {**key, "digest": digest}
    ckpt_path = root / paths.checkpoint(**key)
    state = checkpoint.load(ckpt_path, ckpt_key)

    marker_path = root / paths.experiment_marker(key["suite"])
    if not marker_path.exists():
        raise FileNotFoundError(f"{marker_path}: missing; run `hetmtl init-tracking --suite {key['suite']}` first")
    marker = json.loads(marker_path.read_text())
    tags = {"git_commit": git_commit(root), "params_digest": digest, "device": device.type,
            "paper_group": str(params["groups"][key["group"]]["paper_group"]),
            "data": suite["data"], **{f"data_md5/{t}": m for t, m in data_md5.items()}}
    logger = RunLogger(root, marker, key, tags, run_params, run_id=state["run_id"] if state else None)
    if state:
        print(f"[hetmtl] resuming {ckpt_path} after epoch {state['epoch']} (MLflow run {logger.run_id})")

    def on_epoch(epoch: int, metrics: dict, train_state: dict) -> None:
        logger.log_metrics(metrics, step=epoch)
        checkpoint.save(ckpt_path, {**train_state, "key": ckpt_key, "run_id": logger.run_id})

    started = time.time()
    try:
        result = fit(method, data, cfg, device, state=state, on_epoch=on_epoch, progress=progress)
    except BaseException:
        logger.finish("FAILED")
        raise
    seconds = time.time() - started
    final = dict(result["test"])
    final.update({k: v for k, v in result["history"][-1].items() if k.startswith(("sharing/", "compression"))})
    logger.log_metrics({**final, "train_seconds": seconds,
                        "steps_per_epoch": steps_per_epoch(data, cfg.batch_size)}, step=cfg.epochs)
    model_path = root / paths.model_file(**key)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(model_path, {"key": ckpt_key, "model": method.state_dict(), "tasks": task_names})
    receipt = {"run_id": logger.run_id, "experiment_id": marker["experiment_id"],
               "tracking_uri": marker["tracking_uri"], "key": key, "params_digest": digest,
               "metrics": final, "train_seconds": round(seconds, 3)}
    logger.finish("FINISHED")
    receipts.write(root / paths.receipt(**key), receipt)
    ckpt_path.unlink(missing_ok=True)
    return receipt
