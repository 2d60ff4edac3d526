"""The workflow and the code keep their users' conventions: `snakemake --lint`
and `ruff check` clean, and the conda environment the rules name holds exactly
the lock's pins."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def test_snakemake_lint_is_clean():
    run = subprocess.run(["snakemake", "--lint", "--config", "suite=tiny"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Lints for" not in run.stdout + run.stderr


def test_every_rule_names_the_conda_environment_of_the_lock(tmp_path):
    check = subprocess.run([sys.executable, "scripts/conda_env.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    pins = {line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    env = (ROOT / "workflow/envs/hetmtl.yaml").read_text()
    assert pins == {line.strip()[2:] for line in env.splitlines() if "==" in line}
    rules = "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    assert rules.count("shell:") == rules.count('conda:\n        "../envs/hetmtl.yaml"')


def test_ruff_is_clean():
    run = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "."], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_suite_plans_in_snakemake_and_renders_for_dvc(tmp_path):
    """The paper suite (real data: no stand-in size) plans its whole DAG, as the
    tiny and demo suites do: a key only stand-in suites have is not read from it."""
    from conftest import copy_project
    from hetmtl import dvc_yaml
    from hetmtl.params import load_params

    proj = copy_project(tmp_path)
    params = load_params(proj)
    # tiny and demo run end to end in tests/test_pipeline.py; paper's DAG is planned here
    run = subprocess.run(["snakemake", "-n", "--config", "suite=paper"], cwd=proj, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "This was a dry-run" in run.stdout, run.stdout[-3000:] + run.stderr
    # every GPU job books a wall time that grows with what it trains (Slurm's --time;
    # the profile's default is for the short CPU jobs)
    rule, gpu_jobs, tune_jobs = None, [], []
    for line in run.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and "gpu=1" in line:
            (tune_jobs if rule == "tune" else gpu_jobs).append(line)
    runtimes = sorted({int(line.split("runtime=")[1].split(",")[0]) for line in gpu_jobs if "runtime=" in line})
    assert len(gpu_jobs) == 24 + 2 * 4 + 2 * 10 + 2 * 14 * 2 + 2, gpu_jobs[:3]
    assert len(tune_jobs) == len(params.tune_cells("paper")) > 0  # the tuning stage: one job per cell
    assert all("runtime=" in line for line in gpu_jobs + tune_jobs)
    # 24 cells, 2 x 4 readings (delta, random_matched; with and without prior), 2 x 10 rho points,
    # 2 x 2 x 14 weighting points, 2 relations; runtimes: a rho point, a
    # group's relations, a grid cell (and a loss weighting's point), a gradient aggregator's point
    assert runtimes == [240, 864, 1200, 3600], runtimes
    for suite in params["suites"]:
        text = dvc_yaml.render(params, suite)[dvc_yaml.ROOT_FILE]
        assert "prepare-" in text and ("images_per_class" in text) == ("images_per_class" in params.suite(suite))


def test_wildcards_take_only_the_names_params_define():
    """One wildcard_constraints block (workflow/Snakefile): a target whose group,
    method, table or figure params/ do not name has no rule, instead of a job
    that fails later or, worse, trains something nobody asked for."""
    def plan(target):
        return subprocess.run(["snakemake", "-n", target, "--config", "suite=tiny"], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=120)

    good = plan("results/tiny/runs/related/no_prior/mtal/seed0/receipt.json")
    assert good.returncode == 0, good.stdout + good.stderr
    for bad in ("results/tiny/runs/bogus/no_prior/mtal/seed0/receipt.json", "reports/tiny/tables/table99.md",
                "results/tiny/sweeps/gamma/related/0.1/seed0/receipt.json"):
        proc = plan(bad)
        assert proc.returncode != 0 and "No rule to produce" in proc.stdout + proc.stderr, bad


def test_a_config_override_that_is_a_params_key_names_the_params_file_in_one_line():
    out = subprocess.run(["snakemake", "-n", "--config", "suite=demo", "epochs=3"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True)
    assert out.returncode != 0
    errors = [line for line in (out.stdout + out.stderr).splitlines() if "error" in line.lower()]
    assert len(errors) == 1, out.stderr
    assert errors[0].startswith("error: --config epochs:") and "params/suites/demo.yaml" in errors[0], errors
