"""A method built from params/: the one place training (a job) and reporting (the
activation figures, from a trained model) resolve a grid entry to its class,
configuration, backbone and relationship matrix R. Below training and reporting
alike (tests/test_layers.py), so neither imports the other for it."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from hetmtl import files, paths
from hetmtl.methods import METHODS, TaskInfo
from hetmtl.models import BACKBONES
from hetmtl.params import ParamsError


def backbone(params, suite_name: str):
    return BACKBONES[params.suite(suite_name)["backbone"]]  # a known name: load_params checks it


def input_norm(params, suite_name: str) -> str:
    """How images are scaled for a suite's networks: ImageNet statistics for
    ImageNet-initialised backbones, else symmetric [-1, 1]."""
    return "imagenet" if params.suite(suite_name)["init"] == "imagenet" else "symmetric"


def method_params(params, name: str) -> dict:
    """A method's parameters from params/methods.yaml (a variant's without ``variant_of``)."""
    return {k: v for k, v in params.method(name).items() if k != "variant_of"}


def method_config(params, name: str, suite_name: str) -> dict:
    return {**method_params(params, name), "init": params.suite(suite_name)["init"],
            "task_weighting": params["training"]["task_weighting"]}


def method_class(params, name: str):
    """The registered class of a method, or of the method a variant is a reading of."""
    base = params.base_method(name)
    if base not in METHODS:
        raise ParamsError(f"{params.files['settings']}: methods: unknown method {name!r} "
                          f"(known: {', '.join(METHODS)})")
    return METHODS[base]


def read_relations(path: Path, tasks: list[str]) -> torch.Tensor:
    """R from the relations stage's CSV (rows and columns in the group's task order)."""
    with open(path) as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if rows[0][1:] != tasks:
        raise ValueError(f"{path}: tasks {rows[0][1:]} differ from the group's {tasks}")
    return torch.tensor([[float(v) for v in r[1:]] for r in rows[1:]], dtype=torch.float32)


def relations_for(params, key: dict) -> torch.Tensor | None:
    """R for a prior-setting run (from the relations stage); None means uniform."""
    if key["setting"] != "prior":
        return None
    csv_path = files.require(params.root / paths.relations_csv(key["suite"], key["group"]),
                             f"hetmtl relations --suite {key['suite']} --group {key['group']}")
    return read_relations(csv_path, params.tasks_of(key["group"]))


def build_method(params, key: dict, tasks: list[TaskInfo], overrides: dict | None = None):
    """The untrained method of a job ``key`` (suite, group, setting, method, seed)."""
    cls = method_class(params, key["method"])
    cfg = {**method_config(params, key["method"], key["suite"]), **(overrides or {})}
    args = (tasks, backbone(params, key["suite"]), cfg, key["seed"])
    method = cls(*args, relations=relations_for(params, key)) if cls.uses_prior else cls(*args)
    k = params["training"]["freeze_blocks"]
    if k and method.deep:
        method.freeze_blocks(k)
    return method


__all__ = ["backbone", "build_method", "input_norm", "method_class", "method_config", "method_params",
           "read_relations", "relations_for"]
