"""The mutation tier's committed record (tests/mutation/): scores, baseline, triage and README
agree. The tier itself (mutmut over the research core) runs with `make mutation`, not here."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("mutation_tier", ROOT / "scripts" / "mutation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "tests" / "mutation", tmp_path / "tests" / "mutation")
    return tmp_path


def test_committed_scores_meet_the_baseline_and_every_survivor_is_triaged():
    assert _script().problems(ROOT) == []


def test_readme_states_the_committed_scores():
    mod = _script()
    _, block, _ = mod.split((ROOT / "README.md").read_text())
    assert block == "\n" + mod.render(ROOT), "README's mutation scores differ: run `python scripts/mutation.py readme`"


def test_a_score_below_the_baseline_fails_the_tier(tmp_path):
    mod = _script()
    root = _copy(tmp_path)
    base = json.loads((root / "tests/mutation/baseline.json").read_text())
    module = next(iter(base))
    path = next(p for p in (root / "tests/mutation/results").glob("*.json")
                if json.loads(p.read_text())["module"] == module)
    r = json.loads(path.read_text())
    r["killed"] -= 1
    path.write_text(json.dumps(r))
    assert any("fell below the baseline" in p for p in mod.problems(root))


def test_an_untriaged_survivor_fails_the_tier(tmp_path):
    mod = _script()
    root = _copy(tmp_path)
    path = next((root / "tests/mutation/results").glob("*.json"))
    r = json.loads(path.read_text())
    r["survivors"].append({"name": "hetmtl.x.y__mutmut_999", "status": "survived", "diff": ""})
    path.write_text(json.dumps(r))
    assert any("hetmtl.x.y__mutmut_999" in p and "not in tests/mutation/triage.yaml" in p for p in mod.problems(root))


def test_every_listed_module_and_test_file_exists():
    listed = yaml.safe_load((ROOT / "tests/mutation/modules.yaml").read_text())
    for module, spec in listed["modules"].items():
        assert (ROOT / "src" / module).is_file(), module
        for t in spec["tests"] + spec.get("deselect", []):
            assert (ROOT / t.split("::")[0]).is_file(), t
    for module in listed.get("pending", {}):
        assert (ROOT / "src" / module).is_file(), module
