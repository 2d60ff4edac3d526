"""The layouts against public facts about the real archives (nothing can be
downloaded here): member names built from the public file lists and counts,
with the junk real archives carry, must classify into exactly the real classes
and counts, and into params/datasets.yaml's ``expected``. A layout change that
would break on the real archive fails here.

Facts: Office-31 amazon and Office-Home Art from thuml/CDAN's file lists
(tests/data/public/office_lists.json, derived by derive_lists.py beside it);
Chars74K EnglishHnd 62 classes x 55 and EnglishFnt 62 x 1016 (the author's
page); COIL-20 processed 20 objects x 72 poses, unprocessed 5 x 72 (dm_nevis
``coil20.py`` and other loaders pinned to its MD5).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hetmtl.data.prepare import decode
from hetmtl.data.sources import LAYOUTS, chars74k, office31, officehome
from hetmtl.data.sources.common import is_junk

PUBLIC = json.loads((Path(__file__).parent / "data" / "public" / "office_lists.json").read_text())


def _with_junk(names: list[str], tar: bool) -> list[str]:
    """What a real archive holds around ``names``: folders, AppleDouble files
    beside images and under __MACOSX/, .DS_Store; a tar's ./ prefixes."""
    out = set()
    for n in names:
        folder, _, base = n.rpartition("/")
        out |= {n, f"{folder}/._{base}", f"{folder}/.DS_Store", f"__MACOSX/{folder}/._{base}"}
        parts = n.split("/")
        out |= {"/".join(parts[:i]) + "/" for i in range(1, len(parts))}
    return sorted(("./" + n if tar else n) for n in out)


def _office31_names(top: str) -> list[str]:
    fact = PUBLIC["office31_amazon"]
    names = [f"{top}amazon/images/{c}/{fact['file_name'].format(i)}"
             for c, k in fact["classes"].items() for i in range(1, k + 1)]
    # the other domains (a few names each): a layout must not count them
    return names + [f"{top}{d}/images/{c}/frame_0001.jpg" for d in ("dslr", "webcam") for c in fact["classes"]]


def _officehome_names(top: str) -> list[str]:
    fact = PUBLIC["officehome_art"]
    names = [f"{top}Art/{c}/{fact['file_name'].format(i)}" for c, k in fact["classes"].items() for i in range(1, k + 1)]
    others = [f"{top}{d}/{c}/00001.jpg" for d in ("Clipart", "Product", "Real World") for c in fact["classes"]]
    return names + others + [f"{top}ImageInfo.csv", f"{top}imagelist.txt"]


def _counts(by_class: dict) -> dict:
    return {c: len(v) for c, v in by_class.items()}


@pytest.mark.parametrize("tar", [False, True])
@pytest.mark.parametrize("top", ["", "domain_adaptation_images/"])
def test_office31_amazon_classifies_as_the_public_list(params, top, tar):
    names = _with_junk(_office31_names(top), tar)
    by_class = LAYOUTS["office31"].classify(names, "amazon")
    assert _counts(by_class) == PUBLIC["office31_amazon"]["classes"]
    expected = params["sources"]["office31"]["expected"]
    assert {"classes": len(by_class), "images": sum(_counts(by_class).values())} == expected


@pytest.mark.parametrize("tar", [False, True])
@pytest.mark.parametrize("top", ["", "OfficeHomeDataset_10072016/"])  # the per-domain mirror has no top folder
def test_officehome_art_classifies_as_the_public_list(params, top, tar):
    names = _with_junk(_officehome_names(top), tar)
    by_class = LAYOUTS["officehome"].classify(names, "Art")
    assert _counts(by_class) == PUBLIC["officehome_art"]["classes"]
    expected = params["sources"]["officehome"]["expected"]
    assert {"classes": len(by_class), "images": sum(_counts(by_class).values())} == expected
    # the domain with a space in its name is a domain like any other
    assert len(LAYOUTS["officehome"].classify(names, "Real World")) == 65


def test_the_stand_ins_use_the_real_class_names():
    assert sorted(office31.OFFICE31_CLASSES) == sorted(PUBLIC["office31_amazon"]["classes"])
    assert sorted(officehome.OFFICEHOME_CLASSES) == sorted(PUBLIC["officehome_art"]["classes"])
    assert officehome.DOMAINS == ("Art", "Clipart", "Product", "Real World")


@pytest.mark.parametrize("layout, form, per_class, source", [
    ("chars74k_hnd", "English/Hnd/Img/Sample{k:03d}/img{k:03d}-{i:03d}.png", 55, "chars74k_hnd"),
    ("chars74k_fnt", "English/Fnt/Sample{k:03d}/img{k:03d}-{i:05d}.png", 1016, "chars74k_fnt"),
])
def test_chars74k_samples(params, layout, form, per_class, source):
    names = [form.format(k=k, i=i) for k in range(1, 63) for i in range(1, per_class + 1)]
    by_class = LAYOUTS[layout].classify(_with_junk(names, tar=True))
    assert list(by_class) == [f"Sample{k:03d}" for k in range(1, 63)] == list(chars74k.HND.classes)
    assert set(_counts(by_class).values()) == {per_class}
    assert params["sources"][source]["expected"] == {"classes": 62, "images": 62 * per_class}


@pytest.mark.parametrize("layout, folder, objects, group", [
    ("coil20_proc", "coil-20-proc", 20, "sources"), ("coil20_unproc", "coil-20-unproc", 5, "alternative_sources")])
def test_coil20_objects_and_poses(params, layout, folder, objects, group):
    names = [f"{folder}/obj{o}__{p}.png" for o in range(1, objects + 1) for p in range(72)]
    by_class = LAYOUTS[layout].classify(_with_junk(names, tar=False))
    assert sorted(by_class) == sorted(f"obj{o}" for o in range(1, objects + 1))
    assert set(_counts(by_class).values()) == {72}
    source = next(s for s in params[group].values() if s["layout"] == layout)
    assert source["expected"] == {"classes": objects, "images": 72 * objects}


def test_the_coil20_task_is_the_processed_archives_first_ten_objects(params):
    """Ours: 10 objects x 72 poses = the paper's 720 images; said in its note."""
    task = params["tasks"]["Coil-20"]
    assert params["sources"][task["source"]]["layout"] == "coil20_proc"
    assert task["classes"] == {"pool": [f"obj{k}" for k in range(1, 11)], "draw": "all"}
    assert "(ours)" in task["note"] and "720" in task["note"]


@pytest.mark.parametrize("name, junk", [
    ("amazon/images/mug/._frame_0001.jpg", True), ("__MACOSX/amazon/images/mug/._frame_0001.jpg", True),
    ("./Art/Mug/.DS_Store", True), ("./amazon/images/mug/frame_0001.jpg", False),
    ("OfficeHomeDataset_10072016/Real World/Mug/00001.jpg", False)])
def test_junk_is_told_from_images(name, junk):
    assert is_junk(name) is junk


# --------------------------------------------------------------------------- odd image storage


def _gradient(mode: str) -> Image.Image:
    x = np.tile(np.linspace(0, 255, 32), (32, 1)).astype(np.uint8)
    rgb = np.stack([x, x.T, 255 - x], -1)
    return Image.fromarray(rgb).convert(mode) if mode != "RGB" else Image.fromarray(rgb)


def test_a_cmyk_jpeg_decodes_to_the_same_rgb():
    rgb, cmyk = io.BytesIO(), io.BytesIO()
    _gradient("RGB").save(rgb, "JPEG", quality=95)
    _gradient("RGB").convert("CMYK").save(cmyk, "JPEG", quality=95)
    a, b = decode(rgb.getvalue(), 3, 32).astype(int), decode(cmyk.getvalue(), 3, 32).astype(int)
    assert a.shape == b.shape == (3, 32, 32) and np.abs(a - b).mean() < 4


def test_a_16_bit_png_decodes_to_the_same_gray():
    gray = _gradient("L")
    eight, sixteen = io.BytesIO(), io.BytesIO()
    gray.save(eight, "PNG")
    Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257).save(sixteen, "PNG")
    assert Image.open(io.BytesIO(sixteen.getvalue())).mode.startswith("I;16")
    a, b = decode(eight.getvalue(), 1, 32), decode(sixteen.getvalue(), 1, 32)
    assert np.array_equal(a, b) and a.std() > 30  # not clipped white
    # and as the 3 channels of a colour task
    assert np.array_equal(decode(sixteen.getvalue(), 3, 32), np.repeat(a, 3, 0))


# --------------------------------------------------------------------------- the Coil-20 choice (ours)


def test_every_caption_that_shows_coil20_says_how_it_is_made(params):
    """The note of params/datasets.yaml's Coil-20 task is in the caption of every
    table whose group holds Coil-20 (its own caption and the report's), in no
    other table's, and in every figure's (they show every group)."""
    from hetmtl.reporting import aggregate, catalogue

    note = params["tasks"]["Coil-20"]["note"]
    shown = {name: "Coil-20" in params.tasks_of(spec["group"]) for name, spec in params["tables"].items()}
    assert set(shown.values()) == {True, False}
    for name, spec in params["tables"].items():
        assert (note in aggregate.caption(params, "paper", spec)) == shown[name], name
        assert (note in catalogue.caption(params, "table", name)) == shown[name], name
    for name in catalogue.names(params, "figure"):
        assert note in catalogue.caption(params, "figure", name), name
    assert note in aggregate.scale_note(params, "paper")


def test_the_unprocessed_alternative_runs_as_documented(project, monkeypatch):
    """The alternative of params/datasets.yaml's comment (the unprocessed 5
    objects): params load, and prepare makes a 5-class, 360-image task."""
    import yaml

    from conftest import ROOT, small_suite
    from hetmtl.data.prepare import prepare_task
    from hetmtl.data.sources import write_standin
    from hetmtl.params import load_params

    (project / "src").symlink_to(ROOT / "src")
    path = project / "params" / "datasets.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["coil20_unproc"] = data["alternative_sources"].pop("coil20_unproc")
    data["alternative_sources"]["coil20_proc"] = data["sources"].pop("coil20_proc")
    data["tasks"]["Coil-20"].update(source="coil20_unproc", classes={"pool": "source", "draw": "all"},
                                    note="Coil-20 (ours): the unprocessed archive's 5 objects.")
    path.write_text(yaml.safe_dump(data))
    params = load_params(project)
    suite = small_suite(params)
    monkeypatch.setattr(type(params), "suite", lambda self, name: suite)
    write_standin("coil20_unproc", project / "raw" / "coil-20-unproc.zip", 1)
    m = prepare_task(params, "tiny", "Coil-20")
    assert (m["num_classes"], m["images"], m["per_class"]) == (5, 360, [72] * 5)
