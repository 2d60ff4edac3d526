"""Cross-field checks of the merged parameters: what the schema cannot say (names that must
exist elsewhere, a method's rules from its declaration, sweeps and search spaces against the
method's parameters). Each raises :class:`ParamsError` naming the file and the key."""

from __future__ import annotations

import jsonschema

from hetmtl.methods.registry import METHOD_SPECS, REGISTRY_PATH
from hetmtl.params.errors import ParamsError


def _declaration(name: str, entry: dict):
    """The registry's declaration of a params/methods.yaml entry (a variant: its base's)."""
    return METHOD_SPECS[entry.get("variant_of", name)]


def semantic_checks(d: dict, files: dict) -> None:
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
        for key in _declaration(name, spec).follows_equal:  # the follower's declaration says which
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
    for suite_name, suite in d["suites"].items():  # a declared bound (a step that must be followed by training)
        runs = {"suite.epochs": suite["epochs"], **{f"suite.sweeps.{n}.epochs": sw["epochs"]
                                                    for n, sw in suite["sweeps"].items()}}
        if suite["tune"]["trials"]:  # a tune trial trains the method too
            runs["suite.tune.epochs"] = suite["tune"]["epochs"]
        for name, spec in d["methods"].items():
            for bound in _declaration(name, spec).declared.below_epochs:
                for where, epochs in runs.items():
                    if spec[bound.key] >= epochs:
                        fail(f"suites.{suite_name}", where,
                             f"{epochs} epochs leave no training after {bound.what} "
                             f"(methods.{name}.{bound.key} = {spec[bound.key]}); it must be below the epochs")
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
    for name, cfg in d["methods"].items():  # the rules of every parameter a method declares (a variant: its base's)
        for rule in _declaration(name, cfg).declared.rules:
            if not rule.holds(cfg):
                fail("methods", f"methods.{name}", rule.reason)
    if "dvc" in d and d["dvc"]["suite"] not in d["suites"]:
        fail("dvc", "dvc.suite", f"no suite {d['dvc']['suite']!r} in params/suites/ (known: {', '.join(d['suites'])})")



def sweep_checks(d: dict, files: dict, definitions: dict, method_schemas: dict) -> None:
    """Every value a suite sweeps is a valid value of its parameter: the method's
    entry with the value put in passes the method's declared parameters (a sweep's values
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


def search_checks(d: dict, files: dict, definitions: dict, method_schemas: dict, training_schema: dict) -> None:
    """Every method's declared ``search`` (:mod:`hetmtl.methods.registry`) names only keys of
    its declared parameters, each with a valid distribution whose ends (or choices) are valid
    values of the key; ``tuning.lr``'s ends are valid learning rates. A sampled
    value lies between the ends, so every trial passes the method's schema."""
    dist = jsonschema.Draft202012Validator({**definitions, "$ref": "#/definitions/distribution"})

    def points(spec: dict) -> list:
        [(kind, arg)] = spec.items()
        return list(arg)

    for name, entry in d["methods"].items():
        base = entry.get("variant_of", name)
        where = f"{REGISTRY_PATH}: {base}.search"  # an error names the declaration
        search, declared = METHOD_SPECS[base].search, METHOD_SPECS[base].params
        validator = jsonschema.Draft202012Validator({**definitions, **method_schemas[name]})
        for key, spec in search.items():
            if key not in declared:
                raise ParamsError(f"{where}.{key}: not one of the method's parameters "
                                  f"({', '.join(declared) or 'none'})")
            for err in dist.iter_errors(spec):
                raise ParamsError(f"{where}.{key}: {err.message}")
            ends = points(spec)
            if "choice" not in spec and ends[0] > ends[1]:
                raise ParamsError(f"{where}.{key}: the range {ends} runs backwards")
            for value in ends:
                for err in validator.iter_errors({**entry, key: value}):
                    raise ParamsError(f"{where}.{key}: {value!r} is not a value of "
                                      f"methods.{name}.{key} ({err.message})")
    lr = d["tuning"]["lr"]
    lr_schema = jsonschema.Draft202012Validator(training_schema["properties"]["lr"])
    for value in points(lr):
        for err in lr_schema.iter_errors(value):
            raise ParamsError(f"{files['tuning']}: tuning.lr: {value!r} is not a learning rate ({err.message})")
    if "choice" not in lr and points(lr)[0] > points(lr)[1]:
        raise ParamsError(f"{files['tuning']}: tuning.lr: the range {points(lr)} runs backwards")
