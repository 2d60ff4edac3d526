"""A rehearsal of the paper suite on this machine's CPU (marker ``rehearsal``,
deselected by default; run with ``pytest -m rehearsal tests/test_rehearsal.py``).

What is the paper suite's path, as a user with the real archives meets it:

* ``data: real``, ``raw_dir: data/raw``: twins of all five archives of
  params/datasets.yaml ``sources``, made by the project's stand-in generators
  (:func:`hetmtl.data.sources.write_standin`: the real names, folders, domains,
  side files and junk), placed by hand in ``data/raw/`` under their real file
  names. The fetch step then only verifies their MD5 (it never downloads);
* ``init: imagenet``: a weights file made here (a state dict of the backbone's
  shapes) in torch hub's cache under torchvision's file name, as on a node
  without network;
* the paper grid (both groups, both settings, Tables 2-5, the relations stage,
  the readings that ``init: imagenet`` allows), through Snakemake with
  ``--config device=cpu`` (a real suite refuses to fall back to the CPU by
  itself), then the tables, figures and report;
* ``hetmtl doctor --suite paper`` on the placed archives.

The smoke override (ours; docs/reproduction.md "Rehearsal"), written into the
scratch copy's params/ only:

* the twins' MD5s and class/image counts go into the copy's
  params/datasets.yaml (``sources.<name>.md5`` and ``expected``): that is the
  documented way for an archive placed by hand whose MD5 differs from params/
  (the fetch step's message: "set sources.<name>.md5 to <actual>"); the real
  suite has no other record for a hand-placed archive (its ``.md5`` sidecar is
  written from params/ after the check);
* ``backbone: resnet18`` at ``image_size: 32`` instead of VGG-16 at 224 (a
  VGG-16 job and its ~0.5 GB of weights per task network do not fit two CPU
  cores in minutes); ResNet-18 is the other backbone with torchvision ImageNet
  weights that ``init: imagenet`` loads;
* ``IMAGES`` images per class in every twin, two epochs (the fewest the pipeline
  accepts: MTAL's first matching comes after one warm-up epoch), one seed,
  relations one epoch and one seed, batch size 16, each sweep (Fig. 9, Table 7)
  on the related group only with two values and one seed, no tuning.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_project, e2e_env

pytestmark = [pytest.mark.rehearsal, pytest.mark.timeout(1500)]

IMAGES = 6  # images per class in every twin (ours: the smallest that splits 0.6/0.1/0.3 with every class in train)
# epochs 2: the fewest the pipeline accepts (MTAL's first matching comes after methods.mtal.warmup = 1 epoch).
# Sweeps: each of the grid's sweeps (the claims read them) on one group, two values, one seed.
SMOKE = {"backbone": "resnet18", "image_size": 32, "epochs": 2, "seeds": [0], "batch_size": 16,
         "relations": {"epochs": 1, "seeds": [0]},
         "sweeps": {"rho": {"values": [0.1, 0.9], "seeds": [0], "epochs": 2, "groups": ["related"]},
                    **{s: {"values": ["equal", "dwa"], "seeds": [0], "epochs": 2, "groups": ["related"]}
                       for s in ("weighting_hard_sharing", "weighting_mtal")}},
         "tune": {"trials": 0, "seed": 0, "epochs": 2}}


def place_twins(proj: Path) -> dict[str, str]:
    """Each source's twin written to ``data/raw/<its real archive name>`` (as a user
    places a download by hand), its MD5 and counts recorded in the copy's
    params/datasets.yaml; {archive: md5}."""
    import yaml

    from hetmtl.data.archives import md5sum
    from hetmtl.data.sources import LAYOUTS, write_standin

    path = proj / "params" / "datasets.yaml"
    datasets = yaml.safe_load(path.read_text())
    raw = proj / "data" / "raw"
    raw.mkdir(parents=True)
    placed = {}
    for name, source in datasets["sources"].items():
        archive = raw / source["archive"]
        write_standin(source["layout"], archive, IMAGES)
        archive.with_name(archive.name + ".md5").unlink(missing_ok=True)  # a hand-placed file has none
        placed[source["archive"]] = md5sum(archive)
        source["md5"] = placed[source["archive"]]
        source["expected"] = LAYOUTS[source["layout"]].standin_counts(IMAGES)
        datasets["sources"][name] = source
    path.write_text(yaml.safe_dump(datasets, sort_keys=False))
    return placed


def smoke_suite(proj: Path) -> None:
    """The paper suite with :data:`SMOKE` over it (the grid as it is)."""
    import yaml

    path = proj / "params" / "suites" / "paper.yaml"
    suite = yaml.safe_load(path.read_text())
    assert suite["suite"]["data"] == "real" and suite["suite"]["init"] == "imagenet"
    suite["suite"].update(SMOKE)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))


def local_weights(torch_home: Path, backbone: str) -> Path:
    """A state dict of the backbone's ImageNet shapes under torchvision's file name in
    ``$TORCH_HOME/hub/checkpoints`` (no network)."""
    import torch
    import torchvision
    from torchvision.models import get_weight

    from hetmtl.models import BACKBONES

    weights = get_weight(BACKBONES[backbone].imagenet_weights)
    cache = torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = getattr(torchvision.models, backbone)(weights=None).state_dict()
    path = cache / weights.url.rsplit("/", 1)[1]
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The scratch project, its environment, the placed archives' MD5s."""
    proj = copy_project(tmp_path_factory.mktemp("rehearsal"))
    smoke_suite(proj)
    placed = place_twins(proj)
    env = e2e_env()
    env["TORCH_HOME"] = str(proj / ".torch")
    weights = local_weights(proj / ".torch", SMOKE["backbone"])
    yield proj, env, placed, weights
    import shutil

    shutil.rmtree(proj / "results", ignore_errors=True)  # about 6.7 GiB of model files per run; pytest keeps 3 runs


def test_doctor_sees_the_placed_archives(rehearsal):
    """Every placed twin is `ok` with its MD5; the weights made here are named as not
    torchvision's file (their SHA-256 differs from the name's prefix), as on a real
    node a damaged download would be."""
    proj, env, placed, weights = rehearsal
    bin_ = Path(sys.executable).parent
    res = subprocess.run([str(bin_ / "hetmtl"), "doctor", "--suite", "paper"], cwd=proj, env=env,
                         capture_output=True, text=True, timeout=300)
    lines = res.stdout.splitlines()
    for archive, md5 in placed.items():
        line = next((x for x in lines if f"archive {archive}" in x), None)
        assert line is not None, res.stdout + res.stderr
        assert line.startswith("ok") and md5 in line, line
    weights_line = next(x for x in lines if "ImageNet weights" in x)
    assert weights_line.startswith("blocked") and weights.name in weights_line, weights_line
    assert res.returncode != 0  # the weights (and, on a CPU machine, the GPU) block a real run


def test_paper_suite_dag_builds_tables_figures_and_report(rehearsal):
    """fetch (MD5 only) -> prepare -> relations -> training, sweeps -> tables, figures,
    metrics -> the HTML report."""
    import json

    from hetmtl.params import load_params

    proj, env, placed, _ = rehearsal
    bin_ = Path(sys.executable).parent
    # as docs/reproduction.md tells a user: fetch first; a placed archive is only verified
    fetch = subprocess.run([str(bin_ / "hetmtl"), "fetch", "--suite", "paper"], cwd=proj, env=env,
                           capture_output=True, text=True, timeout=300)
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    assert "mirror" not in fetch.stderr  # nothing was downloaded
    for archive, md5 in placed.items():
        assert (proj / "data" / "raw" / (archive + ".md5")).read_text().split()[0] == md5
    res = subprocess.run([str(bin_ / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2",
                          "--config", "suite=paper", "device=cpu"], cwd=proj, env=env, capture_output=True,
                         text=True, timeout=1400)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-6000:]
    assert "mirror" not in res.stderr
    params = load_params(proj)
    from hetmtl import paths

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(proj)
        for task in {t for g in params["groups"].values() for t in g["tasks"]}:
            manifest = json.loads(paths.prepared_manifest("paper", task).read_text())
            assert manifest["data"] == "real" and manifest["source_md5"] == placed[manifest["archive"]]
        for table in params["tables"]:
            assert paths.metrics_file("paper", table).exists(), table
        from hetmtl.reporting import catalogue

        built = {kind: [f for name in catalogue.names(params, kind)
                        for f in catalogue.files(params, "paper", kind, name)] for kind in catalogue.KINDS}
        for kind, files in built.items():
            assert files, f"no {kind} in the catalogue"
            for f in files:
                assert Path(f).exists() and Path(f).stat().st_size > 0, f
        # the Coil-20 choice of ours is said in the captions of the tables that show it
        note = params["tasks"]["Coil-20"]["note"]
        for table, spec in params["tables"].items():
            if "Coil-20" in params["groups"][spec["group"]]["tasks"]:
                assert note in paths.table_file("paper", table, "md").read_text(), table
    # the HTML report, as `make demo` builds it
    html = proj / "reports" / "paper" / "report.html"
    rep = subprocess.run([str(bin_ / "snakemake"), "--profile", "workflow/profiles/default", "--cores", "2",
                          "--config", "suite=paper", "device=cpu", "--report", str(html)], cwd=proj, env=env,
                         capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    assert html.stat().st_size > 0
