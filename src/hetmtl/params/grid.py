"""The grid of runs: suites, methods and the training jobs they expand into."""

from __future__ import annotations

from typing import Any

from hetmtl.params.errors import ParamsError
from hetmtl.runs import RunId


class Grid:
    """The grid's part of :class:`hetmtl.params.Params` (``data``, ``files``, ``written``)."""

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

    def table_methods(self, setting: str) -> list[tuple[str, str]]:
        """(run setting, method) of every row of a setting's table, shared rows first."""
        return ([("shared", m) for m in self.data["shared_methods"]]
                + [(setting, m) for m in self.data["settings"][setting]["methods"]])

    def tasks_of(self, group: str) -> list[str]:
        return list(self.data["groups"][group]["tasks"])
