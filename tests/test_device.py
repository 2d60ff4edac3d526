"""A job on the real archives never falls back from `auto` to the CPU silently."""

from __future__ import annotations

import pytest
import torch

from hetmtl.errors import UserError
from hetmtl.resolve import resolve
from hetmtl.runs import RunId
from hetmtl.training import job
from hetmtl.training.device import pick_device


@pytest.fixture()
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_without_a_gpu_is_the_cpu_for_stand_ins_and_an_error_for_real_data(no_gpu):
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match=r"no GPU .*--device cpu"):
        pick_device("auto", real_data=True)
    assert pick_device("cpu", real_data=True) == torch.device("cpu")  # asked for by name


def test_a_paper_suite_job_stops_before_reading_anything_without_a_gpu(no_gpu, params, monkeypatch):
    run = resolve(params, RunId("paper", "unrelated", "shared", "single_task", 0), tune=False, inputs=False)
    assert run.tags["data"] == "real"
    reads = []
    monkeypatch.setattr(job, "load_task", lambda *a, **k: reads.append(a) or (_ for _ in ()).throw(RuntimeError))
    with pytest.raises(UserError, match="no GPU"):
        job._train(run, "auto", 1, False)
    assert reads == []
    with pytest.raises(RuntimeError):  # by name, the CPU: the job goes on to read its data
        job._train(run, "cpu", 1, False)
    assert reads
