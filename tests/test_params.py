"""The params/ files: one schema, errors that name the file, the key and the reason."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import project_marker
from hetmtl.methods import METHODS
from hetmtl.models import BACKBONES
from hetmtl.params import ParamsError, load_params


def edit(project, rel, fn):
    path = project / rel
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))


def test_project_params_are_valid(params):
    assert set(params["suites"]) == {"tiny", "demo", "paper"}
    # The grid's methods and the suites' backbones are all registered.
    for spec in params["settings"].values():
        assert {params.base_method(m) for m in spec["methods"]} <= set(METHODS)
    assert set(params["shared_methods"]) <= set(METHODS)
    # every registered method has its parameters; the rest are variants (readings) of one
    assert set(params["methods"]) >= set(METHODS)
    assert all(params.base_method(m) in METHODS for m in params["methods"])


def test_shared_methods_are_exactly_those_without_a_use_for_R(params):
    for name in params["shared_methods"]:
        assert not METHODS[name].uses_prior, name
    for spec in params["settings"].values():
        assert all(METHODS[params.base_method(m)].uses_prior or params.base_method(m) == "mtal"
                   for m in spec["methods"])


def test_pretraining_is_declared_exactly_for_the_column_methods(params):
    for name, cls in METHODS.items():
        assert ("pretrain_fraction" in params.method(name)) == hasattr(cls, "init_from"), name
    for suite in params["suites"].values():
        assert suite["backbone"] in BACKBONES


def test_grid_expansion(params):
    runs = params.runs("demo")
    n_methods = len(params["shared_methods"]) + sum(len(s["methods"]) for s in params["settings"].values())
    n_readings = len(params["readings"])
    assert len(runs) == len(params["groups"]) * (n_methods + n_readings) * 3
    # with imagenet the readings restricted to scratch (the common start, MTAL's own run there) drop out
    imagenet = [r for r in params["readings"] if "imagenet" in r.get("inits", ["imagenet"])]
    assert {r["method"] for r in imagenet} == {"mtal_delta", "mtal_prior_delta", "mtal_random", "mtal_prior_random"}
    assert len(params.runs("paper")) == len(params["groups"]) * (n_methods + len(imagenet)) * 5
    assert len(set(runs)) == len(runs)


def test_a_follower_needs_its_followed_run_and_its_coefficients(project):
    """random_matched reads its delta run: that run must be in the grid, with the same alpha."""
    edit(project, "params/grid.yaml", lambda d: d.update(readings=[r for r in d["readings"]
                                                                   if r["method"] != "mtal_delta"]))
    with pytest.raises(ParamsError, match=re.escape("methods.mtal_random.follows: 'mtal_delta' has no run")):
        load_params(project).runs("tiny")
    edit(project, "params/methods.yaml", lambda d: d["methods"]["mtal_random"].update(alpha=0.3))
    with pytest.raises(ParamsError, match=re.escape("methods.mtal_random.alpha: must equal methods.mtal_delta.alpha")):
        load_params(project)


def test_bad_type_names_file_key_and_reason(project):
    edit(project, "params/methods.yaml", lambda d: d["methods"]["mtal"].update(rho="high"))
    with pytest.raises(ParamsError) as err:
        load_params(project)
    msg = str(err.value)
    assert "params/methods.yaml" in msg and "methods.mtal.rho" in msg and "not of type 'number'" in msg


def test_unknown_key_is_rejected_with_its_name(project):
    edit(project, "params/training.yaml", lambda d: d["training"].update(learning_rate=0.1))
    with pytest.raises(ParamsError, match=re.escape("params/training.yaml: training: Additional properties")) as err:
        load_params(project)
    assert "learning_rate" in str(err.value)


def test_bad_suite_value_names_the_suite_file(project):
    edit(project, "params/suites/tiny.yaml", lambda d: d["suite"].update(epochs=0))
    with pytest.raises(ParamsError, match=re.escape("params/suites/tiny.yaml: suite.epochs")):
        load_params(project)


def test_suite_name_must_match_file(project):
    edit(project, "params/suites/tiny.yaml", lambda d: d["suite"].update(name="small"))
    with pytest.raises(ParamsError, match="must equal the file name"):
        load_params(project)


def test_grid_method_without_entry(project):
    edit(project, "params/grid.yaml", lambda d: d["settings"]["no_prior"]["methods"].append("unknown_method"))
    with pytest.raises(ParamsError, match=re.escape("params/grid.yaml: settings.no_prior.methods")):
        load_params(project)


def test_split_fractions_must_sum_to_one(project):
    edit(project, "params/datasets.yaml", lambda d: d["split"].update(test=0.5))
    with pytest.raises(ParamsError, match="train \\+ val \\+ test must be 1"):
        load_params(project)


@pytest.mark.parametrize("file, section, key, value, message", [
    ("training.yaml", "training", "lr", float("nan"), "training.lr: must be a finite number, got nan"),
    ("training.yaml", "training", "lr", float("inf"), "training.lr: must be a finite number, got inf"),
    ("methods.yaml", "methods", ("mtal", "rho"), float("nan"), "methods.mtal.rho: must be a finite number"),
    ("training.yaml", "training", "momentum", 1.0, "training.momentum: 1.0 is greater than or equal to the maximum"),
    ("suites/tiny.yaml", "suite", "backbone", "vgg_tinny",
     "suite.backbone: unknown backbone 'vgg_tinny' (known: vgg_tiny"),
    ("suites/tiny.yaml", "suite", "epochs", 1, "suite.epochs: 1 epochs leave no training after MTAL's first matching"),
])
def test_degenerate_params_are_refused_before_any_job(project, file, section, key, value, message):
    """Values that pass a type check but make a run meaningless (NaN passes every
    comparison; momentum 1 never decays; a backbone typo used to fail inside the
    job, after fetch and prepare; warmup >= epochs is single-task training)."""
    def put(d):
        node = d[section]
        *parents, last = key if isinstance(key, tuple) else (key,)
        for k in parents:
            node = node[k]
        node[last] = value

    edit(project, f"params/{file}", put)
    with pytest.raises(ParamsError) as err:
        load_params(project)
    assert str(err.value).count(f"params/{file}") == 1 and message in str(err.value), str(err.value)


def test_every_schema_error_is_one_line_naming_its_file_and_key(project):
    def put(d):
        d["training"]["lr"], d["training"]["momentum"] = -1, 1.0

    edit(project, "params/training.yaml", put)
    with pytest.raises(ParamsError) as err:
        load_params(project)
    lines = f"error: {err.value}".splitlines()  # as the CLI and the Snakefile print it
    assert [ln.split(": ")[:3] for ln in lines] == [["error", "params/training.yaml", "training.lr"],
                                                    ["error", "params/training.yaml", "training.momentum"]]


def test_data_step_digests_follow_their_code(tmp_path):
    """Snakemake reruns prepare (and fetch) after an edit of their code, as DVC
    does (its stages list the same files, params.DATA_CODE): prepared data made by
    older code (without checksums, say) is remade, not trained on."""
    import shutil

    from hetmtl.params import DATA_CODE

    root = Path(__file__).resolve().parents[1]
    proj = tmp_path / "p"
    shutil.copytree(root / "params", proj / "params")
    project_marker(proj).write_text("")
    for rel in {f for files in DATA_CODE.values() for f in files}:
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (root / rel).is_dir() else shutil.copy)(root / rel, proj / rel)
    p = load_params(proj)

    def digests():
        return p.prepare_digest("tiny", "HD"), p.fetch_digest("tiny", "chars74k_hnd")

    def edit(rel):
        (proj / rel).write_text((proj / rel).read_text() + "\n# an edit\n")

    before = digests()
    edit("src/hetmtl/data/prepare.py")
    assert digests()[0] != before[0] and digests()[1] == before[1]
    before = digests()
    edit("src/hetmtl/data/fetch.py")
    assert digests()[0] == before[0] and digests()[1] != before[1]
    before = digests()
    edit("src/hetmtl/data/sources/chars74k.py")  # a source module: its layout (prepare), its stand-in (fetch)
    assert digests()[0] != before[0] and digests()[1] != before[1]


def test_cli_reports_bad_params_and_exits_2(project, capsys):
    from hetmtl.cli import main

    edit(project, "params/methods.yaml", lambda d: d["methods"]["mtal"].update(alpha=3))
    assert main(["check-params", "--suite", "tiny"]) == 2
    assert "methods.mtal.alpha" in capsys.readouterr().err


def test_job_digest_follows_exactly_what_a_job_reads(tmp_path):
    """A method parameter moves its method's digest (and its variant's, which
    inherits it), not the others'; a method module moves the methods that import
    it; a training parameter moves every job's."""
    import shutil
    from dataclasses import replace
    from pathlib import Path

    from hetmtl.runs import RunId

    root = Path(__file__).resolve().parents[1]
    for rel in ("params", "src"):
        shutil.copytree(root / rel, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__"))
    project_marker(tmp_path).write_text("# marker\n")
    keys = {m: RunId("tiny", "related", s, m, 0) for s, m in [
        ("no_prior", "mtal"), ("no_prior", "mtal_common"), ("prior", "mtal_prior"), ("no_prior", "hard_sharing"),
        ("shared", "single_task"), ("no_prior", "nddr_cnn")]}

    def digests():
        p = load_params(tmp_path)
        return {m: p.job_digest(k) for m, k in keys.items()}

    before = digests()
    methods = tmp_path / "params" / "methods.yaml"
    methods.write_text(methods.read_text().replace("rho: 0.4          #", "rho: 0.45         #", 1))
    changed = {m for m, d in digests().items() if d != before[m]}
    assert changed == {"mtal", "mtal_common"}
    methods.write_text(methods.read_text().replace("rho: 0.45         #", "rho: 0.4          #", 1))
    assert digests() == before
    module = tmp_path / "src" / "hetmtl" / "methods" / "mtal.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    assert {m for m, d in digests().items() if d != before[m]} == {"mtal", "mtal_common", "mtal_prior"}
    columns = tmp_path / "src" / "hetmtl" / "methods" / "columns.py"
    columns.write_text(columns.read_text() + "\n# an edit\n")
    after = digests()
    assert after["nddr_cnn"] != before["nddr_cnn"] and after["hard_sharing"] == before["hard_sharing"]
    training = tmp_path / "params" / "training.yaml"
    training.write_text(training.read_text().replace("l2_lambda: 0.0005", "l2_lambda: 0.001"))
    assert all(d != after[m] for m, d in digests().items())
    sweep = load_params(tmp_path).job_digest(replace(keys["mtal"], sweep="rho", value=0.9))
    assert sweep != load_params(tmp_path).job_digest(replace(keys["mtal"], sweep="rho", value=0.1))
    assert sweep != after["mtal"]


def test_a_methods_parameters_are_declared_in_the_registry(tmp_path):
    """params/methods.yaml is validated against each method's declared parameters
    (hetmtl/methods/registry.py, read without importing torch or parsing source): the
    declaration names the class that implements the method and gives it its flags; a
    key missing, misspelt or out of range fails naming the file and the key, and an
    entry the registry does not declare names the registry."""
    import shutil

    from hetmtl.methods import METHODS
    from hetmtl.methods.registry import METHOD_SPECS

    root = Path(__file__).resolve().parents[1]
    assert list(METHODS) == list(METHOD_SPECS)
    for name, spec in METHOD_SPECS.items():  # the registry and the classes agree
        cls = METHODS[name]
        assert f"{cls.__module__}:{cls.__name__}" == spec.target and cls.name == name, name
        assert (cls.deep, cls.joint, cls.uses_prior) == (spec.deep, spec.joint, spec.uses_prior), name
        assert not hasattr(sys.modules[cls.__module__], "PARAMS"), name  # declared once: in the registry
        assert set(load_params(root)["methods"][name]) == set(spec.params), name
    shutil.copytree(root / "params", tmp_path / "params")
    project_marker(tmp_path).write_text("")
    methods = tmp_path / "params" / "methods.yaml"
    text = methods.read_text()
    for old, new, message in [
        ("gamma: 0.001", "gamma: 'x'", "methods.soft_sharing.gamma: 'x' is not of type 'number'"),
        ("gamma: 0.001", "gama: 0.001", "methods.soft_sharing: 'gamma' is a required property"),
        ("    coupling: 1.0 ", "    coupling: -1.0 ", "methods.mtda.coupling: -1.0 is less than the minimum of 0"),
        ("  single_task: {}", "  single_task: {}\n  my_method: {lr: 1}",
         "methods.my_method: no method 'my_method' declared in src/hetmtl/methods/registry.py"),
        ("    variant_of: mtal\n    start: common\n", "    variant_of: mtal\n    start: common\n    rho_related: 0.4\n",
         "methods.mtal_common: Additional properties are not allowed ('rho_related' was unexpected)"),
    ]:
        assert text.count(old) >= 1, old
        methods.write_text(text.replace(old, new, 1))
        with pytest.raises(ParamsError, match=re.escape(f"params/methods.yaml: {message}")):
            load_params(tmp_path)


def test_a_swept_value_is_checked_against_its_parameter(tmp_path):
    """A sweep's values reach runs after validation (the resolver puts them in):
    each is checked against the method's PARAMS, naming the suite file."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "params", tmp_path / "params")
    project_marker(tmp_path).write_text("")
    suite = tmp_path / "params" / "suites" / "tiny.yaml"
    text = suite.read_text()
    assert "values: [0.1, 0.9]" in text
    suite.write_text(text.replace("values: [0.1, 0.9]", "values: [0.1, 3.0]"))
    with pytest.raises(ParamsError, match=re.escape("params/suites/tiny.yaml: suite.sweeps.rho.values: 3.0 is not a "
                                                    "value of methods.mtal.rho (3.0 is greater than the maximum")):
        load_params(tmp_path)


def test_the_readings_of_mtal_reuse_its_declarations_and_their_rules():
    """A variant class declares what it shares with MTAL by reusing MTAL's pieces
    (hetmtl/methods/registry.py), not by copying them: one meaning per key, and the
    rules of those keys (alpha + beta > 0, warmup below the epochs) come with them."""
    from hetmtl.methods.registry import METHOD_SPECS, MTAL_MERGE, MTAL_START

    mtal = METHOD_SPECS["mtal"]
    assert mtal.declared.rules and mtal.declared.below_epochs
    for name in ("mtal_prior", "mtal_delta", "mtal_prior_delta", "mtal_random"):
        spec = METHOD_SPECS[name]
        assert {k: spec.params[k] for k in MTAL_MERGE.params} == {k: mtal.params[k] for k in MTAL_MERGE.params}
        assert (spec.declared.rules, spec.declared.below_epochs) == (mtal.declared.rules, mtal.declared.below_epochs)
    prior = METHOD_SPECS["mtal_prior"].params
    assert prior["rho_related"] == prior["rho_unrelated"] == mtal.params["rho"]
    assert {k: prior[k] for k in MTAL_START.params} == {k: mtal.params[k] for k in MTAL_START.params}


def test_a_rule_follows_its_declaration_to_any_method(project, monkeypatch):
    """params holds no method's rule: a rule declared with a method's parameters is
    checked for that method, whatever its name."""
    from dataclasses import replace

    from hetmtl.methods import registry

    soft = registry.METHOD_SPECS["soft_sharing"]
    rule = registry.Rule(("gamma",), lambda v: v["gamma"] < 0.0005, "gamma must be below 0.0005 (a test's rule)")
    declared = registry.Declared(soft.params, rules=(rule,))
    monkeypatch.setitem(registry.METHOD_SPECS, "soft_sharing", replace(soft, declared=declared))
    with pytest.raises(ParamsError, match=re.escape("params/methods.yaml: methods.soft_sharing: gamma must be below")):
        load_params(project)


def test_a_sweep_value_is_read_back_from_its_text():
    p = load_params()
    assert p.sweep_value("tiny", "rho", "0.10") == 0.1 and isinstance(p.sweep_value("tiny", "rho", "0.1"), float)
    assert p.sweep_value("tiny", "weighting_mtal", "upgrad") == "upgrad"
    with pytest.raises(ParamsError, match="suite.sweeps.weighting_mtal.values: no value 'sgd'"):
        p.sweep_value("tiny", "weighting_mtal", "sgd")


@pytest.mark.parametrize("matrix, message", [
    ([[1, 0.9, 0.2, 0.5], [0.3, 1, 0.4, 0.5], [0.2, 0.4, 1, 0.5], [0.5, 0.5, 0.5, 1]],
     "must be symmetric: row 1 column 2 is 0.9 but row 2 column 1 is 0.3"),
    ([[1, 0.9, 0.2, 0.5], [0.9, 0.8, 0.4, 0.5], [0.2, 0.4, 1, 0.5], [0.5, 0.5, 0.5, 1]], "its diagonal must be 1"),
])
def test_a_given_relation_matrix_must_be_symmetric_with_a_unit_diagonal(project, matrix, message):
    """R_ij is one number per pair: clusters, MTAL's pair thresholds and the mixing units each read one
    triangle, so an asymmetric R given by hand would make methods disagree about the same pair."""
    edit(project, "params/grid.yaml", lambda d: d["relations"]["given"].update(related=matrix))
    with pytest.raises(ParamsError) as err:
        load_params(project)
    assert "relations.given.related" in str(err.value) and message in str(err.value), str(err.value)
    symmetric = [[1, 0.9, 0.2, 0.5], [0.9, 1, 0.4, 0.5], [0.2, 0.4, 1, 0.5], [0.5, 0.5, 0.5, 1]]
    edit(project, "params/grid.yaml", lambda d: d["relations"]["given"].update(related=symmetric))
    load_params(project)


@pytest.mark.parametrize("method", ["mtal", "mtal_prior", "mtal_common", "mtal_prior_common"])
def test_every_merging_method_needs_a_positive_alpha_plus_beta(project, method):
    edit(project, "params/methods.yaml", lambda d: d["methods"][method].update(alpha=0.0, beta=0.0))
    with pytest.raises(ParamsError, match=re.escape(f"params/methods.yaml: methods.{method}: alpha + beta must be")):
        load_params(project)


def test_loading_params_and_a_digest_import_no_torch():
    """The Snakefile loads params and computes digests on every invocation: the method
    registry is read, no method module is imported (torch costs seconds)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from hetmtl.params import load_params; from hetmtl.runs import RunId; p = load_params(); "
            "p.search_space('mtal_common'); p.job_digest(RunId('tiny', 'related', 'no_prior', 'mtal', 0)); "
            "print(sorted({'torch', 'hetmtl.methods.mtal', 'hetmtl.methods.base'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(root / "src")})
    assert out.stdout.strip() == "[]"


def test_a_methods_single_task_phase_is_declared_with_the_parameter_that_sizes_it():
    """Cross-stitch and NDDR-CNN declare the single-task pre-training phase (the job and
    the resolver read the declaration); ``pretrain_fraction`` sizes it, so a method
    declares the one exactly when it declares the other."""
    from hetmtl.methods.registry import METHOD_SPECS, PRETRAIN, TRAIN
    from hetmtl.resolve import resolve
    from hetmtl.runs import RunId

    assert {n for n, s in METHOD_SPECS.items() if PRETRAIN in s.phases} == {"cross_stitch", "nddr_cnn"}
    for name, spec in METHOD_SPECS.items():
        assert spec.phases[-1] == TRAIN and (PRETRAIN in spec.phases) == ("pretrain_fraction" in spec.params), name
    p = load_params()
    for name in ("cross_stitch", "hard_sharing"):
        run = resolve(p, RunId("tiny", "related", "no_prior", name, 0), tune=False, inputs=False)
        assert (run.pretrain_epochs > 0) == (name == "cross_stitch"), name
