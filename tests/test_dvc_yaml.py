"""The DVC pipeline files (hetmtl/dvc_yaml.py): where each stage is written, and
that a file params/ no longer give is found and removed (DVC would run it)."""

from __future__ import annotations

import yaml

from hetmtl import dvc_yaml
from hetmtl.params import load_params


def test_training_stages_have_a_file_per_group_and_setting(project):
    p = load_params(project)
    every = dvc_yaml.stages(p, "tiny")
    files = {path: yaml.safe_load(text) for path, text in dvc_yaml.render(p, "tiny").items()}
    placed = [name for doc in files.values() for name in doc["stages"]]
    assert sorted(placed) == sorted(every)  # each stage once
    root = files.pop(dvc_yaml.ROOT_FILE)
    assert not [n for n in root["stages"] if n.startswith(("train-", "sweep-"))]
    assert "plots" in root and "wdir" not in str(root["stages"])
    cells = {(k["group"], k["setting"]) for k in p.runs("tiny")}
    sweeps = {(g, f"sweep-{n}") for n in p["sweeps"] for g in p.sweep_groups("tiny", n)}
    assert {path.parent.relative_to(dvc_yaml.TRAIN_DIR).parts for path in files} == cells | sweeps
    for path, doc in files.items():
        group, setting = path.parent.relative_to(dvc_yaml.TRAIN_DIR).parts
        for name, stage in doc["stages"].items():
            assert name.startswith((f"train-{group}-{setting}-", f"sweep-{setting[len('sweep-'):]}-{group}-")), name
            assert stage["wdir"] == "../../../.."  # the project root: paths as in dvc.yaml
            assert (project / path.parent / stage["wdir"]).resolve() == project.resolve()


def test_a_pipeline_file_params_no_longer_give_is_stale_and_removed(project):
    p = load_params(project)
    written = dvc_yaml.write(p, "tiny")
    assert dvc_yaml.stale(project, dvc_yaml.render(p, "tiny")) == []
    old = project / dvc_yaml.TRAIN_DIR / "gone" / "prior" / "dvc.yaml"
    old.parent.mkdir(parents=True)
    old.write_text("stages: {}\n")
    (old.parent / "dvc.lock").write_text("schema: '2.0'\n")
    edited = written[-1]
    edited.write_text(edited.read_text() + "# an edit\n")
    assert dvc_yaml.stale(project, dvc_yaml.render(p, "tiny")) == sorted(
        [old.relative_to(project), edited.relative_to(project)])
    dvc_yaml.write(p, "tiny")
    assert not (project / dvc_yaml.TRAIN_DIR / "gone").exists()
    assert dvc_yaml.stale(project, dvc_yaml.render(p, "tiny")) == []
