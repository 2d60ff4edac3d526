"""``hetmtl bench`` (issue 15): its FLOP counts against independent counts, its
estimate's model of a job, its timings of the real step, and the command on tiny."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

from hetmtl.bench.estimate import count_shape, job_costs
from hetmtl.bench.flops import counted
from hetmtl.bench.peaks import peak_tflops
from hetmtl.bench.shapes import task_shape
from hetmtl.methods import METHODS
from hetmtl.resolve import resolve
from hetmtl.training.loop import fit, make_optimizer, make_weighting
from hetmtl.training.step import TrainStep
from tests.test_training import SPEC, cfg


def test_the_flop_counter_counts_one_convolution_as_its_formula():
    n, c_in, c_out, k, size = 4, 3, 8, 3, 10
    conv = torch.nn.Conv2d(c_in, c_out, k, padding=1, device="meta")
    forward = 2 * n * c_out * size * size * c_in * k * k  # 2 FLOPs per multiply-add
    x = torch.empty(n, c_in, size, size, device="meta")
    box = {}
    assert counted(lambda: box.setdefault("y", conv(x))) == forward
    assert counted(lambda: box["y"].sum().backward()) == forward  # the weight's gradient: the input needs none
    x = x.requires_grad_()
    y = conv(x)
    assert counted(lambda: y.sum().backward()) == 2 * forward  # and the input's gradient


def test_a_vgg16_image_counts_what_torchvision_documents(params):
    """The paper's backbone, counted through the bench's own path: one 224 px
    colour image's forward is twice torchvision's documented multiply-adds
    (its ``_ops``, 15.47 G) up to the 10-class head (4096 x 990 fewer)."""
    from torchvision.models import VGG16_Weights

    from hetmtl.bench.flops import build_meta, step_flops
    from hetmtl.runs import RunId

    run = resolve(params, RunId("paper", "unrelated", "shared", "single_task", 0), tune=False, inputs=False)
    shapes = [task_shape(params, "paper", t) for t in run.tasks]
    flops = step_flops(build_meta(run, shapes), shapes, 2, 0.0)
    colour = [t for t, s in enumerate(shapes) if s.channels == 3][0]
    documented = 2 * VGG16_Weights.IMAGENET1K_V1.meta["_ops"] * 1e9
    assert flops.eval_per_image[colour] == pytest.approx(documented - 2 * 4096 * 990, rel=2e-3)
    # a step: every task's batch of 2, forward and backward (the first layer's input needs no gradient)
    assert flops.forward == pytest.approx(2 * sum(flops.eval_per_image), rel=1e-6)
    assert 1.9 * flops.forward < flops.backward < 2.0 * flops.forward


def _scaled(params, suite: str, epochs: float = 1, seeds: int = 1):
    data = copy.deepcopy(params.data)
    s = data["suites"][suite]
    s["epochs"] = int(s["epochs"] * epochs)
    s["seeds"] = [k for k in range(len(s["seeds"]) * seeds)]
    for sweep in s["sweeps"].values():
        sweep["epochs"] = int(sweep["epochs"] * epochs)
        sweep["seeds"] = [k for k in range(len(sweep["seeds"]) * seeds)]
    for method in data["methods"].values():  # MTAL's schedule in epochs scales with them
        if "warmup" in method:
            method["warmup"] = int(method["warmup"] * epochs)
    return replace(params, data=data)


@pytest.mark.slow  # counts the paper grid's FLOPs or times every method: the slow tier
def test_the_estimate_scales_linearly_with_epochs_and_seeds(params):
    """Every job's training FLOPs double with its epochs (and MTAL's warm-up,
    counted in epochs); evaluation is validation per epoch plus one test."""
    counts, methods = {}, ["single_task", "cross_stitch", "mtal"]  # with pre-training, sweeps and aggregators
    base = job_costs(params, "tiny", methods, counts=counts)
    assert base and all(c.train_flops > 0 and c.eval_flops > 0 for c in base)
    longer = {(c.run.group, c.run.setting, c.run.method, c.run.sweep, c.run.value, c.run.seed): c
              for c in job_costs(_scaled(params, "tiny", epochs=2), "tiny", methods, counts=counts)}
    for c in base:
        twice = longer[(c.run.group, c.run.setting, c.run.method, c.run.sweep, c.run.value, c.run.seed)]
        assert twice.epochs == 2 * c.epochs
        assert twice.train_flops == 2 * c.train_flops  # training: linear in epochs
        # evaluation: validation every epoch (v each), test once (t): E v + t, then 2 E v + t
        test = 2 * c.eval_flops - twice.eval_flops
        assert 0 < test < c.eval_flops and (c.eval_flops - test) % c.epochs == 0
    assert {c.part for c in base} == {"grid", "sweep rho", "sweep weighting_mtal"}
    more = job_costs(_scaled(params, "tiny", seeds=2), "tiny", methods, counts=counts)
    assert len(more) == 2 * len(base)
    assert sum(c.flops for c in more) == 2 * sum(c.flops for c in base)


@pytest.mark.slow  # counts the paper grid's FLOPs or times every method: the slow tier
def test_a_job_costs_its_largest_tasks_steps_its_pretraining_its_aggregator_and_its_evaluation(params):
    """The paper's shapes (tasks of 550 to 10 160 images): each term of a job's cost, recomputed here."""
    counts = {}
    costs = job_costs(params, "paper", methods=["cross_stitch", "hard_sharing"], counts=counts)
    by = {(c.run.group, c.run.setting, c.run.method, c.run.sweep, c.run.value): c for c in costs if c.run.seed == 0}
    shapes = [task_shape(params, "paper", t) for t in params.tasks_of("related")]
    assert len({s.split["train"] for s in shapes}) > 1  # the tasks differ in size: the largest sets the epoch
    S = max(math.ceil(s.split["train"] / 32) for s in shapes)
    related = tuple((s.channels, s.classes, s.image_size) for s in shapes)
    shape = {key[0]: v for key, v in counts.items() if key[2] == related and key[1] != "prior"}
    T = len(shapes)

    def evaluation(flops, split):
        return sum(f * s.split[split] for f, s in zip(flops.eval_per_image, shapes))

    hard = shape["hard_sharing"].joint
    equal = by[("related", "no_prior", "hard_sharing", None, None)]
    assert equal.steps_per_epoch == S and equal.pretrain_epochs == 0
    assert equal.train_flops == S * equal.epochs * (hard.forward + hard.backward)
    assert equal.eval_flops == equal.epochs * evaluation(hard, "val") + evaluation(hard, "test")
    upgrad = by[("related", "no_prior", "hard_sharing", "weighting_hard_sharing", "upgrad")]
    assert upgrad.train_flops == S * upgrad.epochs * (hard.forward + T * hard.backward)  # one backward per task
    uncertainty = by[("related", "no_prior", "hard_sharing", "weighting_hard_sharing", "uncertainty")]
    assert uncertainty.train_flops == equal.train_flops  # a loss weighting: one backward
    stitch = by[("related", "no_prior", "cross_stitch", None, None)]
    counted_shape = shape["cross_stitch"]
    P, E = stitch.pretrain_epochs, stitch.epochs
    assert 0 < P < E
    assert stitch.train_flops == S * (P * counted_shape.pretrain.step + (E - P) * counted_shape.joint.step)
    assert counted_shape.pretrain.step < counted_shape.joint.step / 2  # every sample through every column


def test_a_run_resolves_for_the_bench_before_its_inputs_exist(params, tmp_path):
    from hetmtl.files import MissingInput
    from hetmtl.runs import RunId

    run = RunId("tiny", "related", "prior", "mtal_prior", 0)
    with pytest.raises(MissingInput, match="relations"):  # R first: the prepared data are missing too
        resolve(params, run, tune=False)
    shape_only = resolve(params, run, tune=False, inputs=False)
    assert shape_only.relations is None and shape_only.data_md5 == {}


@pytest.mark.parametrize("name", ["hard_sharing", "mtal", "soft_sharing", "cross_stitch"])
def test_the_timed_step_is_fits_step_and_the_bare_step_computes_the_same(name, toy_tasks, params):
    """The bench times :class:`TrainStep`, the object ``fit`` repeats: an epoch
    of it leaves the weights ``fit`` leaves. Its plain loop does the same
    computation: the same weights after the same steps."""
    from hetmtl.bench import measure
    from hetmtl.methods import TaskInfo
    from hetmtl.resolve import method_params

    def build(name, tasks):
        return METHODS[name]([TaskInfo(d.name, d.channels, d.num_classes) for d in tasks], SPEC,
                             {**method_params(params, name), "init": "scratch"}, 0)

    torch.use_deterministic_algorithms(True)
    config = cfg(epochs=1)
    device = torch.device("cpu")
    fitted = build(name, toy_tasks)
    fit(fitted, toy_tasks, config, device, progress=False, test=False)
    stepped = measure.prepare(build(name, toy_tasks), config, device)
    weighting = make_weighting(stepped, config, len(toy_tasks))
    runner = TrainStep(stepped, toy_tasks, config, device, weighting, make_optimizer(stepped, config, weighting))
    runner.begin_epoch(1)
    for i in range(runner.steps):
        runner.step(i)
    bare = build(name, toy_tasks)
    begin, step, steps, _ = measure._bare_step(bare, toy_tasks, config, device)
    begin(1)
    for i in range(steps):
        step(i)
    fitted_state, stepped_state = fitted.state_dict(), stepped.state_dict()
    for key, value in stepped_state.items():
        assert torch.equal(value, fitted_state[key]), key
        assert torch.allclose(value.float(), bare.state_dict()[key].float(), rtol=1e-5, atol=1e-6), key
    start = build(name, toy_tasks).state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in stepped_state.items())  # it trained


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """What a fresh clone holds: params and code, no data prepared."""
    from tests.conftest import copy_project

    return copy_project(tmp_path_factory.mktemp("bench") / "proj")


@pytest.mark.slow  # counts the paper grid's FLOPs or times every method: the slow tier
def test_the_bench_times_every_deep_method_of_tiny(clone, monkeypatch, params):
    """On data not prepared: random images of the tasks' shapes. Every deep
    method of the grid is a row (timed here: one of each kind of model)."""
    from hetmtl.bench.run import bench_runs
    from hetmtl.cli import main

    deep = {r.method for r in params.runs("tiny") if METHODS[params.base_method(r.method)].deep}
    assert {r.run.method for r in bench_runs(params, "tiny", None, None)} == deep
    monkeypatch.chdir(clone)
    timed = ["hard_sharing", "cross_stitch", "mtal_prior"]
    assert main(["bench", "--suite", "tiny", "--method", *timed, "--warmup", "1", "--steps", "2", "--epochs", "1"]) == 0
    record = json.loads((clone / "reports/tiny/bench/bench_cpu.json").read_text())
    assert [r["method"] for r in record["rows"]] == timed
    for row in record["rows"]:
        assert row["data"] == "synthetic" and row["forward_dtype"] == "torch.float32" and row["mfu"] is None
        assert row["ms_per_step"] > 0 and row["bare_ms_per_step"] > 0 and row["gflop_per_step"] > 0
        assert row["tflop_per_s"] == pytest.approx(row["gflop_per_step"] / row["ms_per_step"])
        assert 0 < row["evaluation_share"] < 1 and math.isfinite(row["harness_vs_bare"])
    assert record["estimate_measured"]["jobs"] == record["grid"]["jobs"] > 0
    assert record["estimate_measured"]["without_rate"] == []
    text = (clone / "reports/tiny/bench/bench_cpu.md").read_text()
    assert "| hard_sharing |" in text and "an estimate from FLOPs, not a measurement" in text


def test_the_bench_reads_the_prepared_tasks(tiny_run):
    import subprocess

    from tests.conftest import e2e_env

    proj = tiny_run[0]
    out = subprocess.run(["hetmtl", "bench", "--suite", "tiny", "--method", "hard_sharing", "--warmup", "1",
                          "--steps", "2", "--epochs", "1"], cwd=proj, env=e2e_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    record = json.loads((proj / "reports/tiny/bench/bench_cpu.json").read_text())
    assert [r["data"] for r in record["rows"]] == ["prepared"]
    assert record["grid"]["exact_shapes"]
    import shutil

    shutil.rmtree(proj / "reports/tiny/bench")  # the finished run's folders as the other tests expect them


def test_bad_bench_arguments_get_one_line(clone, monkeypatch, capsys):
    from hetmtl.cli import main

    monkeypatch.chdir(clone)
    assert main(["bench", "--suite", "tiny", "--method", "nope", "--count-only"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--method nope" in err[0] and "params/grid.yaml" in err[0]
    assert main(["bench", "--suite", "tiny", "--method", "mtda", "--count-only"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--method mtda" in err[0] and "closed-form" in err[0]
    assert main(["bench", "--suite", "tiny", "--method", "mtal", "--count-only", "--gpu", "K80"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpu K80" in err[0] and "--gpu-peak-tflops" in err[0]


def test_known_peaks_and_their_override():
    assert peak_tflops("NVIDIA H100 PCIe") == 756.5  # before the SXM part's shorter name
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("Tesla K80") is None
    assert peak_tflops("Tesla K80", 8.7) == 8.7
    assert peak_tflops("NVIDIA L4") == 121.0 and peak_tflops("NVIDIA L40") is None  # L4 is not L40
    assert peak_tflops("NVIDIA H100 NVL") is None  # another part: no guess


def test_count_shape_is_what_a_method_builds(params):
    """The counted step of a method is its forward and backward (cross-stitch:
    every sample through every column, so about T x a single-task step)."""
    from hetmtl.runs import RunId

    runs = {m: resolve(params, RunId("tiny", "related", s, m, 0), tune=False, inputs=False)
            for s, m in [("shared", "single_task"), ("no_prior", "cross_stitch")]}
    shapes = tuple(task_shape(params, "tiny", t) for t in params.tasks_of("related"))
    single = count_shape(runs["single_task"], shapes).joint
    stitch = count_shape(runs["cross_stitch"], shapes)
    T = len(shapes)
    assert stitch.pretrain.step == single.step
    assert (T - 0.5) * single.step < stitch.joint.step < (T + 1.5) * single.step


def test_the_estimate_divides_each_jobs_flops_by_its_methods_rate():
    from hetmtl.bench.estimate import JobCost, estimate
    from hetmtl.runs import RunId

    def job(method, flops, sweep=None, gradient=False):
        return JobCost(RunId("s", "g", "no_prior", method, 0, sweep, 1 if sweep else None), method, "equal", 1, 0, 1,
                       flops, 0, gradient)

    costs = [job("a", 6e12), job("a", 2e12, "rho"), job("b", 9e12), job("a", 5e12, "weighting", gradient=True)]
    e = estimate(costs, {"a": 2e12, "b": 3e12}, gradient_rate=1e12)
    assert e["seconds"] == pytest.approx(3 + 1 + 3 + 5) and e["hours"] == pytest.approx(12 / 3600)
    assert e["per_part"]["grid"]["seconds"] == pytest.approx(3 + 3)
    assert e["per_part"]["sweep rho"] == {"jobs": 1, "flops": 2e12, "seconds": pytest.approx(1)}
    assert e["per_part"]["sweep weighting"]["seconds"] == pytest.approx(5)  # at the aggregator's rate
    assert estimate(costs, {"a": 2e12, "b": 3e12})["seconds"] == pytest.approx(3 + 1 + 3 + 2.5)
    partial = estimate(costs, {"a": 2e12})
    assert partial["without_rate"] == ["b"] and partial["seconds"] == pytest.approx(3 + 1 + 2.5)


def test_mtals_aggregator_jobs_cost_the_plain_step_before_its_first_matching(params):
    """MTAL shares nothing before epoch ``warmup``'s matching: an aggregator has
    no shared coordinate then, and its step is the plain sum's."""
    counts = {}
    costs = job_costs(params, "tiny", ["mtal"], counts=counts)
    by = {(c.run.sweep, c.run.value): c for c in costs if c.run.group == "related"}
    equal, upgrad = by[("weighting_mtal", "equal")], by[("weighting_mtal", "upgrad")]
    shape = next(v for k, v in counts.items() if k[1] == "no_prior")
    W = params.method("mtal")["warmup"]
    T, S, E = len(shape.shapes), upgrad.steps_per_epoch, upgrad.epochs
    assert 0 < W < E and upgrad.gradient and not equal.gradient
    assert equal.train_flops == S * E * shape.joint.step
    assert upgrad.train_flops == S * (W * shape.joint.step + (E - W) * shape.joint.step_with(T, True))


class _Syncs(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the operators that make a CUDA host wait for the device: a value
    read to the host (``.item()``, ``bool()``) or an output shaped by the data."""

    WAITS = ("_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_consecutive", "is_nonzero",
             "equal")

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.WAITS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name,weighting", [(m, "equal") for m in ["single_task", "hard_sharing", "soft_sharing",
                                                                    "cross_stitch", "nddr_cnn", "mtal"]]
                         + [("hard_sharing", w) for w in ["uncertainty", "dwa", "rlw"]])
def test_a_step_between_nan_checks_never_waits_for_the_device(name, weighting, toy_tasks, params):
    """On CUDA a step must queue its work and return: no value read back to the
    host and no shape that depends on data, except the NaN check every
    ``nan_check_every`` steps (checked here on the CPU, by the operators called)."""
    from hetmtl.methods import TaskInfo
    from hetmtl.resolve import method_params

    method = METHODS[name]([TaskInfo(d.name, d.channels, d.num_classes) for d in toy_tasks], SPEC,
                           {**method_params(params, name), "init": "scratch"}, 0)
    config = cfg(epochs=1, nan_check_every=100, crop_pad=2, flip=(True, True, True), weighting=weighting,
                 weighting_params=tuple(sorted(params["weightings"][weighting].items())))
    device = torch.device("cpu")
    method = method.to(device, memory_format=torch.channels_last).train()
    weighting = make_weighting(method, config, len(toy_tasks))
    runner = TrainStep(method, toy_tasks, config, device, weighting, make_optimizer(method, config, weighting))
    runner.begin_epoch(1)
    assert runner.steps > 2
    runner.step(0)  # the optimiser's state is made at its first step
    with _Syncs() as mode:
        runner.step(1)
    assert mode.seen == []
    with _Syncs() as mode:
        runner.step(runner.steps - 1)  # the epoch's last step checks the loss: one read
    assert mode.seen == ["_local_scalar_dense"]


def test_checkpoints_take_at_most_their_share_of_a_job(monkeypatch, tmp_path):
    """The first epoch writes one; then one is written only when the training
    since the last took 1 / share times as long as that write (fake clock)."""
    from hetmtl.training import checkpoint

    now = {"t": 100.0}
    written = []

    def write(path, state):
        written.append(state["epoch"])
        now["t"] += 2.0  # every write takes 2 s

    monkeypatch.setattr(checkpoint.time, "perf_counter", lambda: now["t"])
    monkeypatch.setattr(checkpoint, "save", write)
    cadence = checkpoint.Cadence(share=0.05)  # at most 5%: 2 s of writing per 40 s of training
    for epoch, seconds in enumerate([1, 10, 10, 10, 10, 1, 38, 1], start=1):
        now["t"] += seconds
        cadence.save(tmp_path / "c.pt", {"epoch": epoch})
    assert written == [1, 5, 8]
    assert checkpoint.SHARE == 0.05
