"""`hetmtl doctor`: each check says ok / missing / blocked with what to do, and a
blocked one makes the exit status 1. Every machine state is made here (files,
a fake sinfo, a local HTTP server as the MLflow backend, a patched torch.cuda)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from types import SimpleNamespace

import pytest

from hetmtl import doctor
from hetmtl.doctor import BLOCKED, MISSING, OK
from hetmtl.params import load_params


@pytest.fixture()
def proj(project):
    """The scratch project's params (its code: this checkout's, which the jobs' digests read)."""
    from conftest import ROOT

    (project / "src").symlink_to(ROOT / "src")
    return load_params(project)


def _by_what(checks):
    return {c.what: c for c in checks}


# --------------------------------------------------------------------------- archives


def test_archives_missing_wrong_and_right(proj, project, monkeypatch):
    raw = project / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "EnglishHnd.tgz").write_bytes(b"half an archive")
    good = b"the real coil archive"
    (raw / "coil-20-proc.zip").write_bytes(good)
    proj.data["sources"]["coil20_proc"]["md5"] = hashlib.md5(good).hexdigest()
    checks = _by_what(doctor.archive_checks(proj, "paper"))
    hnd, coil, fnt = (checks[f"archive {n}"] for n in ("EnglishHnd.tgz", "coil-20-proc.zip", "EnglishFnt.tgz"))
    assert hnd.status == BLOCKED and f"delete {raw / 'EnglishHnd.tgz'}" in hnd.detail
    assert hashlib.md5(b"half an archive").hexdigest() in hnd.detail
    assert coil.status == OK and hashlib.md5(good).hexdigest() in coil.detail
    assert fnt.status == MISSING
    assert f"place it by hand at {raw / 'EnglishFnt.tgz'}" in fnt.detail
    assert all(u in fnt.detail for u in proj["sources"]["chars74k_fnt"]["urls"])  # the mirrors, from params/
    assert {c.status for c in doctor.archive_checks(proj, "tiny")} == {OK}  # stand-ins: the fetch step makes them


# --------------------------------------------------------------------------- ImageNet weights


def test_imagenet_weights_cached_damaged_or_absent(proj, tmp_path, monkeypatch):
    content = b"weights"
    digest = hashlib.sha256(content).hexdigest()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import torchvision.models

    url = f"https://download.pytorch.org/models/vgg16-{digest[:8]}.pth"
    monkeypatch.setattr(torchvision.models, "get_weight", lambda name: SimpleNamespace(url=url))
    assert doctor.weights_check(proj, "paper").status == MISSING
    cached = tmp_path / "torch" / "hub" / "checkpoints" / f"vgg16-{digest[:8]}.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    check = doctor.weights_check(proj, "paper")
    assert check.status == OK and digest[:12] in check.detail
    cached.write_bytes(content + b"!")
    check = doctor.weights_check(proj, "paper")
    assert check.status == BLOCKED and "delete it" in check.detail
    assert doctor.weights_check(proj, "tiny").detail == "not used (init scratch)"


# --------------------------------------------------------------------------- GPU


def test_gpu_blocks_a_real_suite_without_one_unless_on_slurm(proj, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert doctor.gpu_check(proj, "paper", "default").status == BLOCKED
    assert doctor.gpu_check(proj, "paper", "slurm").status == OK
    assert doctor.gpu_check(proj, "tiny", "default").status == OK
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * 2**30))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    check = doctor.gpu_check(proj, "paper", "default")
    assert check.status == OK and check.detail == "NVIDIA H100 80GB HBM3, 80.0 GiB, bf16 yes"


# --------------------------------------------------------------------------- disk


def test_model_bytes_are_what_a_method_saves(proj):
    """The per-job bytes are the method's state dict as a job saves it (a real
    model built on the CPU): not a guess."""
    import io

    import torch

    from hetmtl.bench.shapes import task_shape
    from hetmtl.methods import TaskInfo
    from hetmtl.methods.build import build_method
    from hetmtl.resolve import resolve

    sizes = doctor.model_bytes(proj, "tiny")
    for method in ("mtal", "cross_stitch"):
        run = next(r for r in sizes if r.method == method)
        resolved = resolve(proj, run, tune=False, inputs=False)
        tasks = [TaskInfo(s.name, s.channels, s.classes) for s in (task_shape(proj, "tiny", t) for t in resolved.tasks)]
        state = build_method(resolved, tasks, overrides={"init": "scratch"}).state_dict()
        assert sizes[run] == sum(v.numel() * v.element_size() for v in state.values())
        buf = io.BytesIO()
        torch.save(state, buf)
        assert sizes[run] <= len(buf.getvalue())
    assert all(v > 0 for v in sizes.values()) and len({r.method for r in sizes}) > 3


def test_disk_blocks_when_the_outputs_do_not_fit(proj, monkeypatch):
    need = doctor.output_bytes(proj, "tiny")
    assert need["prepared"] > 0 and need["models"] > 0
    total = sum(need.values())
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: SimpleNamespace(free=total + 1))
    assert doctor.disk_check(proj, "tiny").status == OK
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: SimpleNamespace(free=total - 1))
    check = doctor.disk_check(proj, "tiny")
    assert check.status == BLOCKED and "free space" in check.detail


def test_prepared_bytes_follow_the_suite_and_the_class_draw(proj):
    """Images x channels x size^2 of each task, from params/'s counts: HD, A and a
    10 classes x 55 (gray), Typographic 10 x 1016 (gray), Coil-20 its 10 listed
    objects x 72 (gray), Art and Amazon 10 drawn classes at the average count (RGB)."""
    tasks = {t for g in proj["groups"] for t in proj.tasks_of(g)}
    assert tasks == {"HD", "A", "a", "Typographic", "Coil-20", "Art", "Amazon"}
    per_image = proj.suite("paper")["image_size"] ** 2
    images = [(550, 1), (550, 1), (550, 1), (10160, 1), (720, 1), (2427 * 10 // 65, 3), (2817 * 10 // 31, 3)]
    assert doctor.output_bytes(proj, "paper")["prepared"] == sum(n * c * per_image for n, c in images)


# --------------------------------------------------------------------------- MLflow


class _Mlflow(http.server.BaseHTTPRequestHandler):
    status = 200
    created: list = []

    def log_message(self, *args):
        pass

    def _answer(self, body: dict):
        data = json.dumps(body).encode()
        self.send_response(_Mlflow.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer({"experiments": []})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Mlflow.created.append((self.path, body))
        self._answer({"experiment_id": "7"})


@pytest.fixture()
def mlflow_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mlflow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Mlflow.status, _Mlflow.created = 200, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_mlflow_server_reachable_writable_refused_or_down(project, monkeypatch, mlflow_server):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    check = doctor.mlflow_check(project)
    assert check.status == OK
    assert [p for p, _ in _Mlflow.created] == ["/api/2.0/mlflow/experiments/create",
                                                "/api/2.0/mlflow/experiments/delete"]
    _Mlflow.status = 403
    assert doctor.mlflow_check(project).status == BLOCKED
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    check = doctor.mlflow_check(project, timeout=2)
    assert check.status == BLOCKED and "mlflow server" in check.detail


def test_mlflow_local_store_is_probed_by_writing(project, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert doctor.mlflow_check(project).status == OK
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'db' / 'mlflow.db'}")
    import hetmtl.preflight

    def refuse(folder):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(hetmtl.preflight, "_probe", refuse)
    check = doctor.mlflow_check(project)
    assert check.status == BLOCKED and "MLFLOW_TRACKING_URI" in check.detail


# --------------------------------------------------------------------------- Slurm


def _sinfo(tmp_path, monkeypatch, output: str, rc: int = 0):
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    script = bin_ / "sinfo"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {rc}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture()
def slurm_profile(project):
    from conftest import ROOT

    conf = project / "workflow" / "profiles" / "slurm" / "partitions.yaml"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text((ROOT / "workflow" / "profiles" / "slurm" / "partitions.yaml").read_text())
    return conf


def test_slurm_partitions_against_sinfo(proj, project, tmp_path, monkeypatch, slurm_profile):
    _sinfo(tmp_path, monkeypatch, "cpu* up (null)\ngpu up gpu:h100:4\n")
    check = doctor.slurm_check(proj, "paper", project)
    assert check.status == OK and "gpu (gpu:h100:4)" in check.detail
    _sinfo(tmp_path, monkeypatch, "batch* up (null)\n")
    check = doctor.slurm_check(proj, "paper", project)
    assert check.status == BLOCKED and "partition(s) cpu, gpu" in check.detail and "rename" in check.detail
    _sinfo(tmp_path, monkeypatch, "", rc=1)
    assert doctor.slurm_check(proj, "paper", project).status == BLOCKED
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "sinfo not found" in doctor.slurm_check(proj, "paper", project).detail


# --------------------------------------------------------------------------- the screen


def test_the_screen_and_the_exit_status(proj, project, monkeypatch, capsys):
    """One line per check; blocked: exit 1 (the paper suite on this CPU machine:
    no GPU); every line starts with its status."""
    import torch

    from hetmtl.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["doctor", "--suite", "paper", "--no-cost"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "hetmtl doctor --suite paper" and lines[-1].startswith("BLOCKED: ")
    assert all(line.split()[0] in (OK, MISSING, BLOCKED) for line in lines[1:-1])
    assert any(line.startswith("blocked  GPU: none") for line in lines)
    assert sum(line.startswith("missing  archive ") for line in lines) == 5
    text, rc = doctor.report([doctor.Check(OK, "a", "b"), doctor.Check(MISSING, "c", "d")], "x")
    assert rc == 0 and text.splitlines()[-1] == "ready, 1 item(s) to be fetched or placed"


@pytest.mark.slow  # counts the paper grid's FLOPs or times every method: the slow tier
def test_the_cost_line_is_benchs_estimate(proj, monkeypatch):
    """Doctor's cost is bench's own function on bench's own job costs (counted once here)."""
    from hetmtl.bench import estimate as bench_estimate
    from hetmtl.bench.run import estimate_gpu

    costs = bench_estimate.job_costs(proj, "tiny")
    calls = []
    monkeypatch.setattr(bench_estimate, "job_costs", lambda p, suite: calls.append(suite) or costs)
    check = doctor.cost_check(proj, "tiny")
    assert calls == ["tiny"]
    est = estimate_gpu(costs, sorted({c.method for c in costs}))
    assert check.status == OK and check.detail.startswith(f"{len(costs)} deep training runs in ")
    assert f"{est['at_mfu']['0.4']['hours']:.1f} h at MFU 0.4" in check.detail
