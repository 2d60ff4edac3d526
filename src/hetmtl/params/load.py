"""Loading the experiment parameters: merging ``params/*.yaml``, validating them against
``params.schema.yaml`` and the methods' declarations, and the :class:`Params` they become."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from hetmtl.methods.registry import METHOD_SPECS, REGISTRY_PATH
from hetmtl.params.checks import search_checks, semantic_checks, sweep_checks
from hetmtl.params.digests import Digests
from hetmtl.params.errors import ParamsError
from hetmtl.params.grid import Grid
from hetmtl.params.report_checks import claims_checks, report_checks
from hetmtl.params.sweeps import Sweeps
from hetmtl.params.tune import Tune

SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")


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
class Params(Grid, Sweeps, Tune, Digests):
    """The merged, validated parameters: the grid (:class:`~hetmtl.params.grid.Grid`), sweeps and
    readings (:class:`~hetmtl.params.sweeps.Sweeps`), the tuning stage
    (:class:`~hetmtl.params.tune.Tune`) and what each job reads
    (:class:`~hetmtl.params.digests.Digests`)."""
    data: dict
    files: dict  # top-level key -> file it came from
    root: Path
    written: dict = field(default_factory=dict)  # method -> the keys params/methods.yaml writes for it


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



def methods_schema(methods, files: dict) -> dict:
    """The schema of every entry of params/methods.yaml: its method's declared
    parameters (:mod:`hetmtl.methods.registry`), every key required, nothing else
    allowed; a variant's are its base's plus ``variant_of``. The registry is where a
    method's parameters are declared, so a new method is its module, its
    declaration and its params entries."""
    out = {}
    for name, entry in (methods or {}).items():
        base = entry.get("variant_of", name) if isinstance(entry, dict) else name
        spec = METHOD_SPECS.get(base)
        if spec is None:
            raise ParamsError(f"{files.get('methods', 'params/methods.yaml')}: methods.{name}: no method {base!r} "
                              f"declared in {REGISTRY_PATH} (known: {', '.join(sorted(METHOD_SPECS))})")
        declared = spec.params
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
    method_schemas = methods_schema(merged.get("methods"), files)
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
    semantic_checks(merged, files)
    sweep_checks(merged, files, {"definitions": schema["definitions"]}, method_schemas)
    search_checks(merged, files, {"definitions": schema["definitions"]}, method_schemas,
                   schema["properties"]["training"])
    report_checks(merged, files)
    claims_checks(merged, files)
    return Params(data=merged, files=files, root=root, written=written)

