"""The package's floors: a module imports only from the floors below its own, and
on its own floor from its own package (or, on an open floor, from any of it).

Every module's imports are parsed (``ast``: imports inside functions too, which
the lazy imports of torch-free modules are), so that e.g. methods cannot reach
into training, and training and reporting (one floor, walled) not into each other. A new top-level module or package
must be given its floor here.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module's floor: the longest entry naming it or a package above it
# ("hetmtl": the package's own __init__ only). OPEN: floors whose entries may import
# each other; on the others each entry is walled off from its neighbours.
FLOORS = (
    ("hetmtl", "hetmtl.errors", "hetmtl.files"),  # no hetmtl imports but these
    ("hetmtl.paths",),  # where every file of the pipeline lives
    ("hetmtl.runs",),  # a run's identity (RunId) and its training configuration
    ("hetmtl.data.archives",),  # reading archives safely, checksums
    # backbones, data sources, weightings and methods (registries without torch)
    ("hetmtl.models", "hetmtl.data.sources", "hetmtl.weightings", "hetmtl.methods.registry"),
    ("hetmtl.params",),  # params/ and its schema (checks backbone names), the grid as RunIds
    ("hetmtl.resolve",),  # params + a RunId -> the frozen record a job executes
    ("hetmtl.data",),  # archives, stand-ins, prepare, splits
    ("hetmtl.tracking",),  # MLflow store and receipts
    ("hetmtl.methods",),  # the methods, and building one from a resolved run (methods/build.py)
    # training: the loop, jobs, relations; reporting: records -> tables and figures (reads
    # receipts, rebuilds trained models from resolved runs): neither needs the other
    ("hetmtl.training", "hetmtl.reporting"),
    ("hetmtl.bench",),  # what a suite costs: the training step timed, FLOPs counted, the grid costed
    ("hetmtl.dvc_yaml", "hetmtl.preflight", "hetmtl.forkserver"),  # dvc.yaml, pre-run checks, the fork server
    ("hetmtl.count",),  # one count of a suite's work: runs, jobs, GPU-hours, disk, the Slurm booking
    ("hetmtl.doctor",),  # a suite's readiness (reads preflight's checks and the count's cost and disk)
    ("hetmtl.cli",),  # the command line: the only entry point; it hands itself to the fork server
)
OPEN = {0}  # no open top floor: no import circle (issue 31)

# (importing module, imported module): imports from a floor above that are known and
# due to go; the lead empties this after merging the branches that move them. Each
# with its reason. A listed import that is gone fails the test (take it off the list).
ALLOWED: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "hetmtl").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def place(module: str) -> tuple[int, str] | None:
    """(floor, entry) of a module."""
    best = None
    for level, entries in enumerate(FLOORS):
        for entry in entries:
            if module == entry or (entry != "hetmtl" and module.startswith(entry + ".")):
                if best is None or len(entry) > len(best[1]):
                    best = (level, entry)
    return best


def floor_of(module: str) -> int | None:
    found = place(module)
    return None if found is None else found[0]


def above(target: str, module: str) -> bool:
    """Whether ``module`` may not import ``target``: a floor above, or a walled neighbour."""
    (floor, entry), (own, own_entry) = place(target), place(module)
    return floor > own or (floor == own and entry != own_entry and own not in OPEN)


def imports(module: str, source: str, known) -> list[tuple[str, int]]:
    """(imported hetmtl module, line) of every import in ``source``, at any depth;
    ``from hetmtl.x import y`` names hetmtl.x.y when that is a module."""
    package = module if module in known and known[module].name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "hetmtl"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "hetmtl":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in known else base, node.lineno))
    return out


def violations(module: str, source: str, known) -> list[str]:
    """Each import of ``module`` it may not make: (module, target, 'module:line imports target ...')."""
    own = floor_of(module)
    found = []
    for target, line in imports(module, source, known):
        if place(target) is not None and above(target, module):
            found.append((module, target, f"{module}:{line} imports {target} (floor {floor_of(target)}, "
                                          f"its own {own})"))
    return found


def test_every_module_has_a_floor():
    assert [m for m in modules() if floor_of(m) is None] == []


def test_no_module_imports_from_a_floor_above_its_own():
    known = modules()
    found = [v for m, path in known.items() for v in violations(m, path.read_text(), known)]
    unexpected = [text for module, target, text in found if (module, target) not in ALLOWED]
    assert unexpected == [], "\n".join(unexpected)
    gone = set(ALLOWED) - {(module, target) for module, target, _ in found}
    assert gone == set(), f"no longer imported: take them off ALLOWED: {sorted(gone)}"


def test_reporting_imports_no_training_but_the_listed_data_module():
    known = modules()
    for m, path in known.items():
        if m.startswith("hetmtl.reporting"):
            for target, _ in imports(m, path.read_text(), known):
                assert not target.startswith("hetmtl.training") or (m, target) in ALLOWED, (m, target)


def test_the_check_sees_an_import_inside_a_function_and_a_relative_one():
    known = modules()
    source = "def f():\n    from hetmtl.training.job import build_method\n"
    assert [t for _, _, t in violations("hetmtl.methods.mtal", source, known)] == [
        "hetmtl.methods.mtal:2 imports hetmtl.training.job (floor 10, its own 9)"]
    assert [t for _, t, _ in violations("hetmtl.training.job", "import hetmtl.reporting.tables\n", known)] == [
        "hetmtl.reporting.tables"]  # a walled neighbour
    assert [t for _, t, _ in violations("hetmtl.forkserver", "from hetmtl import cli\n", known)] == [
        "hetmtl.cli"]  # the floor above: the fork server is handed its entry point
    assert imports("hetmtl.reporting.tables", "from ..methods import build\n", known) == [("hetmtl.methods.build", 1)]
    assert [t for _, t, _ in violations("hetmtl.models.vgg", "from .. import cli\nimport hetmtl.reporting\n",
                                        known)] == ["hetmtl.cli", "hetmtl.reporting"]
    assert violations("hetmtl.reporting.aggregate", "from hetmtl.methods.build import build_method\n", known) == []
