"""scripts/gpu_check.sh on its CPU path: doctor's screen, then one group timed by
hetmtl bench, its record written (the GPU path differs only in --device)."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import copy_project, e2e_env


@pytest.mark.slow  # counts the paper grid's FLOPs or times every method: the slow tier
def test_gpu_check_runs_doctor_then_times_one_group(tmp_path):
    proj = copy_project(tmp_path / "proj")
    env = dict(e2e_env(), DEVICE="cpu")
    out = subprocess.run(["bash", "scripts/gpu_check.sh", "tiny", "unrelated", "--method", "hard_sharing",
                          "--warmup", "1", "--steps", "2", "--epochs", "1"], cwd=proj, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "suite tiny, group unrelated, device cpu" in text
    assert text.index("hetmtl doctor --suite tiny") < text.index("| hard_sharing |")
    record = json.loads((proj / "reports/tiny/bench/bench_cpu.json").read_text())
    assert [r["method"] for r in record["rows"]] == ["hard_sharing"]
    assert {r["group"] for r in record["rows"]} == {"unrelated"} and record["estimate_measured"]["jobs"] > 0
