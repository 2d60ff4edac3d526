"""Sweeps (a parameter at several values, paper Fig. 9) and readings (Table 6's extra columns),
and the runs that follow another run."""

from __future__ import annotations

from hetmtl import paths
from hetmtl.params.errors import ParamsError
from hetmtl.runs import RunId


class Sweeps:
    """The sweeps' and readings' part of :class:`hetmtl.params.Params`."""

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


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
