"""Stand-in archives, verification, safe reading, class selection and splits."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from conftest import small_suite
from hetmtl import paths
from hetmtl.data.archives import ArchiveError, list_members, md5sum, verify_md5
from hetmtl.data.fetch import fetch
from hetmtl.data.prepare import prepare_task, select_classes
from hetmtl.data.sources import LAYOUTS, write_standin
from hetmtl.data.splits import run_split, stratified_split


def _use_standins(project, standin_dir, params, monkeypatch):
    import shutil

    shutil.copytree(standin_dir, project / "raw")
    suite = small_suite(params)
    monkeypatch.setattr(type(params), "suite", lambda self, name: suite)
    return suite


@pytest.mark.parametrize("task", ["HD", "A", "a", "Typographic", "Coil-20", "Art", "Amazon"])
def test_standin_round_trips_through_prepare(task, project, standin_dir, params, monkeypatch):
    suite = _use_standins(project, standin_dir, params, monkeypatch)
    m = prepare_task(params, "tiny", task)
    source = params["sources"][params["tasks"][task]["source"]]
    assert m["num_classes"] == 10
    assert m["channels"] == source["channels"]
    assert m["source_md5"] == md5sum(project / "raw" / source["archive"])
    blob = torch.load(paths.prepared_images("tiny", task))
    assert blob["x"].dtype == torch.uint8
    assert tuple(blob["x"].shape[1:]) == (source["channels"], suite["image_size"], suite["image_size"])
    assert blob["y"].min() >= 0 and blob["y"].max() < 10
    per_class = 72 if task == "Coil-20" else 6
    assert len(blob["y"]) == 10 * per_class == m["images"]
    assert json.loads(paths.prepared_manifest("tiny", task).read_text())["classes"] == m["classes"]


def test_standin_archives_are_deterministic(tmp_path):
    # 7 per class: one CMYK JPEG each, and the junk of a tar (./, AppleDouble, .DS_Store)
    a = write_standin("office31", tmp_path / "a" / "domain_adaptation_images.tar.gz", 7)
    b = write_standin("office31", tmp_path / "b" / "domain_adaptation_images.tar.gz", 7)
    assert a == b


def test_standin_layouts_match_the_real_names(standin_dir, params):
    for name, source in params["sources"].items():
        members = list_members(standin_dir / source["archive"])
        task = next((t for t in params["tasks"].values() if t["source"] == name), {})
        classes = LAYOUTS[source["layout"]].classify(members, task.get("domain"))
        assert classes, name
    hnd = list_members(standin_dir / "EnglishHnd.tgz")
    assert "./English/Hnd/Img/Sample001/img001-001.png" in hnd  # the ./ of `tar czf x.tgz .`
    assert sum(map(len, LAYOUTS["chars74k_hnd"].classify(hnd).values())) == 62 * 6
    assert "coil-20-proc/obj20__71.png" in list_members(standin_dir / "coil-20-proc.zip")


def test_class_selection_is_seeded_and_recorded():
    pool = [f"Sample{i:03d}" for i in range(11, 37)]
    spec = {"pool": {"range": ["Sample", 11, 36]}, "draw": 10}
    a = select_classes("A", spec, pool, seed=1)
    assert a == select_classes("A", spec, pool, seed=1)
    assert a != select_classes("A", spec, pool, seed=2)
    assert len(set(a)) == 10 and set(a) <= set(pool)


def test_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(5), [10, 20, 30, 13, 7])
    idx = stratified_split(labels, {"train": 0.6, "val": 0.1, "test": 0.3}, seed=0)
    all_idx = np.concatenate(list(idx.values()))
    assert len(all_idx) == len(labels) == len(set(all_idx.tolist()))
    for c, n in enumerate([10, 20, 30, 13, 7]):
        counts = {s: int((labels[i] == c).sum()) for s, i in idx.items()}
        assert counts["test"] == max(1, round(0.3 * n)) and counts["val"] == max(1, round(0.1 * n))
    again = stratified_split(labels, {"train": 0.6, "val": 0.1, "test": 0.3}, seed=0)
    assert all((again[s] == idx[s]).all() for s in idx)


def test_each_run_seed_draws_its_own_split_of_the_same_images():
    labels = np.repeat(np.arange(4), 20)
    split = {"train": 0.6, "val": 0.1, "test": 0.3, "seed": 0, "per_seed": True}
    s0, s0_again, s1 = run_split(labels, split, 0), run_split(labels, split, 0), run_split(labels, split, 1)
    assert all((s0[k] == s0_again[k]).all() for k in s0)  # reproducible per seed
    assert not (s0["test"] == s1["test"]).all()            # another seed, another test set
    assert sorted(np.concatenate(list(s1.values())).tolist()) == list(range(len(labels)))
    for k in s0:  # the same class proportions in every seed's split
        assert (np.bincount(labels[s0[k]]) == np.bincount(labels[s1[k]])).all()
    fixed = {**split, "per_seed": False}
    assert all((run_split(labels, fixed, 0)[k] == run_split(labels, fixed, 5)[k]).all() for k in s0)


def test_wrong_md5_names_expected_and_actual(tmp_path):
    f = tmp_path / "x.zip"
    f.write_bytes(b"not the archive")
    with pytest.raises(ArchiveError) as err:
        verify_md5(f, "0" * 32)
    assert "expected " + "0" * 32 in str(err.value) and "actual " + md5sum(f) in str(err.value)


def test_tampered_standin_is_refused_before_prepare(project, standin_dir, params, monkeypatch):
    _use_standins(project, standin_dir, params, monkeypatch)
    archive = project / "raw" / "coil-20-proc.zip"
    archive.write_bytes(archive.read_bytes()[:-100])
    with pytest.raises(ArchiveError, match="MD5 mismatch"):
        prepare_task(params, "tiny", "Coil-20")
    assert not paths.prepared_manifest("tiny", "Coil-20").exists()


def test_truncated_archive_gives_a_clear_error(tmp_path):
    src = write_standin("office31", tmp_path / "domain_adaptation_images.tar.gz", 2)
    del src
    data = (tmp_path / "domain_adaptation_images.tar.gz").read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="cannot read archive"):
        list_members(bad)


@pytest.mark.parametrize("name", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_unsafe_members_are_refused(tmp_path, name):
    tar_path = tmp_path / "x.tgz"
    with tarfile.open(tar_path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ArchiveError, match="unsafe member"):
        list_members(tar_path)
    zip_path = tmp_path / "x.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr(name, b"abc")
    with pytest.raises(ArchiveError, match="unsafe member"):
        list_members(zip_path)


def test_links_are_refused(tmp_path):
    tar_path = tmp_path / "x.tgz"
    with tarfile.open(tar_path, "w:gz") as tf:
        info = tarfile.TarInfo("English/Hnd/Img/Sample001/img001-001.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(ArchiveError, match="is a link"):
        list_members(tar_path)


def test_fetch_generates_and_verifies_standins(project, params):
    suite = small_suite(params, images_per_class=3)
    path = fetch(suite, "office31", params["sources"]["office31"])
    assert path.exists() and not path.with_name(path.name + ".part").exists()
    assert (project / "raw" / "domain_adaptation_images.tar.gz.md5").read_text().split()[0] == md5sum(path)


def test_fetch_offline_says_where_to_put_the_archive(project, params):
    suite = dict(params.suite("paper"), raw_dir="raw")
    source = dict(params["alternative_sources"]["coil20_unproc"], urls=["http://127.0.0.1:9/coil-20-unproc.zip"])
    with pytest.raises(ArchiveError) as err:
        fetch(suite, "coil20_unproc", source)
    msg = str(err.value)
    assert "http://127.0.0.1:9/coil-20-unproc.zip" in msg
    assert str((project / "raw" / "coil-20-unproc.zip").resolve()) in msg
    assert list((project / "raw").iterdir()) == []


def test_archive_placed_by_hand_is_verified_not_downloaded(project, params, tmp_path):
    suite = dict(params.suite("paper"), raw_dir="raw")
    (project / "raw").mkdir()
    placed = write_standin("coil20_unproc", project / "raw" / "coil-20-unproc.zip", 1)
    source = dict(params["alternative_sources"]["coil20_unproc"], md5=placed, urls=["http://127.0.0.1:9/never"])
    assert fetch(suite, "coil20_unproc", source).resolve() == project / "raw" / "coil-20-unproc.zip"
    source["md5"] = "f" * 32
    with pytest.raises(ArchiveError, match="MD5 mismatch"):
        fetch(suite, "coil20_unproc", source)


def test_archive_with_unexpected_content_is_refused(project, standin_dir, params, monkeypatch):
    """A valid, verified archive that lacks images (a different release) is refused."""
    suite = _use_standins(project, standin_dir, params, monkeypatch)
    write_standin("office31", project / "raw" / "domain_adaptation_images.tar.gz", 4)  # 4, not 6 per class
    with pytest.raises(ArchiveError, match=r"content differs .* 31 classes / 124 images, expected 31 / 186"):
        prepare_task(params, "tiny", "Amazon")
    assert not paths.prepared_manifest("tiny", "Amazon").exists()
    del suite


def test_offline_fetch_reports_every_missing_archive(project, monkeypatch, capsys):
    """The paper suite offline: one message per archive, naming URLs and the path, in seconds."""
    import time

    import yaml

    from hetmtl.cli import main
    from hetmtl.data import download

    path = project / "params" / "datasets.yaml"
    data = yaml.safe_load(path.read_text())
    for source in data["sources"].values():
        source["urls"] = [u if u.startswith("gdrive://") else f"http://127.0.0.1:9/{source['archive']}"
                          for u in source["urls"]]
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(download, "DRIVE_URL", "http://127.0.0.1:9/uc")  # Google Drive unreachable too
    started = time.time()
    assert main(["fetch", "--suite", "paper"]) == 1
    err = capsys.readouterr().err
    assert time.time() - started < 20
    used = {"EnglishHnd.tgz", "EnglishFnt.tgz", "coil-20-proc.zip", "OfficeHomeDataset_10072016.zip",
            "domain_adaptation_images.tar.gz"}
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == len(used)
    for archive in used:
        assert f"place it at {project / 'data' / 'raw' / archive}" in err
    assert not (project / "data" / "raw").exists() or not any((project / "data" / "raw").iterdir())


def test_coil20_unprocessed_alternative_holds_what_the_public_archive_holds(tmp_path, params):
    """5 objects x 72 poses (the archive with MD5 a04fd3c9...), not the report's 10 x 72."""
    source = params["alternative_sources"]["coil20_unproc"]
    path = tmp_path / source["archive"]
    write_standin(source["layout"], path, 1)
    by_class = LAYOUTS[source["layout"]].classify(list_members(path))
    have = {"classes": len(by_class), "images": sum(map(len, by_class.values()))}
    assert have == LAYOUTS[source["layout"]].standin_counts(1) == source["expected"]
