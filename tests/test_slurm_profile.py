"""The Slurm profile as the pinned plugin reads it, without a cluster: the sbatch
line of a GPU training job and of a CPU job (tests/test_slurm.py runs the
profile on a real Slurm, but only with the tiny suite, which asks for no GPU)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm"


class _Resources(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Job:
    def __init__(self, name: str, threads: int, **resources):
        self.name, self.threads, self.resources = name, threads, _Resources(resources)


class _Logger:
    def info(self, *a, **k): ...
    def warning(self, *a, **k): ...
    def debug(self, *a, **k): ...


def _sbatch(rule: str, gpu: int) -> str:
    """The plugin's sbatch line for a job of `rule` under the profile's resources."""
    from snakemake_executor_plugin_slurm.partitions import (
        get_best_partition,
        read_partition_file,
    )
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    cfg = yaml.safe_load((PROFILE / "config.yaml").read_text())
    resources = {**cfg["default-resources"], **cfg.get("set-resources", {}).get(rule, {}), "gpu": gpu}
    job = _Job(rule, cfg.get("set-threads", {}).get(rule, 1), **resources)
    validate_slurm_extra(job)  # raises on --gres/--gpus/--partition... in slurm_extra
    partitions = read_partition_file(ROOT / cfg["slurm-partition-config"])
    partition = get_best_partition(partitions, job, _Logger())
    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": f"rule_{rule}", "account": "",
              "partition": f" -p {partition}", "workdir": "."}
    return get_submit_command(job, params) + set_gres_string(job)


def test_a_gpu_training_job_gets_the_gpu_partition_one_gpu_and_its_threads_as_cpus():
    line = _sbatch("train", gpu=1)
    assert " -p gpu " in line and line.count("--gpus=1") == 1 and "--gres" not in line
    threads = yaml.safe_load((PROFILE / "config.yaml").read_text())["set-threads"]["train"]
    assert f"--cpus-per-task={threads}" in line


def test_cpu_jobs_get_the_cpu_partition_and_no_gpu():
    for rule in ["fetch", "prepare", "init_tracking", "aggregate", "train", "sweep", "relations"]:
        line = _sbatch(rule, gpu=0)
        assert " -p cpu " in line and "--gpus" not in line and "--gres" not in line, (rule, line)


def test_the_profile_leaves_partition_choice_to_the_partition_file():
    """A slurm_partition resource would override the file for every job."""
    cfg = yaml.safe_load((PROFILE / "config.yaml").read_text())
    for res in [cfg["default-resources"], *cfg.get("set-resources", {}).values()]:
        assert "slurm_partition" not in res and "slurm_extra" not in res, res
