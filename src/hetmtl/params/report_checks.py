"""Checks of params/report.yaml and params/claims.yaml against the grid."""

from __future__ import annotations

from hetmtl.params.errors import ParamsError


def report_checks(d: dict, files: dict) -> None:
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


def claims_checks(d: dict, files: dict) -> None:
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

