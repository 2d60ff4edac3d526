"""Data sources as modules (hetmtl.data.sources): the registry, and a user's
class-folder source from params/ alone, end to end through Snakemake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from user_data import CLASSES, make_folder, make_zip, user_params

from hetmtl.data.archives import ArchiveError, folder_members, list_members, md5sum
from hetmtl.data.fetch import fetch
from hetmtl.data.sources import LAYOUTS, write_standin
from hetmtl.params import SCHEMA_PATH, ParamsError, load_params

# --------------------------------------------------------------------------- the registry


def _domain(params, layout: str) -> str | None:
    for group in ("sources", "alternative_sources"):
        for name, source in params[group].items():
            if source["layout"] == layout:
                return next((t.get("domain") for t in params["tasks"].values() if t["source"] == name), None)
    return None


@pytest.mark.parametrize("layout", [n for n, lay in LAYOUTS.items() if lay.generate is not None])
def test_each_source_module_generates_what_its_layout_classifies(layout, tmp_path, params):
    """A module's stand-in generator, its member regex, its classes and its
    counts agree: the archive it writes classifies into exactly its counts."""
    source = LAYOUTS[layout]
    path = tmp_path / ("standin.zip" if layout.startswith(("coil", "officehome")) else "standin.tgz")
    write_standin(layout, path, 2)
    by_class = source.classify(list_members(path, dirs=True), _domain(params, layout))
    assert {"classes": len(by_class), "images": sum(map(len, by_class.values()))} == source.standin_counts(2)
    assert sorted(by_class) == sorted(source.classes)


def test_the_params_layout_names_are_the_registrys(params, project):
    """The schema types no list of layouts; every layout params/ names is a
    registry key, and an unknown one is one line naming the file, the key and
    the known names."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert "enum" not in schema["properties"]["sources"]["additionalProperties"]["properties"]["layout"]
    used = {s["layout"] for g in ("sources", "alternative_sources") for s in params[g].values()}
    assert used <= set(LAYOUTS) and set(LAYOUTS) - used == {"class_folders"}
    path = project / "params" / "datasets.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["office31"]["layout"] = "office32"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError) as err:
        load_params(project)
    assert len(str(err.value).splitlines()) == 1
    assert str(err.value).startswith("params/datasets.yaml: sources.office31.layout: unknown layout 'office32'")
    assert f"(known: {', '.join(LAYOUTS)})" in str(err.value)


@pytest.mark.parametrize("entry, key, reason", [
    ({"path": "userdata/shapes.zip"}, "md5", "required for an archive"),
    ({"path": "userdata/shapes", "md5": "0" * 32}, "md5", "a folder has no MD5"),
    ({"path": "userdata/shapes.zip", "md5": "0" * 32, "urls": ["http://x/y.zip"]}, "urls", "by path"),
    ({}, "path", "required"),
])
def test_a_class_folder_source_entry_is_checked(project, entry, key, reason):
    path = project / "params" / "datasets.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["user"] = {"layout": "class_folders", "channels": 3, **entry}
    data["tasks"]["U"] = {"source": "user", "flip": True, "classes": {"pool": "source", "draw": "all"}}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=rf"^params/datasets.yaml: sources.user.{key}: .*{reason}"):
        load_params(project)


# --------------------------------------------------------------------------- class folders


def test_class_folders_classify_with_and_without_a_top_folder(tmp_path):
    layout = LAYOUTS["class_folders"]
    make_zip(tmp_path / "top.zip", extra={"README.txt": b"hi", ".DS_Store": b"", "circle/.hidden.png": b""})
    make_zip(tmp_path / "flat.zip", top=None)
    for archive in ("top.zip", "flat.zip"):
        by_class = layout.classify(list_members(tmp_path / archive, dirs=True))
        assert sorted(by_class) == CLASSES and all(len(v) == 8 for v in by_class.values()), archive
    assert layout.classify(folder_members(make_folder(tmp_path / "dir"))) == layout.classify(
        list_members(tmp_path / "flat.zip", dirs=True))


@pytest.mark.parametrize("extra", [{"empty/": b""}, {"notes/readme.txt": b"no images"}])
def test_a_class_folder_without_images_fails_loudly(tmp_path, project, params, extra):
    archive = tmp_path / "shapes.zip"
    md5 = make_zip(archive, extra=extra)
    source = {"layout": "class_folders", "path": str(archive), "md5": md5, "channels": 3}
    suite = dict(params.suite("tiny"), raw_dir="raw")
    with pytest.raises(ArchiveError, match=r"shapes.zip: class folder\(s\) '(empty|notes)' hold no images"):
        fetch(suite, "user", source)
    assert not (project / "raw" / "shapes.zip").exists()
    folder = make_folder(tmp_path / "dir")
    (folder / "empty").mkdir()
    with pytest.raises(ArchiveError, match=r"dir: class folder\(s\) 'empty' hold no images"):
        fetch(suite, "user", {"layout": "class_folders", "path": str(folder), "channels": 1})


def test_a_wrong_md5_of_the_users_archive_is_one_line_saying_what_to_do(tmp_path, project, params):
    archive = tmp_path / "shapes.zip"
    actual = make_zip(archive)
    source = {"layout": "class_folders", "path": str(archive), "md5": "0" * 32, "channels": 3}
    with pytest.raises(ArchiveError) as err:
        fetch(dict(params.suite("tiny"), raw_dir="raw"), "user", source)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and msg.startswith(f"{archive}: MD5 mismatch: expected {'0' * 32}")
    assert f"set sources.user.md5 to {actual}" in msg
    assert not (project / "raw" / "shapes.zip").exists()


def test_a_folder_is_packed_deterministically_with_its_md5_recorded(tmp_path, project, params):
    folder = make_folder(tmp_path / "shapes_dir")
    source = {"layout": "class_folders", "path": str(folder), "channels": 1}
    a = fetch(dict(params.suite("tiny"), raw_dir="a"), "user", source)
    b = fetch(dict(params.suite("paper"), raw_dir="b"), "user", source)  # the same in every suite
    assert a.name == "shapes_dir.zip" and md5sum(a) == md5sum(b)
    assert a.with_name(a.name + ".md5").read_text().split()[0] == md5sum(a)


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.slow
def test_a_class_folder_group_runs_through_the_whole_dag(classfolder_run):
    """A zip and a folder of <class>/<image> PNGs (grayscale and colour mixed)
    become two tasks of a group from params/ alone; Snakemake fetches,
    prepares, trains and aggregates them in the tiny suite, offline (started
    with the session: conftest.e2e_background)."""
    proj, seconds, _ = classfolder_run
    md5 = md5sum(proj / "userdata" / "shapes.zip")
    rgb = json.loads((proj / "data/prepared/tiny/ShapesRGB/manifest.json").read_text())
    gray = json.loads((proj / "data/prepared/tiny/ShapesGray/manifest.json").read_text())
    assert (rgb["channels"], rgb["num_classes"], rgb["images"], rgb["source_md5"]) == (3, 3, 24, md5)
    assert (gray["channels"], gray["num_classes"], gray["images"], gray["archive"]) == (1, 4, 32, "shapes_gray.zip")
    table = (proj / "reports/tiny/tables/table_user.csv").read_text()
    assert "ShapesRGB/mean" in table and "ShapesGray/mean" in table and "mtal" in table
    print(f"class-folder DAG: {seconds:.1f} s")


def test_dvc_fetch_stage_depends_on_the_users_archive_and_folder(tmp_path):
    """DVC reruns the fetch stage when a user's archive or folder changes (it
    hashes a folder's content)."""
    from hetmtl import dvc_yaml

    proj = tmp_path / "proj"
    (proj / "params" / "suites").mkdir(parents=True)
    root = Path(__file__).resolve().parents[1]
    for f in (root / "params").rglob("*.yaml"):
        (proj / f.relative_to(root)).write_text(f.read_text())
    (proj / "Snakefile").write_text("")
    (proj / "src").symlink_to(root / "src")
    user_params(proj, "0" * 32)
    deps = dvc_yaml.stages(load_params(proj), "tiny")["fetch"]["deps"]
    assert deps[-2:] == ["userdata/shapes.zip", "userdata/shapes_gray"]
