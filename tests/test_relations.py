"""The relations stage (protocol section 4): R from the validation split, alone and together
at the same number of steps per task, over several seeds."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import fake_task
from hetmtl.models import BACKBONES
from hetmtl.training import relations
from hetmtl.training.loop import TrainConfig

SPEC = BACKBONES["vgg_tiny"]
CFG = TrainConfig(epochs=1, batch_size=8, lr=0.01, momentum=0.9, l2_lambda=0.0, nan_check_every=1, seed=0)
HS_CFG = {"relation_threshold": 0.5}  # hard sharing's key (params/methods.yaml), as the job passes it


def tasks():
    return [fake_task("g1", 1, 3, n=16, seed=1), fake_task("c1", 3, 3, n=40, seed=2)]


def test_alone_and_together_train_the_same_pairs_over_every_seed(monkeypatch):
    calls = []

    def spy(method_name, data, spec, cfg, method_cfg, freeze_blocks=0):
        calls.append((method_name, tuple(d.name for d in data), cfg.seed))
        return [0.5, 0.5]

    monkeypatch.setattr(relations, "_val", spy)
    asked = []

    def data(seed):
        asked.append(seed)
        return tasks()

    R, detail = relations.estimate(data, SPEC, CFG, 0.05, HS_CFG, seeds=[0, 3])
    assert asked[-2:] == [0, 3]  # each seed trains on its own split
    # single-task networks on the pair's joint schedule: the same steps per task as together
    assert sorted(calls) == sorted([("single_task", ("g1", "c1"), s) for s in (0, 3)]
                                   + [("hard_sharing", ("g1", "c1"), s) for s in (0, 3)])
    assert detail["seeds"] == [0, 3] and R[0, 1] == 0.5


def test_r_is_read_from_the_validation_split_never_the_test_split():
    torch.use_deterministic_algorithms(True)
    data = tasks()
    R, detail = relations.estimate(lambda seed: data, SPEC, CFG, 0.05, HS_CFG, seeds=[0])
    runs = detail["pairs"]["g1+c1"]["runs"]
    scrambled = copy.deepcopy(data)
    for d in scrambled:
        d.y["test"] = (d.y["test"] + 1) % d.num_classes
    R_test, detail_test = relations.estimate(lambda seed: scrambled, SPEC, CFG, 0.05, HS_CFG, seeds=[0])
    assert torch.equal(R, R_test) and detail_test["pairs"]["g1+c1"]["runs"] == runs
    scrambled = copy.deepcopy(data)
    for d in scrambled:
        d.y["val"] = (d.y["val"] + 1) % d.num_classes
    _, detail_val = relations.estimate(lambda seed: scrambled, SPEC, CFG, 0.05, HS_CFG, seeds=[0])
    assert detail_val["pairs"]["g1+c1"]["runs"] != runs


def test_each_pair_is_augmented_with_its_own_tasks_flags(monkeypatch):
    from dataclasses import replace

    seen = {}

    def spy(method_name, data, spec, cfg, method_cfg, freeze_blocks=0):
        seen[tuple(d.name for d in data)] = cfg.flip
        return [0.5, 0.5]

    monkeypatch.setattr(relations, "_val", spy)
    three = tasks() + [fake_task("g2", 1, 3, n=16, seed=3)]
    relations.estimate(lambda seed: three, SPEC, replace(CFG, flip=(False, True, True)), 0.05, HS_CFG, seeds=[0])
    assert seen == {("g1", "c1"): (False, True), ("g1", "g2"): (False, True), ("c1", "g2"): (True, True)}


def test_the_relations_job_logs_one_line_per_epoch_of_every_run(capsys):
    """The relations stage trains (every pair alone and together, per seed): its log
    shows each of those runs' epochs, as a training job's does."""
    relations.estimate(lambda seed: tasks(), SPEC, CFG, 0.05, HS_CFG, seeds=[0])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[relations]")]
    for method in ("single_task", "hard_sharing"):
        for epoch in range(1, CFG.epochs + 1):
            ours = [line for line in lines if line.startswith(f"[relations] {method} g1+c1 seed 0: epoch {epoch}/")]
            assert len(ours) == 1 and "val_acc g1=" in ours[0] and ours[0].endswith(" s"), lines
    assert len(lines) == 2 * CFG.epochs


def test_the_relations_runs_freeze_what_training_freezes(monkeypatch):
    """R compares runs trained as the training jobs train: training.freeze_blocks
    frozen alone and together (hetmtl.resolve.resolve_relations passes it)."""
    seen = []

    def fake_fit(method, data, cfg, device, **kw):
        frozen = [p for p in method.parameters() if not p.requires_grad]
        seen.append((type(method).__name__, len(frozen)))
        return {"history": [{f"val_acc/{d.name}": 0.5 for d in data}]}

    monkeypatch.setattr(relations, "fit", fake_fit)
    relations.estimate(lambda seed: tasks(), SPEC, CFG, 0.05, HS_CFG, seeds=[0], freeze_blocks=1)
    assert [name for name, _ in seen] == ["SingleTask", "HardSharing"] and all(n > 0 for _, n in seen), seen
    seen.clear()
    relations.estimate(lambda seed: tasks(), SPEC, CFG, 0.05, HS_CFG, seeds=[0])
    assert all(n == 0 for _, n in seen), seen


def test_the_relations_job_freezes_the_resolved_blocks(monkeypatch):
    """The job hands its resolved record's freeze_blocks to the estimate (not 0, not the default)."""
    from types import SimpleNamespace

    seen = {}

    class Stop(Exception):
        pass

    def fake_estimate(data, spec, cfg, temperature, method_cfg, seeds, freeze_blocks=0):
        seen.update(freeze_blocks=freeze_blocks, seeds=seeds)
        raise Stop

    monkeypatch.setattr(relations, "estimate", fake_estimate)
    rel = SimpleNamespace(suite="tiny", tasks=("HD", "a"), split={}, given=None, backbone="vgg_tiny", train=CFG,
                          temperature=0.05, method_params=HS_CFG, seeds=(0, 1), freeze_blocks=2, epochs=1)
    with pytest.raises(Stop):
        relations.relations_job(rel, "cpu")
    assert seen == {"freeze_blocks": 2, "seeds": [0, 1]}
