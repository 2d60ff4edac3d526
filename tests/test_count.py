"""One count of a suite's work (hetmtl/count.py): the Snakemake DAG, the Slurm booking, check-params,
doctor and `hetmtl count` read the same model, and estimating writes nothing that git tracks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hetmtl import count

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(suite: str) -> str:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "HOME": str(Path.home())}
    run = subprocess.run(["snakemake", "-n", "--config", f"suite={suite}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


def _job_name(rule: str, wc: dict) -> str:
    """count.Job.name of a job from its wildcards."""
    return {"sweep": f"{wc.get('sweep')}={wc.get('value')}", "relations": "R"}.get(
        rule, f"{wc.get('setting')}/{wc.get('method')}")


def test_the_dags_jobs_and_each_training_jobs_booking_are_the_count_models(params):
    """`snakemake -n` of the demo suite: its job stats are the model's jobs per rule, and every training
    job books (resources: runtime) the minutes the model gives it: the profile cannot count otherwise."""
    out = _dry_run("demo")
    stats = out[out.index("Job stats:"):]
    dag = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    jobs = count.training_jobs(params, "demo")
    model = {**count.other_jobs(params, "demo")}
    for j in jobs:
        model[j.rule] = model.get(j.rule, 0) + 1
    assert {k: v for k, v in dag.items() if k != "total"} == model
    assert dag["total"] == sum(model.values())
    booked = {}
    for block in re.split(r"\n\n", out):
        rule = re.search(r"^rule (\w+):", block, re.M)
        if not rule or rule.group(1) not in count.TRAINING_RULES:
            continue
        wc = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"wildcards: (.*)", block).group(1)))
        runtime = int(re.search(r"runtime=(\d+)", block).group(1))
        booked[(rule.group(1), wc["group"], _job_name(rule.group(1), wc))] = runtime
    assert booked == {(j.rule, j.group, j.name): j.booked_minutes for j in jobs}
    assert len(set(booked.values())) > 1  # not every job at the floor: the model, not a constant, books them


def test_the_booking_follows_what_a_job_trains(params):
    """Minutes per task-epoch (ours) x the task-epochs of the job, a gradient aggregator's sweep point
    (1 + 2T) / 3 times a plain one's, at least MIN_MINUTES."""
    s = params.suite("paper")
    T = len(params.tasks_of("related"))
    assert count.booked_minutes(params, "paper", "train", "related") == pytest.approx(
        count.MINUTES_PER_TASK_EPOCH["real"] * T * s["epochs"] * len(s["seeds"]), abs=1)
    plain = count.booked_minutes(params, "paper", "sweep", "related", "weighting_mtal", "equal")
    gradient = count.booked_minutes(params, "paper", "sweep", "related", "weighting_mtal", "upgrad")
    assert gradient == pytest.approx(plain * (1 + 2 * T) / 3, abs=1)
    assert count.booked_minutes(params, "tiny", "train", "related") == count.MIN_MINUTES


def test_check_params_states_the_models_runs_and_jobs(params, capsys, monkeypatch):
    from hetmtl.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["check-params", "--suite", "demo"]) == 0
    line = capsys.readouterr().out
    runs = len(params.runs("demo")) + len(params.sweep_runs("demo"))
    jobs = count.training_jobs(params, "demo")
    total = len(jobs) + sum(count.other_jobs(params, "demo").values())
    assert f"demo: {runs} runs" in line and f"in {total} Snakemake jobs, {len(jobs)} of them training" in line
    assert "hetmtl count" in line


@pytest.mark.slow  # counts the FLOPs and model sizes of a grid: the slow tier
def test_count_doctor_and_the_screen_agree(params, monkeypatch):
    from hetmtl import doctor

    c = count.count(params, "tiny")
    assert c["runs"]["total"] == len(params.runs("tiny")) + len(params.sweep_runs("tiny"))
    assert c["booked_hours"] == pytest.approx(sum(j.booked_minutes for j in count.training_jobs(params, "tiny")) / 60)
    screen = count.text(c)
    assert f"runs: {c['runs']['total']} " in screen and f"jobs: {c['jobs']['total']} in the Snakemake DAG" in screen
    monkeypatch.setattr(count, "count", lambda *a, **k: c)
    line = doctor.cost_check(params, "tiny").detail
    assert line.startswith(f"{c['runs']['deep']} deep training runs in ") and f"books {c['booked_hours']:.0f} h" in line


def test_an_estimate_writes_under_results_not_the_tracked_reports(tmp_path, monkeypatch):
    """`hetmtl bench --count-only` must not rewrite reports/<suite>/bench (committed) unless --report."""
    from hetmtl.bench import run as bench_run
    from hetmtl.bench.run import write

    monkeypatch.setattr(bench_run, "markdown", lambda record: "table\n")

    record = {"suite": "paper", "count_only": True, "device_type": "cpu", "rows": [], "grid": {"jobs": 0},
              "estimate_gpu": {"gpu": "H100 SXM", "peak_tflops": 989.0, "at_mfu": {}}}
    written = [p.relative_to(tmp_path).as_posix() for p in write(record, tmp_path)]
    assert written and all(p.startswith("results/paper/bench/") for p in written)
    assert not (tmp_path / "reports").exists()
    tracked = [p.relative_to(tmp_path).as_posix() for p in write(record, tmp_path, report=True)]
    assert all(p.startswith("reports/paper/bench/") for p in tracked)
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/paper/bench/bench_estimate.json"], cwd=ROOT)
    assert ignored.returncode == 0  # results/ is ignored by git
