"""Provenance digests: exactly what each job reads (parameters and code), hashed into the
rerun trigger Snakemake compares and the receipt records; the code paths dvc.yaml lists as deps."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from hetmtl.methods.registry import METHOD_SPECS, RELATIONS_ALONE, RELATIONS_TOGETHER
from hetmtl.runs import RunId


class Digests:
    """The digests' part of :class:`hetmtl.params.Params`."""

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
                  RELATIONS_TOGETHER: self.method(RELATIONS_TOGETHER), "training": self.data["training"],
                  "suite": {k: s[k] for k in self.TRAINING_SUITE_KEYS if k != "epochs"},  # its own epochs
                  "group": self.tasks_of(group),  # the order of R's rows
                  "tasks": {t: self.data["tasks"][t] for t in self.tasks_of(group)},
                  "split": self.data["split"], "selection_seed": self.data["selection_seed"]}
        code = [code_digest(self.root, m) for m in (RELATIONS_ALONE, RELATIONS_TOGETHER)]
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
TUNE_CODE = ("src/hetmtl/params/tune.py",)
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
    (its declaration's ``target``, :mod:`hetmtl.methods.registry`), the method modules it
    imports (the registry among them, through ``base.py``: an edit of any method's
    declaration reruns every method's jobs, as in DVC, which hashes files), and the shared
    code (:data:`SHARED_CODE`, folders as folders). The Snakefile hashes these
    (:func:`code_digest`), dvc.yaml lists them as deps."""
    start = METHOD_SPECS[method].module.removeprefix("hetmtl.methods.")
    own = {f"src/hetmtl/methods/{m}.py" for m in _method_modules(root, start)} - set(SHARED_CODE)
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

