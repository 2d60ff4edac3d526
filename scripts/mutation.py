"""The mutation tier: mutmut's generated mutants over the research core, module by module.

    make mutation                                   # every module of tests/mutation/modules.yaml, then --check
    .venv/bin/python scripts/mutation.py run hetmtl/weightings/apply.py   # one module (path under src/)
    .venv/bin/python scripts/mutation.py check      # results vs baseline and triage; no mutmut run
    .venv/bin/python scripts/mutation.py readme     # rewrite README.md's scores block from the results
    .venv/bin/python scripts/mutation.py baseline   # take the committed results as the new baseline
    .venv/bin/python scripts/mutation.py overlap    # each hand-written mutant beside mutmut's of its lines

mutmut (pinned in tests/mutation/requirements.txt) is installed into .mutation/lib, not into the
shared environment (keyed by requirements.lock): its own pytest and friends come after the
environment's on sys.path, so the project's pytest runs the tests.

Each module runs in its own folder .mutation/work/<module>/ (links to the checkout, and a
pyproject.toml that adds a [tool.mutmut] section naming the module alone and the test files that
cover it, from tests/mutation/modules.yaml). mutmut copies src/ into mutants/, records which tests
reach each function, and runs only those tests (``-x``) against each mutant.

A module's result (tests/mutation/results/<module>.json): counts per status, killed/total, and the
diff of each survivor. ``check`` fails when a module's score is below tests/mutation/baseline.json
or a survivor is not triaged in tests/mutation/triage.yaml (equivalent, with why, or the test
added that kills it).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TIER = ROOT / "tests" / "mutation"
LIB = ROOT / ".mutation" / "lib"
WORK = ROOT / ".mutation" / "work"
RESULTS = TIER / "results"
BEGIN, END = "<!-- mutation-scores:begin -->", "<!-- mutation-scores:end -->"
# What a test may read beside src/ and tests/ (the project's params, the workflow's files).
LINKED = ["src", "tests", "params", "config", "workflow", "scripts", "dvc.yaml", "README.md", "Makefile",
          "requirements.lock"]
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests", "suspicious"}


def slug(module: str) -> str:
    return module.removeprefix("hetmtl/").removesuffix(".py").replace("/", ".")


def modules() -> dict:
    data = yaml.safe_load((TIER / "modules.yaml").read_text())
    return data


def ensure_mutmut() -> None:
    """Install the pinned mutmut into .mutation/lib (once per change of the requirements file)."""
    req = TIER / "requirements.txt"
    stamp = LIB / ".requirements"
    if stamp.exists() and stamp.read_text() == req.read_text():
        return
    shutil.rmtree(LIB, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-conflicts", "--target", str(LIB),
                    "-r", str(req)], check=True)
    stamp.write_text(req.read_text())


def mutmut_version() -> str:
    for p in LIB.glob("mutmut-*.dist-info"):
        return p.name.removeprefix("mutmut-").removesuffix(".dist-info")
    raise SystemExit(f"mutmut is not installed in {LIB}: run `make mutation` (it installs it)")


def pyproject(module: str, spec: dict) -> str:
    """The project's pyproject.toml and a [tool.mutmut] section for this module alone."""
    cfg = {
        "source_paths": ["src"],
        "only_mutate": [f"src/{module}"],
        "also_copy": [p for p in LINKED if p not in ("src", "tests")],
        "pytest_add_cli_args_test_selection": list(spec["tests"]),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-m", "not e2e and not services"]
        + [a for k in spec.get("deselect", []) for a in ("--deselect", k)],
        "timeout_multiplier": 10.0,
    }

    def toml(v):
        return json.dumps(v)  # lists of strings and numbers: JSON is TOML here

    lines = ["", "[tool.mutmut]"] + [f"{k} = {toml(v)}" for k, v in cfg.items()]
    return (ROOT / "pyproject.toml").read_text() + "\n".join(lines) + "\n"


def prepare(module: str, spec: dict) -> Path:
    work = WORK / slug(module)
    shutil.rmtree(work, ignore_errors=True)  # fresh: the results are those of this checkout's code and tests
    work.mkdir(parents=True)
    for name in LINKED:
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    (work / "pyproject.toml").write_text(pyproject(module, spec))
    return work


def mutmut_cmd(*args: str) -> list[str]:
    boot = (f"import sys; sys.path.append({str(LIB)!r}); sys.argv[0] = 'mutmut'; "
            "from mutmut.__main__ import cli; cli()")
    return [sys.executable, "-c", boot, *args]


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    e.pop("PYTHONPATH", None)  # mutmut puts mutants/src first; the tests' pythonpath is the copy's src
    return e


def run(module: str, spec: dict, children: int) -> dict:
    if not (ROOT / "src" / module).is_file():
        raise SystemExit(f"tests/mutation/modules.yaml: src/{module} does not exist; fix the module's path")
    work = prepare(module, spec)
    start = time.time()
    log = work / "mutmut.log"
    scope = list(spec.get("mutants", []))  # mutmut's name globs: the module's research core only
    with open(log, "w") as f:
        proc = subprocess.run(mutmut_cmd("run", "--max-children", str(children), *scope), cwd=work, env=env(),
                              stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"mutmut failed on {module} (exit {proc.returncode}); log {log}:\n{tail}")
    result = collect(module, spec, work)
    result["seconds"] = round(time.time() - start)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{slug(module)}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"[mutation] {module}: {result['killed']}/{result['total']} killed ({result['seconds']} s)", flush=True)
    return result


def collect(module: str, spec: dict, work: Path) -> dict:
    """Read mutmut's per-file record (mutants/src/<module>.meta) and each survivor's diff."""
    sys.path.append(str(LIB))
    from mutmut.stats import status_by_exit_code

    meta = json.loads((work / "mutants" / "src" / (module + ".meta")).read_text())
    scope = spec.get("mutants")
    statuses = {k: status_by_exit_code[v] for k, v in meta["exit_code_by_key"].items()
                if not scope or any(fnmatch.fnmatchcase(k, g) for g in scope)}
    unchecked = [k for k, s in statuses.items() if s == "not checked"]
    if unchecked:
        raise SystemExit(f"mutmut left {len(unchecked)} mutants of {module} unchecked (e.g. {unchecked[0]})")
    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    survivors = []
    names = sorted((k for k, s in statuses.items() if s in SURVIVED), key=_order)
    for name in names:
        survivors.append({"name": name, "status": statuses[name], "diff": diff(work, module, name)})
    return {
        "module": module,
        "mutmut": mutmut_version(),
        "tests": list(spec["tests"]),
        "scope": list(scope or ["the whole module"]),
        "command": f"make mutation MODULES={module}",
        "counts": dict(sorted(counts.items())),
        "killed": sum(n for s, n in counts.items() if s in KILLED),
        "total": len(statuses),
        "survivors": survivors,
    }


def _order(name: str):
    head, _, n = name.rpartition("__mutmut_")
    return head, int(n) if n.isdigit() else 0


def diff(work: Path, module: str, name: str) -> str:
    out = subprocess.run(mutmut_cmd("show", name), cwd=work, env=env(), capture_output=True, text=True)
    lines = out.stdout.splitlines()
    body = [ln for ln in lines if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    return "\n".join(body)


def results() -> dict[str, dict]:
    return {json.loads(p.read_text())["module"]: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def score(r: dict) -> float:
    return r["killed"] / r["total"] if r["total"] else 1.0


def problems(root: Path = ROOT) -> list[str]:
    """What fails the tier: a score below its baseline, a survivor not triaged, a module of the
    baseline without a result, a triaged test that does not exist."""
    tier = root / "tests" / "mutation"
    res = {json.loads(p.read_text())["module"]: json.loads(p.read_text())
           for p in sorted((tier / "results").glob("*.json"))}
    base = json.loads((tier / "baseline.json").read_text())
    triage = yaml.safe_load((tier / "triage.yaml").read_text()) or {}
    out = []
    for module, b in base.items():
        if module not in res:
            out.append(f"{module}: in tests/mutation/baseline.json but no result; run `make mutation MODULES={module}`")
            continue
        r = res[module]
        if score(r) < b["killed"] / b["total"] - 1e-12:
            out.append(f"{module}: score {r['killed']}/{r['total']} fell below the baseline {b['killed']}/{b['total']}"
                       " (tests/mutation/baseline.json); kill the new survivors or triage them as equivalent")
    for module, r in res.items():
        for s in r["survivors"]:
            t = triage.get(s["name"])
            if t is None:
                out.append(f"{s['name']} ({module}) survived and is not in tests/mutation/triage.yaml: "
                           "add a test that kills it, or triage it as equivalent with why")
            elif t.get("verdict") == "killed" and t.get("rerun") == "pending" and t.get("test"):
                pass  # a test added after the module's last run: the next run must drop it (then drop `rerun`)
            elif t.get("verdict") != "equivalent" or not t.get("why"):
                out.append(f"tests/mutation/triage.yaml: {s['name']} survives; only `verdict: equivalent` with a `why` "
                           "(or a test added since the run, `rerun: pending`) may stand for a survivor")
    for name, t in triage.items():
        test = t.get("test")
        if test and not (root / test.split("::")[0]).is_file():
            out.append(f"tests/mutation/triage.yaml: {name}'s test {test} does not exist")
    return out


def render(root: Path = ROOT) -> str:
    """The README block: the score of every module, with the command, from the committed results."""
    tier = root / "tests" / "mutation"
    res = [json.loads(p.read_text()) for p in sorted((tier / "results").glob("*.json"))]
    pending = (yaml.safe_load((tier / "modules.yaml").read_text()) or {}).get("pending", {}) or {}
    version = res[0]["mutmut"] if res else "?"
    lines = [f"_Generated by `python scripts/mutation.py readme` from `tests/mutation/results/` (mutmut {version}); "
             "a module's command reruns it; `make mutation` reruns all and fails on a score below "
             "`tests/mutation/baseline.json` or an untriaged survivor (`tests/mutation/triage.yaml`)._", "",
             "| module | mutated | killed / total | score | survivors (triage) | tests run | command |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    triage = yaml.safe_load((tier / "triage.yaml").read_text()) or {}

    def scope(r: dict) -> str:
        def name(s: str) -> str:
            if ".x_" in s:
                return s.split(".x_", 1)[1].removesuffix("__mutmut_*") + "()"
            if ".xǁ" in s:
                cls, _, method = s.split(".xǁ", 1)[1].partition("ǁ")
                method = method.removesuffix("*").removesuffix("__mutmut_")
                return f"{cls}.{method}()" if method else f"{cls} (class)"
            return s

        names = [name(s) for s in r.get("scope", ["the whole module"])]
        return ", ".join(names)

    def survivors(r: dict) -> str:
        eq = sum(triage.get(s["name"], {}).get("verdict") == "equivalent" for s in r["survivors"])
        rerun = sum(triage.get(s["name"], {}).get("rerun") == "pending" for s in r["survivors"])
        added = f", {rerun} with a test added, rerun pending" if rerun else ""
        return f"{len(r['survivors'])}: {eq} equivalent{added}"

    for r in res:
        lines.append(f"| `{r['module']}` | {scope(r)} | {r['killed']} / {r['total']} | {100 * score(r):.1f}% | "
                     f"{survivors(r)} | {', '.join(f'`{t}`' for t in r['tests'])} | `{r['command']}` |")
    for module, why in pending.items():
        first = tier / "untriaged" / f"{slug(module)}.json"
        if first.exists():  # a run whose survivors are not triaged yet: shown, not in the baseline
            r = json.loads(first.read_text())
            lines.append(f"| `{module}` | {scope(r)} | {r['killed']} / {r['total']} | "
                         f"{100 * score(r):.1f}% | {len(r['survivors'])} (not triaged) | "
                         f"{', '.join(f'`{t}`' for t in r['tests'])} | pending: {why} |")
        else:
            lines.append(f"| `{module}` | | not run | | | | pending: {why} |")
    return "\n".join(lines) + "\n"


def split(text: str) -> tuple[str, str, str]:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {BEGIN} / {END}")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    return head, block, tail


def write_readme() -> None:
    readme = ROOT / "README.md"
    head, _, tail = split(readme.read_text())
    readme.write_text(head + BEGIN + "\n" + render() + END + tail)


def overlap(picks: list[str]) -> None:
    """For each hand-written mutant of scripts/mutation_check.py in a module of the tier: mutmut's
    mutants that change only the lines the hand mutant changes, and their status in the committed
    result (killed / SURVIVED / out of scope). A hand mutant is dropped only where one of them is the
    same distortion and killed (docs/mutation.md says which); mutmut's are mostly crash-type (an
    argument None), where a hand mutant changes what the code means."""
    import ast
    import importlib.util

    sys.path.append(str(LIB))
    from mutmut.mutation.file_mutation import mutate_file_contents

    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" / "mutation_check.py")
    hand = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hand)
    listed = modules()["modules"]
    res = results()
    generated: dict[str, str] = {}
    for name, rel, old, _new, _test in hand.DATA + hand.MECHANISMS:
        module = rel.removeprefix("src/")
        if module not in listed or (picks and not any(p in name or p in module for p in picks)):
            continue
        r = res.get(module)
        if r is None:
            print(f"[{name}] {module}: no result yet")
            continue
        src = (ROOT / rel).read_text()
        line = src[:src.index(old)].count("\n") + 1
        span = range(line, line + old.count("\n") + 1)
        tree = ast.parse(src)
        owner = None
        for cls in [None] + [n for n in tree.body if isinstance(n, ast.ClassDef)]:
            for fn in (tree.body if cls is None else cls.body):
                if isinstance(fn, ast.FunctionDef) and fn.lineno <= line <= fn.end_lineno:
                    owner = (cls.name if cls else None, fn)
        if owner is None:
            print(f"[{name}] {module}:{line}: outside a function (mutmut mutates functions only)")
            continue
        cls, fn = owner
        key = f"hetmtl.{slug(module)}." + (f"x\u01c1{cls}\u01c1" if cls else "x_") + f"{fn.name}__mutmut_"
        scope = r["scope"] if r["scope"] != ["the whole module"] else None
        in_scope = not scope or any(fnmatch.fnmatchcase(key + "1", g) for g in scope)
        if module not in generated:
            generated[module] = mutate_file_contents(module, src).code
        mtree = ast.parse(generated[module])
        gen = generated[module]
        funcs = {n.name: n for n in ast.walk(mtree) if isinstance(n, ast.FunctionDef) and "__mutmut_" in n.name}
        base = key.rsplit(".", 1)[1]
        orig = funcs.get(base + "orig")
        if orig is None:
            print(f"[{name}] {module}:{line}: {fn.name} is not mutated by mutmut (a decorated function?)")
            continue
        olines = ast.get_source_segment(gen, orig).splitlines()
        off = line - fn.lineno
        survivors = {s["name"] for s in r["survivors"]}
        hits = []
        for fname, node in funcs.items():
            if not fname.startswith(base) or fname.endswith("orig"):
                continue
            mlines = ast.get_source_segment(gen, node).splitlines()
            changed = [i for i, (a, b) in enumerate(zip(olines[1:], mlines[1:]), 1) if a != b]
            if len(mlines) == len(olines) and changed and all(i - off + line in span for i in changed):
                full = f"hetmtl.{slug(module)}.{fname}"
                status = "SURVIVED" if full in survivors else "killed" if in_scope else "out of scope"
                hits.append(f"    {fname.rsplit('_', 1)[1]:>4} {status:12s} {mlines[changed[0]].strip()[:110]}")
        print(f"[{name}] {module}:{line} ({fn.name}): {len(hits)} mutmut mutants on its lines")
        print("\n".join(hits))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["run", "check", "readme", "baseline", "overlap"])
    ap.add_argument("modules", nargs="*", help="paths under src/ (default: every module of modules.yaml "
                    "that is not pending)")
    ap.add_argument("--children", type=int, default=int(os.environ.get("MUTATION_CHILDREN", "2")))
    a = ap.parse_args(argv)
    listed = modules()
    mods, pending = listed["modules"], listed.get("pending") or {}
    if a.action == "run":
        ensure_mutmut()
        chosen = a.modules or [m for m in mods if m not in pending]  # a pending module: named only
        for m in chosen:
            if m not in mods:
                raise SystemExit(f"{m} is not a module of tests/mutation/modules.yaml (keys: paths under src/)")
            run(m, mods[m], a.children)
        write_readme()
        a.action = "check"
    if a.action == "overlap":
        overlap(a.modules)
        return 0
    if a.action == "readme":
        write_readme()
        return 0
    if a.action == "baseline":
        base = {m: {"killed": r["killed"], "total": r["total"]} for m, r in results().items()}
        (TIER / "baseline.json").write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")
        return 0
    found = problems()
    for p in found:
        print(f"[mutation] {p}")
    triage = yaml.safe_load((TIER / "triage.yaml").read_text()) or {}
    waiting = [k for k, v in triage.items() if v.get("rerun") == "pending"]
    if waiting:
        print(f"[mutation] {len(waiting)} survivors have a test added since their module's run (rerun: pending in "
              "tests/mutation/triage.yaml): rerun their modules, then drop `rerun: pending`")
    if not found:
        print(f"[mutation] {len(results())} modules at or above their baseline; every survivor triaged")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
