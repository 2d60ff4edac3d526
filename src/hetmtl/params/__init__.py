"""Loading and validating the experiment parameters in ``params/``.

Every ``params/*.yaml`` file holds distinct top-level keys; they are merged into
one dict and validated against ``params.schema.yaml`` (the one schema the CLI
and the Snakefile both use). Errors name the file, the key and the reason.

This module imports no torch, so the Snakefile can use it cheaply.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hetmtl import paths
from hetmtl.errors import UserError
from hetmtl.runs import RunId

SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")


class ParamsError(UserError, ValueError):
    """A parameter file is invalid; the message names file, key and reason."""


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder above ``start`` holding ``params/``."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "params").is_dir() and (folder / "workflow" / "Snakefile").exists():
            return folder
    raise ParamsError(f"no project root (a folder with params/ and workflow/Snakefile) above {here}")


def files_with_key(root: Path, key: str) -> list[str]:
    """The params files (relative to ``root``) where ``key`` is a key at any depth: where a user
    who typed it somewhere else (``snakemake --config epochs=3``) should set it."""
    import yaml

    def has(node) -> bool:
        if isinstance(node, dict):
            return key in node or any(has(v) for v in node.values())
        return isinstance(node, list) and any(has(v) for v in node)

    found = []
    for path in sorted((root / "params").rglob("*.yaml")):
        try:
            if has(yaml.safe_load(path.read_text())):
                found.append(path.relative_to(root).as_posix())
        except yaml.YAMLError:
            continue  # a broken file is load_params's to report, with its line
    return found


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


@dataclass(frozen=True)
class Params:
    data: dict
    files: dict  # top-level key -> file it came from
    root: Path
    written: dict = field(default_factory=dict)  # method -> the keys params/methods.yaml writes for it

    def method_keys(self, name: str) -> list[str]:
        """Where each of a method's effective parameters is written, as params key paths:
        ``methods.<name>.<key>`` for its own, ``methods.<parent>.<key>`` for those a variant
        inherits (what a DVC stage of the method depends on)."""
        parent = self.base_method(name)
        own = self.written.get(name, set(self.method(name)))
        return sorted(f"methods.{name if k in own else parent}.{k}" for k in self.method(name))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def suite(self, name: str) -> dict:
        if name not in self.data["suites"]:
            raise ParamsError(
                f"params/suites/{name}.yaml: suite: no such suite "
                f"(known: {', '.join(self.data['suites'])})"
            )
        return self.data["suites"][name]

    def method(self, name: str) -> dict:
        """A method's parameters as params/methods.yaml writes them (every method of
        the grid has an entry: the semantic checks refuse one without)."""
        if name not in self.data["methods"]:
            raise ParamsError(f"{self.files['methods']}: methods.{name}: no such method "
                              f"(known: {', '.join(self.data['methods'])})")
        return self.data["methods"][name]

    def base_method(self, name: str) -> str:
        """The registered method a grid entry runs: itself, or what it is a variant of."""
        return self.method(name).get("variant_of", name)

    def runs(self, suite: str) -> list[RunId]:
        """The expanded grid for one suite: one :class:`~hetmtl.runs.RunId` per training job.

        Shared methods (no use for R) run once per group and seed, with the
        setting ``shared``; the others once per setting.
        """
        seeds = self.suite(suite)["seeds"]
        out = []
        for group in self.data["groups"]:
            cells = [("shared", m) for m in self.data["shared_methods"]]
            cells += [(s, m) for s, spec in self.data["settings"].items() for m in spec["methods"]]
            cells += [(r["setting"], r["method"]) for r in self.readings(suite)]
            for setting, method in cells:
                for seed in seeds:
                    out.append(RunId(suite, group, setting, method, seed))
        planned = set(out)
        for run in out:
            if self.followed(run) is not None and self.followed(run) not in planned:
                raise ParamsError(f"{self.files['methods']}: methods.{run.method}.follows: "
                                  f"{self.follows(run.method)!r} has no run in setting {run.setting!r} of suite "
                                  f"{suite!r}; add it to grid.yaml settings or readings")
        return out

    def readings(self, suite: str) -> list[dict]:
        """The readings (grid.yaml) a suite runs: Table 6's extra columns (those whose
        ``inits``, when given, hold the suite's init)."""
        s = self.suite(suite)
        if not s["readings"]:
            return []
        return [r for r in self.data["readings"] if s["init"] in r.get("inits", [s["init"]])]

    def follows(self, method: str) -> str | None:
        """The method whose run a method's run follows (``follows``: MTAL's random_matched
        control reads its delta run's sharing counts, same group, setting and seed), or None."""
        return self.method(method).get("follows")

    def followed(self, run: RunId) -> RunId | None:
        """The run ``run`` reads (:meth:`follows`), or None."""
        name = self.follows(run.method)
        return None if name is None else RunId(run.suite, run.group, run.setting, name, run.seed)

    def sweep_runs(self, suite: str) -> list[RunId]:
        """One :class:`~hetmtl.runs.RunId` per sweep training job (the sweep's
        setting and method, its name and value)."""
        scale = self.suite(suite)["sweeps"]
        return [RunId(suite, group, sw["setting"], sw["method"], seed, name, value)
                for name, sw in self.data["sweeps"].items() for group in self.sweep_groups(suite, name)
                for value in scale[name]["values"] for seed in scale[name]["seeds"]]

    def sweep_groups(self, suite: str, sweep: str) -> list[str]:
        """The groups a sweep runs on at a suite's scale: its ``groups``, or every group."""
        return list(self.suite(suite)["sweeps"][sweep].get("groups", self.data["groups"]))

    def sweep_value(self, suite: str, sweep: str, text: str) -> float | str:
        """The declared value of a sweep that ``text`` spells (a CLI argument, a
        Snakemake wildcard): ``0.10`` -> 0.1, ``pcgrad`` -> "pcgrad"."""
        values = self.suite(suite)["sweeps"][sweep]["values"]
        for value in values:
            if paths.value_text(value) == text or (not isinstance(value, str) and _float(text) == value):
                return value
        raise ParamsError(f"{self.files[f'suites.{suite}']}: suite.sweeps.{sweep}.values: no value {text!r} "
                          f"(declared: {', '.join(paths.value_text(v) for v in values)})")

    def table_methods(self, setting: str) -> list[tuple[str, str]]:
        """(run setting, method) of every row of a setting's table, shared rows first."""
        return ([("shared", m) for m in self.data["shared_methods"]]
                + [(setting, m) for m in self.data["settings"][setting]["methods"]])

    def tasks_of(self, group: str) -> list[str]:
        return list(self.data["groups"][group]["tasks"])

    # -------------------------------------------------- what a job reads

    # Suite keys that shape training (the rest: where data live, which seeds
    # and sweeps exist, are the grid's shape, not a job's input).
    TRAINING_SUITE_KEYS = ("backbone", "init", "augment", "image_size", "epochs", "batch_size")

    def job_inputs(self, run: RunId) -> dict:
        """Exactly the parameters one training job reads: its method's parameters
        (a variant's own entry, which holds its base's keys), the training section, the suite's
        training keys, its group and the group's tasks; a sweep point's swept
        parameter and epochs come from the sweep. The seed is not an input: the
        seeds of a cell share their digest. A grid cell of a suite that tunes
        (``suite.tune.trials`` > 0) also reads its tune stage's choice: the digest
        of what that stage reads (:meth:`tune_digest`) is an input; with no
        tuning nothing is added, so the digests stay those of a suite without it."""
        inputs = self._train_inputs(run)
        if run.sweep is None and self.tunes(run.suite):
            cell = self.followed(run) or run
            inputs["tune"] = self.tune_digest(run.suite, run.group, run.setting, cell.method)
        return inputs

    def _train_inputs(self, run: RunId) -> dict:
        s = self.suite(run.suite)
        method = dict(self.method(run.method))
        scale = {k: s[k] for k in self.TRAINING_SUITE_KEYS}
        method["weighting"] = self.data["training"]["weighting"]
        if run.sweep is not None:
            method[self.data["sweeps"][run.sweep]["parameter"]] = run.value
            scale["epochs"] = s["sweeps"][run.sweep]["epochs"]
        weighting = {method["weighting"]: self.data["weightings"][method["weighting"]]}
        tasks = self.tasks_of(run.group)
        return {"method": method, "training": self.data["training"], "weighting": weighting, "suite": scale,
                "group": tasks,
                "tasks": {t: self.data["tasks"][t] for t in tasks}, "split": self.data["split"],
                "selection_seed": self.data["selection_seed"]}

    def job_digest(self, run: RunId) -> str:
        """Digest of a training job's parameters and of the code it runs
        (:func:`code_digest`): Snakemake reruns a job whose digest changed, and
        aggregation refuses a receipt written under another digest."""
        return _hash([self.job_inputs(run), code_digest(self.root, self.base_method(run.method))])

    # -------------------------------------------------- the tuning stage (README "Tuning")

    def tunes(self, suite: str) -> bool:
        """Whether the suite tunes: ``suite.tune.trials`` > 0 (0: the defaults, no tune jobs)."""
        return self.suite(suite)["tune"]["trials"] > 0

    def tune_cells(self, suite: str) -> list[tuple[str, str, str]]:
        """(group, setting, method) of every tune job: each cell of the grid when the
        suite tunes (the same trials for every method), none otherwise."""
        if not self.tunes(suite):
            return []
        return list(dict.fromkeys((r.group, r.setting, r.method) for r in self.runs(suite)
                                  if self.follows(r.method) is None))  # a follower trains with its run's choice

    def search_space(self, method: str) -> dict:
        """What the tuning stage searches for a method: its module's ``SEARCH`` (a
        variant: its base's) and, for a deep method, the learning rate
        (params/training.yaml ``tuning.lr``)."""
        base = self.base_method(method)
        path = METHODS_DIR / f"{base}.py"
        space = dict(_method_literal(*_stamp(path), "SEARCH") or {})
        if _method_deep(*_stamp(path)):
            space["lr"] = self.data["tuning"]["lr"]
        return space

    def tune_trials(self, suite: str, group: str, setting: str, method: str) -> list[dict]:
        """The values of each trial of a tune cell: trial 0 the defaults (params/methods.yaml,
        and the suite's rate: training.lr, finetune_lr from ImageNet weights), so the
        choice is never worse on validation than the untuned run; the others drawn from
        (``suite.tune.seed``, group, setting, method, trial) alone, so the same whatever
        order jobs run in (ours, issue 30; DomainBed's first trial is the defaults too)."""
        scale = self.suite(suite)["tune"]
        space = self.search_space(method)
        drawn = [sample(space, scale["seed"], group, setting, method, k) for k in range(1, scale["trials"])]
        return [self.tune_defaults(suite, method), *drawn][:scale["trials"]]

    def tune_defaults(self, suite: str, method: str) -> dict:
        """The untuned values of what the tune stage searches for ``method``."""
        mcfg, tr = self.method(method), self.data["training"]
        rate = tr["finetune_lr"] if self.suite(suite).get("init") == "imagenet" else tr["lr"]
        out = {}
        for name in sorted(self.search_space(method)):
            if name != "lr" and name not in mcfg:
                raise ParamsError(f"{self.files['methods']}: methods.{method}.{name}: searched by the tune stage, "
                                  "so it needs a default here (the tune stage's trial 0)")
            out[name] = rate if name == "lr" else mcfg[name]
        return out

    def tune_inputs(self, suite: str, group: str, setting: str, method: str) -> dict:
        """What a tune job reads: what its cell's training reads (at the defaults), the
        search space, the suite's ``tune`` and the seed its trials train with."""
        seed = self.suite(suite)["seeds"][0]
        return {**self._train_inputs(RunId(suite, group, setting, method, seed)), "seed": seed,
                "search": self.search_space(method), "tune": self.suite(suite)["tune"],
                "beat_defaults_alpha": self.data["tuning"]["beat_defaults_alpha"]}

    def tune_digest(self, suite: str, group: str, setting: str, method: str) -> str:
        """Digest of a tune job's inputs and code: its rerun trigger, recorded in its JSON."""
        code = [code_digest(self.root, self.base_method(method)), files_digest(self.root, TUNE_CODE)]
        return _hash([self.tune_inputs(suite, group, setting, method), code])

    def relations_digest(self, suite: str, group: str) -> str:
        """Digest of what the relations stage of a group reads, and its code."""
        s = self.suite(suite)
        inputs = {"relations": self.data["relations"], "scale": s["relations"],
                  "hard_sharing": self.method("hard_sharing"), "training": self.data["training"],
                  "suite": {k: s[k] for k in self.TRAINING_SUITE_KEYS if k != "epochs"},  # its own epochs
                  "group": self.tasks_of(group),  # the order of R's rows
                  "tasks": {t: self.data["tasks"][t] for t in self.tasks_of(group)},
                  "split": self.data["split"], "selection_seed": self.data["selection_seed"]}
        code = [code_digest(self.root, m) for m in ("single_task", "hard_sharing")]
        return _hash([inputs, code])

    def fetch_digest(self, suite: str, source: str) -> str:
        """Digest of what fetching one source archive reads (stand-ins: their size)."""
        s = self.suite(suite)
        return _hash({"source": self.data["sources"][source],
                      "suite": {k: s.get(k) for k in ("data", "raw_dir", "images_per_class")},
                      "code": files_digest(self.root, DATA_CODE["fetch"])})

    def tracking_parents(self) -> list[tuple[str, str]]:
        """The (group, setting) parent runs of a suite's MLflow experiment."""
        return [(g, s) for g in self.data["groups"]
                for s in ["shared", *self.data["settings"], *(f"sweep_{n}" for n in self.data["sweeps"])]]

    def tracking_digest(self) -> str:
        return _hash(self.tracking_parents())

    def prepare_inputs(self, suite: str, task: str) -> dict:
        """Exactly the parameters the prepare job of a task reads."""
        s = self.suite(suite)
        spec = self.data["tasks"][task]
        return {"task": spec, "source": self.data["sources"][spec["source"]],
                "selection_seed": self.data["selection_seed"],
                "suite": {k: s.get(k) for k in ("data", "raw_dir", "images_per_class", "image_size")}}

    def prepare_digest(self, suite: str, task: str) -> str:
        """Digest of what a prepare job reads and of its code (an edit of the
        prepare code remakes the prepared data, as in DVC)."""
        return _hash([self.prepare_inputs(suite, task), files_digest(self.root, DATA_CODE["prepare"])])

    def digest(self, *keys: str) -> str:
        """A short hash of the given top-level sections (recorded with runs)."""
        blob = json.dumps({k: self.data[k] for k in keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _round(value: float) -> float:
    """A drawn real, to 4 significant digits (what a caption can show)."""
    return float(f"{value:.4g}")


def sample(space: dict, seed: int, group: str, setting: str, method: str, trial: int) -> dict:
    """One trial's values from ``space`` (name -> {uniform | log_uniform | int_uniform:
    [low, high]} or {choice: [...]}): a generator seeded by the digest of
    (seed, group, setting, method, trial), the names in sorted order."""
    key = json.dumps([seed, group, setting, method, trial])
    rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
    out = {}
    for name in sorted(space):
        [(kind, arg)] = space[name].items()
        if kind == "uniform":
            out[name] = _round(rng.uniform(*arg))
        elif kind == "log_uniform":
            out[name] = _round(math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1]))))
        elif kind == "int_uniform":
            out[name] = rng.randint(*arg)
        else:
            out[name] = arg[rng.randrange(len(arg))]
    return out
def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _hash(obj) -> str:
    """The 16-hex digest of a JSON-able value (keys sorted): a rerun trigger."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# Code every training job runs, whatever its method (a change reruns them all).
# The code of the data steps (Snakemake's rerun digests and DVC's deps, hetmtl/dvc_yaml.py)
DATA_CODE = {
    "fetch": ("src/hetmtl/data/fetch.py", "src/hetmtl/data/download.py", "src/hetmtl/data/archives.py",
              "src/hetmtl/data/sources"),
    "prepare": ("src/hetmtl/data/prepare.py", "src/hetmtl/data/sources", "src/hetmtl/data/archives.py"),
}
# The tune stage's own code beside its method's (the sampling of the trials; its job is in training/).
TUNE_CODE = ("src/hetmtl/params/__init__.py",)
SHARED_CODE = ("src/hetmtl/models", "src/hetmtl/training", "src/hetmtl/methods/base.py",
               "src/hetmtl/methods/__init__.py", "src/hetmtl/methods/build.py", "src/hetmtl/resolve.py",
               "src/hetmtl/runs.py", "src/hetmtl/data/splits.py", "src/hetmtl/data/tasks.py", "src/hetmtl/paths.py",
               "src/hetmtl/weightings")


def _method_modules(root: Path, name: str, seen: set[str] | None = None) -> set[str]:
    """The method's module and the hetmtl.methods modules it imports, recursively
    (parsed, not imported: the Snakefile must not import torch)."""
    seen = set() if seen is None else seen
    path = root / "src" / "hetmtl" / "methods" / f"{name}.py"
    if name in seen or not path.exists():
        return seen
    seen.add(name)
    for module in _method_imports(*_stamp(path)):
        _method_modules(root, module, seen)
    return seen


# A job digest reads the same files for every job of a DAG (Snakemake computes one
# per job when it plans, a table checks one per run): each file is read and parsed
# once per process, and again only when its modification time or size changes.
def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4096)
def _file_bytes(path: str, mtime_ns: int, size: int) -> bytes:
    return Path(path).read_bytes()


@functools.lru_cache(maxsize=1024)
def _method_imports(path: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """The ``hetmtl.methods`` modules a method's file imports."""
    import ast

    return tuple(node.module.split(".")[2] for node in ast.walk(ast.parse(_file_bytes(path, mtime_ns, size)))
                 if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hetmtl.methods."))


def code_paths(root: Path, method: str) -> list[str]:
    """The source a registered method's jobs run, relative to ``root``: its module
    (by the registry's convention ``methods/<name>.py``), the method modules it
    imports, and the shared code (:data:`SHARED_CODE`, folders as folders). The
    Snakefile hashes these (:func:`code_digest`), dvc.yaml lists them as deps."""
    own = {f"src/hetmtl/methods/{m}.py" for m in _method_modules(root, method)} - set(SHARED_CODE)
    return sorted(own) + list(SHARED_CODE)


def code_digest(root: Path, method: str) -> str:
    """Hash of :func:`code_paths` (every ``.py`` file under a folder)."""
    return files_digest(root, code_paths(root, method))


def files_digest(root: Path, rels) -> str:
    """Hash of the named files (every ``.py`` file under a named folder)."""
    files = []
    for rel in rels:
        p = root / rel
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + _file_bytes(*_stamp(f)))
    return h.hexdigest()[:16]


def _semantic_checks(d: dict, files: dict) -> None:
    def fail(top: str, key: str, reason: str):
        raise ParamsError(f"{files.get(top, 'params')}: {key}: {reason}")

    from hetmtl.models.registry import BACKBONES

    for name, suite in d["suites"].items():
        if suite["backbone"] not in BACKBONES:
            fail(f"suites.{name}", "suite.backbone",
                 f"unknown backbone {suite['backbone']!r} (known: {', '.join(BACKBONES)})")
    from hetmtl.data.sources import source_problems  # the layout registry (no torch)

    for top in ("sources", "alternative_sources"):
        for name, source in d[top].items():
            for key, reason in source_problems(source):
                fail(top, f"{top}.{name}.{key}", reason)
    from hetmtl.weightings import WEIGHTINGS  # the weighting registry (no torch)

    for name in d["weightings"]:
        if name not in WEIGHTINGS:
            fail("weightings", f"weightings.{name}", f"unknown weighting (known: {', '.join(WEIGHTINGS)})")
    for name in WEIGHTINGS:
        if name not in d["weightings"]:
            fail("weightings", f"weightings.{name}",
                 "missing: every registered weighting has an entry ({} for TorchJD's defaults)")
    if d["training"]["weighting"] not in d["weightings"]:
        fail("training", "training.weighting",
             f"unknown weighting {d['training']['weighting']!r} (known: {', '.join(d['weightings'])})")
    for name, task in d["tasks"].items():
        if task["source"] not in d["sources"]:
            fail("tasks", f"tasks.{name}.source", f"unknown source {task['source']!r}")
    used = {task["source"] for task in d["tasks"].values()}
    for name in d["sources"]:
        if name not in used:
            fail("sources", f"sources.{name}", "no task uses it (unused archives go in alternative_sources)")
    for name, group in d["groups"].items():
        for t in group["tasks"]:
            if t not in d["tasks"]:
                fail("groups", f"groups.{name}.tasks", f"unknown task {t!r}")
    for setting, spec in d["settings"].items():
        for m in spec["methods"]:
            if m not in d["methods"]:
                fail("settings", f"settings.{setting}.methods",
                     f"method {m!r} has no entry in methods")
            if m in d["shared_methods"]:
                fail("settings", f"settings.{setting}.methods",
                     f"method {m!r} is in shared_methods; it runs once for both settings")
    for k, r in enumerate(d["readings"]):
        if r["setting"] not in d["settings"]:
            fail("readings", f"readings[{k}].setting", f"unknown setting {r['setting']!r}")
        if r["method"] not in d["methods"]:
            fail("readings", f"readings[{k}].method", f"{r['method']!r} has no entry in methods")
        if any(r["method"] in spec["methods"] for spec in d["settings"].values()):
            fail("readings", f"readings[{k}].method", f"{r['method']!r} is a row of a setting's tables, not a reading")
    # a method before its variants: an inherited value that breaks a rule is named where it is written
    for name, spec in sorted(d["methods"].items(), key=lambda item: "variant_of" in item[1]):
        follows = spec.get("follows")
        if follows is None:
            continue
        if follows not in d["methods"] or "follows" in d["methods"][follows]:
            fail("methods", f"methods.{name}.follows", f"{follows!r} must be a method of methods that follows none")
        for key in ("alpha", "beta", "warmup", "share_every", "pairing", "project_w0"):
            if key in spec and d["methods"][follows].get(key) != spec[key]:
                fail("methods", f"methods.{name}.{key}",
                     f"must equal methods.{follows}.{key} ({d['methods'][follows].get(key)!r}): the control "
                     "shares with the same coefficients and schedule as the run it follows")
    for m in d["shared_methods"]:
        if m not in d["methods"]:
            fail("shared_methods", "shared_methods", f"method {m!r} has no entry in methods")
    for name, spec in d["methods"].items():
        base = spec.get("variant_of")
        if base is not None and (base not in d["methods"] or "variant_of" in d["methods"][base]):
            fail("methods", f"methods.{name}.variant_of", f"{base!r} must be a method that is not itself a variant")
    for suite_name, suite in d["suites"].items():  # MTAL: a merge is always followed by training
        runs = {"suite.epochs": suite["epochs"], **{f"suite.sweeps.{n}.epochs": sw["epochs"]
                                                    for n, sw in suite["sweeps"].items()}}
        if suite["tune"]["trials"]:  # a tune trial trains MTAL too
            runs["suite.tune.epochs"] = suite["tune"]["epochs"]
        for name, spec in d["methods"].items():
            if "warmup" in spec:
                for where, epochs in runs.items():
                    if spec["warmup"] >= epochs:
                        fail(f"suites.{suite_name}", where,
                             f"{epochs} epochs leave no training after MTAL's first matching "
                             f"(methods.{name}.warmup = {spec['warmup']}); it must be below the epochs")
    for suite_name, suite in d["suites"].items():
        for name in d["sweeps"]:
            if name not in suite["sweeps"]:
                fail(f"suites.{suite_name}", f"suite.sweeps.{name}", "missing: the suite's scale of this sweep")
            for group in suite["sweeps"][name].get("groups", []):
                if group not in d["groups"]:
                    fail(f"suites.{suite_name}", f"suite.sweeps.{name}.groups", f"unknown group {group!r}")
    for name, sw in d["sweeps"].items():
        if sw["setting"] not in d["settings"] or sw["method"] not in d["settings"][sw["setting"]]["methods"]:
            fail("sweeps", f"sweeps.{name}", f"method {sw['method']!r} is not in setting {sw['setting']!r}")
        # `weighting`: every joint method's (params/weightings.yaml), not a key of its entry
        if sw["parameter"] != "weighting" and sw["parameter"] not in d["methods"].get(sw["method"], {}):
            fail("sweeps", f"sweeps.{name}.parameter",
                 f"{sw['method']} has no parameter {sw['parameter']!r} (nor is it `weighting`)")
    for group, matrix in d["relations"]["given"].items():
        if group not in d["groups"]:
            fail("relations", f"relations.given.{group}", "unknown group")
        T = len(d["groups"][group]["tasks"])
        if len(matrix) != T or any(len(row) != T for row in matrix):
            fail("relations", f"relations.given.{group}", f"must be {T} x {T} (the group's tasks)")
        # R is a relation between two tasks: every reader (clusters, thresholds, mixing) takes R_ij = R_ji
        bad = [(i, j) for i in range(T) for j in range(i + 1, T) if matrix[i][j] != matrix[j][i]]
        if bad:
            i, j = bad[0]
            fail("relations", f"relations.given.{group}",
                 f"must be symmetric: row {i + 1} column {j + 1} is {matrix[i][j]:g} but row {j + 1} column "
                 f"{i + 1} is {matrix[j][i]:g}; give each pair one value")
        if any(matrix[i][i] != 1 for i in range(T)):
            fail("relations", f"relations.given.{group}", "its diagonal must be 1 (a task is related to itself)")
    for name, table in d["tables"].items():
        if table["group"] not in d["groups"]:
            fail("tables", f"tables.{name}.group", f"unknown group {table['group']!r}")
        if table["setting"] not in d["settings"]:
            fail("tables", f"tables.{name}.setting", f"unknown setting {table['setting']!r}")
    split = d["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-9:
        fail("split", "split", f"train + val + test must be 1, got {total:g}")
    for name, suite in d["suites"].items():
        if suite["data"] == "standin" and "images_per_class" not in suite:
            fail(f"suites.{name}", "suite.images_per_class", "required for stand-in data")
    for name, cfg in d["methods"].items():  # every method that merges kernels (MTAL, its variants and readings)
        if {"alpha", "beta"} <= set(cfg) and cfg["alpha"] + cfg["beta"] <= 0:
            fail("methods", f"methods.{name}", "alpha + beta must be positive")
    if "dvc" in d and d["dvc"]["suite"] not in d["suites"]:
        fail("dvc", "dvc.suite", f"no suite {d['dvc']['suite']!r} in params/suites/ (known: {', '.join(d['suites'])})")


def _report_checks(d: dict, files: dict) -> None:
    """params/report.yaml names methods the grid has, in the roles the grid gives them."""
    def fail(key: str, reason: str):
        raise ParamsError(f"{files.get('report', 'params/report.yaml')}: report.{key}: {reason}")

    r = d["report"]
    for where in ("display", "highlight"):
        for m in r[where]:
            if m not in d["methods"]:
                fail(f"{where}.{m}", "no such method in methods")
    for setting, m in r["reference"].items():
        if setting in d["settings"] and m not in d["settings"][setting]["methods"]:
            fail(f"reference.{setting}", f"{m!r} is not a method of setting {setting!r}")
    for m in r["sharing"]:
        if m not in d["methods"]:
            fail("sharing", f"no such method {m!r} in methods")
    show = r["showcase"]
    if show["setting"] not in d["settings"] or show["method"] not in d["settings"][show["setting"]]["methods"]:
        fail("showcase", f"{show['method']!r} is not a method of setting {show['setting']!r}")


# The final metrics a run logs that a ``below`` claim may bound (besides test_acc/<task>, test_acc/mean):
# MTAL's structure (methods/mtal.py) and the job's budget (training/job.py).
CLAIM_METRICS = ("compression_params", "compression", "sharing/total", "within_task_duplicates",
                 "steps_per_epoch", "budget/steps_per_task", "train_seconds")


def _claim_comparisons(d: dict, c: dict) -> int | None:
    """How many comparisons a claim gives under the grid (None: it depends on the run records)."""
    gone = set(d["claims"].get("exclude", []))

    def rows(table: str) -> list[str]:
        return [*d["shared_methods"], *d["settings"][d["tables"][table]["setting"]]["methods"]]

    def side(table, chosen, exclude):
        if chosen == "others":
            return [m for m in rows(table) if m not in exclude and m not in gone]
        return [m for m in chosen if m in rows(table)]

    kind = c["kind"]
    if kind == "beats":
        n = 0
        for t in c["tables"]:
            fixed = c["worse"] if c["better"] == "others" else []
            better = side(t, c["better"], fixed)
            worse = side(t, c["worse"], better if c["worse"] == "others" else [])
            n += sum(a != b for a in better for b in worse)
        return n
    if kind == "prior_gain":
        return sum(a in rows(tp) and b in rows(tn) and a not in gone and b not in gone
                   for tp, tn in c["tables"] for a, b in c["pairs"].items())
    if kind == "task_gain":
        return sum(len(side(t, c["against"], [c["method"]]))
                   * len([k for k in c["tasks"] if k in d["groups"][d["tables"][t]["group"]]["tasks"]])
                   for t in c["tables"])
    if kind == "sweep_prefers":
        return len(c["prefers"])
    return None


def _claims_checks(d: dict, files: dict) -> None:
    """params/claims.yaml names tables, methods, tasks, groups, sweeps and metrics the grid has, pairs
    prior_gain's tables the right way round, and gives every claim a comparison under the grid."""
    where = files.get("claims", "params/claims.yaml")

    def fail(key: str, reason: str):
        raise ParamsError(f"{where}: claims.items.{key}: {reason}")

    def methods(cid: str, key: str, value) -> None:
        for m in ([] if value == "others" else value if isinstance(value, list) else [value]):
            if m not in d["methods"]:
                fail(f"{cid}.{key}", f"no such method {m!r} in methods")

    for m in d["claims"].get("exclude", []):
        if m not in d["methods"]:
            raise ParamsError(f"{where}: claims.exclude: no such method {m!r} in methods")
    for cid, c in d["claims"]["items"].items():
        tables = c.get("tables", [])
        for t in (x for entry in tables for x in (entry if isinstance(entry, list) else [entry])):
            if t not in d["tables"]:
                fail(f"{cid}.tables", f"no table {t!r} in grid.yaml tables (known: {', '.join(d['tables'])})")
        for key in ("better", "worse", "against", "method", "methods"):
            if key in c:
                methods(cid, key, c[key])
        if c.get("better") == "others" and c.get("worse") == "others":
            fail(cid, "better and worse cannot both be 'others'")
        for a, b in c.get("pairs", {}).items():
            methods(cid, "pairs", [a, b])
        for t in c.get("tasks", []):
            if t not in d["tasks"]:
                fail(f"{cid}.tasks", f"unknown task {t!r}")
        for g in c.get("prefers", {}):
            if g not in d["groups"]:
                fail(f"{cid}.prefers", f"unknown group {g!r}")
        for key in ("more", "less"):
            if key in c and c[key] not in d["groups"]:
                fail(f"{cid}.{key}", f"unknown group {c[key]!r}")
        if "sweep" in c and c["sweep"] not in d["sweeps"]:
            fail(f"{cid}.sweep", f"no sweep {c['sweep']!r} in grid.yaml sweeps")
        if c["kind"] == "below":
            known = [*CLAIM_METRICS, "test_acc/mean", *(f"test_acc/{t}" for t in d["tasks"])]
            if c["metric"] not in known:
                fail(f"{cid}.metric", f"unknown metric {c['metric']!r} (known: {', '.join(CLAIM_METRICS)}, "
                                      "test_acc/mean, test_acc/<task>)")
        if c["kind"] == "prior_gain":
            for prior, no_prior in tables:
                tp, tn = d["tables"][prior], d["tables"][no_prior]
                if (tp["setting"], tn["setting"]) != ("prior", "no_prior") or tp["group"] != tn["group"]:
                    fail(f"{cid}.tables", f"[{prior}, {no_prior}] is not (a prior table, the no_prior table of "
                                          "its group)")
        if _claim_comparisons(d, c) == 0:
            fail(cid, "gives no comparison under this grid (its tables, methods and tasks do not meet)")


def _numbers(node, path=()):
    """(path, value) of every float below ``node``."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, (*path, i))
    elif isinstance(node, float):
        yield path, node


def _read_yaml(path: Path, rel: str) -> dict:
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{rel}: not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise ParamsError(f"{rel}: <top level>: must be a mapping")
    return content


METHODS_DIR = Path(__file__).resolve().parents[1] / "methods"


@functools.lru_cache(maxsize=128)
def _method_literal(path: str, mtime_ns: int, size: int, name: str) -> dict | None:
    """A literal of a method's module (``PARAMS``, ``SEARCH``; parsed, not imported: no torch)."""
    import ast

    for node in ast.parse(_file_bytes(path, mtime_ns, size)).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    return None


def _method_params(path: str, mtime_ns: int, size: int) -> dict | None:
    """The ``PARAMS`` literal of a method's module."""
    return _method_literal(path, mtime_ns, size, "PARAMS")


@functools.lru_cache(maxsize=64)
def _method_deep(path: str, mtime_ns: int, size: int) -> bool:
    """Whether the module's method is deep (trained by the SGD loop): no class of it
    sets ``deep = False`` (a closed-form method, hetmtl.methods.base.Method.deep)."""
    import ast

    for node in ast.walk(ast.parse(_file_bytes(path, mtime_ns, size))):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (isinstance(item, ast.Assign) and [getattr(t, "id", None) for t in item.targets] == ["deep"]
                        and isinstance(item.value, ast.Constant) and item.value.value is False):
                    return False
    return True


def _methods_schema(methods, files: dict) -> dict:
    """The schema of every entry of params/methods.yaml: its method module's
    ``PARAMS``, every key required, nothing else allowed; a variant's are its
    base's plus ``variant_of``. The method's module is where its parameters are
    declared, so a new method is its module and its params entries."""
    out = {}
    for name, entry in (methods or {}).items():
        base = entry.get("variant_of", name) if isinstance(entry, dict) else name
        path = METHODS_DIR / f"{base}.py"
        declared = _method_params(*_stamp(path)) if path.exists() else None
        if declared is None:
            known = sorted(p.stem for p in METHODS_DIR.glob("*.py") if _method_params(*_stamp(p)) is not None)
            raise ParamsError(f"{files.get('methods', 'params/methods.yaml')}: methods.{name}: no method module "
                              f"src/hetmtl/methods/{base}.py declaring its PARAMS (known: {', '.join(known)})")
        schema = {"type": "object", "additionalProperties": False, "required": list(declared),
                  "properties": {**declared, "variant_of": {"type": "string"}}}
        if base != name:
            schema = {"allOf": [schema, {"required": ["variant_of"], "properties": {"variant_of": {"const": base}}}]}
        out[name] = schema
    return out


def _inherit(methods) -> dict[str, set[str]]:
    """A variant (``variant_of: <method>``) holds only what differs from its method;
    the rest it inherits here, in the loader, not by YAML anchors, which a tool that
    rewrites the file (``dvc exp run -S``) expands into copies that stop following
    the method. Fills every variant's inherited keys in place; returns the keys each
    entry writes itself (:meth:`Params.method_keys`). A variant of a variant or of an
    unknown method is left as written (the semantic checks name it)."""
    written = {}
    for name, entry in (methods or {}).items():
        if not isinstance(entry, dict):
            continue
        written[name] = set(entry)
        parent = methods.get(entry.get("variant_of"))
        if isinstance(parent, dict) and "variant_of" not in parent:
            methods[name] = {**{k: v for k, v in parent.items() if k not in entry}, **entry}
    return written


def load_params(root: Path | str | None = None) -> Params:
    """Merge and validate ``params/*.yaml`` and ``params/suites/*.yaml``.

    Each suite lives in its own file (``params/suites/<name>.yaml`` holding one
    ``suite:`` mapping), so that a DVC stage names the keys of exactly one suite
    (``hetmtl/dvc_yaml.py``); here they are gathered into ``suites: {name: ...}``.
    """
    root = Path(root) if root is not None else find_root()
    folder = root / "params"
    merged: dict = {}
    files: dict = {}
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise ParamsError(f"{folder}: no *.yaml parameter files")
    for path in paths:
        rel = path.relative_to(root).as_posix()
        for key, value in _read_yaml(path, rel).items():
            if key in merged:
                raise ParamsError(f"{rel}: {key}: already defined in {files[key]}")
            merged[key] = value
            files[key] = rel
    if "suites" in merged:
        raise ParamsError(f"{files['suites']}: suites: suites live in params/suites/<name>.yaml")
    merged["suites"] = {}
    for path in sorted((folder / "suites").glob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        content = _read_yaml(path, rel)
        if set(content) != {"suite"}:
            raise ParamsError(f"{rel}: <top level>: must hold exactly one key, 'suite'")
        suite = content["suite"]
        name = suite.get("name") if isinstance(suite, dict) else None
        if name != path.stem:
            raise ParamsError(f"{rel}: suite.name: must equal the file name {path.stem!r}, got {name!r}")
        merged["suites"][name] = suite
        files[f"suites.{name}"] = rel
    files.setdefault("suites", "params/suites/")
    for path, value in _numbers(merged):  # NaN passes every comparison the schema makes
        if not math.isfinite(value):
            top = files.get(f"{path[0]}.{path[1]}" if len(path) > 1 else "", files.get(path[0], "params/"))
            shown = ["suite", *path[2:]] if path[0] == "suites" else path
            raise ParamsError(f"{top}: {_key(shown)}: must be a finite number, got {value}")
    written = _inherit(merged.get("methods"))
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    method_schemas = _methods_schema(merged.get("methods"), files)
    schema["properties"]["methods"]["properties"] = method_schemas
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(merged), key=lambda e: [str(p) for p in e.path])
    if errors:
        lines = []
        for err in errors:
            path = list(err.absolute_path)
            where = "params/"
            if path:
                where = files.get(f"{path[0]}.{path[1]}" if len(path) > 1 else "", files.get(path[0], where))
                if path[0] == "suites" and len(path) > 1:
                    path = ["suite", *path[2:]]
            lines.append(f"{where}: {_key(path)}: {err.message}")
        # one line per error, each naming its file and key (printed as `error: <line>`)
        raise ParamsError("".join(f"\nerror: {line}" if i else line for i, line in enumerate(lines)))
    _semantic_checks(merged, files)
    _sweep_checks(merged, files, {"definitions": schema["definitions"]}, method_schemas)
    _search_checks(merged, files, {"definitions": schema["definitions"]}, method_schemas,
                   schema["properties"]["training"])
    _report_checks(merged, files)
    _claims_checks(merged, files)
    return Params(data=merged, files=files, root=root, written=written)


def _sweep_checks(d: dict, files: dict, definitions: dict, method_schemas: dict) -> None:
    """Every value a suite sweeps is a valid value of its parameter: the method's
    entry with the value put in passes the method's PARAMS (a sweep's values
    reach the run after validation, by the resolver)."""
    for suite_name, suite in d["suites"].items():
        for name, sw in d["sweeps"].items():
            if sw["parameter"] == "weighting":  # not a method's parameter: the run's weighting (any joint method)
                for value in suite["sweeps"][name]["values"]:
                    if value not in d["weightings"]:
                        raise ParamsError(f"{files[f'suites.{suite_name}']}: suite.sweeps.{name}.values: {value!r} "
                                          f"is not a weighting of params/weightings.yaml "
                                          f"(known: {', '.join(d['weightings'])})")
                continue
            validator = jsonschema.Draft202012Validator({**definitions, **method_schemas[sw["method"]]})
            for value in suite["sweeps"][name]["values"]:
                entry = {**d["methods"][sw["method"]], sw["parameter"]: value}
                for err in validator.iter_errors(entry):
                    raise ParamsError(f"{files[f'suites.{suite_name}']}: suite.sweeps.{name}.values: {value!r} is "
                                      f"not a value of methods.{sw['method']}.{sw['parameter']} ({err.message})")


def _search_checks(d: dict, files: dict, definitions: dict, method_schemas: dict, training_schema: dict) -> None:
    """Every method's ``SEARCH`` (its module, beside ``PARAMS``) names only keys of its
    ``PARAMS``, each with a valid distribution whose ends (or choices) are valid
    values of the key; ``tuning.lr``'s ends are valid learning rates. A sampled
    value lies between the ends, so every trial passes the method's schema."""
    dist = jsonschema.Draft202012Validator({**definitions, "$ref": "#/definitions/distribution"})

    def points(spec: dict) -> list:
        [(kind, arg)] = spec.items()
        return list(arg)

    for name, entry in d["methods"].items():
        base = entry.get("variant_of", name)
        module = f"src/hetmtl/methods/{base}.py"
        path = METHODS_DIR / f"{base}.py"
        search = _method_literal(*_stamp(path), "SEARCH") or {}
        declared = _method_params(*_stamp(path)) or {}
        validator = jsonschema.Draft202012Validator({**definitions, **method_schemas[name]})
        for key, spec in search.items():
            if key not in declared:
                raise ParamsError(f"{module}: SEARCH.{key}: not one of the method's PARAMS "
                                  f"({', '.join(declared) or 'none'})")
            for err in dist.iter_errors(spec):
                raise ParamsError(f"{module}: SEARCH.{key}: {err.message}")
            ends = points(spec)
            if "choice" not in spec and ends[0] > ends[1]:
                raise ParamsError(f"{module}: SEARCH.{key}: the range {ends} runs backwards")
            for value in ends:
                for err in validator.iter_errors({**entry, key: value}):
                    raise ParamsError(f"{module}: SEARCH.{key}: {value!r} is not a value of "
                                      f"methods.{name}.{key} ({err.message})")
    lr = d["tuning"]["lr"]
    lr_schema = jsonschema.Draft202012Validator(training_schema["properties"]["lr"])
    for value in points(lr):
        for err in lr_schema.iter_errors(value):
            raise ParamsError(f"{files['tuning']}: tuning.lr: {value!r} is not a learning rate ({err.message})")
    if "choice" not in lr and points(lr)[0] > points(lr)[1]:
        raise ParamsError(f"{files['tuning']}: tuning.lr: the range {points(lr)} runs backwards")
